//! Visibility from YAML snapshots: two namespaces, `exportTo: ["."]`, and Sidecars limiting
//! egress; checked on the scope and on what `generate` hands each proxy.

use super::*;
use crate::model::CaptureMode;
use crate::translate::generate;

const MESH: &str = r#"
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews.default.svc.cluster.local]
  resolution: STATIC
  ports: [{number: 9080, name: http}]
  endpoints: [{address: 10.0.0.1}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ratings, namespace: default}
spec:
  hosts: [ratings.default.svc.cluster.local]
  exportTo: ["."]
  resolution: STATIC
  ports: [{number: 9080, name: http}, {number: 9090, name: tcp-db}]
  endpoints: [{address: 10.0.0.2}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: details, namespace: prod}
spec:
  hosts: [details.prod.svc.cluster.local]
  exportTo: ["."]
  resolution: STATIC
  ports: [{number: 9080, name: http}]
  endpoints: [{address: 10.1.0.1}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: productpage, namespace: prod}
spec:
  hosts: [productpage.prod.svc.cluster.local]
  resolution: STATIC
  ports: [{number: 9080, name: http}]
  endpoints: [{address: 10.1.0.2}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: zipkin, namespace: istio-system}
spec:
  hosts: [zipkin.istio-system.svc.cluster.local]
  resolution: STATIC
  ports: [{number: 9411, name: http}]
  endpoints: [{address: 10.2.0.1}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews-private, namespace: default}
spec:
  hosts: [reviews]
  exportTo: ["."]
  http: [{route: [{destination: {host: reviews}}], timeout: 3s}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: productpage, namespace: prod}
spec:
  hosts: [productpage]
  http: [{route: [{destination: {host: productpage}}]}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: default}
spec:
  host: reviews
  exportTo: ["."]
  subsets: [{name: v1, labels: {version: v1}}]
"#;

const SIDECAR: &str = r#"
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: default}
spec:
  egress:
  - hosts: ["./*", "istio-system/*"]
"#;

fn snapshot(yaml: &str) -> MeshSnapshot {
    let resources = weft_config::parse_documents(yaml)
        .into_iter()
        .map(|r| r.expect("valid test resource"))
        .collect();
    MeshSnapshot::build(1, resources)
}

fn proxy(namespace: &str) -> Proxy {
    Proxy {
        namespace: namespace.into(),
        ip: "10.9.9.9".into(),
        capture: CaptureMode::Explicit,
        outbound_port: 15001,
        ..Default::default()
    }
}

fn seen(s: &MeshSnapshot, p: &Proxy) -> Vec<String> {
    let scope = Scope::new(s, p);
    s.registry
        .services
        .iter()
        .filter(|svc| scope.sees_service(svc))
        .map(|svc| svc.hostname.split('.').next().unwrap().to_string())
        .collect()
}

fn resource<'a>(
    s: &'a MeshSnapshot,
    ns: &str,
    name: &str,
    kind: weft_config::Kind,
) -> &'a Resource {
    s.of_kind(kind)
        .find(|r| r.metadata.namespace == ns && r.metadata.name == name)
        .unwrap()
}

#[test]
fn export_to_dot_hides_services_and_config_from_other_namespaces() {
    let s = snapshot(MESH);
    assert_eq!(
        seen(&s, &proxy("default")),
        ["productpage", "ratings", "reviews", "zipkin"]
    );
    assert_eq!(
        seen(&s, &proxy("prod")),
        ["details", "productpage", "reviews", "zipkin"]
    );
    let vs = resource(
        &s,
        "default",
        "reviews-private",
        weft_config::Kind::VirtualService,
    );
    let dr = resource(&s, "default", "reviews", weft_config::Kind::DestinationRule);
    assert!(Scope::new(&s, &proxy("default")).sees_config(vs));
    assert!(Scope::new(&s, &proxy("default")).sees_config(dr));
    assert!(!Scope::new(&s, &proxy("prod")).sees_config(vs));
    assert!(!Scope::new(&s, &proxy("prod")).sees_config(dr));
}

#[test]
fn sidecar_limits_egress_to_own_and_root_namespace() {
    let s = snapshot(&format!("{MESH}{SIDECAR}"));
    let scope = Scope::new(&s, &proxy("default"));
    assert_eq!(scope.sidecar(), Some("default/default"));
    assert_eq!(
        seen(&s, &proxy("default")),
        ["ratings", "reviews", "zipkin"]
    );
    let vs = resource(&s, "prod", "productpage", weft_config::Kind::VirtualService);
    assert!(!scope.sees_config(vs), "prod is not imported");
    // The Sidecar lives in `default`: `prod` keeps the mesh-wide default.
    assert_eq!(
        seen(&s, &proxy("prod")),
        ["details", "productpage", "reviews", "zipkin"]
    );
}

