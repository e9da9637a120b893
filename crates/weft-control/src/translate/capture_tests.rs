//! Transparent capture for Bookinfo's reviews sidecar: Istio's listener layout, checked
//! field by field and then by real Envoy (`envoy --mode validate`).

use super::capture_inbound::{INBOUND_CAPTURE_PORT, ORIGINAL_DST, PASSTHROUGH_CHAIN};
use super::capture_outbound::{
    BLACKHOLE_CHAIN, CATCH_ALL_CHAIN, HTTP_INSPECTOR, OUTBOUND_CAPTURE_PORT, TLS_INSPECTOR,
};
use super::*;
use crate::model::CaptureMode;
use envoy_types::pb::envoy::config::cluster::v3::cluster::{ClusterDiscoveryType, DiscoveryType};
use envoy_types::pb::envoy::config::listener::v3::filter::ConfigType;
use envoy_types::pb::envoy::config::listener::v3::FilterChain;
use envoy_types::pb::envoy::extensions::filters::network::tcp_proxy::v3::TcpProxy;
use prost::Message;
use std::collections::BTreeMap;

pub(super) const BOOKINFO: &str = r#"
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: bookinfo, namespace: default}
spec:
  hosts: [reviews.default.svc.cluster.local]
  addresses: [10.96.0.12]
  resolution: STATIC
  ports: [{number: 9080, name: http}]
  workloadSelector: {labels: {app: reviews}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ratings, namespace: default}
spec:
  hosts: [ratings.default.svc.cluster.local]
  addresses: [10.96.0.13]
  resolution: STATIC
  ports: [{number: 9080, name: http}]
  endpoints: [{address: 10.0.0.13, labels: {version: v1}}]
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: reviews-v1, namespace: default}
spec:
  address: 10.0.0.11
  labels: {app: reviews, version: v1}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: mongodb, namespace: default}
spec:
  hosts: [mongodb.default.svc.cluster.local]
  addresses: [10.96.0.20]
  resolution: STATIC
  ports: [{number: 27017, name: tcp-mongo, protocol: TCP}]
  endpoints: [{address: 10.0.0.20, labels: {version: v1}}, {address: 10.0.0.21, labels: {version: v2}}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: mongodb, namespace: default}
spec:
  host: mongodb
  subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: mongodb, namespace: default}
spec:
  hosts: [mongodb]
  tcp:
  - match: [{port: 27017, destinationSubnets: [10.96.0.20/32]}]
    route:
    - {destination: {host: mongodb, subset: v1}, weight: 80}
    - {destination: {host: mongodb, subset: v2}, weight: 20}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: external-tls, namespace: default}
spec:
  hosts: [api.example.com, www.example.com]
  location: MESH_EXTERNAL
  resolution: DNS
  ports: [{number: 443, name: tls, protocol: TLS}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: example-sni, namespace: default}
spec:
  hosts: [api.example.com]
  tls:
  - match: [{port: 443, sniHosts: [api.example.com]}]
    route: [{destination: {host: www.example.com}}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: legacy, namespace: default}
spec:
  hosts: [legacy.default.svc.cluster.local]
  resolution: STATIC
  ports: [{number: 7070, name: legacy}]
  endpoints: [{address: 10.0.0.70}]
"#;

pub(super) fn bookinfo() -> MeshSnapshot {
    let resources = weft_config::parse_documents(BOOKINFO)
        .into_iter()
        .map(|r| r.expect("valid test resource"))
        .collect();
    MeshSnapshot::build(1, resources)
}

pub(super) fn reviews() -> Proxy {
    Proxy {
        id: "sidecar~10.0.0.11~reviews-v1.default~default.svc.cluster.local".into(),
        ip: "10.0.0.11".into(),
        namespace: "default".into(),
        labels: BTreeMap::from([
            ("app".into(), "reviews".into()),
            ("version".into(), "v1".into()),
        ]),
        capture: CaptureMode::Transparent,
        ..Default::default()
    }
}

