//! Clusters (CDS): `outbound|<port>|<subset>|<host>` for every visible service port and
//! DestinationRule subset, `inbound|<port>||` for the proxy's own ports, and Istio's
//! BlackHoleCluster and PassthroughCluster.

use super::cluster_policy::{self, DEFAULT_CONNECT_TIMEOUT_SECS};
use super::destination_rule::{self, Policy};
use super::endpoint::{lb_endpoint, load_assignment, locality_endpoints};
use super::names;
use super::proto::{ads, seconds};
use super::scope::Scope;
use crate::model::{MeshSnapshot, Proxy};
use crate::registry::{Resolution, Service, ServicePort};
use envoy_types::pb::envoy::config::cluster::v3::cluster::{
    ClusterDiscoveryType, DiscoveryType, DnsLookupFamily, EdsClusterConfig, LbPolicy,
};
use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::core::v3::{
    socket_address::PortSpecifier, BindConfig, SocketAddress,
};
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use weft_config::networking::destination_rule::Subset;

/// One outbound cluster to build: a service port, optionally narrowed to a subset.
pub struct OutboundKey<'a> {
    pub name: String,
    pub service: &'a Service,
    pub port: &'a ServicePort,
    pub subset: Option<&'a Subset>,
    pub policy: Policy,
}

/// Every outbound cluster this proxy can see, in a stable order.
pub fn outbound_keys<'a>(
    snapshot: &'a MeshSnapshot,
    proxy: &Proxy,
    scope: &Scope,
) -> Vec<OutboundKey<'a>> {
    let mut keys = Vec::new();
    for service in &snapshot.registry.services {
        if !scope.sees_service(service) {
            continue;
        }
        let rule = destination_rule::for_service(snapshot, proxy, service);
        for port in service
            .ports
            .iter()
            .filter(|p| scope.sees_port(service, p.number))
        {
            keys.push(OutboundKey {
                name: names::outbound_cluster(port.number, "", &service.hostname),
                service,
                port,
                subset: None,
                policy: Policy::merged(rule, None, port.number),
            });
            for subset in rule.map(|r| r.subsets.as_slice()).unwrap_or_default() {
                keys.push(OutboundKey {
                    name: names::outbound_cluster(port.number, &subset.name, &service.hostname),
                    service,
                    port,
                    subset: Some(subset),
                    policy: Policy::merged(rule, Some(subset), port.number),
                });
            }
        }
    }
    keys
}

/// Whether the cluster's endpoints come over EDS (as opposed to DNS or original destination).
pub fn is_eds(snapshot: &MeshSnapshot, key: &OutboundKey) -> bool {
    match key.service.resolution {
        Resolution::Static => true,
        // Istio forwards to the caller's original destination for NONE, unless the entry
        // names endpoints to balance over.
        Resolution::None => snapshot
            .registry
            .instances
            .get(&key.service.hostname)
            .is_some_and(|i| !i.is_empty()),
        Resolution::Dns | Resolution::DnsRoundRobin => false,
    }
}

pub fn outbound(snapshot: &MeshSnapshot, key: &OutboundKey) -> Cluster {
    let mut cluster = Cluster {
        name: key.name.clone(),
        ..Default::default()
    };
    match key.service.resolution {
        _ if is_eds(snapshot, key) => {
            cluster.cluster_discovery_type =
                Some(ClusterDiscoveryType::Type(DiscoveryType::Eds as i32));
            cluster.eds_cluster_config = Some(EdsClusterConfig {
                eds_config: Some(ads()),
                service_name: key.name.clone(),
            });
        }
        Resolution::Dns | Resolution::DnsRoundRobin => dns(&mut cluster, snapshot, key),
        _ => make_original_dst(&mut cluster),
    }
    let original_dst = cluster.lb_policy == LbPolicy::ClusterProvided as i32;
    cluster_policy::apply(
        &mut cluster,
        &key.policy,
        key.port.protocol,
        &key.service.hostname,
    );
    if original_dst {
        // Original-destination clusters route to the caller's address; no LB applies.
        make_original_dst(&mut cluster);
    }
    super::mtls::apply_outbound(snapshot, key, &mut cluster);
    cluster
}