#[test]
fn generated_clusters_endpoints_and_routes_follow_the_scope() {
    let s = snapshot(&format!("{MESH}{SIDECAR}"));
    let g = generate(&s, &proxy("default"));
    let outbound: Vec<&str> = g
        .clusters
        .iter()
        .map(|c| c.name.as_str())
        .filter(|n| n.starts_with("outbound|"))
        .collect();
    assert_eq!(
        outbound,
        [
            "outbound|9080|v1|reviews.default.svc.cluster.local",
            "outbound|9080||ratings.default.svc.cluster.local",
            "outbound|9080||reviews.default.svc.cluster.local",
            "outbound|9090||ratings.default.svc.cluster.local",
            "outbound|9411||zipkin.istio-system.svc.cluster.local",
        ]
    );
    let eds: Vec<&str> = g
        .endpoints
        .iter()
        .map(|e| e.cluster_name.as_str())
        .collect();
    assert!(!eds.iter().any(|n| n.contains("prod")), "{eds:?}");
    let vhosts: Vec<&str> = g.routes[0]
        .virtual_hosts
        .iter()
        .map(|v| v.name.as_str())
        .collect();
    assert_eq!(
        vhosts,
        [
            "ratings.default.svc.cluster.local:9080",
            "reviews.default.svc.cluster.local:9080",
            "zipkin.istio-system.svc.cluster.local:9411",
            "allow_any"
        ]
    );
    // From prod: no ratings (exported to `.`), no private VirtualService or DestinationRule.
    let g = generate(&s, &proxy("prod"));
    assert!(!g.clusters.iter().any(|c| c.name.contains("ratings")));
    assert!(!g.clusters.iter().any(|c| c.name.contains("|v1|")));
    let reviews = g.routes[0]
        .virtual_hosts
        .iter()
        .find(|v| v.name == "reviews.default.svc.cluster.local:9080")
        .unwrap();
    assert_eq!(
        reviews.routes[0].name, "default",
        "private VirtualService not applied"
    );
}

#[test]
fn selector_then_namespace_then_root_sidecar() {
    let yaml = format!(
        r#"{MESH}
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {{name: root, namespace: istio-system}}
spec:
  egress: [{{hosts: ["./*"]}}]
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {{name: ns-default, namespace: prod}}
spec:
  egress: [{{hosts: ["*/reviews.default.svc.cluster.local"]}}]
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {{name: for-app, namespace: prod}}
spec:
  workloadSelector: {{labels: {{app: pp}}}}
  egress: [{{hosts: ["~/*"]}}]
"#
    );
    let s = snapshot(&yaml);
    // Root Sidecar: `.` is the proxy's own namespace.
    assert_eq!(seen(&s, &proxy("default")), ["ratings", "reviews"]);
    assert_eq!(
        Scope::new(&s, &proxy("default")).sidecar(),
        Some("istio-system/root")
    );
    assert_eq!(seen(&s, &proxy("prod")), ["reviews"]);
    let mut app = proxy("prod");
    app.labels.insert("app".into(), "pp".into());
    assert_eq!(Scope::new(&s, &app).sidecar(), Some("prod/for-app"));
    assert!(seen(&s, &app).is_empty(), "~/* imports nothing");
}

#[test]
fn explicit_namespace_import_overrides_wildcard_namespace_and_ports_narrow() {
    let yaml = format!(
        r#"{MESH}
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {{name: s, namespace: default}}
spec:
  egress:
  - port: {{number: 9090, protocol: TCP, name: tcp}}
    hosts: ["default/ratings.default.svc.cluster.local"]
  - hosts: ["default/reviews.default.svc.cluster.local", "*/*"]
"#
    );
    let s = snapshot(&yaml);
    let scope = Scope::new(&s, &proxy("default"));
    let svc = |h: &str| s.registry.service(h).unwrap();
    // `default/...` is explicit for `default`, so `*/*` does not bring ratings on 9080.
    assert!(scope.sees_port(svc("ratings.default.svc.cluster.local"), 9090));
    assert!(!scope.sees_port(svc("ratings.default.svc.cluster.local"), 9080));
    assert!(scope.sees_service(svc("productpage.prod.svc.cluster.local")));
    assert!(scope.sees_port(svc("reviews.default.svc.cluster.local"), 9080));
}

#[test]
fn imported_virtual_service_brings_its_destinations() {
    let yaml = format!(
        r#"{MESH}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: shift, namespace: default}}
spec:
  hosts: [reviews]
  http: [{{route: [{{destination: {{host: productpage.prod.svc.cluster.local}}}}]}}]
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {{name: s, namespace: default}}
spec:
  egress: [{{hosts: ["./reviews.default.svc.cluster.local"]}}]
"#
    );
    let s = snapshot(&yaml);
    assert_eq!(seen(&s, &proxy("default")), ["productpage", "reviews"]);
}

