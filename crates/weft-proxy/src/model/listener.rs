//! Listeners: an address to bind and the one network filter that serves its connections.

use super::route::RouteConfig;
use serde::Serialize;
use std::net::SocketAddr;
use std::sync::Arc;

/// A listener (LDS resource) with a single filter chain.
#[derive(Clone, Debug, Serialize)]
pub struct Listener {
    pub name: String,
    pub address: SocketAddr,
    pub filter: NetworkFilter,
}

/// The terminal network filter of the listener's filter chain.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NetworkFilter {
    /// `envoy.filters.network.http_connection_manager`.
    Http(HttpConnectionManager),
    /// `envoy.filters.network.tcp_proxy`: bytes both ways to a cluster chosen per
    /// connection (by weight when there are several).
    TcpProxy {
        stat_prefix: String,
        clusters: Vec<super::WeightedCluster>,
    },
}

/// The HTTP connection manager: HTTP/1.1 server whose requests are routed by `routes`.
#[derive(Clone, Debug, Serialize)]
pub struct HttpConnectionManager {
    pub stat_prefix: String,
    pub routes: RouteSource,
}

/// Where the connection manager's route configuration comes from.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RouteSource {
    /// By name over ADS (RDS); until it arrives every request gets 404 NR.
    Rds(String),
    Inline(Arc<RouteConfig>),
}
