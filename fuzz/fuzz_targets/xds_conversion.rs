//! Fuzzes weft-proxy's xDS conversion: bytes decoded as each resource type the proxy
//! accepts, then converted into its model. Errors (NACKs) are fine; panics are bugs.
#![no_main]

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::config::listener::v3::Listener;
use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;
use libfuzzer_sys::fuzz_target;
use prost::Message;
use weft_proxy::xds::convert;

fuzz_target!(|data: &[u8]| {
    let Some((&kind, bytes)) = data.split_first() else {
        return;
    };
    match kind % 4 {
        0 => {
            if let Ok(l) = Listener::decode(bytes) {
                let _ = convert::listener::listener(&l);
            }
        }
        1 => {
            if let Ok(rc) = RouteConfiguration::decode(bytes) {
                let _ = convert::route::route_configuration(&rc);
            }
        }
        2 => {
            if let Ok(c) = Cluster::decode(bytes) {
                let _ = convert::cluster::cluster(&c);
            }
        }
        _ => {
            if let Ok(la) = ClusterLoadAssignment::decode(bytes) {
                let _ = convert::endpoint::load_assignment(&la);
            }
        }
    }
});
