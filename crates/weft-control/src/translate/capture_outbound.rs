//! Transparent capture, outbound (Istio's layout): `virtualOutbound` on 15001 receives what
//! iptables redirected and hands each connection to the `0.0.0.0_<port>` listener of its
//! original port (bind_to_port false); that listener routes HTTP through RDS `<port>` and
//! TCP/TLS by VirtualService `tcp`/`tls` routes, else to the service's cluster.

use super::filter::{http_connection_manager, tcp_proxy, Routes};
use super::names;
use super::proto::{any, socket, u32v};
use super::scope::Scope;
use super::Direction;
use crate::model::MeshSnapshot;
use crate::registry::{resolve_short_name, Protocol, Service};
use envoy_types::pb::envoy::config::core::v3::{CidrRange, TrafficDirection};
use envoy_types::pb::envoy::config::listener::v3::{
    listener_filter, FilterChain, FilterChainMatch, Listener, ListenerFilter,
};
use envoy_types::pb::envoy::extensions::filters::listener::http_inspector::v3::HttpInspector;
use envoy_types::pb::envoy::extensions::filters::listener::tls_inspector::v3::TlsInspector;
use envoy_types::pb::google::protobuf::BoolValue;
use prost::Message;
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use weft_config::networking::shared::hosts_overlap;
use weft_config::networking::virtual_service::{RouteDestination, VirtualService, MESH_GATEWAY};
use weft_config::Spec;

/// Istio's outbound capture port (`proxyListenPort`), where istio-iptables redirects to.
pub const OUTBOUND_CAPTURE_PORT: u32 = 15001;
pub const BLACKHOLE_CHAIN: &str = "virtualOutbound-blackhole";
pub const CATCH_ALL_CHAIN: &str = "virtualOutbound-catchall-tcp";
pub const TLS_INSPECTOR: &str = "envoy.filters.listener.tls_inspector";
pub const HTTP_INSPECTOR: &str = "envoy.filters.listener.http_inspector";

/// `virtualOutbound`: `use_original_dst` hands a connection to the listener of its original
/// address (Envoy adds the original_dst listener filter itself for this flag, so Istio lists
/// none); what no listener claims goes to PassthroughCluster under ALLOW_ANY, else to
/// BlackHoleCluster. Connections addressed to 15001 itself are dropped, not looped.
pub fn virtual_outbound(scope: &Scope) -> Listener {
    let sink = if scope.allow_any() {
        names::PASSTHROUGH_CLUSTER
    } else {
        names::BLACKHOLE_CLUSTER
    };
    Listener {
        name: names::VIRTUAL_OUTBOUND.to_string(),
        address: Some(socket("0.0.0.0", OUTBOUND_CAPTURE_PORT)),
        use_original_dst: Some(BoolValue { value: true }),
        traffic_direction: TrafficDirection::Outbound as i32,
        filter_chains: vec![
            FilterChain {
                name: BLACKHOLE_CHAIN.to_string(),
                filter_chain_match: Some(FilterChainMatch {
                    destination_port: Some(u32v(OUTBOUND_CAPTURE_PORT)),
                    ..Default::default()
                }),
                filters: vec![tcp_proxy(
                    names::BLACKHOLE_CLUSTER,
                    &[(names::BLACKHOLE_CLUSTER.to_string(), 1)],
                )],
                ..Default::default()
            },
            FilterChain {
                name: CATCH_ALL_CHAIN.to_string(),
                filters: vec![tcp_proxy(sink, &[(sink.to_string(), 1)])],
                ..Default::default()
            },
        ],
        ..Default::default()
    }
}

/// A mesh-bound VirtualService the proxy sees, with hosts resolved in its namespace.
struct MeshVs<'a> {
    namespace: &'a str,
    hosts: Vec<String>,
    spec: &'a VirtualService,
}

/// `0.0.0.0_<port>` for every port of every service the proxy sees.
pub fn port_listeners(snapshot: &MeshSnapshot, scope: &Scope) -> Vec<Listener> {
    let mut by_port: BTreeMap<u32, Vec<(&Service, Protocol)>> = BTreeMap::new();
    for s in snapshot
        .registry
        .services
        .iter()
        .filter(|s| scope.sees_service(s))
    {
        for p in s.ports.iter().filter(|p| scope.sees_port(s, p.number)) {
            by_port.entry(p.number).or_default().push((s, p.protocol));
        }
    }
    let vss: Vec<MeshVs> = snapshot
        .resources
        .iter()
        .filter(|r| scope.sees_config(r))
        .filter_map(|r| match &r.spec {
            Spec::VirtualService(vs) if vs.effective_gateways().contains(&MESH_GATEWAY) => {
                let namespace = r.metadata.namespace.as_str();
                Some(MeshVs {
                    namespace,
                    hosts: vs
                        .hosts
                        .iter()
                        .map(|h| resolve_short_name(h, namespace))
                        .collect(),
                    spec: vs.as_ref(),
                })
            }
            _ => None,
        })
        .collect();
    by_port
        .into_iter()
        .filter_map(|(port, services)| port_listener(snapshot, port, &services, &vss))
        .collect()
}

