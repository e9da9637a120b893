//! Istio config -> Envoy v3 resources for one proxy: a snapshot and a proxy in, the five
//! resource lists out; golden-tested. Pure except for SDS secrets from certificate files.

use crate::model::{MeshSnapshot, Proxy, ProxyKind};
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
pub mod view;

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
    /// SDS names referred to by the shared [`Outbound`] part this proxy-local part goes
    /// with (empty for a whole configuration, whose lists hold everything).
    pub shared_secret_refs: Vec<String>,
}

impl Generated {
    /// Every SDS name its listeners and clusters refer to, plus those of the shared part.
    pub fn referenced_secrets(&self) -> Vec<String> {
        let mut names = referenced_secrets(&self.listeners, &self.clusters);
        names.extend(self.shared_secret_refs.iter().cloned());
        names.sort();
        names.dedup();
        names
    }
}

/// The side of a transparent sidecar's configuration that every proxy with the same
/// [`view::ViewKey`] shares: outbound clusters and their endpoints, the outbound listeners
/// and their route configurations; each list sorted by name.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Outbound {
    pub generated: Generated,
    /// Route configurations the outbound listeners name (all present in `generated`).
    pub route_names: Vec<String>,
    /// SDS names the outbound listeners and clusters refer to.
    pub secret_refs: Vec<String>,
}

/// Generates the proxy's whole configuration from the snapshot.
pub fn generate(snapshot: &MeshSnapshot, proxy: &Proxy) -> Generated {
    if !view::shares_outbound(proxy) {
        return generate_whole(snapshot, proxy);
    }
    let scope = Scope::new(snapshot, proxy);
    let shared = outbound_with(snapshot, proxy, &scope);
    let own = local_with(snapshot, proxy, &shared, Some(&scope));
    merge(&shared.generated, own)
}

/// The shared outbound part of a transparent sidecar (see [`view`]): the same for every
/// proxy with the same view key.
pub fn outbound(snapshot: &MeshSnapshot, proxy: &Proxy) -> Outbound {
    outbound_with(snapshot, proxy, &Scope::new(snapshot, proxy))
}

fn outbound_with(snapshot: &MeshSnapshot, proxy: &Proxy, scope: &Scope) -> Outbound {
    let (mut clusters, mut endpoints) = outbound_clusters(snapshot, proxy, scope);
    let mut listeners = vec![capture_outbound::virtual_outbound(scope)];
    listeners.extend(capture_outbound::port_listeners(snapshot, scope));
    let route_names = route_names(&listeners);
    let mut routes = route::route_configs_in(snapshot, proxy, scope, &route_names);
    clusters.sort_by(|a, b| a.name.cmp(&b.name));
    clusters.dedup_by(|a, b| a.name == b.name);
    endpoints.sort_by(|a, b| a.cluster_name.cmp(&b.cluster_name));
    listeners.sort_by(|a, b| a.name.cmp(&b.name));
    routes.sort_by(|a, b| a.name.cmp(&b.name));
    let secret_refs = referenced_secrets(&listeners, &clusters);
    Outbound {
        generated: Generated {
            clusters,
            endpoints,
            listeners,
            routes,
            ..Generated::default()
        },
        route_names,
        secret_refs,
    }
}

/// A transparent sidecar's own part next to `shared`: its inbound listener and clusters
/// (with authentication and authorization), any route configuration they name that the
/// shared part lacks, and the SDS secrets both parts refer to.
pub fn local(snapshot: &MeshSnapshot, proxy: &Proxy, shared: &Outbound) -> Generated {
    local_with(snapshot, proxy, shared, None)
}

