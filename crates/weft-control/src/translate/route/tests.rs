//! Whole route tables from Istio's Bookinfo samples and test configs, asserted on what
//! Envoy would do with them.

use super::*;
use crate::model::{CaptureMode, ProxyKind};
use crate::registry::{Protocol, Registry, Service, ServicePort};
use envoy_types::pb::envoy::config::route::v3::header_matcher::HeaderMatchSpecifier;
use envoy_types::pb::envoy::config::route::v3::route::Action;
use envoy_types::pb::envoy::config::route::v3::route_action::ClusterSpecifier;
use envoy_types::pb::envoy::config::route::v3::route_match::PathSpecifier;
use envoy_types::pb::envoy::config::route::v3::virtual_host::TlsRequirementType;
use envoy_types::pb::envoy::config::route::v3::{Route, RouteAction};
use envoy_types::pb::envoy::extensions::filters::http::fault::v3::{fault_abort, HttpFault};
use envoy_types::pb::envoy::r#type::matcher::v3::string_matcher::MatchPattern;
use prost::Message;
use std::sync::Arc;
use weft_config::Resource;

const BOOKINFO: &str = "/work/shared/istio-testdata/samples/bookinfo/networking";

/// Resources of a YAML text; a missing namespace is `default`, as `kubectl apply` does.
pub(super) fn parse(text: &str) -> Vec<Resource> {
    weft_config::parse_documents(text)
        .into_iter()
        .map(|r| {
            let mut r = r.expect("test config parses");
            if r.metadata.namespace.is_empty() {
                r.metadata.namespace = "default".into();
            }
            r
        })
        .collect()
}

pub(super) fn bookinfo(files: &[&str]) -> Vec<Resource> {
    files
        .iter()
        .flat_map(|f| parse(&std::fs::read_to_string(format!("{BOOKINFO}/{f}")).unwrap()))
        .collect()
}

pub(super) fn http_service(host: &str, ports: &[u32]) -> Service {
    Service {
        hostname: host.into(),
        namespace: host.split('.').nth(1).unwrap_or("default").into(),
        ports: ports
            .iter()
            .map(|p| ServicePort {
                number: *p,
                name: format!("http-{p}"),
                protocol: Protocol::Http,
                target_port: None,
            })
            .collect(),
        ..Default::default()
    }
}

/// Bookinfo's four services, as their ServiceEntries/Kubernetes Services would register them.
pub(super) fn bookinfo_registry() -> Registry {
    let mut registry = Registry::default();
    registry.services = ["productpage", "reviews", "ratings", "details"]
        .iter()
        .map(|s| http_service(&format!("{s}.default.svc.cluster.local"), &[9080]))
        .collect();
    registry
}

pub(super) fn snapshot(resources: Vec<Resource>, registry: Registry) -> MeshSnapshot {
    MeshSnapshot {
        revision: 1,
        resources: Arc::new(resources),
        registry: Arc::new(registry),
        ..MeshSnapshot::default()
    }
}

pub(super) fn sidecar(ns: &str, labels: &[(&str, &str)]) -> Proxy {
    Proxy {
        kind: ProxyKind::Sidecar,
        namespace: ns.into(),
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        capture: CaptureMode::Explicit,
        ..Default::default()
    }
}

pub(super) fn ingress() -> Proxy {
    Proxy {
        kind: ProxyKind::Router,
        namespace: "istio-system".into(),
        labels: [("istio".to_string(), "ingressgateway".to_string())].into(),
        ..Default::default()
    }
}

fn config(s: &MeshSnapshot, p: &Proxy, name: &str) -> RouteConfiguration {
    let mut v = route_configs(s, p, &[name.to_string()]);
    assert_eq!(v.len(), 1);
    v.remove(0)
}

fn vhost<'a>(rc: &'a RouteConfiguration, name: &str) -> &'a VirtualHost {
    rc.virtual_hosts
        .iter()
        .find(|v| v.name == name)
        .unwrap_or_else(|| panic!("no virtual host {name} in {:?}", names(rc)))
}

fn names(rc: &RouteConfiguration) -> Vec<&str> {
    rc.virtual_hosts.iter().map(|v| v.name.as_str()).collect()
}

