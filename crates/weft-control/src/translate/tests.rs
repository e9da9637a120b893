//! Golden-ish tests: a small mesh (ServiceEntry, WorkloadEntries, DestinationRule with
//! subsets, an external DNS service, a Gateway) and what each proxy gets.

use super::*;
use crate::model::CaptureMode;
use envoy_types::pb::envoy::config::cluster::v3::cluster::{
    ClusterDiscoveryType, DiscoveryType, LbConfig, LbPolicy,
};
use envoy_types::pb::envoy::config::core::v3::{address, socket_address, HealthStatus};
use envoy_types::pb::envoy::config::endpoint::v3::lb_endpoint::HostIdentifier;
use envoy_types::pb::envoy::config::listener::v3::filter::ConfigType;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
    DownstreamTlsContext, UpstreamTlsContext,
};
use envoy_types::pb::envoy::extensions::upstreams::http::v3::HttpProtocolOptions;
use prost::Message;
use std::collections::BTreeMap;

pub(super) const MESH: &str = r#"
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports:
  - {number: 9080, name: http}
  - {number: 9090, name: grpc-api}
  workloadSelector: {labels: {app: reviews}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata:
  name: reviews-v1
  namespace: default
  annotations: {istio.io/autoRegistrationGroup: reviews-v1}
spec:
  address: 127.0.0.11
  labels: {app: reviews, version: v1}
  locality: us-east/a
  weight: 2
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: reviews-v2, namespace: default}
spec:
  address: 127.0.0.12
  labels: {app: reviews, version: v2}
status:
  conditions: [{type: Healthy, status: "False"}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: default}
spec:
  host: reviews
  trafficPolicy:
    loadBalancer: {simple: ROUND_ROBIN}
    connectionPool:
      tcp: {maxConnections: 100, connectTimeout: 2s}
      http: {http1MaxPendingRequests: 10, maxRetries: 3, idleTimeout: 30s}
    outlierDetection: {consecutive5xxErrors: 5, interval: 10s, baseEjectionTime: 30s, maxEjectionPercent: 50}
  subsets:
  - name: v1
    labels: {version: v1}
  - name: v2
    labels: {version: v2}
    trafficPolicy:
      loadBalancer:
        consistentHash: {httpHeaderName: x-user, ringHash: {minimumRingSize: 1024}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: httpbin, namespace: default}
spec:
  hosts: [httpbin.org]
  resolution: DNS
  ports: [{number: 443, name: https}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: httpbin, namespace: default}
spec:
  host: httpbin.org
  trafficPolicy:
    tls: {mode: SIMPLE, subjectAltNames: [httpbin.org]}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: anything, namespace: default}
spec:
  hosts: [passthrough.example.com]
  resolution: NONE
  addresses: [10.9.0.0/16]
  ports: [{number: 5432, name: tcp-db}]
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: bookinfo-gateway, namespace: default}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 8080, name: http, protocol: HTTP}
    hosts: ["*"]
  - port: {number: 8443, name: https, protocol: HTTPS}
    hosts: [bookinfo.example.com]
    tls: {mode: SIMPLE, serverCertificate: CERT, privateKey: KEY}
  - port: {number: 9443, name: tls, protocol: TLS}
    hosts: [db.example.com]
    tls: {mode: PASSTHROUGH}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: db, namespace: default}
spec:
  hosts: [db.example.com]
  gateways: [bookinfo-gateway]
  tls:
  - match: [{sniHosts: [db.example.com], port: 9443}]
    route: [{destination: {host: reviews, port: {number: 9090}, subset: v1}}]
"#;

pub(super) fn mesh(cert: &str, key: &str) -> MeshSnapshot {
    let yaml = MESH.replace("CERT", cert).replace("KEY", key);
    let resources = weft_config::parse_documents(&yaml)
        .into_iter()
        .map(|r| r.expect("valid test resource"))
        .collect();
    MeshSnapshot::build(1, resources)
}