fn local_with(
    snapshot: &MeshSnapshot,
    proxy: &Proxy,
    shared: &Outbound,
    scope: Option<&Scope>,
) -> Generated {
    let (inbound, mut clusters) = capture_inbound::virtual_inbound(snapshot, proxy);
    let mut listeners = vec![inbound];
    // Both only touch inbound listeners on a sidecar, never the shared outbound ones.
    authn::apply(snapshot, proxy, &mut listeners);
    authz::apply(snapshot, proxy, &mut listeners);
    let own_names: Vec<String> = route_names(&listeners)
        .into_iter()
        .filter(|n| shared.route_names.binary_search(n).is_err())
        .collect();
    let mut routes = match (own_names.is_empty(), scope) {
        (true, _) => Vec::new(),
        (false, Some(scope)) => route::route_configs_in(snapshot, proxy, scope, &own_names),
        (false, None) => route::route_configs(snapshot, proxy, &own_names),
    };
    clusters.sort_by(|a, b| a.name.cmp(&b.name));
    clusters.dedup_by(|a, b| a.name == b.name);
    listeners.sort_by(|a, b| a.name.cmp(&b.name));
    routes.sort_by(|a, b| a.name.cmp(&b.name));
    let mut own = Generated {
        clusters,
        listeners,
        routes,
        shared_secret_refs: shared.secret_refs.clone(),
        ..Generated::default()
    };
    own.secrets = secrets(snapshot, proxy, &own.referenced_secrets());
    own
}

/// The whole configuration from a shared part and a proxy's own part: what [`generate`]
/// returns, name for name. The shared part comes first, so it wins a name both hold.
pub fn merge(shared: &Generated, own: Generated) -> Generated {
    fn join<T: Clone>(shared: &[T], own: Vec<T>, name: impl Fn(&T) -> &str, dedup: bool) -> Vec<T> {
        let mut all: Vec<T> = shared.iter().cloned().chain(own).collect();
        // Stable: of equal names, the shared one stays first.
        all.sort_by(|a, b| name(a).cmp(name(b)));
        if dedup {
            all.dedup_by(|a, b| name(a) == name(b));
        }
        all
    }
    Generated {
        clusters: join(&shared.clusters, own.clusters, |c| &c.name, true),
        endpoints: join(&shared.endpoints, own.endpoints, |e| &e.cluster_name, false),
        listeners: join(&shared.listeners, own.listeners, |l| &l.name, false),
        routes: join(&shared.routes, own.routes, |r| &r.name, false),
        secrets: own.secrets,
        shared_secret_refs: Vec::new(),
    }
}

/// Special clusters plus every outbound cluster the proxy sees, with the EDS ones'
/// endpoint assignments; unsorted.
fn outbound_clusters(
    snapshot: &MeshSnapshot,
    proxy: &Proxy,
    scope: &Scope,
) -> (Vec<Cluster>, Vec<ClusterLoadAssignment>) {
    let mut clusters = cluster::special();
    let mut endpoints = Vec::new();
    for key in cluster::outbound_keys(snapshot, proxy, scope) {
        let built = cluster::outbound(snapshot, &key);
        // A PASSTHROUGH load balancer turns an EDS cluster into ORIGINAL_DST: no assignment.
        if built.eds_cluster_config.is_some() {
            endpoints.push(endpoint::load_assignment(snapshot, &key, true));
        }
        clusters.push(built);
    }
    (clusters, endpoints)
}

/// Gateways and explicit-capture sidecars: everything per proxy, in one pass.
fn generate_whole(snapshot: &MeshSnapshot, proxy: &Proxy) -> Generated {
    let scope = Scope::new(snapshot, proxy);
    let (mut clusters, mut endpoints) = outbound_clusters(snapshot, proxy, &scope);
    let mut listeners = Vec::new();
    match proxy.kind {
        ProxyKind::Router => listeners.extend(gateway::listeners(snapshot, proxy)),
        // Only explicit capture: transparent sidecars go through `outbound` and `local`.
        ProxyKind::Sidecar => {
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
    let route_names = route_names(&listeners);
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
        shared_secret_refs: Vec::new(),
    }
}

/// Every route configuration name the listeners ask for, sorted, once each.
fn route_names(listeners: &[Listener]) -> Vec<String> {
    let mut names: Vec<String> = listeners.iter().flat_map(rds_names).collect();
    names.sort();
    names.dedup();
    names
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