fn action(r: &Route) -> &RouteAction {
    match &r.action {
        Some(Action::Route(a)) => a,
        other => panic!("route {} does not forward: {other:?}", r.name),
    }
}

fn cluster(r: &Route) -> &str {
    match &action(r).cluster_specifier {
        Some(ClusterSpecifier::Cluster(c)) => c,
        other => panic!("not a single cluster: {other:?}"),
    }
}

#[test]
fn jason_goes_to_reviews_v2_everyone_else_to_v3() {
    let s = snapshot(
        bookinfo(&[
            "virtual-service-reviews-jason-v2-v3.yaml",
            "destination-rule-all.yaml",
        ]),
        bookinfo_registry(),
    );
    let rc = config(
        &s,
        &sidecar("default", &[("app", "productpage")]),
        "http_proxy",
    );
    let vh = vhost(&rc, "reviews.default.svc.cluster.local:9080");
    for d in [
        "reviews:9080",
        "reviews.default:9080",
        "reviews.default.svc:9080",
        "reviews.default.svc.cluster.local:9080",
    ] {
        assert!(
            vh.domains.iter().any(|x| x == d),
            "{d} missing from {:?}",
            vh.domains
        );
    }
    // Port 9080 is not the HTTP default, so an HTTP proxy request always names it.
    assert!(!vh.domains.iter().any(|d| d == "reviews"));
    assert_eq!(vh.routes.len(), 2);
    let jason = &vh.routes[0];
    let m = jason.r#match.as_ref().unwrap();
    assert_eq!(m.headers[0].name, "end-user");
    match &m.headers[0].header_match_specifier {
        Some(HeaderMatchSpecifier::StringMatch(sm)) => {
            assert_eq!(sm.match_pattern, Some(MatchPattern::Exact("jason".into())))
        }
        other => panic!("unexpected matcher {other:?}"),
    }
    assert_eq!(
        cluster(jason),
        "outbound|9080|v2|reviews.default.svc.cluster.local"
    );
    assert_eq!(
        cluster(&vh.routes[1]),
        "outbound|9080|v3|reviews.default.svc.cluster.local"
    );
    // Services without a VirtualService keep Istio's default route.
    let details = &vhost(&rc, "details.default.svc.cluster.local:9080").routes[0];
    assert_eq!(details.name, "default");
    assert_eq!(
        cluster(details),
        "outbound|9080||details.default.svc.cluster.local"
    );
    let a = action(details);
    assert_eq!(a.timeout.unwrap().seconds, 0);
    let retry = a.retry_policy.as_ref().unwrap();
    assert_eq!(retry.retry_on, DEFAULT_RETRY_ON);
    assert_eq!(retry.num_retries.unwrap().value, 2);
    assert_eq!(retry.retriable_status_codes, [503]);
    assert_eq!(rc.virtual_hosts.last().unwrap().name, "allow_any");
}

#[test]
fn weights_split_traffic() {
    let s = snapshot(
        bookinfo(&["virtual-service-reviews-80-20.yaml"]),
        bookinfo_registry(),
    );
    let rc = config(&s, &sidecar("default", &[]), "http_proxy");
    let r = &vhost(&rc, "reviews.default.svc.cluster.local:9080").routes[0];
    let Some(ClusterSpecifier::WeightedClusters(w)) = &action(r).cluster_specifier else {
        panic!("expected weighted clusters");
    };
    let got: Vec<_> = w
        .clusters
        .iter()
        .map(|c| (c.name.as_str(), c.weight.unwrap().value))
        .collect();
    assert_eq!(
        got,
        [
            ("outbound|9080|v1|reviews.default.svc.cluster.local", 80),
            ("outbound|9080|v2|reviews.default.svc.cluster.local", 20)
        ]
    );
}

#[test]
fn abort_only_for_jason() {
    let s = snapshot(
        bookinfo(&["virtual-service-ratings-test-abort.yaml"]),
        bookinfo_registry(),
    );
    let rc = config(&s, &sidecar("default", &[]), "http_proxy");
    let vh = vhost(&rc, "ratings.default.svc.cluster.local:9080");
    let any = &vh.routes[0].typed_per_filter_config[FAULT_FILTER];
    assert_eq!(
        any.type_url,
        "type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault"
    );
    let fault = HttpFault::decode(any.value.as_slice()).unwrap();
    let abort = fault.abort.unwrap();
    assert_eq!(
        abort.error_type,
        Some(fault_abort::ErrorType::HttpStatus(500))
    );
    assert_eq!(abort.percentage.unwrap().numerator, 1_000_000);
    assert!(vh.routes[1].typed_per_filter_config.is_empty());
}

