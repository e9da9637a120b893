//! Istio config -> Envoy v3 resources for one proxy. Pure: a snapshot and a proxy in, the
//! four resource lists out; golden-tested.

use crate::model::{MeshSnapshot, Proxy, ProxyKind};
use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::config::listener::v3::Listener;
use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;

pub mod cluster;
mod cluster_policy;
pub mod destination_rule;
pub mod endpoint;
mod filter;
pub mod gateway;
pub mod listener;
pub mod names;
mod proto;
pub mod route;
#[cfg(test)]
mod tests;
mod tls;
#[cfg(test)]
mod validate_tests;

/// Which way traffic flows through the listener an HTTP connection manager sits in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Sidecar, towards the local application.
    Inbound,
    /// Sidecar, from the local application to the mesh.
    Outbound,
    /// Gateway (Istio's "router"), from outside the mesh in.
    Gateway,
}

pub const CLUSTER_TYPE: &str = "type.googleapis.com/envoy.config.cluster.v3.Cluster";
pub const ENDPOINT_TYPE: &str =
    "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment";
pub const LISTENER_TYPE: &str = "type.googleapis.com/envoy.config.listener.v3.Listener";
pub const ROUTE_TYPE: &str = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration";

/// Everything one proxy should have, sorted by name within each type.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Generated {
    pub clusters: Vec<Cluster>,
    pub endpoints: Vec<ClusterLoadAssignment>,
    pub listeners: Vec<Listener>,
    pub routes: Vec<RouteConfiguration>,
}

/// Generates the proxy's whole configuration from the snapshot.
pub fn generate(snapshot: &MeshSnapshot, proxy: &Proxy) -> Generated {
    let mut clusters = cluster::special();
    let mut endpoints = Vec::new();
    for key in cluster::outbound_keys(snapshot, proxy) {
        let built = cluster::outbound(snapshot, &key);
        // A PASSTHROUGH load balancer turns an EDS cluster into ORIGINAL_DST: no assignment.
        if built.eds_cluster_config.is_some() {
            endpoints.push(endpoint::load_assignment(&snapshot.registry, &key, true));
        }
        clusters.push(built);
    }
    let mut listeners = Vec::new();
    match (proxy.kind, proxy.capture) {
        (ProxyKind::Router, _) => listeners.extend(gateway::listeners(snapshot, proxy)),
        // Transparent capture (virtualOutbound/virtualInbound) is not generated yet; explicit
        // listeners are what the embedded mode and the conformance suite use.
        (ProxyKind::Sidecar, _) => {
            listeners.push(listener::explicit_outbound(proxy));
            let (inbound, inbound_clusters) = listener::explicit_inbound(snapshot, proxy);
            listeners.extend(inbound);
            clusters.extend(inbound_clusters);
        }
    }
    let mut route_names: Vec<String> = listeners.iter().flat_map(rds_names).collect();
    route_names.sort();
    route_names.dedup();
    let mut routes = route::route_configs(snapshot, proxy, &route_names);

    clusters.sort_by(|a, b| a.name.cmp(&b.name));
    clusters.dedup_by(|a, b| a.name == b.name);
    endpoints.sort_by(|a, b| a.cluster_name.cmp(&b.cluster_name));
    listeners.sort_by(|a, b| a.name.cmp(&b.name));
    routes.sort_by(|a, b| a.name.cmp(&b.name));
    Generated {
        clusters,
        endpoints,
        listeners,
        routes,
    }
}

/// Route configuration names a listener's connection managers ask for over RDS.
pub fn rds_names(listener: &Listener) -> Vec<String> {
    use envoy_types::pb::envoy::config::listener::v3::filter::ConfigType;
    use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
        http_connection_manager::RouteSpecifier, HttpConnectionManager,
    };
    use prost::Message;
    listener
        .filter_chains
        .iter()
        .flat_map(|c| &c.filters)
        .filter(|f| f.name == filter::HCM)
        .filter_map(|f| match &f.config_type {
            Some(ConfigType::TypedConfig(any)) => {
                HttpConnectionManager::decode(any.value.as_slice()).ok()
            }
            _ => None,
        })
        .filter_map(|hcm| match hcm.route_specifier {
            Some(RouteSpecifier::Rds(rds)) => Some(rds.route_config_name),
            _ => None,
        })
        .collect()
}
