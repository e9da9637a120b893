//! VirtualService -> RouteConfiguration: the outbound, inbound and gateway route tables.

mod context;
mod cors;
mod delegate;
mod domains;
mod fault;
mod filters;
mod gateway;
mod hash_policy;
mod header;
mod http_route;
mod proto;
mod redirect;
mod retry;
mod route_action;
mod route_match;
mod sidecar;

#[cfg(test)]
mod envoy_check;
#[cfg(test)]
mod testdata_check;
#[cfg(test)]
mod tests;

pub use retry::DEFAULT_RETRY_ON;
pub use sidecar::explicit_passthrough;

use crate::model::{MeshSnapshot, Proxy};
use crate::registry::resolve_short_name;
use crate::translate::scope::Scope;
use crate::translate::Direction;
use envoy_types::pb::envoy::config::route::v3::{RouteConfiguration, VirtualHost};
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::HttpFilter;
use envoy_types::pb::google::protobuf::{BoolValue, UInt32Value};
use std::collections::BTreeSet;
use weft_config::networking::virtual_service::VirtualService;
use weft_config::{Kind, Spec};

/// HTTP filter names; per-route configs are keyed by them.
pub const FAULT_FILTER: &str = "envoy.filters.http.fault";
pub const CORS_FILTER: &str = "envoy.filters.http.cors";
pub const ROUTER_FILTER: &str = "envoy.filters.http.router";

/// Istio's cap on direct response bodies (Envoy's default is 4 KiB).
const MAX_DIRECT_RESPONSE_BODY: u32 = 1024 * 1024;

/// A VirtualService with its names resolved: hosts to FQDNs and gateways to `ns/name`.
#[derive(Clone)]
pub(crate) struct VsEntry<'a> {
    pub name: String,
    pub namespace: String,
    pub hosts: Vec<String>,
    pub gateways: BTreeSet<String>,
    pub export_to: Vec<String>,
    pub spec: &'a VirtualService,
}

/// `exportTo` of a resource in `owner_ns`, seen from `viewer_ns` (empty means everyone).
pub(crate) fn visible(export_to: &[String], owner_ns: &str, viewer_ns: &str) -> bool {
    export_to.is_empty()
        || export_to
            .iter()
            .any(|e| e == "*" || e == viewer_ns || (e == "." && owner_ns == viewer_ns))
}

/// Root VirtualServices (those with hosts; delegates have none), oldest first as in Istio,
/// then by namespace and name.
fn virtual_services(snapshot: &MeshSnapshot) -> Vec<VsEntry<'_>> {
    let mut out: Vec<(&str, VsEntry)> = snapshot
        .of_kind(Kind::VirtualService)
        .filter_map(|r| match &r.spec {
            Spec::VirtualService(vs) if !vs.hosts.is_empty() => {
                let ns = r.metadata.namespace.as_str();
                Some((
                    r.metadata.creation_timestamp.as_str(),
                    VsEntry {
                        name: r.metadata.name.clone(),
                        namespace: ns.to_string(),
                        hosts: vs.hosts.iter().map(|h| resolve_short_name(h, ns)).collect(),
                        gateways: vs
                            .effective_gateways()
                            .into_iter()
                            .map(|g| route_match::qualify_gateway(g, ns))
                            .collect(),
                        export_to: vs.export_to.clone(),
                        spec: vs.as_ref(),
                    },
                ))
            }
            _ => None,
        })
        .collect();
    out.sort_by(|(ta, a), (tb, b)| (ta, &a.namespace, &a.name).cmp(&(tb, &b.namespace, &b.name)));
    out.into_iter().map(|(_, v)| v).collect()
}

fn route_configuration(name: &str, virtual_hosts: Vec<VirtualHost>) -> RouteConfiguration {
    RouteConfiguration {
        name: name.to_string(),
        virtual_hosts,
        // Clusters arrive over CDS on their own schedule; a route naming one not yet
        // known must not get the whole table rejected.
        validate_clusters: Some(BoolValue { value: false }),
        max_direct_response_body_size_bytes: Some(UInt32Value {
            value: MAX_DIRECT_RESPONSE_BODY,
        }),
        ..Default::default()
    }
}

/// Route configurations this proxy needs, by name: `http_proxy` (explicit sidecar outbound,
/// docs/xds.md), `<port>` (transparent sidecar outbound per port), `http.<port>` /
/// `https.<port>.<portName>.<gw>.<ns>` (gateways). A name this proxy has no table for
/// gets an empty one, so that a listener waiting for it does not stay warming forever.
pub fn route_configs(
    snapshot: &MeshSnapshot,
    proxy: &Proxy,
    names: &[String],
) -> Vec<RouteConfiguration> {
    route_configs_in(snapshot, proxy, &Scope::new(snapshot, proxy), names)
}

/// [`route_configs`] with the proxy's visibility already computed.
pub fn route_configs_in(
    snapshot: &MeshSnapshot,
    proxy: &Proxy,
    scope: &Scope,
    names: &[String],
) -> Vec<RouteConfiguration> {
    let vss = virtual_services(snapshot);
    names
        .iter()
        .map(|name| {
            let vhosts = if let Some(port) = sidecar::parse_name(name) {
                sidecar::outbound(snapshot, proxy, scope, &vss, port)
            } else if name.starts_with("http.") || name.starts_with("https.") {
                gateway::vhosts(snapshot, proxy, &vss, name).unwrap_or_default()
            } else {
                Vec::new()
            };
            route_configuration(name, vhosts)
        })
        .collect()
}

/// The inline route config of an inbound HTTP listener: everything to cluster `inbound|<port>||`.
pub fn inbound_route_config(port: u32) -> RouteConfiguration {
    filters::inbound_route_config(port)
}

/// HTTP filters an HTTP connection manager needs, in order, ending with the router (fault,
/// cors, router for outbound/gateway).
pub fn http_filters(direction: Direction) -> Vec<HttpFilter> {
    filters::http_filters(direction)
}