pub(super) fn sidecar() -> Proxy {
    Proxy {
        id: "sidecar~127.0.0.11~reviews-v1.default~default.svc.cluster.local".into(),
        ip: "127.0.0.11".into(),
        namespace: "default".into(),
        workload_group: Some("reviews-v1".into()),
        labels: BTreeMap::from([("app".into(), "reviews".into())]),
        capture: CaptureMode::Explicit,
        app_ports: BTreeMap::from([("http".into(), 19080), ("grpc-api".into(), 19090)]),
        outbound_port: 15001,
        ..Default::default()
    }
}

pub(super) fn gateway_proxy() -> Proxy {
    Proxy {
        kind: ProxyKind::Router,
        ip: "127.0.0.20".into(),
        namespace: "istio-system".into(),
        labels: BTreeMap::from([("istio".into(), "ingressgateway".into())]),
        ..Default::default()
    }
}

fn cluster<'a>(g: &'a Generated, name: &str) -> &'a Cluster {
    g.clusters
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no cluster {name}"))
}

fn discovery(c: &Cluster) -> DiscoveryType {
    match c.cluster_discovery_type {
        Some(ClusterDiscoveryType::Type(t)) => DiscoveryType::try_from(t).unwrap(),
        _ => panic!("no discovery type"),
    }
}

fn unpack<M: Message + Default>(any: &envoy_types::pb::google::protobuf::Any) -> M {
    M::decode(any.value.as_slice()).unwrap()
}

#[test]
fn cluster_names_and_types() {
    let g = generate(&mesh("c", "k"), &sidecar());
    let names: Vec<&str> = g.clusters.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "BlackHoleCluster",
            "PassthroughCluster",
            "inbound|9080||",
            "inbound|9090||",
            "outbound|443||httpbin.org",
            "outbound|5432||passthrough.example.com",
            "outbound|9080|v1|reviews.default.svc.cluster.local",
            "outbound|9080|v2|reviews.default.svc.cluster.local",
            "outbound|9080||reviews.default.svc.cluster.local",
            "outbound|9090|v1|reviews.default.svc.cluster.local",
            "outbound|9090|v2|reviews.default.svc.cluster.local",
            "outbound|9090||reviews.default.svc.cluster.local",
        ]
    );
    assert_eq!(
        discovery(cluster(
            &g,
            "outbound|9080||reviews.default.svc.cluster.local"
        )),
        DiscoveryType::Eds
    );
    assert_eq!(
        discovery(cluster(&g, "outbound|443||httpbin.org")),
        DiscoveryType::StrictDns
    );
    assert_eq!(
        discovery(cluster(&g, "outbound|5432||passthrough.example.com")),
        DiscoveryType::OriginalDst
    );
    assert_eq!(
        discovery(cluster(&g, "PassthroughCluster")),
        DiscoveryType::OriginalDst
    );
    assert_eq!(
        discovery(cluster(&g, "inbound|9080||")),
        DiscoveryType::Static
    );
    let inbound = cluster(&g, "inbound|9080||")
        .load_assignment
        .as_ref()
        .unwrap();
    let ep = &inbound.endpoints[0].lb_endpoints[0];
    assert_eq!(socket_of(ep), ("127.0.0.1".to_string(), 19080));
}

fn socket_of(ep: &envoy_types::pb::envoy::config::endpoint::v3::LbEndpoint) -> (String, u32) {
    let Some(HostIdentifier::Endpoint(e)) = &ep.host_identifier else {
        panic!()
    };
    let Some(address::Address::SocketAddress(s)) = &e.address.as_ref().unwrap().address else {
        panic!()
    };
    let Some(socket_address::PortSpecifier::PortValue(p)) = s.port_specifier else {
        panic!()
    };
    (s.address.clone(), p)
}

