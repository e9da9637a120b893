//! Sidecar listeners (LDS) in explicit mode: the outbound HTTP proxy on loopback and one
//! inbound listener per named port of the proxy's own WorkloadEntry.

use super::cluster;
use super::filter::{http_connection_manager, tcp_proxy, Routes};
use super::names;
use super::proto::socket;
use super::route;
use super::Direction;
use crate::model::{MeshSnapshot, Proxy};
use crate::registry::Protocol;
use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::core::v3::TrafficDirection;
use envoy_types::pb::envoy::config::listener::v3::{FilterChain, Listener};
use std::collections::BTreeMap;
use weft_config::networking::workload_entry::WorkloadEntry;
use weft_config::Resource;

/// Annotation Istio puts on auto-registered WorkloadEntries, naming their WorkloadGroup.
pub const AUTO_REGISTRATION_GROUP: &str = "istio.io/autoRegistrationGroup";

/// One inbound port of the proxy's workload.
#[derive(Clone, Debug, PartialEq)]
pub struct InboundPort {
    pub name: String,
    /// Port the workload is reached on (the listener's port).
    pub port: u32,
    pub protocol: Protocol,
    /// Where the application listens on 127.0.0.1.
    pub app_port: u32,
}

/// `127.0.0.1_<outbound_port>`: the application's HTTP proxy into the mesh.
pub fn explicit_outbound(proxy: &Proxy) -> Listener {
    Listener {
        name: names::listener("127.0.0.1", proxy.outbound_port),
        address: Some(socket("127.0.0.1", proxy.outbound_port)),
        traffic_direction: TrafficDirection::Outbound as i32,
        filter_chains: vec![FilterChain {
            filters: vec![http_connection_manager(
                &format!("outbound_{}", proxy.outbound_port),
                Routes::Rds(names::HTTP_PROXY_ROUTE.to_string()),
                Direction::Outbound,
            )],
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// The proxy's own WorkloadEntry: the one auto-registered through its WorkloadGroup at its
/// address, else one at its address in its namespace whose labels the proxy carries.
pub fn own_workload<'a>(
    snapshot: &'a MeshSnapshot,
    proxy: &Proxy,
) -> Option<(&'a Resource, &'a WorkloadEntry)> {
    let entries = || snapshot.workload_entries_at(&proxy.namespace, &proxy.ip);
    let by_group = proxy.workload_group.as_ref().and_then(|group| {
        entries().find(|(r, _)| r.metadata.annotations.get(AUTO_REGISTRATION_GROUP) == Some(group))
    });
    by_group.or_else(|| {
        entries().find(|(_, w)| {
            !w.labels.is_empty() && w.labels.iter().all(|(k, v)| proxy.labels.get(k) == Some(v))
        })
    })
}

/// The workload's ports: each port of a service that selects it (at the port the instance
/// serves it on), plus named ports of the WorkloadEntry itself; one per port number.
pub fn inbound_ports(snapshot: &MeshSnapshot, proxy: &Proxy) -> Vec<InboundPort> {
    let Some((resource, entry)) = own_workload(snapshot, proxy) else {
        return Vec::new();
    };
    let registry = &snapshot.registry;
    let mut ports: BTreeMap<u32, InboundPort> = BTreeMap::new();
    let app_port = |name: &str, port: u32| proxy.app_ports.get(name).copied().unwrap_or(port);
    for service in registry.services_of(&resource.metadata.namespace, &resource.metadata.name) {
        for service_port in &service.ports {
            for (instance, port) in registry.endpoints(&service.hostname, service_port.number) {
                if instance.name == resource.metadata.name
                    && instance.namespace == resource.metadata.namespace
                {
                    ports.entry(port).or_insert_with(|| InboundPort {
                        name: service_port.name.clone(),
                        port,
                        protocol: service_port.protocol,
                        app_port: app_port(&service_port.name, port),
                    });
                }
            }
        }
    }
    for (name, port) in &entry.ports {
        ports.entry(*port).or_insert_with(|| InboundPort {
            name: name.clone(),
            port: *port,
            protocol: Protocol::of_port("", name),
            app_port: app_port(name, *port),
        });
    }
    ports.into_values().collect()
}

/// `<ip>_<port>` per inbound port, with the `inbound|<port>||` cluster each forwards to.
pub fn explicit_inbound(snapshot: &MeshSnapshot, proxy: &Proxy) -> (Vec<Listener>, Vec<Cluster>) {
    let mut listeners = Vec::new();
    let mut clusters = Vec::new();
    let peer_policies = super::mtls::PeerPolicies::for_proxy(snapshot, proxy);
    for p in inbound_ports(snapshot, proxy) {
        let cluster_name = names::inbound_cluster(p.port);
        let filter = if p.protocol.is_http() {
            http_connection_manager(
                &cluster_name,
                Routes::Inline(Box::new(route::inbound_route_config(p.port))),
                Direction::Inbound,
            )
        } else {
            tcp_proxy(&cluster_name, &[(cluster_name.clone(), 1)])
        };
        let chain = FilterChain {
            filters: vec![filter],
            ..Default::default()
        };
        // PeerAuthentication: mTLS beside (PERMISSIVE) or instead of (STRICT) plain text.
        let filter_chains = match peer_policies.mode(p.port) {
            Some(mode) => super::mtls::secure_inbound_chain(chain, mode, p.protocol.is_http()),
            None => vec![chain],
        };
        let mut listener = Listener {
            name: names::listener(&proxy.ip, p.port),
            address: Some(socket(&proxy.ip, p.port)),
            traffic_direction: TrafficDirection::Inbound as i32,
            filter_chains,
            ..Default::default()
        };
        super::mtls::ensure_tls_inspector(&mut listener);
        listeners.push(listener);
        let mut inbound = cluster::inbound(p.port, p.app_port);
        if p.protocol.is_http2() {
            super::cluster_policy::http2_upstream(&mut inbound);
        }
        clusters.push(inbound);
    }
    (listeners, clusters)
}
