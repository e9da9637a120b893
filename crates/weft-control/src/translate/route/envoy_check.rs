//! Real Envoy as the oracle: generated route tables, placed in a static bootstrap, must
//! pass `envoy --mode validate` (regexes compile, oneofs and constraints hold).

use super::tests::{bookinfo, bookinfo_registry, ingress, sidecar, snapshot};
use super::*;
use crate::translate::Direction;
use envoy_types::pb::envoy::config::bootstrap::v3::{bootstrap::StaticResources, Bootstrap};
use envoy_types::pb::envoy::config::cluster::v3::{
    cluster::ClusterDiscoveryType, cluster::DiscoveryType, Cluster,
};
use envoy_types::pb::envoy::config::core::v3::{
    address, socket_address::PortSpecifier, Address, SocketAddress,
};
use envoy_types::pb::envoy::config::listener::v3::{filter, Filter, FilterChain, Listener};
use envoy_types::pb::envoy::config::route::v3::route::Action;
use envoy_types::pb::envoy::config::route::v3::route_action::ClusterSpecifier;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    http_connection_manager::RouteSpecifier, HttpConnectionManager,
};
use envoy_types::util::pack_any;
use prost::Message;
use std::collections::BTreeSet;

fn clusters_of(rc: &RouteConfiguration) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for r in rc.virtual_hosts.iter().flat_map(|v| v.routes.iter()) {
        if let Some(Action::Route(a)) = &r.action {
            out.extend(a.request_mirror_policies.iter().map(|m| m.cluster.clone()));
            match &a.cluster_specifier {
                Some(ClusterSpecifier::Cluster(c)) => {
                    out.insert(c.clone());
                }
                Some(ClusterSpecifier::WeightedClusters(w)) => {
                    out.extend(w.clusters.iter().map(|c| c.name.clone()));
                }
                _ => {}
            }
        }
    }
    out
}

