//! Registry built from ServiceEntries and WorkloadEntries as a user writes them.

use super::*;

fn registry(yaml: &str) -> Registry {
    let resources: Vec<Resource> = weft_config::parse_documents(yaml)
        .into_iter()
        .map(|r| r.expect("valid test resource"))
        .collect();
    Registry::build(&resources)
}

const REVIEWS: &str = r#"
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews.default.svc.cluster.local, reviews.example.com]
  location: MESH_INTERNAL
  resolution: STATIC
  ports:
  - {number: 9080, name: http-web, targetPort: 8080}
  - {number: 9090, name: grpc-api}
  - {number: 3306, name: db, protocol: TCP}
  workloadSelector:
    labels: {app: reviews}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: reviews-v1, namespace: default}
spec:
  address: 10.0.0.1
  labels: {app: reviews, version: v1}
  ports: {http-web: 9081}
  weight: 3
  locality: us-east/a
  serviceAccount: bookinfo-reviews
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: reviews-v2, namespace: default}
spec:
  address: 10.0.0.2
  labels: {app: reviews, version: v2}
status:
  conditions:
  - {type: Healthy, status: "False"}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: reviews-other-ns, namespace: other}
spec:
  address: 10.0.0.3
  labels: {app: reviews}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: ratings, namespace: default}
spec:
  address: 10.0.0.4
  labels: {app: ratings}
"#;

#[test]
fn one_service_per_host_with_protocols_from_names() {
    let r = registry(REVIEWS);
    let hosts: Vec<&str> = r.services.iter().map(|s| s.hostname.as_str()).collect();
    assert_eq!(
        hosts,
        ["reviews.default.svc.cluster.local", "reviews.example.com"]
    );
    let s = r.service("reviews.example.com").unwrap();
    assert_eq!(s.namespace, "default");
    assert_eq!(s.resolution, Resolution::Static);
    assert!(!s.mesh_external);
    let protocols: Vec<Protocol> = s.ports.iter().map(|p| p.protocol).collect();
    assert_eq!(protocols, [Protocol::Http, Protocol::Grpc, Protocol::Tcp]);
}

#[test]
fn selector_picks_same_namespace_workloads_with_matching_labels() {
    let r = registry(REVIEWS);
    let names: Vec<&str> = r.instances["reviews.default.svc.cluster.local"]
        .iter()
        .map(|i| i.name.as_str())
        .collect();
    assert_eq!(names, ["reviews-v1", "reviews-v2"]);
}

#[test]
fn endpoint_port_by_name_then_target_port_then_service_port() {
    let r = registry(REVIEWS);
    let ports = |port| -> Vec<(String, u32)> {
        r.endpoints("reviews.default.svc.cluster.local", port)
            .into_iter()
            .map(|(i, p)| (i.address.clone(), p))
            .collect()
    };
    assert_eq!(
        ports(9080),
        [("10.0.0.1".into(), 9081), ("10.0.0.2".into(), 8080)]
    );
    assert_eq!(
        ports(9090),
        [("10.0.0.1".into(), 9090), ("10.0.0.2".into(), 9090)]
    );
    assert!(ports(1234).is_empty());
}

#[test]
fn workload_entry_weight_locality_account_and_health() {
    let r = registry(REVIEWS);
    let instances = &r.instances["reviews.example.com"];
    let v1 = &instances[0];
    assert_eq!((v1.weight, v1.locality.as_str()), (3, "us-east/a"));
    assert_eq!(v1.service_account, "bookinfo-reviews");
    assert!(v1.healthy);
    let v2 = &instances[1];
    assert_eq!(v2.weight, 1);
    assert!(
        !v2.healthy,
        "Healthy=False condition marks the instance unhealthy"
    );
}

#[test]
fn inline_endpoints_and_dns_resolution() {
    let r = registry(
        r#"
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: external, namespace: web}
spec:
  hosts: [api.example.com]
  resolution: DNS
  exportTo: ["."]
  ports: [{number: 443, name: https}]
  endpoints:
  - {address: a.example.com}
  - {address: b.example.com, ports: {https: 8443}}
"#,
    );
    let s = r.service("api.example.com").unwrap();
    assert_eq!(s.resolution, Resolution::Dns);
    assert!(s.mesh_external, "MESH_EXTERNAL is the default location");
    assert_eq!(s.export_to, ["."]);
    assert_eq!(s.ports[0].protocol, Protocol::Https);
    let eps: Vec<(String, u32)> = r
        .endpoints("api.example.com", 443)
        .into_iter()
        .map(|(i, p)| (i.name.clone(), p))
        .collect();
    assert_eq!(
        eps,
        [("external/0".into(), 443), ("external/1".into(), 8443)]
    );
}

#[test]
fn oldest_entry_wins_a_contested_host() {
    let r = registry(
        r#"
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: newer, namespace: a, creationTimestamp: "2025-02-01T00:00:00Z"}
spec:
  hosts: [x.example.com]
  ports: [{number: 80, name: http}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: older, namespace: b, creationTimestamp: "2025-01-01T00:00:00Z"}
spec:
  hosts: [x.example.com]
  ports: [{number: 81, name: http}]
"#,
    );
    assert_eq!(r.services.len(), 1);
    assert_eq!(r.services[0].namespace, "b");
}

#[test]
fn every_service_is_found_through_the_index_after_build() {
    let yaml: String = (0..50)
        .map(|i| {
            format!(
                "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: s{i}, namespace: ns}}\nspec:\n  hosts: [s{i}.ns.svc.cluster.local]\n  location: MESH_INTERNAL\n  resolution: STATIC\n  ports: [{{number: 80, name: http, protocol: HTTP}}]\n---\n"
            )
        })
        .collect();
    let resources: Vec<_> = weft_config::parse_documents(&yaml)
        .into_iter()
        .collect::<Result<_, _>>()
        .unwrap();
    let r = Registry::build(&resources);
    assert_eq!(
        r.service("s49.ns.svc.cluster.local")
            .map(|s| s.hostname.as_str()),
        Some("s49.ns.svc.cluster.local")
    );
    // Found through the index, not the scan that stands in for a missing entry.
    assert_eq!(r.by_host.get().map(|i| i.len()), Some(50));
}