fn listener<'a>(g: &'a Generated, name: &str) -> &'a Listener {
    g.listeners
        .iter()
        .find(|l| l.name == name)
        .unwrap_or_else(|| panic!("no listener {name} in {:?}", names(g)))
}

fn names(g: &Generated) -> Vec<&str> {
    g.listeners.iter().map(|l| l.name.as_str()).collect()
}

fn tcp(chain: &FilterChain) -> TcpProxy {
    let f = &chain.filters[0];
    assert_eq!(f.name, filter::TCP_PROXY);
    let Some(ConfigType::TypedConfig(any)) = &f.config_type else {
        panic!()
    };
    TcpProxy::decode(any.value.as_slice()).unwrap()
}

fn target(chain: &FilterChain) -> String {
    format!("{:?}", tcp(chain).cluster_specifier)
}

fn port_of(chain: &FilterChain) -> Option<u32> {
    chain
        .filter_chain_match
        .as_ref()
        .and_then(|m| m.destination_port)
        .map(|p| p.value)
}

#[test]
fn istio_listener_names() {
    let g = generate(&bookinfo(), &reviews());
    assert_eq!(
        names(&g),
        [
            "0.0.0.0_27017",
            "0.0.0.0_443",
            "0.0.0.0_7070",
            "0.0.0.0_9080",
            "virtualInbound",
            "virtualOutbound"
        ]
    );
    for l in g
        .listeners
        .iter()
        .filter(|l| l.name.starts_with("0.0.0.0_"))
    {
        assert_eq!(l.bind_to_port.map(|b| b.value), Some(false), "{}", l.name);
    }
}

#[test]
fn virtual_outbound_hands_off_and_passes_unknown_through() {
    let g = generate(&bookinfo(), &reviews());
    let l = listener(&g, "virtualOutbound");
    assert_eq!(l.use_original_dst.map(|b| b.value), Some(true));
    assert_eq!(format!("{:?}", l.address).matches("15001").count(), 1);
    let blackhole = &l.filter_chains[0];
    assert_eq!(blackhole.name, BLACKHOLE_CHAIN);
    assert_eq!(port_of(blackhole), Some(OUTBOUND_CAPTURE_PORT));
    assert!(target(blackhole).contains("BlackHoleCluster"));
    let catch_all = &l.filter_chains[1];
    assert_eq!(catch_all.name, CATCH_ALL_CHAIN);
    assert!(catch_all.filter_chain_match.is_none());
    assert!(target(catch_all).contains("\"PassthroughCluster\""));
}

#[test]
fn registry_only_sidecar_blackholes_unknown_destinations() {
    let yaml = format!(
        "{BOOKINFO}---\napiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {{name: default, namespace: default}}\nspec:\n  outboundTrafficPolicy: {{mode: REGISTRY_ONLY}}\n"
    );
    let resources = weft_config::parse_documents(&yaml)
        .into_iter()
        .map(|r| r.unwrap())
        .collect();
    let g = generate(&MeshSnapshot::build(1, resources), &reviews());
    let l = listener(&g, "virtualOutbound");
    assert!(target(&l.filter_chains[1]).contains("BlackHoleCluster"));
    let table = g.routes.iter().find(|r| r.name == "9080").unwrap();
    assert_eq!(table.virtual_hosts.last().unwrap().name, "block_all");
}

#[test]
fn http_port_uses_rds_named_after_the_port() {
    let g = generate(&bookinfo(), &reviews());
    let l = listener(&g, "0.0.0.0_9080");
    assert_eq!(l.filter_chains.len(), 1);
    assert_eq!(rds_names(l), ["9080"]);
    let table = g
        .routes
        .iter()
        .find(|r| r.name == "9080")
        .expect("RDS 9080");
    let vhosts: Vec<&str> = table
        .virtual_hosts
        .iter()
        .map(|v| v.name.as_str())
        .collect();
    assert_eq!(
        vhosts,
        [
            "ratings.default.svc.cluster.local:9080",
            "reviews.default.svc.cluster.local:9080",
            "allow_any"
        ]
    );
}

