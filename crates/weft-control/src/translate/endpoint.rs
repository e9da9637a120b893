//! Endpoints (EDS): one ClusterLoadAssignment per EDS cluster, from the registry's instances
//! of the service, filtered by the subset's labels and grouped by locality.

use super::cluster::OutboundKey;
use super::proto::{socket, u32v};
use crate::registry::Registry;
use envoy_types::pb::envoy::config::core::v3::{HealthStatus, Locality};
use envoy_types::pb::envoy::config::endpoint::v3::{
    lb_endpoint::HostIdentifier, ClusterLoadAssignment, Endpoint, LbEndpoint, LocalityLbEndpoints,
};
use std::collections::BTreeMap;
use std::net::IpAddr;

/// The assignment for one cluster. `ip_only` drops instances addressed by host name, which
/// only DNS clusters can resolve.
pub fn load_assignment(
    registry: &Registry,
    key: &OutboundKey,
    ip_only: bool,
) -> ClusterLoadAssignment {
    let labels = key.subset.map(|s| &s.labels);
    let mut by_locality: BTreeMap<&str, Vec<LbEndpoint>> = BTreeMap::new();
    for (instance, port) in registry.endpoints(&key.service.hostname, key.port.number) {
        if labels.is_some_and(|l| l.iter().any(|(k, v)| instance.labels.get(k) != Some(v))) {
            continue;
        }
        if instance.address.is_empty() || (ip_only && instance.address.parse::<IpAddr>().is_err()) {
            continue;
        }
        by_locality
            .entry(&instance.locality)
            .or_default()
            .push(lb_endpoint(
                &instance.address,
                port,
                instance.weight,
                instance.healthy,
            ));
    }
    ClusterLoadAssignment {
        cluster_name: key.name.clone(),
        endpoints: by_locality
            .into_iter()
            .map(|(locality, lb_endpoints)| locality_endpoints(locality, lb_endpoints))
            .collect(),
        ..Default::default()
    }
}

pub fn lb_endpoint(address: &str, port: u32, weight: u32, healthy: bool) -> LbEndpoint {
    LbEndpoint {
        health_status: if healthy {
            HealthStatus::Healthy
        } else {
            HealthStatus::Unhealthy
        } as i32,
        load_balancing_weight: Some(u32v(weight.max(1))),
        host_identifier: Some(HostIdentifier::Endpoint(Endpoint {
            address: Some(socket(address, port)),
            ..Default::default()
        })),
        ..Default::default()
    }
}

/// `region/zone/subzone`, as Istio writes localities; the locality's weight is the sum of its
/// endpoints' weights so that weighted endpoints keep their share across localities.
pub fn locality_endpoints(locality: &str, lb_endpoints: Vec<LbEndpoint>) -> LocalityLbEndpoints {
    let mut parts = locality.splitn(3, '/').map(str::to_string);
    let weight: u32 = lb_endpoints
        .iter()
        .filter_map(|e| e.load_balancing_weight.as_ref())
        .map(|w| w.value)
        .fold(0u32, u32::saturating_add);
    LocalityLbEndpoints {
        locality: (!locality.is_empty()).then(|| Locality {
            region: parts.next().unwrap_or_default(),
            zone: parts.next().unwrap_or_default(),
            sub_zone: parts.next().unwrap_or_default(),
        }),
        load_balancing_weight: Some(u32v(weight.max(1))),
        lb_endpoints,
        ..Default::default()
    }
}