fn listener(i: usize, rc: RouteConfiguration, direction: Direction) -> Listener {
    let hcm = HttpConnectionManager {
        stat_prefix: format!("l{i}"),
        http_filters: http_filters(direction),
        route_specifier: Some(RouteSpecifier::RouteConfig(rc)),
        ..Default::default()
    };
    Listener {
        name: format!("l{i}"),
        address: Some(Address {
            address: Some(address::Address::SocketAddress(SocketAddress {
                address: "127.0.0.1".into(),
                port_specifier: Some(PortSpecifier::PortValue(10_000 + i as u32)),
                ..Default::default()
            })),
        }),
        filter_chains: vec![FilterChain {
            filters: vec![Filter {
                name: "envoy.filters.network.http_connection_manager".into(),
                config_type: Some(filter::ConfigType::TypedConfig(pack_any(hcm))),
            }],
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// Runs `envoy --mode validate` on the tables; `None` when Envoy is not installed.
fn envoy_validate(tables: Vec<(RouteConfiguration, Direction)>) -> Option<(bool, String)> {
    let mut clusters = BTreeSet::new();
    let mut listeners = Vec::new();
    for (i, (rc, dir)) in tables.into_iter().enumerate() {
        clusters.extend(clusters_of(&rc));
        listeners.push(listener(i, rc, dir));
    }
    let bootstrap = Bootstrap {
        static_resources: Some(StaticResources {
            listeners,
            clusters: clusters
                .into_iter()
                .map(|name| Cluster {
                    name,
                    cluster_discovery_type: Some(ClusterDiscoveryType::Type(
                        DiscoveryType::Static as i32,
                    )),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }),
        ..Default::default()
    };
    // Tests run in parallel: one directory per call.
    static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("weft-route-check-{}-{call}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    // Envoy reads a `.pb` bootstrap as binary protobuf: no JSON mapping needed.
    let path = dir.join("bootstrap.pb");
    std::fs::write(&path, bootstrap.encode_to_vec()).expect("bootstrap written");
    let envoy = weft_testkit::envoy::find()?;
    let out = std::process::Command::new(envoy)
        .args(["--mode", "validate", "--log-level", "info", "-c"])
        .arg(&path)
        .output()
        .expect("envoy runs");
    std::fs::remove_dir_all(&dir).ok();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    Some((out.status.success(), text))
}

#[test]
fn envoy_accepts_bookinfo_route_tables() {
    let s = snapshot(
        bookinfo(&[
            "bookinfo-gateway.yaml",
            "destination-rule-all.yaml",
            "virtual-service-reviews-jason-v2-v3.yaml",
            "virtual-service-ratings-test-abort.yaml",
            "virtual-service-details-v2.yaml",
        ]),
        bookinfo_registry(),
    );
    let side = sidecar("default", &[("app", "productpage")]);
    let names = ["http_proxy".to_string(), "9080".to_string()];
    let mut tables: Vec<_> = route_configs(&s, &side, &names)
        .into_iter()
        .map(|rc| (rc, Direction::Outbound))
        .collect();
    tables.extend(
        route_configs(&s, &ingress(), &["http.8080".to_string()])
            .into_iter()
            .map(|rc| (rc, Direction::Gateway)),
    );
    tables.push((inbound_route_config(9080), Direction::Inbound));
    let Some((ok, log)) = envoy_validate(tables) else {
        return;
    };
    assert!(
        ok && log.contains("OK"),
        "envoy rejected the route tables:\n{log}"
    );
}

/// A table using every feature at once, so Envoy checks each translation.
const EVERYTHING: &str = "
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: all, namespace: default}
spec:
  hosts: [reviews, www.example.com]
  http:
  - name: a
    match:
    - uri: {regex: '/v[0-9]+/.*'}
      headers: {x-a: {prefix: p}, x-b: {}, x-c: {regex: 'a.*'}}
      withoutHeaders: {x-d: {exact: no}}
      queryParams: {q: {exact: '1'}, r: {regex: '[a-z]+'}}
      method: {exact: GET}
      authority: {prefix: reviews}
      scheme: {exact: http}
      ignoreUriCase: true
      statPrefix: stat-a
    rewrite: {uriRegexRewrite: {match: '^/v([0-9]+)/', rewrite: '/version/\\1/'}, authority: internal}
    timeout: 5s
    retries: {attempts: 3, perTryTimeout: 1s, retryOn: '5xx,503,reset', retryRemoteLocalities: true}
    fault:
      delay: {fixedDelay: 2s, percentage: {value: 12.5}}
      abort: {grpcStatus: UNAVAILABLE, percentage: {value: 1}}
    mirrors:
    - destination: {host: reviews, subset: v3}
      percentage: {value: 10}
    corsPolicy:
      allowOrigins: [{exact: 'https://a.example'}, {regex: 'https://.*\\.b\\.example'}]
      allowMethods: [GET, POST]
      allowHeaders: [x-a]
      exposeHeaders: [x-b]
      maxAge: 1h
      allowCredentials: true
      unmatchedPreflights: IGNORE
    headers:
      request: {set: {x-set: '1'}, add: {x-add: '2'}, remove: [x-rm]}
      response: {set: {x-rs: '3'}, remove: [server]}
    route:
    - destination: {host: reviews, subset: v1}
      weight: 70
      headers: {request: {set: {x-dest: v1}}}
    - destination: {host: reviews, subset: v2}
      weight: 30
  - match: [{uri: {exact: /old}}]
    redirect: {uri: /new, authority: www.example.com, scheme: https, port: 8443, redirectCode: 308}
  - match: [{uri: {prefix: /gone}}]
    directResponse: {status: 410, body: {string: gone}}
  - match: [{uri: {prefix: /bin}}]
    directResponse: {status: 200, body: {bytes: aGVsbG8=}}
  - match: [{uri: {prefix: /api}}]
    rewrite: {uri: /v2/api}
    route: [{destination: {host: reviews, port: {number: 9080}}}]
  - route: [{destination: {host: reviews}}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: default}
spec:
  host: reviews
  trafficPolicy: {loadBalancer: {consistentHash: {httpCookie: {name: u, path: /, ttl: 60s}}}}
";

#[test]
fn envoy_accepts_every_feature() {
    let resources = super::tests::parse(EVERYTHING);
    let s = snapshot(resources, bookinfo_registry());
    let tables = route_configs(
        &s,
        &sidecar("default", &[]),
        &["http_proxy".into(), "9080".into(), "80".into()],
    )
    .into_iter()
    .map(|rc| (rc, Direction::Outbound))
    .collect();
    let Some((ok, log)) = envoy_validate(tables) else {
        return;
    };
    assert!(
        ok && log.contains("OK"),
        "envoy rejected the route tables:\n{log}"
    );
}