#[test]
fn transparent_port_table_has_bare_names_and_passthrough() {
    let s = snapshot(
        bookinfo(&["virtual-service-all-v1.yaml"]),
        bookinfo_registry(),
    );
    let mut p = sidecar("default", &[]);
    p.capture = CaptureMode::Transparent;
    let rc = config(&s, &p, "9080");
    assert_eq!(rc.name, "9080");
    let vh = vhost(&rc, "productpage.default.svc.cluster.local:9080");
    assert!(vh.domains.iter().any(|d| d == "productpage"));
    assert!(vh.domains.iter().any(|d| d == "productpage:9080"));
    assert_eq!(
        cluster(&vh.routes[0]),
        "outbound|9080|v1|productpage.default.svc.cluster.local"
    );
    let last = rc.virtual_hosts.last().unwrap();
    assert_eq!(
        (last.name.as_str(), last.domains.as_slice()),
        ("allow_any", &["*".to_string()][..])
    );
}

#[test]
fn ingress_gateway_serves_bound_virtual_service() {
    let s = snapshot(bookinfo(&["bookinfo-gateway.yaml"]), bookinfo_registry());
    let rc = config(&s, &ingress(), "http.8080");
    assert_eq!(names(&rc), ["*:8080"]);
    let vh = &rc.virtual_hosts[0];
    assert_eq!(vh.domains, ["*"]);
    let paths: Vec<_> = vh
        .routes
        .iter()
        .map(|r| r.r#match.as_ref().unwrap().path_specifier.clone().unwrap())
        .collect();
    assert_eq!(paths[0], PathSpecifier::Path("/productpage".into()));
    assert_eq!(paths[1], PathSpecifier::Prefix("/static".into()));
    assert_eq!(paths.len(), 5);
    for r in &vh.routes {
        assert_eq!(
            cluster(r),
            "outbound|9080||productpage.default.svc.cluster.local"
        );
    }
    // The gateway VirtualService is not bound to the mesh: sidecars keep the default route.
    let side = config(&s, &sidecar("default", &[]), "http_proxy");
    assert_eq!(
        vhost(&side, "productpage.default.svc.cluster.local:9080").routes[0].name,
        "default"
    );
    // A proxy without the gateway's labels gets nothing but a 404.
    let other = config(&s, &sidecar("default", &[]), "http.8080");
    assert!(other.virtual_hosts.is_empty());
}

const REDIRECT_GATEWAY: &str = "
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw, namespace: edge}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: [shop/shop.example.com, other.example.com]
    tls: {httpsRedirect: true}
  - port: {number: 443, name: https, protocol: HTTPS}
    hosts: ['*.example.com']
    tls: {mode: SIMPLE, credentialName: cert}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: shop, namespace: shop}
spec:
  hosts: ['shop.example.com']
  gateways: [edge/gw]
  http:
  - match:
    - uri: {prefix: /old}
    redirect: {uri: /new, derivePort: FROM_REQUEST_PORT}
  - route:
    - destination: {host: web, port: {number: 8000}}
";

#[test]
fn https_redirect_and_https_route_table() {
    let s = snapshot(parse(REDIRECT_GATEWAY), Registry::default());
    let http = config(&s, &ingress(), "http.80");
    let shop = vhost(&http, "shop.example.com:80");
    assert_eq!(shop.require_tls, TlsRequirementType::All as i32);
    assert_eq!(
        vhost(&http, "other.example.com:80").require_tls,
        TlsRequirementType::All as i32
    );
    let https = config(&s, &ingress(), "https.443.https.gw.edge");
    let vh = vhost(&https, "shop.example.com:443");
    assert_eq!(vh.domains, ["shop.example.com", "shop.example.com:443"]);
    assert_eq!(vh.require_tls, TlsRequirementType::None as i32);
    match &vh.routes[0].action {
        // Requests came in on 443 over TLS: no explicit port in the Location.
        Some(Action::Redirect(r)) => assert_eq!(r.port_redirect, 0),
        other => panic!("expected a redirect, got {other:?}"),
    }
    assert_eq!(
        cluster(&vh.routes[1]),
        "outbound|8000||web.shop.svc.cluster.local"
    );
}

