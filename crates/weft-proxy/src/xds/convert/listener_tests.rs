//! Transparent capture: weftd's golden `bookinfo-transparent` listeners (Envoy JSON) convert,
//! and connections pick the chains Envoy would pick.

use super::listener as convert;
use crate::listener::{chain, original_dst};
use crate::model::{self, NetworkFilter};
use envoy_types::pb::envoy::config::listener::v3::Listener;
use prost::Message;
use prost_reflect::{DescriptorPool, DynamicMessage};
use std::net::SocketAddr;
use std::path::PathBuf;

/// The descriptor set `envoy-types` ships in its sources (it does not expose it).
fn pool() -> DescriptorPool {
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .expect("CARGO_HOME or HOME is set");
    let registry = cargo_home.join("registry/src");
    let found = std::fs::read_dir(&registry)
        .unwrap_or_else(|e| panic!("{}: {e}", registry.display()))
        .flatten()
        .map(|index| {
            index
                .path()
                .join("envoy-types-0.7.7/src/generated/types.bin")
        })
        .find(|p| p.is_file())
        .expect("envoy-types 0.7.7 sources are in the cargo registry");
    DescriptorPool::decode(std::fs::read(found).unwrap().as_slice()).unwrap()
}

/// `listeners` of weft-control's golden transparent-sidecar output, as protos.
fn golden_listeners() -> Vec<Listener> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../weft-control/tests/golden/bookinfo-transparent/expected.json"
    );
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let pool = pool();
    let descriptor = pool
        .get_message_by_name("envoy.config.listener.v3.Listener")
        .unwrap();
    json["listeners"]
        .as_array()
        .expect("expected.json has listeners")
        .iter()
        .map(|l| {
            let dynamic = DynamicMessage::deserialize(descriptor.clone(), l).unwrap();
            Listener::decode(dynamic.encode_to_vec().as_slice()).unwrap()
        })
        .collect()
}

fn tcp_cluster(chain: &model::FilterChain) -> &str {
    match &chain.filter {
        NetworkFilter::TcpProxy { clusters, .. } => &clusters[0].name,
        NetworkFilter::Http(_) => "(http)",
    }
}

/// What `listener::serve` knows about a connection restored to `dst`.
fn redirected(dst: &str) -> chain::ConnectionInfo {
    let dst: SocketAddr = dst.parse().unwrap();
    chain::ConnectionInfo {
        destination_port: dst.port(),
        destination_ip: Some(dst.ip()),
        original_dst: Some(dst),
        transport_protocol: "raw_buffer",
        ..Default::default()
    }
}

#[test]
fn golden_transparent_listeners_are_accepted() {
    let protos = golden_listeners();
    let converted: Vec<model::Listener> = protos
        .iter()
        .map(|l| convert(l).unwrap_or_else(|e| panic!("{}: {e}", l.name)))
        .collect();
    let by_name = |name: &str| converted.iter().find(|l| l.name == name).unwrap();

    let outbound = by_name("virtualOutbound");
    assert!(outbound.use_original_dst && outbound.bind_to_port);
    let per_port = by_name("0.0.0.0_9080");
    assert!(!per_port.bind_to_port && !per_port.use_original_dst);
    let inbound = by_name("virtualInbound");
    assert!(inbound.original_dst_filter && inbound.bind_to_port);

    // Outbound: a connection to reviews:9080 goes to the per-port listener, one to an
    // address without a listener stays on virtualOutbound and passes through.
    let to = |dst: &str| original_dst::handoff(&converted, dst.parse().unwrap());
    assert_eq!(to("10.96.0.12:9080").unwrap().name, "0.0.0.0_9080");
    assert!(to("93.184.216.34:443").is_none());
    let picked = chain::select(&outbound.filter_chains, &redirected("93.184.216.34:443")).unwrap();
    assert_eq!(tcp_cluster(picked), "PassthroughCluster");
    // Connecting to the capture port itself is a loop: black-holed.
    let own = chain::select(&outbound.filter_chains, &redirected("127.0.0.1:15001")).unwrap();
    assert_eq!(tcp_cluster(own), "BlackHoleCluster");

    // Inbound: the original destination port picks the chain.
    let app = chain::select(&inbound.filter_chains, &redirected("10.0.0.7:9080")).unwrap();
    assert!(matches!(app.filter, NetworkFilter::Http(_)), "{}", app.name);
    let other = chain::select(&inbound.filter_chains, &redirected("10.0.0.7:7777")).unwrap();
    assert_eq!(tcp_cluster(other), "InboundPassthroughCluster");
    let v6 = chain::select(&inbound.filter_chains, &redirected("[fd00::7]:7777")).unwrap();
    assert_eq!(tcp_cluster(v6), "InboundPassthroughCluster");
    let direct = chain::select(&inbound.filter_chains, &redirected("10.0.0.7:15006")).unwrap();
    assert_eq!(tcp_cluster(direct), "BlackHoleCluster");
}
