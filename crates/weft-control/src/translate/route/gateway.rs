//! Gateway route tables: `http.<port>` (every plain-HTTP server on the port) and
//! `https.<port>.<portName>.<gateway>.<namespace>` (one TLS-terminating server), with
//! virtual hosts from the VirtualServices bound to those Gateways.

use super::context::RouteCtx;
use super::route_match::is_catch_all;
use super::{delegate, http_route, visible, VsEntry};
use crate::model::{MeshSnapshot, Proxy};
use crate::translate::names::{gateway_http_route, gateway_https_route};
use envoy_types::pb::envoy::config::route::v3::route::Action;
use envoy_types::pb::envoy::config::route::v3::route_match::PathSpecifier;
use envoy_types::pb::envoy::config::route::v3::virtual_host::TlsRequirementType;
use envoy_types::pb::envoy::config::route::v3::{
    DirectResponseAction, Route, RouteMatch, VirtualHost,
};
use std::collections::BTreeSet;
use weft_config::networking::gateway::{Server, ServerTlsMode};
use weft_config::networking::shared::{host_subset_of, hosts_overlap};
use weft_config::{Kind, Spec};

/// A server of a Gateway that selects this proxy.
struct GatewayServer<'a> {
    /// `namespace/name` of the Gateway.
    key: String,
    namespace: String,
    server: &'a Server,
}

fn protocol(s: &Server) -> String {
    s.port
        .as_ref()
        .map(|p| p.protocol.to_ascii_uppercase())
        .unwrap_or_default()
}

fn is_plain_http(s: &Server) -> bool {
    matches!(protocol(s).as_str(), "HTTP" | "HTTP2" | "GRPC" | "GRPC-WEB")
}

/// HTTPS servers that terminate TLS get their own route table; passthrough ones route on
/// SNI and have none.
fn is_terminating_https(s: &Server) -> bool {
    protocol(s) == "HTTPS"
        && s.tls.as_ref().is_some_and(|t| {
            !matches!(
                t.mode,
                ServerTlsMode::Passthrough | ServerTlsMode::AutoPassthrough
            )
        })
}

fn servers<'a>(snapshot: &'a MeshSnapshot, proxy: &Proxy) -> Vec<GatewayServer<'a>> {
    let mut out = Vec::new();
    for r in snapshot.of_kind(Kind::Gateway) {
        let Spec::Gateway(gw) = &r.spec else {
            continue;
        };
        let selected = gw
            .selector
            .iter()
            .all(|(k, v)| proxy.labels.get(k) == Some(v));
        if !selected {
            continue;
        }
        for server in &gw.servers {
            out.push(GatewayServer {
                key: format!("{}/{}", r.metadata.namespace, r.metadata.name),
                namespace: r.metadata.namespace.clone(),
                server,
            });
        }
    }
    out
}

/// `ns/host`, `./host` or `host` (any namespace) of a server.
fn split_server_host<'h>(host: &'h str, gw_ns: &'h str) -> (&'h str, &'h str) {
    match host.split_once('/') {
        Some((".", h)) => (gw_ns, h),
        Some((ns, h)) => (ns, h),
        None => ("*", host),
    }
}

/// The hosts both a VirtualService and a server accept: the more specific of each
/// overlapping pair.
fn intersect(vs: &VsEntry, gs: &GatewayServer) -> Vec<String> {
    let mut out = Vec::new();
    for sh in &gs.server.hosts {
        let (ns, server_host) = split_server_host(sh, &gs.namespace);
        if ns != "*" && ns != vs.namespace {
            continue;
        }
        for vh in &vs.hosts {
            if !hosts_overlap(vh, server_host) {
                continue;
            }
            let h = if host_subset_of(vh, server_host) {
                vh.clone()
            } else {
                server_host.to_string()
            };
            if !out.contains(&h) {
                out.push(h);
            }
        }
    }
    out
}

fn domains(host: &str, port: u32) -> Vec<String> {
    if host == "*" {
        vec!["*".into()]
    } else {
        vec![host.to_string(), format!("{host}:{port}")]
    }
}

