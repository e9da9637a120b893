//! Puts RBAC filters into a built filter chain: HTTP RBAC inside each HTTP connection
//! manager after authentication (jwt_authn) and before fault, CORS and the router; network
//! RBAC right before a TCP proxy. Idempotent: a chain that already has RBAC is left alone.

use super::builder::{Filters, HTTP_RBAC, NETWORK_RBAC};
use crate::translate::filter::{HCM, TCP_PROXY};
use envoy_types::pb::envoy::config::listener::v3::{filter, FilterChain};
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::HttpConnectionManager;
use prost::Message;

/// HTTP filters RBAC runs ahead of, as in Istio's inbound and gateway chains.
const RUNS_AFTER_RBAC: &[&str] = &[
    "envoy.filters.http.fault",
    "envoy.filters.http.cors",
    "envoy.filters.http.router",
];

pub fn insert(chain: &mut FilterChain, filters: &Filters) {
    if chain.filters.iter().any(|f| f.name == NETWORK_RBAC) {
        return;
    }
    for f in chain.filters.iter_mut().filter(|f| f.name == HCM) {
        let Some(filter::ConfigType::TypedConfig(any)) = &mut f.config_type else {
            continue;
        };
        let Ok(mut hcm) = HttpConnectionManager::decode(any.value.as_slice()) else {
            continue;
        };
        if hcm.http_filters.iter().any(|h| h.name == HTTP_RBAC) {
            continue;
        }
        let at = hcm
            .http_filters
            .iter()
            .position(|h| RUNS_AFTER_RBAC.contains(&h.name.as_str()))
            .unwrap_or(hcm.http_filters.len());
        hcm.http_filters
            .splice(at..at, filters.http.iter().cloned());
        any.value = hcm.encode_to_vec();
    }
    if let Some(at) = chain.filters.iter().position(|f| f.name == TCP_PROXY) {
        chain.filters.splice(at..at, filters.tcp.iter().cloned());
    }
}