#[test]
fn destination_rule_policies_reach_clusters() {
    let g = generate(&mesh("c", "k"), &sidecar());
    let main = cluster(&g, "outbound|9080||reviews.default.svc.cluster.local");
    assert_eq!(main.lb_policy, LbPolicy::RoundRobin as i32);
    assert_eq!(main.connect_timeout.unwrap().seconds, 2);
    let t = &main.circuit_breakers.as_ref().unwrap().thresholds[0];
    assert_eq!(t.max_connections.unwrap().value, 100);
    assert_eq!(t.max_pending_requests.unwrap().value, 10);
    assert_eq!(t.max_retries.unwrap().value, 3);
    assert_eq!(
        t.max_requests.unwrap().value,
        u32::MAX,
        "unset limits are Envoy's max, like Istio"
    );
    let o = main.outlier_detection.as_ref().unwrap();
    assert_eq!(o.consecutive_5xx.unwrap().value, 5);
    assert_eq!(o.enforcing_consecutive_5xx.unwrap().value, 100);
    assert_eq!(o.max_ejection_percent.unwrap().value, 50);
    assert_eq!(o.base_ejection_time.unwrap().seconds, 30);
    let opts: HttpProtocolOptions =
        unpack(&main.typed_extension_protocol_options[cluster_policy::HTTP_PROTOCOL_OPTIONS]);
    assert_eq!(
        opts.common_http_protocol_options
            .unwrap()
            .idle_timeout
            .unwrap()
            .seconds,
        30
    );

    let v2 = cluster(&g, "outbound|9080|v2|reviews.default.svc.cluster.local");
    assert_eq!(v2.lb_policy, LbPolicy::RingHash as i32);
    let Some(LbConfig::RingHashLbConfig(ring)) = &v2.lb_config else {
        panic!("ring hash config")
    };
    assert_eq!(ring.minimum_ring_size.unwrap().value, 1024);
    assert_eq!(
        v2.circuit_breakers, main.circuit_breakers,
        "subset inherits the connection pool"
    );

    let grpc = cluster(&g, "outbound|9090||reviews.default.svc.cluster.local");
    let opts: HttpProtocolOptions =
        unpack(&grpc.typed_extension_protocol_options[cluster_policy::HTTP_PROTOCOL_OPTIONS]);
    assert!(format!("{:?}", opts.upstream_protocol_options).contains("Http2ProtocolOptions"));

    let tls = cluster(&g, "outbound|443||httpbin.org");
    assert_eq!(
        tls.lb_policy,
        LbPolicy::LeastRequest as i32,
        "Istio's default"
    );
    assert_eq!(tls.connect_timeout.unwrap().seconds, 10);
    let ts = tls.transport_socket.as_ref().expect("TLS origination");
    let Some(envoy_types::pb::envoy::config::core::v3::transport_socket::ConfigType::TypedConfig(
        any,
    )) = &ts.config_type
    else {
        panic!()
    };
    let ctx: UpstreamTlsContext = unpack(any);
    assert_eq!(ctx.sni, "httpbin.org");
    let dns = tls.load_assignment.as_ref().unwrap();
    assert_eq!(
        socket_of(&dns.endpoints[0].lb_endpoints[0]),
        ("httpbin.org".to_string(), 443)
    );
}

#[test]
fn endpoints_filtered_by_subset_with_health_weight_locality() {
    let g = generate(&mesh("c", "k"), &sidecar());
    let names: Vec<&str> = g
        .endpoints
        .iter()
        .map(|e| e.cluster_name.as_str())
        .collect();
    assert_eq!(names.len(), 6);
    assert!(names.windows(2).all(|w| w[0] <= w[1]), "sorted");
    let all = g
        .endpoints
        .iter()
        .find(|e| e.cluster_name == "outbound|9080||reviews.default.svc.cluster.local")
        .unwrap();
    let eps: Vec<_> = all.endpoints.iter().flat_map(|l| &l.lb_endpoints).collect();
    assert_eq!(eps.len(), 2);
    let v1 = g
        .endpoints
        .iter()
        .find(|e| e.cluster_name == "outbound|9080|v1|reviews.default.svc.cluster.local")
        .unwrap();
    assert_eq!(v1.endpoints.len(), 1);
    let loc = v1.endpoints[0].locality.as_ref().unwrap();
    assert_eq!((loc.region.as_str(), loc.zone.as_str()), ("us-east", "a"));
    let e = &v1.endpoints[0].lb_endpoints[0];
    assert_eq!(socket_of(e), ("127.0.0.11".to_string(), 9080));
    assert_eq!(e.load_balancing_weight.unwrap().value, 2);
    assert_eq!(e.health_status, HealthStatus::Healthy as i32);
    let v2 = g
        .endpoints
        .iter()
        .find(|e| e.cluster_name == "outbound|9080|v2|reviews.default.svc.cluster.local")
        .unwrap();
    assert_eq!(
        v2.endpoints[0].lb_endpoints[0].health_status,
        HealthStatus::Unhealthy as i32
    );
}