fn port_listener(
    snapshot: &MeshSnapshot,
    port: u32,
    services: &[(&Service, Protocol)],
    vss: &[MeshVs],
) -> Option<Listener> {
    let has_http = services.iter().any(|(_, p)| p.is_http());
    // Undeclared protocols are sniffed, as Istio does, unless a declared HTTP service
    // already claims the port's plain-text traffic.
    let sniff = !has_http && services.iter().any(|(_, p)| *p == Protocol::Unknown);
    let opaque: Vec<&(&Service, Protocol)> = services
        .iter()
        .filter(|(_, p)| !p.is_http() && (sniff || *p != Protocol::Unknown))
        .collect();
    let mut chains = Vec::new();
    chains.extend(tls_route_chains(snapshot, port, vss));
    chains.extend(tcp_route_chains(snapshot, port, &opaque, vss));
    if has_http || sniff {
        chains.push(FilterChain {
            filter_chain_match: sniff.then(|| FilterChainMatch {
                application_protocols: vec!["http/1.1".into(), "h2c".into()],
                ..Default::default()
            }),
            filters: vec![http_connection_manager(
                &format!("outbound_0.0.0.0_{port}"),
                Routes::Rds(port.to_string()),
                Direction::Outbound,
            )],
            ..Default::default()
        });
    }
    for (s, protocol) in &opaque {
        let cluster = names::outbound_cluster(port, "", &s.hostname);
        chains.push(FilterChain {
            filter_chain_match: Some(service_match(s, *protocol)),
            filters: vec![tcp_proxy(&cluster, &[(cluster.clone(), 1)])],
            ..Default::default()
        });
    }
    let chains = dedupe(chains);
    if chains.is_empty() {
        return None;
    }
    let mut listener_filters = Vec::new();
    if chains.iter().any(|c| {
        c.filter_chain_match
            .as_ref()
            .is_some_and(|m| !m.server_names.is_empty())
    }) {
        listener_filters.push(inspector(
            TLS_INSPECTOR,
            "envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector",
            &TlsInspector::default(),
        ));
    }
    if sniff {
        listener_filters.push(inspector(
            HTTP_INSPECTOR,
            "envoy.extensions.filters.listener.http_inspector.v3.HttpInspector",
            &HttpInspector::default(),
        ));
    }
    Some(Listener {
        name: names::listener("0.0.0.0", port),
        address: Some(socket("0.0.0.0", port)),
        bind_to_port: Some(BoolValue { value: false }),
        traffic_direction: TrafficDirection::Outbound as i32,
        listener_filters,
        filter_chains: chains,
        ..Default::default()
    })
}

/// How a service's own TCP chain is told apart on a shared port: its addresses; without
/// any, a TLS service by SNI (its hostname), anything else takes the port's wildcard.
fn service_match(s: &Service, protocol: Protocol) -> FilterChainMatch {
    let prefix_ranges = cidrs(&s.addresses);
    let tls = matches!(protocol, Protocol::Tls | Protocol::Https);
    FilterChainMatch {
        server_names: if prefix_ranges.is_empty() && tls && !s.hostname.contains('*') {
            vec![s.hostname.clone()]
        } else {
            Vec::new()
        },
        prefix_ranges,
        ..Default::default()
    }
}

