//! Sidecar outbound route tables: `http_proxy` (explicit mode, every port) and `<port>`
//! (transparent mode): one virtual host per service port, VirtualService routes where a
//! mesh-bound VirtualService claims the host, Istio's default route elsewhere.

use super::context::RouteCtx;
use super::domains::{plain_domains, service_domains};
use super::proto::zero_duration;
use super::{delegate, hash_policy, http_route, retry, VsEntry};
use crate::model::{MeshSnapshot, Proxy};
use crate::registry::Service;
use crate::translate::names::{outbound_cluster, HTTP_PROXY_ROUTE, PASSTHROUGH_CLUSTER};
use crate::translate::scope::Scope;
use envoy_types::pb::envoy::config::cluster::v3::cluster::{LbConfig, OriginalDstLbConfig};
use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::core::v3::{
    header_value_option::HeaderAppendAction, HeaderValue, HeaderValueOption,
};
use envoy_types::pb::envoy::config::route::v3::route::Action;
use envoy_types::pb::envoy::config::route::v3::route_action::ClusterSpecifier;
use envoy_types::pb::envoy::config::route::v3::route_match::PathSpecifier;
use envoy_types::pb::envoy::config::route::v3::{
    Decorator, DirectResponseAction, Route, RouteAction, RouteMatch, VirtualHost,
};
use std::collections::{BTreeMap, BTreeSet};
use weft_config::networking::shared::hosts_overlap;
use weft_config::networking::virtual_service::MESH_GATEWAY;

/// Services the proxy may see (exportTo and its Sidecar's egress hosts).
fn http_services<'a>(snapshot: &'a MeshSnapshot, scope: &Scope) -> Vec<&'a Service> {
    snapshot
        .registry
        .services
        .iter()
        .filter(|s| scope.sees_service(s))
        .collect()
}

fn is_http_port(s: &Service, port: u32) -> bool {
    s.ports.iter().any(|p| {
        p.number == port
            && (p.protocol.is_http() || p.protocol == crate::registry::Protocol::Unknown)
    })
}

/// The VirtualService (index into `vss`) that owns `host`: an exact host wins, else the
/// most specific wildcard; ties go to the earlier VirtualService.
fn owner(vss: &[VsEntry], host: &str) -> Option<usize> {
    let exact = vss.iter().position(|v| v.hosts.iter().any(|h| h == host));
    exact.or_else(|| {
        let mut best: Option<(usize, usize)> = None;
        for (i, v) in vss.iter().enumerate() {
            for h in v.hosts.iter().filter(|h| h.starts_with('*')) {
                if hosts_overlap(h, host) && best.is_none_or(|(len, _)| h.len() > len) {
                    best = Some((h.len(), i));
                }
            }
        }
        best.map(|(_, i)| i)
    })
}

/// Istio's route for a service without a VirtualService: everything to the service port's
/// cluster, no timeout, the default retry policy.
fn default_route(ctx: &RouteCtx, s: &Service, port: u32) -> Route {
    let hash =
        hash_policy::for_destination(ctx.snapshot, ctx.proxy_namespace(), &s.hostname, None, port);
    let action = RouteAction {
        cluster_specifier: Some(ClusterSpecifier::Cluster(outbound_cluster(
            port,
            "",
            &s.hostname,
        ))),
        timeout: Some(zero_duration()),
        retry_policy: retry::retry_policy(None, hash.is_some()),
        hash_policy: hash.into_iter().collect(),
        ..Default::default()
    };
    Route {
        name: "default".into(),
        r#match: Some(prefix_all()),
        decorator: Some(Decorator {
            operation: format!("{}:{port}/*", s.hostname),
            ..Default::default()
        }),
        action: Some(Action::Route(action)),
        ..Default::default()
    }
}

fn prefix_all() -> RouteMatch {
    RouteMatch {
        path_specifier: Some(PathSpecifier::Prefix("/".into())),
        ..Default::default()
    }
}

fn vhost(name: String, domains: Vec<String>, routes: Vec<Route>) -> VirtualHost {
    VirtualHost {
        name,
        domains,
        routes,
        include_request_attempt_count: true,
        ..Default::default()
    }
}

/// Virtual hosts for requests arriving on service port `port`.
fn port_vhosts(
    snapshot: &MeshSnapshot,
    proxy: &Proxy,
    scope: &Scope,
    vss: &[VsEntry],
    services: &[&Service],
    port: u32,
    bare: bool,
) -> Vec<VirtualHost> {
    let ctx = RouteCtx {
        snapshot,
        proxy,
        listen_port: port,
        gateways: BTreeSet::from([MESH_GATEWAY.to_string()]),
        is_tls: false,
    };
    let proxy_ns = ctx.proxy_namespace().to_string();
    let on_port: Vec<&Service> = services
        .iter()
        .copied()
        .filter(|s| is_http_port(s, port) && scope.sees_port(s, port))
        .collect();
    let mut owned: BTreeMap<usize, Vec<&Service>> = BTreeMap::new();
    for s in &on_port {
        if let Some(i) = owner(vss, &s.hostname) {
            owned.entry(i).or_default().push(s);
        }
    }
    let mut out = Vec::new();
    let mut claimed = BTreeSet::new();
    for (i, v) in vss.iter().enumerate() {
        let rules = delegate::expand(snapshot, &v.name, &v.namespace, v.spec);
        let routes = http_route::routes(&ctx, &rules);
        // A VirtualService none of whose matches applies here leaves its services to the
        // default route.
        if routes.is_empty() {
            continue;
        }
        for s in owned.get(&i).into_iter().flatten() {
            claimed.insert(s.hostname.clone());
            out.push(vhost(
                format!("{}:{port}", s.hostname),
                service_domains(&s.hostname, port, &proxy_ns, &s.addresses, bare),
                routes.clone(),
            ));
        }
        // Hosts outside the registry (e.g. `www.google.com`) are reached on port 80.
        if port == 80 {
            for h in &v.hosts {
                let in_registry = services.iter().any(|s| hosts_overlap(h, &s.hostname));
                if !in_registry {
                    out.push(vhost(
                        format!("{h}:{port}"),
                        plain_domains(h, port, true),
                        routes.clone(),
                    ));
                }
            }
        }
    }
    for s in on_port.iter().filter(|s| !claimed.contains(&s.hostname)) {
        out.push(vhost(
            format!("{}:{port}", s.hostname),
            service_domains(&s.hostname, port, &proxy_ns, &s.addresses, bare),
            vec![default_route(&ctx, s, port)],
        ));
    }
    out
}