const DELEGATION: &str = "
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: root, namespace: default}
spec:
  hosts: [reviews]
  http:
  - name: to-team
    match: [{uri: {prefix: /reviews}}]
    timeout: 3s
    delegate: {name: team, namespace: team}
  - route: [{destination: {host: reviews}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: team, namespace: team}
spec:
  http:
  - name: v2
    match: [{uri: {prefix: /reviews/v2}}, {uri: {prefix: /ratings}}]
    route: [{destination: {host: backend, port: {number: 8080}}}]
  - route: [{destination: {host: backend, port: {number: 8081}}}]
";

#[test]
fn delegate_routes_nest_under_the_root_match() {
    let s = snapshot(parse(DELEGATION), bookinfo_registry());
    let rc = config(&s, &sidecar("default", &[]), "http_proxy");
    let routes = &vhost(&rc, "reviews.default.svc.cluster.local:9080").routes;
    let summary: Vec<_> = routes
        .iter()
        .map(|r| {
            (
                r.name.as_str(),
                r.r#match.as_ref().unwrap().path_specifier.clone().unwrap(),
                cluster(r),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (
                "to-team-v2",
                PathSpecifier::Prefix("/reviews/v2".into()),
                "outbound|8080||backend.team.svc.cluster.local"
            ),
            (
                "to-team",
                PathSpecifier::Prefix("/reviews".into()),
                "outbound|8081||backend.team.svc.cluster.local"
            ),
            (
                "",
                PathSpecifier::Prefix("/".into()),
                "outbound|9080||reviews.default.svc.cluster.local"
            ),
        ]
    );
    // The root's timeout is inherited by the delegate's rules.
    assert_eq!(action(&routes[0]).timeout.unwrap().seconds, 3);
}

const SOURCE_SCOPED: &str = "
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: ratings, namespace: default}
spec:
  hosts: [ratings]
  http:
  - match: [{sourceLabels: {app: reviews, version: v2}}]
    route: [{destination: {host: ratings, subset: v2}}]
    retries: {attempts: 0}
    mirror: {host: ratings, subset: shadow}
    mirrorPercentage: {value: 5}
  - route: [{destination: {host: ratings, subset: v1}}]
    corsPolicy: {allowOrigins: [{exact: 'https://a.example'}], allowMethods: [GET]}
";

#[test]
fn source_labels_pick_routes_per_proxy() {
    let s = snapshot(parse(SOURCE_SCOPED), bookinfo_registry());
    let rc = config(
        &s,
        &sidecar("default", &[("app", "reviews"), ("version", "v2")]),
        "http_proxy",
    );
    let routes = &vhost(&rc, "ratings.default.svc.cluster.local:9080").routes;
    // Source labels are not an Envoy condition: for this proxy the first rule matches
    // every request, so nothing after it is generated.
    assert_eq!(routes.len(), 1);
    let a = action(&routes[0]);
    assert_eq!(a.retry_policy, None);
    assert_eq!(
        a.request_mirror_policies[0].cluster,
        "outbound|9080|shadow|ratings.default.svc.cluster.local"
    );
    assert_eq!(
        a.request_mirror_policies[0]
            .runtime_fraction
            .as_ref()
            .unwrap()
            .default_value
            .unwrap()
            .numerator,
        50_000
    );
    let other = config(
        &s,
        &sidecar("default", &[("app", "reviews"), ("version", "v1")]),
        "http_proxy",
    );
    let routes = &vhost(&other, "ratings.default.svc.cluster.local:9080").routes;
    assert_eq!(routes.len(), 1);
    assert_eq!(
        cluster(&routes[0]),
        "outbound|9080|v1|ratings.default.svc.cluster.local"
    );
    assert!(routes[0].typed_per_filter_config.contains_key(CORS_FILTER));
    assert!(action(&routes[0]).retry_policy.is_some());
}
