//! Gateway listeners (router proxies): one `0.0.0.0_<port>` listener per Gateway server port
//! selected by the proxy's labels; HTTP via RDS, TLS terminated (certificates from files or
//! a `credentialName` Secret) or passed through by SNI.

use super::filter::{http_connection_manager, tcp_proxy, Routes};
use super::names;
use super::proto::{any, socket};
use super::tls;
use super::Direction;
use crate::model::{MeshSnapshot, Proxy};
use crate::registry::{resolve_short_name, Protocol};
use envoy_types::pb::envoy::config::core::v3::TrafficDirection;
use envoy_types::pb::envoy::config::listener::v3::{
    listener_filter, FilterChain, FilterChainMatch, Listener, ListenerFilter,
};
use envoy_types::pb::envoy::extensions::filters::listener::tls_inspector::v3::TlsInspector;
use std::collections::BTreeMap;
use weft_config::networking::gateway::{Gateway, Server, ServerTlsMode};
use weft_config::networking::virtual_service::{Destination, VirtualService};
use weft_config::{Resource, Spec};

/// A server with the Gateway it belongs to.
struct Bound<'a> {
    gateway: &'a Resource,
    server: &'a Server,
}

/// Gateways whose selector the proxy's labels satisfy, in any namespace.
pub(super) fn selected<'a>(
    snapshot: &'a MeshSnapshot,
    proxy: &Proxy,
) -> Vec<(&'a Resource, &'a Gateway)> {
    snapshot
        .resources
        .iter()
        .filter_map(|r| match &r.spec {
            Spec::Gateway(g) => Some((r, g.as_ref())),
            _ => None,
        })
        .filter(|(_, g)| {
            g.selector
                .iter()
                .all(|(k, v)| proxy.labels.get(k) == Some(v))
        })
        .collect()
}

pub fn listeners(snapshot: &MeshSnapshot, proxy: &Proxy) -> Vec<Listener> {
    let mut by_port: BTreeMap<u32, Vec<Bound>> = BTreeMap::new();
    for (gateway, spec) in selected(snapshot, proxy) {
        for server in &spec.servers {
            if let Some(port) = &server.port {
                by_port
                    .entry(port.number)
                    .or_default()
                    .push(Bound { gateway, server });
            }
        }
    }
    by_port
        .into_iter()
        .filter_map(|(port, servers)| listener(snapshot, port, &servers))
        .collect()
}

fn protocol(server: &Server) -> Protocol {
    server
        .port
        .as_ref()
        .map(|p| Protocol::of_port(&p.protocol, &p.name))
        .unwrap_or_default()
}

fn sni_names(server: &Server) -> Vec<String> {
    server
        .hosts
        .iter()
        // `ns/host`: the namespace part scopes VirtualServices, not SNI.
        .map(|h| h.rsplit('/').next().unwrap_or(h).to_string())
        .filter(|h| h != "*")
        .collect()
}

fn listener(snapshot: &MeshSnapshot, port: u32, servers: &[Bound]) -> Option<Listener> {
    let mut chains = Vec::new();
    let mut plain_http = false;
    for bound in servers {
        let server = bound.server;
        let mode = server.tls.as_ref().map(|t| t.mode);
        match (protocol(server), mode) {
            (p, _) if p.is_http() => plain_http = true,
            (Protocol::Https | Protocol::Tls, Some(ServerTlsMode::Passthrough)) => {
                chains.extend(passthrough_chains(snapshot, bound, port));
            }
            (Protocol::Https, Some(_)) => {
                let Some(settings) = server.tls.as_ref() else {
                    continue;
                };
                let secrets = tls::Secrets::new(snapshot, &bound.gateway.metadata.namespace);
                let socket = match tls::downstream(settings, &["h2", "http/1.1"], &secrets) {
                    Ok(Some(socket)) => socket,
                    Ok(None) => continue,
                    Err(e) => {
                        // As Istio does: no certificate, no filter chain for this server;
                        // the port's other servers are still served.
                        tracing::warn!(
                            gateway = %bound.gateway.origin(),
                            port,
                            error = %e,
                            "skipping a gateway server whose credential cannot be read"
                        );
                        continue;
                    }
                };
                let port_name = server
                    .port
                    .as_ref()
                    .map(|p| p.name.as_str())
                    .unwrap_or_default();
                let route = names::gateway_https_route(
                    port,
                    port_name,
                    &bound.gateway.metadata.name,
                    &bound.gateway.metadata.namespace,
                );
                chains.push(FilterChain {
                    filter_chain_match: Some(FilterChainMatch {
                        server_names: sni_names(server),
                        ..Default::default()
                    }),
                    filters: vec![http_connection_manager(
                        &format!("outbound_{port}_{route}"),
                        Routes::Rds(route),
                        Direction::Gateway,
                    )],
                    transport_socket: Some(socket),
                    ..Default::default()
                });
            }
            _ => {
                if let Some(chain) = tcp_chain(snapshot, bound, port) {
                    chains.push(chain);
                }
            }
        }
    }
    if plain_http {
        // Every plain HTTP server on a port shares one route table, `http.<port>`.
        chains.push(FilterChain {
            filters: vec![http_connection_manager(
                &format!("outbound_0.0.0.0_{port}"),
                Routes::Rds(names::gateway_http_route(port)),
                Direction::Gateway,
            )],
            ..Default::default()
        });
    }
    if chains.is_empty() {
        return None;
    }
    let needs_sni = chains.iter().any(|c| {
        c.filter_chain_match
            .as_ref()
            .is_some_and(|m| !m.server_names.is_empty())
            || c.transport_socket.is_some()
    });
    Some(Listener {
        name: names::listener("0.0.0.0", port),
        address: Some(socket("0.0.0.0", port)),
        traffic_direction: TrafficDirection::Outbound as i32,
        listener_filters: if needs_sni {
            vec![tls_inspector()]
        } else {
            Vec::new()
        },
        filter_chains: chains,
        ..Default::default()
    })
}