/// STRICT_DNS resolves every endpoint; LOGICAL_DNS (DNS_ROUND_ROBIN) keeps one connection
/// target and so takes only the first. With no endpoints, the host itself is resolved.
fn dns(cluster: &mut Cluster, snapshot: &MeshSnapshot, key: &OutboundKey) {
    let logical = key.service.resolution == Resolution::DnsRoundRobin;
    let kind = if logical {
        DiscoveryType::LogicalDns
    } else {
        DiscoveryType::StrictDns
    };
    cluster.cluster_discovery_type = Some(ClusterDiscoveryType::Type(kind as i32));
    cluster.dns_lookup_family = DnsLookupFamily::V4Only as i32;
    let mut assignment = load_assignment(snapshot, key, false);
    let has_instances = snapshot
        .registry
        .instances
        .get(&key.service.hostname)
        .is_some_and(|i| !i.is_empty());
    if !has_instances && !key.service.hostname.contains('*') {
        let port = key.port.target_port.unwrap_or(key.port.number);
        assignment.endpoints = vec![locality_endpoints(
            "",
            vec![lb_endpoint(&key.service.hostname, port, 1, true)],
        )];
    }
    if logical {
        assignment.endpoints.truncate(1);
        if let Some(first) = assignment.endpoints.first_mut() {
            first.lb_endpoints.truncate(1);
        }
    }
    cluster.load_assignment = Some(assignment);
}

/// Hands connections to the address the caller originally dialled.
pub fn make_original_dst(cluster: &mut Cluster) {
    cluster.cluster_discovery_type = Some(ClusterDiscoveryType::Type(
        DiscoveryType::OriginalDst as i32,
    ));
    cluster.lb_policy = LbPolicy::ClusterProvided as i32;
    cluster.lb_config = None;
    cluster.eds_cluster_config = None;
    cluster.load_assignment = None;
}

/// `inbound|<port>||`: STATIC to the application on loopback.
pub fn inbound(port: u32, app_port: u32) -> Cluster {
    Cluster {
        name: names::inbound_cluster(port),
        cluster_discovery_type: Some(ClusterDiscoveryType::Type(DiscoveryType::Static as i32)),
        connect_timeout: Some(seconds(DEFAULT_CONNECT_TIMEOUT_SECS)),
        load_assignment: Some(ClusterLoadAssignment {
            cluster_name: names::inbound_cluster(port),
            endpoints: vec![locality_endpoints(
                "",
                vec![lb_endpoint("127.0.0.1", app_port, 1, true)],
            )],
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// InboundPassthroughCluster: inbound connections to a port the workload does not declare,
/// to their original destination. Istio binds the upstream side to 127.0.0.6 so that
/// istio-iptables lets it through instead of capturing it again.
pub fn inbound_passthrough() -> Cluster {
    let mut cluster = Cluster {
        name: names::INBOUND_PASSTHROUGH_CLUSTER.to_string(),
        connect_timeout: Some(seconds(DEFAULT_CONNECT_TIMEOUT_SECS)),
        upstream_bind_config: Some(BindConfig {
            source_address: Some(SocketAddress {
                address: INBOUND_PASSTHROUGH_BIND.to_string(),
                port_specifier: Some(PortSpecifier::PortValue(0)),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    make_original_dst(&mut cluster);
    cluster
}

/// Source address of inbound passthrough connections (excluded by istio-iptables).
pub const INBOUND_PASSTHROUGH_BIND: &str = "127.0.0.6";

/// Istio's sinks: BlackHoleCluster (no endpoints, so every request fails with 503/UH) and
/// PassthroughCluster (to wherever the caller was going).
pub fn special() -> Vec<Cluster> {
    let blackhole = Cluster {
        name: names::BLACKHOLE_CLUSTER.to_string(),
        cluster_discovery_type: Some(ClusterDiscoveryType::Type(DiscoveryType::Static as i32)),
        connect_timeout: Some(seconds(DEFAULT_CONNECT_TIMEOUT_SECS)),
        ..Default::default()
    };
    let mut passthrough = Cluster {
        name: names::PASSTHROUGH_CLUSTER.to_string(),
        connect_timeout: Some(seconds(DEFAULT_CONNECT_TIMEOUT_SECS)),
        ..Default::default()
    };
    make_original_dst(&mut passthrough);
    vec![blackhole, passthrough]
}