#[test]
fn explicit_sidecar_listeners() {
    let g = generate(&mesh("c", "k"), &sidecar());
    let names: Vec<&str> = g.listeners.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(
        names,
        ["127.0.0.11_9080", "127.0.0.11_9090", "127.0.0.1_15001"]
    );
    assert_eq!(rds_names(&g.listeners[2]), ["http_proxy"]);
    assert!(
        rds_names(&g.listeners[0]).is_empty(),
        "inbound routes are inline"
    );
    let hcm = &g.listeners[0].filter_chains[0].filters[0];
    assert_eq!(hcm.name, filter::HCM);
    // Another sidecar, with no WorkloadEntry of its own, only gets the outbound listener.
    let stranger = Proxy {
        ip: "127.0.0.99".into(),
        workload_group: None,
        labels: BTreeMap::new(),
        ..sidecar()
    };
    let g = generate(&mesh("c", "k"), &stranger);
    assert_eq!(g.listeners.len(), 1);
    assert!(!g.clusters.iter().any(|c| c.name.starts_with("inbound|")));
}

#[test]
fn gateway_listeners() {
    let g = generate(&mesh("/certs/cert.pem", "/certs/key.pem"), &gateway_proxy());
    let names: Vec<&str> = g.listeners.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(names, ["0.0.0.0_8080", "0.0.0.0_8443", "0.0.0.0_9443"]);
    assert_eq!(rds_names(&g.listeners[0]), ["http.8080"]);
    assert_eq!(
        rds_names(&g.listeners[1]),
        ["https.8443.https.bookinfo-gateway.default"]
    );
    let chain = &g.listeners[1].filter_chains[0];
    assert_eq!(
        chain.filter_chain_match.as_ref().unwrap().server_names,
        ["bookinfo.example.com"]
    );
    let Some(envoy_types::pb::envoy::config::core::v3::transport_socket::ConfigType::TypedConfig(
        any,
    )) = &chain.transport_socket.as_ref().unwrap().config_type
    else {
        panic!()
    };
    let ctx: DownstreamTlsContext = unpack(any);
    let sds = &ctx
        .common_tls_context
        .unwrap()
        .tls_certificate_sds_secret_configs[0];
    assert!(sds.name.starts_with("file-cert:/") && sds.name.contains("/certs/cert.pem~"));
    let pass = &g.listeners[2];
    assert_eq!(
        pass.listener_filters[0].name,
        "envoy.filters.listener.tls_inspector"
    );
    let chain = &pass.filter_chains[0];
    assert_eq!(
        chain.filter_chain_match.as_ref().unwrap().server_names,
        ["db.example.com"]
    );
    let Some(ConfigType::TypedConfig(any)) = &chain.filters[0].config_type else {
        panic!()
    };
    let tcp: envoy_types::pb::envoy::extensions::filters::network::tcp_proxy::v3::TcpProxy =
        unpack(any);
    assert!(format!("{:?}", tcp.cluster_specifier)
        .contains("outbound|9090|v1|reviews.default.svc.cluster.local"));
    // A sidecar's labels select no gateway.
    assert!(gateway::listeners(&mesh("c", "k"), &sidecar()).is_empty());
}

#[test]
fn generation_is_deterministic() {
    let s = mesh("c", "k");
    assert_eq!(generate(&s, &sidecar()), generate(&s, &sidecar()));
}