/// The catch-all virtual host of the proxy's outbound route table, and its route.
fn catch_all(
    g: &crate::translate::Generated,
) -> &envoy_types::pb::envoy::config::route::v3::VirtualHost {
    let table = g.routes.iter().find(|r| r.name == "http_proxy").unwrap();
    let last = table.virtual_hosts.last().unwrap();
    assert_eq!(last.domains, ["*"]);
    last
}

fn with_mesh(yaml: &str, mesh: &str) -> MeshSnapshot {
    let config = crate::mesh::MeshConfig::parse(mesh).unwrap();
    snapshot(yaml).with_mesh(std::sync::Arc::new(config))
}

const REGISTRY_ONLY: &str = "outboundTrafficPolicy: {mode: REGISTRY_ONLY}\n";

#[test]
fn mesh_config_registry_only_blocks_unknown_hosts_with_502() {
    use envoy_types::pb::envoy::config::route::v3::route::Action;
    let s = with_mesh(MESH, REGISTRY_ONLY);
    assert!(!Scope::new(&s, &proxy("default")).allow_any());
    let g = generate(&s, &proxy("default"));
    let vhost = catch_all(&g);
    assert_eq!(vhost.name, "block_all");
    match &vhost.routes[0].action {
        Some(Action::DirectResponse(d)) => assert_eq!(d.status, 502),
        other => panic!("{other:?}"),
    }
}

#[test]
fn mesh_default_allows_any_and_explicit_proxy_names_the_destination() {
    use envoy_types::pb::envoy::config::cluster::v3::cluster::LbConfig;
    use envoy_types::pb::envoy::config::route::v3::route::Action;
    use envoy_types::pb::envoy::config::route::v3::route_action::ClusterSpecifier;
    let s = with_mesh(MESH, "trustDomain: cluster.local\n");
    let g = generate(&s, &proxy("default"));
    let vhost = catch_all(&g);
    assert_eq!(vhost.name, "allow_any");
    let route = &vhost.routes[0];
    match &route.action {
        Some(Action::Route(r)) => assert_eq!(
            r.cluster_specifier,
            Some(ClusterSpecifier::Cluster("PassthroughCluster".into()))
        ),
        other => panic!("{other:?}"),
    }
    let header = route.request_headers_to_add[0].header.as_ref().unwrap();
    assert_eq!(
        (header.key.as_str(), header.value.as_str()),
        ("x-envoy-original-dst-host", "%REQ(:AUTHORITY)%")
    );
    let passthrough = g
        .clusters
        .iter()
        .find(|c| c.name == "PassthroughCluster")
        .unwrap();
    match &passthrough.lb_config {
        Some(LbConfig::OriginalDstLbConfig(o)) => assert!(o.use_http_header),
        other => panic!("{other:?}"),
    }
    // Transparent capture keeps the connection's own original destination.
    let mut transparent = proxy("default");
    transparent.capture = CaptureMode::Transparent;
    let g = generate(&s, &transparent);
    let passthrough = g
        .clusters
        .iter()
        .find(|c| c.name == "PassthroughCluster")
        .unwrap();
    assert!(passthrough.lb_config.is_none());
}

#[test]
fn sidecar_policy_overrides_the_mesh_config_both_ways() {
    let sidecar = |mode: &str| {
        format!(
            "{MESH}\n---\napiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {{name: default, namespace: default}}\nspec:\n  outboundTrafficPolicy: {{mode: {mode}}}\n"
        )
    };
    let open = with_mesh(&sidecar("ALLOW_ANY"), REGISTRY_ONLY);
    assert!(Scope::new(&open, &proxy("default")).allow_any());
    assert_eq!(
        catch_all(&generate(&open, &proxy("default"))).name,
        "allow_any"
    );
    // Another namespace has no Sidecar: the mesh's REGISTRY_ONLY applies.
    assert!(!Scope::new(&open, &proxy("prod")).allow_any());

    let closed = with_mesh(&sidecar("REGISTRY_ONLY"), "");
    assert!(!Scope::new(&closed, &proxy("default")).allow_any());
    assert!(Scope::new(&closed, &proxy("prod")).allow_any());
    let mut transparent = proxy("default");
    transparent.capture = CaptureMode::Transparent;
    let g = generate(&closed, &transparent);
    let outbound = g
        .listeners
        .iter()
        .find(|l| l.name == "virtualOutbound")
        .unwrap();
    use envoy_types::pb::envoy::config::listener::v3::filter::ConfigType;
    use envoy_types::pb::envoy::extensions::filters::network::tcp_proxy::v3::TcpProxy;
    use prost::Message;
    let catch_all_chain = outbound.filter_chains.last().unwrap();
    let Some(ConfigType::TypedConfig(any)) = &catch_all_chain.filters[0].config_type else {
        panic!("{catch_all_chain:?}");
    };
    let tcp = TcpProxy::decode(any.value.as_slice()).unwrap();
    assert!(format!("{tcp:?}").contains("BlackHoleCluster"), "{tcp:?}");
}