fn add_vhost(
    vhosts: &mut Vec<VirtualHost>,
    host: &str,
    port: u32,
    routes: Vec<Route>,
    require_tls: bool,
) {
    let name = format!("{host}:{port}");
    if let Some(existing) = vhosts.iter_mut().find(|v| v.name == name) {
        // Several VirtualServices for one host: their routes are merged, catch-alls last
        // so that they cannot hide the other rules.
        existing.routes.extend(routes);
        let (mut specific, catch_all): (Vec<_>, Vec<_>) = std::mem::take(&mut existing.routes)
            .into_iter()
            .partition(|r| !r.r#match.as_ref().is_some_and(is_catch_all));
        specific.extend(catch_all);
        existing.routes = specific;
        return;
    }
    vhosts.push(VirtualHost {
        name,
        domains: domains(host, port),
        routes,
        include_request_attempt_count: true,
        require_tls: if require_tls {
            TlsRequirementType::All as i32
        } else {
            TlsRequirementType::None as i32
        },
        ..Default::default()
    });
}

/// Virtual hosts of gateway route table `name`; `None` when no server of this proxy has
/// that route table.
pub fn vhosts(
    snapshot: &MeshSnapshot,
    proxy: &Proxy,
    vss: &[VsEntry],
    name: &str,
) -> Option<Vec<VirtualHost>> {
    let all = servers(snapshot, proxy);
    let chosen: Vec<&GatewayServer> = all
        .iter()
        .filter(|gs| {
            let Some(port) = &gs.server.port else {
                return false;
            };
            if is_plain_http(gs.server) {
                name == gateway_http_route(port.number)
            } else if is_terminating_https(gs.server) {
                let (ns, gw) = gs.key.split_once('/').unwrap_or_default();
                name == gateway_https_route(port.number, &port.name, gw, ns)
            } else {
                false
            }
        })
        .collect();
    let port = chosen.first()?.server.port.as_ref()?.number;
    let mut out = Vec::new();
    for gs in &chosen {
        let https_redirect =
            is_plain_http(gs.server) && gs.server.tls.as_ref().is_some_and(|t| t.https_redirect);
        let ctx = RouteCtx {
            snapshot,
            proxy,
            listen_port: port,
            gateways: BTreeSet::from([gs.key.clone()]),
            is_tls: is_terminating_https(gs.server),
        };
        for vs in vss.iter().filter(|v| v.gateways.contains(&gs.key)) {
            if !visible(&vs.export_to, &vs.namespace, &gs.namespace) {
                continue;
            }
            let hosts = intersect(vs, gs);
            if hosts.is_empty() {
                continue;
            }
            let rules = delegate::expand(snapshot, &vs.name, &vs.namespace, vs.spec);
            let routes = http_route::routes(&ctx, &rules);
            if routes.is_empty() {
                continue;
            }
            for h in hosts {
                add_vhost(&mut out, &h, port, routes.clone(), https_redirect);
            }
        }
        if https_redirect {
            // Plain requests to a redirecting server get a redirect whether or not a
            // VirtualService is bound: Envoy checks require_tls before any route.
            for sh in &gs.server.hosts {
                let (_, h) = split_server_host(sh, &gs.namespace);
                if !out.iter().any(|v| v.name == format!("{h}:{port}")) {
                    add_vhost(&mut out, h, port, Vec::new(), true);
                }
            }
        }
    }
    // Envoy rejects duplicate domains (e.g. `*` from two servers): the first keeps it.
    let mut seen = BTreeSet::new();
    for v in &mut out {
        v.domains.retain(|d| seen.insert(d.clone()));
    }
    out.retain(|v| !v.domains.is_empty());
    if out.is_empty() {
        out.push(VirtualHost {
            name: "blackhole".into(),
            domains: vec!["*".into()],
            routes: vec![Route {
                name: "blackhole".into(),
                r#match: Some(RouteMatch {
                    path_specifier: Some(PathSpecifier::Prefix("/".into())),
                    ..Default::default()
                }),
                action: Some(Action::DirectResponse(DirectResponseAction {
                    status: 404,
                    body: None,
                    ..Default::default()
                })),
                ..Default::default()
            }],
            ..Default::default()
        });
    }
    Some(out)
}
