//! Mesh mTLS in translation: auto mTLS and ISTIO_MUTUAL on clusters, the endpoint
//! metadata they match on, and PeerAuthentication's inbound chains.

use super::*;
use crate::model::{CaptureMode, Proxy};
use crate::translate::generate;
use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::core::v3::transport_socket::ConfigType;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
    common_tls_context::ValidationContextType, DownstreamTlsContext, UpstreamTlsContext,
};
use prost::Message;

const MESH: &str = r#"
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews.default.svc.cluster.local]
  addresses: [10.96.0.12]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 9080, name: http}]
  workloadSelector: {labels: {app: reviews}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: reviews-v1, namespace: default}
spec:
  address: 10.0.0.11
  serviceAccount: bookinfo-reviews
  labels: {app: reviews, version: v1, security.istio.io/tlsMode: istio}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: reviews-legacy, namespace: default}
spec:
  address: 10.0.0.12
  labels: {app: reviews, version: legacy}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ratings, namespace: default}
spec:
  hosts: [ratings.default.svc.cluster.local]
  addresses: [10.96.0.13]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 9080, name: http}]
  endpoints: [{address: 10.0.0.13}]
"#;

fn snapshot(extra: &str) -> MeshSnapshot {
    let text = format!("{MESH}---\n{extra}");
    let resources = weft_config::parse_documents(&text)
        .into_iter()
        .filter(|r| !matches!(r, Err(e) if e.to_string().contains("empty")))
        .map(|r| r.expect("valid test resource"))
        .collect();
    MeshSnapshot::build(1, resources)
}

fn reviews_proxy(capture: CaptureMode) -> Proxy {
    Proxy {
        id: "sidecar~10.0.0.11~reviews-v1.default~default.svc.cluster.local".into(),
        ip: "10.0.0.11".into(),
        namespace: "default".into(),
        labels: [
            ("app", "reviews"),
            ("version", "v1"),
            ("security.istio.io/tlsMode", "istio"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect(),
        capture,
        outbound_port: 15001,
        ..Default::default()
    }
}

fn ratings_proxy() -> Proxy {
    Proxy {
        id: "sidecar~10.0.0.13~ratings.default~default.svc.cluster.local".into(),
        ip: "10.0.0.13".into(),
        namespace: "default".into(),
        capture: CaptureMode::Transparent,
        ..Default::default()
    }
}

fn cluster<'a>(g: &'a crate::translate::Generated, name: &str) -> &'a Cluster {
    g.clusters
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no cluster {name}"))
}

fn upstream(socket: &TransportSocket) -> UpstreamTlsContext {
    let Some(ConfigType::TypedConfig(any)) = &socket.config_type else {
        panic!("typed config")
    };
    assert!(any.type_url.ends_with(tls::UPSTREAM_TLS_CONTEXT));
    UpstreamTlsContext::decode(any.value.as_slice()).unwrap()
}

fn downstream(socket: &TransportSocket) -> DownstreamTlsContext {
    let Some(ConfigType::TypedConfig(any)) = &socket.config_type else {
        panic!("typed config")
    };
    DownstreamTlsContext::decode(any.value.as_slice()).unwrap()
}

/// (SDS certificate names, SDS CA name, SANs) of an upstream context.
fn summary(ctx: &UpstreamTlsContext) -> (Vec<String>, String, Vec<String>, Vec<String>) {
    let common = ctx.common_tls_context.as_ref().unwrap();
    let certs = common
        .tls_certificate_sds_secret_configs
        .iter()
        .map(|c| c.name.clone())
        .collect();
    let (ca, sans) = match common.validation_context_type.as_ref().unwrap() {
        ValidationContextType::CombinedValidationContext(c) => (
            c.validation_context_sds_secret_config
                .as_ref()
                .unwrap()
                .name
                .clone(),
            c.default_validation_context
                .as_ref()
                .unwrap()
                .match_typed_subject_alt_names
                .iter()
                .map(|m| format!("{:?}", m.matcher.as_ref().unwrap().match_pattern))
                .collect(),
        ),
        ValidationContextType::ValidationContextSdsSecretConfig(c) => (c.name.clone(), vec![]),
        other => panic!("{other:?}"),
    };
    (certs, ca, sans, common.alpn_protocols.clone())
}

const REVIEWS: &str = "outbound|9080||reviews.default.svc.cluster.local";
const RATINGS: &str = "outbound|9080||ratings.default.svc.cluster.local";