fn tls_inspector() -> ListenerFilter {
    ListenerFilter {
        name: "envoy.filters.listener.tls_inspector".to_string(),
        config_type: Some(listener_filter::ConfigType::TypedConfig(any(
            "envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector",
            &TlsInspector::default(),
        ))),
        ..Default::default()
    }
}

/// VirtualServices bound to this gateway (`<ns>/<name>`, or `<name>` from the same namespace).
fn bound_virtual_services<'a>(
    snapshot: &'a MeshSnapshot,
    gateway: &Resource,
) -> Vec<(&'a Resource, &'a VirtualService)> {
    let full = format!("{}/{}", gateway.metadata.namespace, gateway.metadata.name);
    snapshot
        .resources
        .iter()
        .filter_map(|r| match &r.spec {
            Spec::VirtualService(vs) => Some((r, vs.as_ref())),
            _ => None,
        })
        .filter(|(r, vs)| {
            vs.gateways.iter().any(|g| {
                *g == full
                    || (*g == gateway.metadata.name
                        && r.metadata.namespace == gateway.metadata.namespace)
            })
        })
        .collect()
}

/// The cluster a route destination names; an omitted port is the service's only port.
fn destination_cluster(
    snapshot: &MeshSnapshot,
    namespace: &str,
    d: &Destination,
) -> Option<String> {
    let host = resolve_short_name(&d.host, namespace);
    let port = match d.port.as_ref().and_then(|p| p.number) {
        Some(n) => n,
        None => match snapshot.registry.service(&host).map(|s| s.ports.as_slice()) {
            Some([only]) => only.number,
            _ => return None,
        },
    };
    Some(names::outbound_cluster(
        port,
        d.subset.as_deref().unwrap_or_default(),
        &host,
    ))
}

/// PASSTHROUGH: one chain per TLS route match, by SNI, proxying the bytes untouched.
fn passthrough_chains(snapshot: &MeshSnapshot, bound: &Bound, port: u32) -> Vec<FilterChain> {
    let mut chains = Vec::new();
    for (vs_resource, vs) in bound_virtual_services(snapshot, bound.gateway) {
        for route in &vs.tls {
            let ns = &vs_resource.metadata.namespace;
            let clusters: Vec<(String, u32)> = route
                .route
                .iter()
                .filter_map(|r| {
                    let weight = r.weight.and_then(|w| u32::try_from(w).ok()).unwrap_or(100);
                    destination_cluster(snapshot, ns, &r.destination).map(|c| (c, weight))
                })
                .collect();
            if clusters.is_empty() {
                continue;
            }
            for m in route
                .r#match
                .iter()
                .filter(|m| m.port.is_none_or(|p| p == port))
            {
                chains.push(FilterChain {
                    filter_chain_match: Some(FilterChainMatch {
                        server_names: m.sni_hosts.clone(),
                        ..Default::default()
                    }),
                    filters: vec![tcp_proxy(&clusters[0].0, &clusters)],
                    ..Default::default()
                });
            }
        }
    }
    chains
}

/// Plain TCP servers: the first bound TCP route for this port.
fn tcp_chain(snapshot: &MeshSnapshot, bound: &Bound, port: u32) -> Option<FilterChain> {
    for (vs_resource, vs) in bound_virtual_services(snapshot, bound.gateway) {
        for route in &vs.tcp {
            let port_matches = route.r#match.is_empty()
                || route
                    .r#match
                    .iter()
                    .any(|m| m.port.is_none_or(|p| p == port));
            if !port_matches {
                continue;
            }
            let clusters: Vec<(String, u32)> = route
                .route
                .iter()
                .filter_map(|r| {
                    let weight = r.weight.and_then(|w| u32::try_from(w).ok()).unwrap_or(100);
                    destination_cluster(snapshot, &vs_resource.metadata.namespace, &r.destination)
                        .map(|c| (c, weight))
                })
                .collect();
            if let Some((first, _)) = clusters.first() {
                return Some(FilterChain {
                    filters: vec![tcp_proxy(first, &clusters)],
                    ..Default::default()
                });
            }
        }
    }
    None
}

#[cfg(test)]
#[path = "gateway_tests.rs"]
mod tests;