/// `tls` routes: one chain per match on this port, by SNI (and destination subnets).
fn tls_route_chains(snapshot: &MeshSnapshot, port: u32, vss: &[MeshVs]) -> Vec<FilterChain> {
    let mut chains = Vec::new();
    for vs in vss {
        for route in &vs.spec.tls {
            let clusters = route_clusters(snapshot, vs.namespace, &route.route, port);
            if clusters.is_empty() {
                continue;
            }
            for m in route
                .r#match
                .iter()
                .filter(|m| m.port.is_none_or(|p| p == port))
            {
                // SNI values only make sense within the services this port carries.
                if !vs.hosts.iter().any(|h| on_port(snapshot, h, port)) {
                    continue;
                }
                chains.push(FilterChain {
                    filter_chain_match: Some(FilterChainMatch {
                        server_names: m.sni_hosts.clone(),
                        prefix_ranges: cidrs(&m.destination_subnets),
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

/// `tcp` routes of VirtualServices for this port's opaque services: a match's
/// `destinationSubnets`, else the services' addresses, else the whole port.
fn tcp_route_chains(
    snapshot: &MeshSnapshot,
    port: u32,
    opaque: &[&(&Service, Protocol)],
    vss: &[MeshVs],
) -> Vec<FilterChain> {
    let mut chains = Vec::new();
    for vs in vss.iter().filter(|v| !v.spec.tcp.is_empty()) {
        let targets: Vec<&Service> = opaque
            .iter()
            .map(|(s, _)| *s)
            .filter(|s| vs.hosts.iter().any(|h| hosts_overlap(h, &s.hostname)))
            .collect();
        if targets.is_empty() {
            continue;
        }
        let addresses: Vec<String> = targets.iter().flat_map(|s| s.addresses.clone()).collect();
        for route in &vs.spec.tcp {
            let clusters = route_clusters(snapshot, vs.namespace, &route.route, port);
            if clusters.is_empty() {
                continue;
            }
            let subnets: Vec<&[String]> = if route.r#match.is_empty() {
                vec![&[]]
            } else {
                route
                    .r#match
                    .iter()
                    .filter(|m| m.port.is_none_or(|p| p == port))
                    .map(|m| m.destination_subnets.as_slice())
                    .collect()
            };
            for subnets in subnets {
                let ranges = if subnets.is_empty() {
                    cidrs(&addresses)
                } else {
                    cidrs(subnets)
                };
                chains.push(FilterChain {
                    filter_chain_match: Some(FilterChainMatch {
                        prefix_ranges: ranges,
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

fn on_port(snapshot: &MeshSnapshot, host: &str, port: u32) -> bool {
    let services = &snapshot.registry.services;
    let known = services.iter().any(|s| hosts_overlap(host, &s.hostname));
    // A host outside the registry (an external SNI) is reachable on any port.
    !known
        || services
            .iter()
            .any(|s| hosts_overlap(host, &s.hostname) && s.ports.iter().any(|p| p.number == port))
}

/// Weighted clusters of route destinations; a destination without a port uses the
/// listener's port if its service has it, else the service's only port.
fn route_clusters(
    snapshot: &MeshSnapshot,
    namespace: &str,
    route: &[RouteDestination],
    port: u32,
) -> Vec<(String, u32)> {
    route
        .iter()
        .map(|r| {
            let d = &r.destination;
            let host = resolve_short_name(&d.host, namespace);
            let service = snapshot.registry.service(&host);
            let dest_port = match d.port.as_ref().and_then(|p| p.number) {
                Some(n) => n,
                None => match service.map(|s| s.ports.as_slice()) {
                    Some(ports) if ports.iter().any(|p| p.number == port) => port,
                    Some([only]) => only.number,
                    _ => port,
                },
            };
            let weight = r.weight.and_then(|w| u32::try_from(w).ok()).unwrap_or(100);
            (
                names::outbound_cluster(dest_port, d.subset.as_deref().unwrap_or_default(), &host),
                weight,
            )
        })
        .collect()
}

/// `10.0.0.0/16`, or a bare address as a host prefix; names are skipped.
fn cidrs(addresses: &[String]) -> Vec<CidrRange> {
    addresses
        .iter()
        .filter_map(|a| {
            let (ip, len) = match a.split_once('/') {
                Some((ip, len)) => (ip, Some(len.parse::<u32>().ok()?)),
                None => (a.as_str(), None),
            };
            let ip: IpAddr = ip.parse().ok()?;
            let full = if ip.is_ipv4() { 32 } else { 128 };
            Some(CidrRange {
                address_prefix: ip.to_string(),
                prefix_len: Some(u32v(len.unwrap_or(full).min(full))),
            })
        })
        .collect()
}

/// Envoy rejects a listener where two chains have the same match; the first keeps it.
fn dedupe(chains: Vec<FilterChain>) -> Vec<FilterChain> {
    let mut seen = BTreeSet::new();
    chains
        .into_iter()
        .filter(|c| {
            seen.insert(
                c.filter_chain_match
                    .clone()
                    .unwrap_or_default()
                    .encode_to_vec(),
            )
        })
        .collect()
}

fn inspector<M: Message>(name: &str, type_name: &str, config: &M) -> ListenerFilter {
    ListenerFilter {
        name: name.to_string(),
        config_type: Some(listener_filter::ConfigType::TypedConfig(any(
            type_name, config,
        ))),
        ..Default::default()
    }
}
