//! Istio config -> Envoy v3 resources for one proxy: a snapshot and a proxy in, the five
//! resource lists out; golden-tested. Pure except for SDS secrets from certificate files.

use crate::model::{CaptureMode, MeshSnapshot, Proxy, ProxyKind};
use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::config::listener::v3::Listener;
use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::Secret;
use scope::Scope;

pub mod authn;
pub mod authz;
mod capture_inbound;
mod capture_outbound;
#[cfg(test)]
mod capture_tests;
pub mod cluster;
mod cluster_policy;
pub mod destination_rule;
pub mod endpoint;
mod filter;
pub mod gateway;
pub mod listener;
pub mod mtls;
pub mod names;
mod proto;
pub mod route;
pub mod scope;
mod sds;
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
pub const SECRET_TYPE: &str =
    "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret";

pub use sds::{referenced_secrets, secrets};

/// Everything one proxy should have, sorted by name within each type.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Generated {
    pub clusters: Vec<Cluster>,
    pub endpoints: Vec<ClusterLoadAssignment>,
    pub listeners: Vec<Listener>,
    pub routes: Vec<RouteConfiguration>,
    /// The SDS secrets the listeners and clusters refer to that weftd can supply.
    pub secrets: Vec<Secret>,
}

/// Generates the proxy's whole configuration from the snapshot.
pub fn generate(snapshot: &MeshSnapshot, proxy: &Proxy) -> Generated {
    let scope = Scope::new(snapshot, proxy);
    let mut clusters = cluster::special();
    let mut endpoints = Vec::new();
    for key in cluster::outbound_keys(snapshot, proxy, &scope) {
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
        (ProxyKind::Sidecar, CaptureMode::Transparent) => {
            listeners.push(capture_outbound::virtual_outbound(&scope));
            listeners.extend(capture_outbound::port_listeners(snapshot, &scope));
            let (inbound, inbound_clusters) = capture_inbound::virtual_inbound(snapshot, proxy);
            listeners.push(inbound);
            clusters.extend(inbound_clusters);
        }
        (ProxyKind::Sidecar, CaptureMode::Explicit) => {
            listeners.push(listener::explicit_outbound(proxy));
            let (inbound, inbound_clusters) = listener::explicit_inbound(snapshot, proxy);
            listeners.extend(inbound);
            clusters.extend(inbound_clusters);
            route::explicit_passthrough(&mut clusters);
        }
    }
    // RequestAuthentication: jwt_authn ahead of RBAC on inbound and gateway listeners.
    authn::apply(snapshot, proxy, &mut listeners);
    // AuthorizationPolicy: RBAC after authentication, before routing.
    authz::apply(snapshot, proxy, &mut listeners);
    let mut route_names: Vec<String> = listeners.iter().flat_map(rds_names).collect();
    route_names.sort();
    route_names.dedup();
    let mut routes = route::route_configs_in(snapshot, proxy, &scope, &route_names);

    clusters.sort_by(|a, b| a.name.cmp(&b.name));
    clusters.dedup_by(|a, b| a.name == b.name);
    endpoints.sort_by(|a, b| a.cluster_name.cmp(&b.cluster_name));
    listeners.sort_by(|a, b| a.name.cmp(&b.name));
    routes.sort_by(|a, b| a.name.cmp(&b.name));
    let secrets = secrets(snapshot, proxy, &referenced_secrets(&listeners, &clusters));
    Generated {
        clusters,
        endpoints,
        listeners,
        routes,
        secrets,
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