#[test]
fn tcp_route_by_destination_subnet_splits_by_weight() {
    let g = generate(&bookinfo(), &reviews());
    let l = listener(&g, "0.0.0.0_27017");
    assert_eq!(
        l.filter_chains.len(),
        1,
        "the route's match and the VIP coincide"
    );
    let chain = &l.filter_chains[0];
    let m = chain.filter_chain_match.as_ref().unwrap();
    assert_eq!(m.prefix_ranges[0].address_prefix, "10.96.0.20");
    assert_eq!(m.prefix_ranges[0].prefix_len.unwrap().value, 32);
    let spec = target(chain);
    assert!(spec.contains("outbound|27017|v1|mongodb.default.svc.cluster.local"));
    assert!(spec.contains("weight: 80"), "{spec}");
    assert!(spec.contains("outbound|27017|v2|mongodb.default.svc.cluster.local"));
}

#[test]
fn tls_route_by_sni_with_tls_inspector() {
    let g = generate(&bookinfo(), &reviews());
    let l = listener(&g, "0.0.0.0_443");
    assert_eq!(l.listener_filters[0].name, TLS_INSPECTOR);
    let by_sni: BTreeMap<Vec<String>, String> = l
        .filter_chains
        .iter()
        .map(|c| {
            (
                c.filter_chain_match.clone().unwrap().server_names,
                target(c),
            )
        })
        .collect();
    // The VirtualService sends api.example.com to www; www keeps its own cluster.
    let api = &by_sni[&vec!["api.example.com".to_string()]];
    assert!(api.contains("outbound|443||www.example.com"), "{api}");
    let www = &by_sni[&vec!["www.example.com".to_string()]];
    assert!(www.contains("outbound|443||www.example.com"));
    assert_eq!(by_sni.len(), 2);
}

#[test]
fn undeclared_protocol_is_sniffed() {
    let g = generate(&bookinfo(), &reviews());
    let l = listener(&g, "0.0.0.0_7070");
    assert_eq!(l.listener_filters[0].name, HTTP_INSPECTOR);
    let http = &l.filter_chains[0];
    assert_eq!(
        http.filter_chain_match
            .as_ref()
            .unwrap()
            .application_protocols,
        ["http/1.1", "h2c"]
    );
    assert_eq!(rds_names(l), ["7070"]);
    assert!(target(&l.filter_chains[1]).contains("outbound|7070||legacy.default.svc.cluster.local"));
}

#[test]
fn virtual_inbound_chains_per_port_and_passthrough() {
    let g = generate(&bookinfo(), &reviews());
    let l = listener(&g, "virtualInbound");
    assert!(format!("{:?}", l.address).contains(&INBOUND_CAPTURE_PORT.to_string()));
    assert_eq!(l.listener_filters[0].name, ORIGINAL_DST);
    let chains: Vec<(&str, Option<u32>)> = l
        .filter_chains
        .iter()
        .map(|c| (c.name.as_str(), port_of(c)))
        .collect();
    assert_eq!(
        chains,
        [
            ("virtualInbound-blackhole", Some(15006)),
            ("0.0.0.0_9080", Some(9080)),
            (PASSTHROUGH_CHAIN, None)
        ]
    );
    assert_eq!(l.filter_chains[1].filters[0].name, filter::HCM);
    assert!(target(&l.filter_chains[2]).contains("InboundPassthroughCluster"));
    let inbound = g
        .clusters
        .iter()
        .find(|c| c.name == "inbound|9080||")
        .unwrap();
    let ep = format!("{:?}", inbound.load_assignment);
    assert!(
        ep.contains("127.0.0.1") && ep.contains("PortValue(9080)"),
        "{ep}"
    );
    let pass = g
        .clusters
        .iter()
        .find(|c| c.name == "InboundPassthroughCluster")
        .unwrap();
    assert_eq!(
        pass.cluster_discovery_type,
        Some(ClusterDiscoveryType::Type(
            DiscoveryType::OriginalDst as i32
        ))
    );
    assert!(format!("{:?}", pass.upstream_bind_config).contains("127.0.0.6"));
}