/// Envoy rejects a route table where two virtual hosts share a name or a domain; the
/// first (VirtualServices, then services, in order) keeps it.
fn dedupe(vhosts: Vec<VirtualHost>) -> Vec<VirtualHost> {
    let mut names = BTreeSet::new();
    let mut domains = BTreeSet::new();
    let mut out = Vec::new();
    for mut v in vhosts {
        if !names.insert(v.name.clone()) {
            continue;
        }
        v.domains.retain(|d| domains.insert(d.clone()));
        if !v.domains.is_empty() {
            out.push(v);
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// The sidecar's outbound route table `name`: all ports for `http_proxy`, else `port`.
pub fn outbound(
    snapshot: &MeshSnapshot,
    proxy: &Proxy,
    scope: &Scope,
    vss: &[VsEntry],
    port: Option<u32>,
) -> Vec<VirtualHost> {
    let services = http_services(snapshot, scope);
    let mesh_vss: Vec<VsEntry> = vss
        .iter()
        .filter(|v| {
            v.gateways.contains(MESH_GATEWAY) && scope.sees_virtual_service(&v.namespace, &v.name)
        })
        .cloned()
        .collect();
    let mut vhosts = Vec::new();
    match port {
        Some(p) => vhosts.extend(port_vhosts(
            snapshot, proxy, scope, &mesh_vss, &services, p, true,
        )),
        None => {
            let mut ports: BTreeSet<u32> = services
                .iter()
                .flat_map(|s| s.ports.iter().map(|p| p.number))
                .collect();
            ports.insert(80);
            for p in ports {
                // Only port 80 may be addressed without a port in an HTTP proxy request.
                vhosts.extend(port_vhosts(
                    snapshot,
                    proxy,
                    scope,
                    &mesh_vss,
                    &services,
                    p,
                    p == 80,
                ));
            }
        }
    }
    let mut out = dedupe(vhosts);
    out.push(catch_all(scope.allow_any(), port.is_none()));
    out
}

/// Header an ORIGINAL_DST cluster with `use_http_header` takes its destination from.
pub const ORIGINAL_DST_HOST: &str = "x-envoy-original-dst-host";

/// Istio's catch-all virtual host for hosts outside the registry: `allow_any` to
/// PassthroughCluster under ALLOW_ANY, `block_all` answering 502 under REGISTRY_ONLY.
/// Transparent capture passes a request through to the address the application dialled;
/// an explicit HTTP proxy has no such address, so its route names the destination from the
/// request's authority (an `ip:port`, as ORIGINAL_DST clusters take it) in the header its
/// PassthroughCluster reads (see [`explicit_passthrough`]).
fn catch_all(allow_any: bool, explicit: bool) -> VirtualHost {
    let (name, action, headers) = if allow_any {
        let headers = if explicit {
            vec![HeaderValueOption {
                header: Some(HeaderValue {
                    key: ORIGINAL_DST_HOST.into(),
                    value: "%REQ(:AUTHORITY)%".into(),
                    ..Default::default()
                }),
                append_action: HeaderAppendAction::OverwriteIfExistsOrAdd as i32,
                ..Default::default()
            }]
        } else {
            Vec::new()
        };
        let action = Action::Route(RouteAction {
            cluster_specifier: Some(ClusterSpecifier::Cluster(PASSTHROUGH_CLUSTER.into())),
            timeout: Some(zero_duration()),
            ..Default::default()
        });
        ("allow_any", action, headers)
    } else {
        let action = Action::DirectResponse(DirectResponseAction {
            status: 502,
            ..Default::default()
        });
        ("block_all", action, Vec::new())
    };
    vhost(
        name.into(),
        vec!["*".into()],
        vec![Route {
            name: name.into(),
            r#match: Some(prefix_all()),
            action: Some(action),
            request_headers_to_add: headers,
            ..Default::default()
        }],
    )
}

/// An explicit-mode sidecar's PassthroughCluster reads its destination from the header the
/// `allow_any` route sets (a client cannot steer it elsewhere: the route overwrites it).
pub fn explicit_passthrough(clusters: &mut [Cluster]) {
    for c in clusters
        .iter_mut()
        .filter(|c| c.name == PASSTHROUGH_CLUSTER)
    {
        c.lb_config = Some(LbConfig::OriginalDstLbConfig(OriginalDstLbConfig {
            use_http_header: true,
            ..Default::default()
        }));
    }
}

/// Whether this route table name is a sidecar outbound one, and for which port.
pub fn parse_name(name: &str) -> Option<Option<u32>> {
    if name == HTTP_PROXY_ROUTE {
        Some(None)
    } else {
        name.parse::<u32>().ok().map(Some)
    }
}