#[test]
fn auto_mtls_for_services_with_sidecars() {
    let g = generate(&snapshot(""), &ratings_proxy());
    let reviews = cluster(&g, REVIEWS);
    assert!(reviews.transport_socket.is_none());
    let names: Vec<&str> = reviews
        .transport_socket_matches
        .iter()
        .map(|m| m.name.as_str())
        .collect();
    assert_eq!(names, ["tlsMode-istio", "tlsMode-disabled"]);
    let istio = &reviews.transport_socket_matches[0];
    assert_eq!(
        format!(
            "{:?}",
            istio.r#match.as_ref().unwrap().fields["tlsMode"].kind
        ),
        "Some(StringValue(\"istio\"))"
    );
    let ctx = upstream(istio.transport_socket.as_ref().unwrap());
    assert_eq!(
        ctx.sni,
        "outbound_.9080_._.reviews.default.svc.cluster.local"
    );
    let (certs, ca, sans, alpn) = summary(&ctx);
    assert_eq!(certs, ["default"]);
    assert_eq!(ca, "ROOTCA");
    // Both workloads' identities: the unlabelled one runs as `default`.
    assert_eq!(
        sans,
        [
            "Some(Exact(\"spiffe://cluster.local/ns/default/sa/bookinfo-reviews\"))",
            "Some(Exact(\"spiffe://cluster.local/ns/default/sa/default\"))"
        ]
    );
    assert_eq!(alpn, ["istio-peer-exchange", "istio"]);
    let plain = &reviews.transport_socket_matches[1];
    assert!(plain.r#match.as_ref().unwrap().fields.is_empty());
    assert_eq!(
        plain.transport_socket.as_ref().unwrap().name,
        "envoy.transport_sockets.raw_buffer"
    );
    // The labelled endpoint says so; the other does not.
    let assignment = g
        .endpoints
        .iter()
        .find(|e| e.cluster_name == REVIEWS)
        .unwrap();
    let tagged: Vec<bool> = assignment
        .endpoints
        .iter()
        .flat_map(|l| &l.lb_endpoints)
        .map(|e| {
            e.metadata
                .as_ref()
                .is_some_and(|m| m.filter_metadata.contains_key(TRANSPORT_SOCKET_MATCH))
        })
        .collect();
    assert_eq!(tagged.iter().filter(|t| **t).count(), 1, "{tagged:?}");
    // No sidecar behind ratings: unchanged.
    let ratings = cluster(
        &generate(&snapshot(""), &reviews_proxy(CaptureMode::Transparent)),
        RATINGS,
    )
    .clone();
    assert!(ratings.transport_socket_matches.is_empty() && ratings.transport_socket.is_none());
}

#[test]
fn auto_mtls_can_be_turned_off_and_dr_tls_wins() {
    let mut s = snapshot("");
    let mut mesh = (*s.mesh).clone();
    mesh.enable_auto_mtls = false;
    s.mesh = std::sync::Arc::new(mesh);
    let g = generate(&s, &ratings_proxy());
    assert!(cluster(&g, REVIEWS).transport_socket_matches.is_empty());

    let simple = snapshot(
        "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: r, namespace: default}\nspec:\n  host: reviews\n  trafficPolicy: {tls: {mode: DISABLE}}\n",
    );
    let c = cluster(&generate(&simple, &ratings_proxy()), REVIEWS).clone();
    assert!(c.transport_socket_matches.is_empty() && c.transport_socket.is_none());
}

#[test]
fn destination_rule_istio_mutual_always_uses_mesh_tls() {
    let s = snapshot(
        "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: r, namespace: default}\nspec:\n  host: ratings\n  trafficPolicy: {tls: {mode: ISTIO_MUTUAL}}\n  subsets: [{name: v1, labels: {version: v1}}]\n",
    );
    let g = generate(&s, &reviews_proxy(CaptureMode::Transparent));
    let c = cluster(&g, RATINGS);
    assert!(c.transport_socket_matches.is_empty());
    let ctx = upstream(c.transport_socket.as_ref().unwrap());
    assert_eq!(
        ctx.sni,
        "outbound_.9080_._.ratings.default.svc.cluster.local"
    );
    let (certs, ca, sans, _) = summary(&ctx);
    assert_eq!(
        (certs, ca),
        (vec!["default".to_string()], "ROOTCA".to_string())
    );
    assert_eq!(
        sans,
        ["Some(Exact(\"spiffe://cluster.local/ns/default/sa/default\"))"]
    );
    let subset = cluster(&g, "outbound|9080|v1|ratings.default.svc.cluster.local");
    let ctx = upstream(subset.transport_socket.as_ref().unwrap());
    assert_eq!(
        ctx.sni,
        "outbound_.9080_.v1_.ratings.default.svc.cluster.local"
    );
    // Both SDS names are asked for, so weftd serves them.
    assert!(referenced_secrets_of(&g).contains(&"ROOTCA".to_string()));
}

fn referenced_secrets_of(g: &crate::translate::Generated) -> Vec<String> {
    crate::translate::referenced_secrets(&g.listeners, &g.clusters)
}

fn pa(ns: &str, name: &str, body: &str) -> String {
    format!(
        "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {{name: {name}, namespace: {ns}}}\nspec:\n{body}\n---\n"
    )
}

/// (transport_protocol, has TLS) of each chain on port 9080 of virtualInbound.
fn inbound_9080(s: &MeshSnapshot, proxy: &Proxy) -> Vec<(String, bool)> {
    let g = generate(s, proxy);
    let l = g
        .listeners
        .iter()
        .find(|l| l.name == "virtualInbound")
        .unwrap();
    l.filter_chains
        .iter()
        .filter(|c| {
            c.filter_chain_match
                .as_ref()
                .and_then(|m| m.destination_port)
                .is_some_and(|p| p.value == 9080)
        })
        .map(|c| {
            let m = c.filter_chain_match.as_ref().unwrap();
            if let Some(t) = &c.transport_socket {
                let ctx = downstream(t);
                assert!(ctx.require_client_certificate.unwrap().value);
                assert_eq!(
                    ctx.common_tls_context
                        .as_ref()
                        .unwrap()
                        .tls_certificate_sds_secret_configs[0]
                        .name,
                    "default"
                );
            }
            (m.transport_protocol.clone(), c.transport_socket.is_some())
        })
        .collect()
}

#[test]
fn peer_authentication_levels_and_ports() {
    let proxy = reviews_proxy(CaptureMode::Transparent);
    let tls = ("tls".to_string(), true);
    let plain = (String::new(), false);
    // Labelled for mTLS, no policy: PERMISSIVE, Istio's default.
    assert_eq!(
        inbound_9080(&snapshot(""), &proxy),
        [tls.clone(), plain.clone()]
    );
    // Mesh-wide STRICT in the root namespace.
    let strict = pa("istio-system", "default", "  mtls: {mode: STRICT}");
    assert_eq!(inbound_9080(&snapshot(&strict), &proxy), vec![tls.clone()]);
    // The namespace overrides the mesh.
    let ns = strict.clone() + &pa("default", "ns", "  mtls: {mode: DISABLE}");
    assert_eq!(inbound_9080(&snapshot(&ns), &proxy), vec![plain.clone()]);
    // The workload overrides the namespace; its port level overrides it in turn.
    let workload = ns.clone()
        + &pa(
            "default",
            "reviews",
            "  selector: {matchLabels: {app: reviews}}\n  mtls: {mode: STRICT}\n  portLevelMtls: {\"9080\": {mode: PERMISSIVE}}",
        );
    assert_eq!(
        inbound_9080(&snapshot(&workload), &proxy),
        [tls.clone(), plain.clone()]
    );
    // A selector for other workloads leaves this one to the namespace.
    let other = ns
        + &pa(
            "default",
            "other",
            "  selector: {matchLabels: {app: ratings}}\n  mtls: {mode: STRICT}",
        );
    assert_eq!(inbound_9080(&snapshot(&other), &proxy), vec![plain]);
}

#[test]
fn permissive_chain_matches_mesh_alpn_and_listeners_inspect_tls() {
    let g = generate(&snapshot(""), &reviews_proxy(CaptureMode::Transparent));
    let l = g
        .listeners
        .iter()
        .find(|l| l.name == "virtualInbound")
        .unwrap();
    assert!(l
        .listener_filters
        .iter()
        .any(|f| f.name == "envoy.filters.listener.tls_inspector"));
    let secure = l
        .filter_chains
        .iter()
        .find(|c| c.transport_socket.is_some())
        .unwrap();
    assert_eq!(
        secure
            .filter_chain_match
            .as_ref()
            .unwrap()
            .application_protocols,
        ALPN_MESH_PEERS
    );
    let ctx = downstream(secure.transport_socket.as_ref().unwrap());
    assert_eq!(
        ctx.common_tls_context.unwrap().alpn_protocols,
        ["h2", "http/1.1"]
    );
}

#[test]
fn unlabelled_workloads_without_policy_stay_plain_text() {
    let mut proxy = ratings_proxy();
    proxy.ip = "10.0.0.12".into();
    proxy.labels = [
        ("app".to_string(), "reviews".to_string()),
        ("version".to_string(), "legacy".to_string()),
    ]
    .into();
    let g = generate(&snapshot(""), &proxy);
    assert!(g
        .listeners
        .iter()
        .flat_map(|l| &l.filter_chains)
        .all(|c| c.transport_socket.is_none()));
}

#[test]
fn explicit_inbound_strict_has_only_the_mtls_chain() {
    let strict = pa("istio-system", "default", "  mtls: {mode: STRICT}");
    let g = generate(&snapshot(&strict), &reviews_proxy(CaptureMode::Explicit));
    let l = g
        .listeners
        .iter()
        .find(|l| l.name == "10.0.0.11_9080")
        .unwrap();
    assert_eq!(l.filter_chains.len(), 1);
    assert_eq!(
        l.filter_chains[0]
            .filter_chain_match
            .as_ref()
            .unwrap()
            .transport_protocol,
        "tls"
    );
    assert!(l
        .listener_filters
        .iter()
        .any(|f| f.name == "envoy.filters.listener.tls_inspector"));
}

/// Whether each endpoint of reviews' assignment (as ratings' sidecar sees it) is marked for
/// mesh mTLS, by address.
fn reviews_endpoints_tagged(s: &MeshSnapshot) -> Vec<(String, bool)> {
    let g = generate(s, &ratings_proxy());
    let assignment = g
        .endpoints
        .iter()
        .find(|e| e.cluster_name == REVIEWS)
        .unwrap();
    assignment
        .endpoints
        .iter()
        .flat_map(|l| &l.lb_endpoints)
        .map(|e| {
            let address = format!("{:?}", e.host_identifier);
            let ip = address
                .split('"')
                .find(|p| p.starts_with("10.0.0."))
                .unwrap_or_default()
                .to_string();
            let tagged = e
                .metadata
                .as_ref()
                .is_some_and(|m| m.filter_metadata.contains_key(TRANSPORT_SOCKET_MATCH));
            (ip, tagged)
        })
        .collect()
}

#[test]
fn endpoints_where_peer_authentication_disables_mtls_get_plain_text() {
    let labelled = ("10.0.0.11".to_string(), true);
    let plain = ("10.0.0.11".to_string(), false);
    let legacy = ("10.0.0.12".to_string(), false);
    assert_eq!(
        reviews_endpoints_tagged(&snapshot("")),
        [labelled.clone(), legacy.clone()]
    );
    // Port-level DISABLE on the workload's port: auto mTLS sends plain text there.
    let port_disable = pa(
        "default",
        "reviews-port",
        "  selector: {matchLabels: {app: reviews}}\n  mtls: {mode: STRICT}\n  portLevelMtls: {9080: {mode: DISABLE}}",
    );
    assert_eq!(
        reviews_endpoints_tagged(&snapshot(&port_disable)),
        [plain.clone(), legacy.clone()]
    );
    // DISABLE on another port leaves this one alone.
    let other_port = port_disable.replace("9080: {mode: DISABLE}", "9443: {mode: DISABLE}");
    assert_eq!(
        reviews_endpoints_tagged(&snapshot(&other_port)),
        [labelled.clone(), legacy.clone()]
    );
    // Namespace-wide DISABLE, and a workload PERMISSIVE overriding a mesh-wide DISABLE.
    let namespace = pa("default", "all", "  mtls: {mode: DISABLE}");
    assert_eq!(
        reviews_endpoints_tagged(&snapshot(&namespace)),
        [plain, legacy.clone()]
    );
    let overridden = format!(
        "{}{}",
        pa("istio-system", "mesh", "  mtls: {mode: DISABLE}"),
        pa(
            "default",
            "reviews",
            "  selector: {matchLabels: {app: reviews}}\n  mtls: {mode: PERMISSIVE}"
        )
    );
    assert_eq!(
        reviews_endpoints_tagged(&snapshot(&overridden)),
        [labelled, legacy]
    );
}
