//! Transparent capture, inbound (Istio's layout): `virtualInbound` on 15006 takes what
//! iptables redirected towards the workload, one filter chain per inbound port to its
//! `inbound|<port>||` cluster (the application on 127.0.0.1), everything else through
//! InboundPassthroughCluster to where it was going.

use super::cluster;
use super::filter::{http_connection_manager, tcp_proxy, Routes};
use super::listener::inbound_ports;
use super::mtls;
use super::names;
use super::proto::{any, socket, u32v};
use super::route;
use super::Direction;
use crate::model::{MeshSnapshot, Proxy};
use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::core::v3::{CidrRange, TrafficDirection};
use envoy_types::pb::envoy::config::listener::v3::{
    listener_filter, FilterChain, FilterChainMatch, Listener, ListenerFilter,
};
use envoy_types::pb::envoy::extensions::filters::listener::original_dst::v3::OriginalDst;

/// Istio's inbound capture port, where istio-iptables redirects inbound traffic.
pub const INBOUND_CAPTURE_PORT: u32 = 15006;
pub const ORIGINAL_DST: &str = "envoy.filters.listener.original_dst";
/// Istio names the inbound passthrough chain after the listener.
pub const PASSTHROUGH_CHAIN: &str = "virtualInbound";
const INBOUND_BLACKHOLE_CHAIN: &str = "virtualInbound-blackhole";

/// `virtualInbound` and the clusters its chains use: `inbound|<port>||` per port of the
/// proxy's workload and InboundPassthroughCluster.
pub fn virtual_inbound(snapshot: &MeshSnapshot, proxy: &Proxy) -> (Listener, Vec<Cluster>) {
    // Traffic sent to the capture port itself would loop; refuse it.
    let mut chains = vec![FilterChain {
        name: INBOUND_BLACKHOLE_CHAIN.to_string(),
        filter_chain_match: Some(FilterChainMatch {
            destination_port: Some(u32v(INBOUND_CAPTURE_PORT)),
            ..Default::default()
        }),
        filters: vec![tcp_proxy(
            names::BLACKHOLE_CLUSTER,
            &[(names::BLACKHOLE_CLUSTER.to_string(), 1)],
        )],
        ..Default::default()
    }];
    let mut clusters = vec![cluster::inbound_passthrough()];
    let peer_policies = mtls::PeerPolicies::for_proxy(snapshot, proxy);
    for p in inbound_ports(snapshot, proxy) {
        let cluster_name = names::inbound_cluster(p.port);
        let filter = if p.protocol.is_http() {
            http_connection_manager(
                &format!("inbound_0.0.0.0_{}", p.port),
                Routes::Inline(Box::new(route::inbound_route_config(p.port))),
                Direction::Inbound,
            )
        } else {
            tcp_proxy(&cluster_name, &[(cluster_name.clone(), 1)])
        };
        let chain = FilterChain {
            name: names::listener("0.0.0.0", p.port),
            filter_chain_match: Some(FilterChainMatch {
                destination_port: Some(u32v(p.port)),
                ..Default::default()
            }),
            filters: vec![filter],
            ..Default::default()
        };
        // PeerAuthentication: mTLS beside (PERMISSIVE) or instead of (STRICT) plain text.
        match peer_policies.mode(p.port) {
            Some(mode) => chains.extend(mtls::secure_inbound_chain(
                chain,
                mode,
                p.protocol.is_http(),
            )),
            None => chains.push(chain),
        }
        // Captured traffic keeps its original port, which is where the application listens.
        let mut inbound = cluster::inbound(p.port, p.port);
        if p.protocol.is_http2() {
            super::cluster_policy::http2_upstream(&mut inbound);
        }
        clusters.push(inbound);
    }
    chains.push(FilterChain {
        name: PASSTHROUGH_CHAIN.to_string(),
        filter_chain_match: Some(FilterChainMatch {
            prefix_ranges: vec![cidr("0.0.0.0", 0), cidr("::", 0)],
            ..Default::default()
        }),
        filters: vec![tcp_proxy(
            names::INBOUND_PASSTHROUGH_CLUSTER,
            &[(names::INBOUND_PASSTHROUGH_CLUSTER.to_string(), 1)],
        )],
        ..Default::default()
    });
    let mut listener = Listener {
        name: names::VIRTUAL_INBOUND.to_string(),
        address: Some(socket("0.0.0.0", INBOUND_CAPTURE_PORT)),
        traffic_direction: TrafficDirection::Inbound as i32,
        // Istio restores the original destination with the listener filter here (not
        // `use_original_dst`): the connection stays on this listener and its chains match
        // on the original port.
        listener_filters: vec![ListenerFilter {
            name: ORIGINAL_DST.to_string(),
            config_type: Some(listener_filter::ConfigType::TypedConfig(any(
                "envoy.extensions.filters.listener.original_dst.v3.OriginalDst",
                &OriginalDst::default(),
            ))),
            ..Default::default()
        }],
        filter_chains: chains,
        ..Default::default()
    };
    mtls::ensure_tls_inspector(&mut listener);
    (listener, clusters)
}

fn cidr(prefix: &str, len: u32) -> CidrRange {
    CidrRange {
        address_prefix: prefix.to_string(),
        prefix_len: Some(u32v(len)),
    }
}
