//! Listeners: an address to bind, filter chains chosen per connection by what the
//! connection looks like (port, SNI, transport), and the network filter that serves it.

use super::route::RouteConfig;
use serde::Serialize;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

/// A listener (LDS resource).
#[derive(Clone, Debug, Serialize)]
pub struct Listener {
    pub name: String,
    pub address: SocketAddr,
    /// In Envoy's order; a connection takes the most specific match (see
    /// `crate::listener::chain`).
    pub filter_chains: Vec<FilterChain>,
    /// `envoy.filters.listener.tls_inspector`: read the ClientHello (SNI, ALPN) before
    /// choosing a chain.
    pub tls_inspector: bool,
    /// `envoy.filters.listener.http_inspector`: tell HTTP/1.1 and h2c apart by the first
    /// bytes, for `application_protocols` matches.
    pub http_inspector: bool,
    /// `bind_to_port` (default true). A listener that does not bind only receives
    /// connections handed over by a `use_original_dst` listener.
    pub bind_to_port: bool,
    /// `use_original_dst`: a connection whose original destination (SO_ORIGINAL_DST) is
    /// another listener's address is served by that listener.
    pub use_original_dst: bool,
    /// `envoy.filters.listener.original_dst`: filter chains match, and ORIGINAL_DST
    /// clusters connect to, the connection's original destination.
    pub original_dst_filter: bool,
}

/// One filter chain: when it applies, and what serves the connection.
#[derive(Clone, Debug, Serialize)]
pub struct FilterChain {
    pub name: String,
    #[serde(rename = "filter_chain_match")]
    pub matcher: FilterChainMatch,
    pub filter: NetworkFilter,
    /// `transport_socket` `envoy.transport_sockets.tls`: TLS termination.
    pub tls: Option<super::tls::DownstreamTls>,
}

/// Envoy's `FilterChainMatch`, the criteria weft-proxy honours; empty = any.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct FilterChainMatch {
    pub destination_port: Option<u16>,
    /// `prefix_ranges`: CIDRs the destination address must be in.
    pub prefix_ranges: Vec<CidrRange>,
    /// Exact names and `*.suffix` wildcards, matched against the SNI.
    pub server_names: Vec<String>,
    /// `tls` or `raw_buffer`.
    pub transport_protocol: Option<String>,
    /// ALPN (`h2`, `http/1.1`) or, from the HTTP inspector, `http/1.1` / `h2c`.
    pub application_protocols: Vec<String>,
}

/// An address prefix (`CidrRange`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct CidrRange {
    pub address_prefix: IpAddr,
    pub prefix_len: u8,
}

impl CidrRange {
    /// Whether `ip` is inside the range (an IPv4 range never holds an IPv6 address).
    pub fn contains(&self, ip: IpAddr) -> bool {
        fn masked(bits: u128, width: u32, len: u8) -> u128 {
            let len = u32::from(len).min(width);
            if len == 0 {
                0
            } else {
                bits >> (width - len)
            }
        }
        match (self.address_prefix, ip) {
            (IpAddr::V4(p), IpAddr::V4(a)) => {
                masked(u32::from(p).into(), 32, self.prefix_len)
                    == masked(u32::from(a).into(), 32, self.prefix_len)
            }
            (IpAddr::V6(p), IpAddr::V6(a)) => {
                masked(u128::from(p), 128, self.prefix_len)
                    == masked(u128::from(a), 128, self.prefix_len)
            }
            _ => false,
        }
    }
}

/// The terminal network filter of a filter chain.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NetworkFilter {
    /// `envoy.filters.network.http_connection_manager`.
    Http(Arc<HttpConnectionManager>),
    /// `envoy.filters.network.tcp_proxy`: bytes both ways to a cluster chosen per
    /// connection (by weight when there are several).
    TcpProxy {
        stat_prefix: String,
        clusters: Vec<super::WeightedCluster>,
        /// `envoy.filters.network.rbac` filters before the proxy, in order: a connection
        /// one of them refuses is closed.
        #[serde(skip_serializing_if = "Vec::is_empty")]
        rbac: Vec<Arc<crate::rbac::RbacFilter>>,
    },
}

/// The HTTP connection manager: HTTP/1.1 and HTTP/2 server whose requests are routed by
/// `routes`.
#[derive(Clone, Debug, Serialize)]
pub struct HttpConnectionManager {
    pub stat_prefix: String,
    pub routes: RouteSource,
    pub codec: Codec,
    /// Upgrade types (`upgrade_configs[].upgrade_type`, lowercase, e.g. `websocket`) the
    /// connection manager forwards; any other HTTP/1.1 upgrade request gets 403.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub upgrades: Vec<String>,
    /// `envoy.filters.http.rbac` filters, in order, before routing.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub rbac: Vec<Arc<crate::rbac::RbacFilter>>,
    /// `envoy.filters.http.jwt_authn`, run before RBAC and routing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jwt: Option<Arc<crate::jwt::JwtAuthn>>,
    /// How x-forwarded-for and the client address are treated.
    pub forwarding: Forwarding,
}

/// The connection manager's view of forwarded requests, Envoy's fields of the same names:
/// at the edge (`use_remote_address`, Istio's gateways) the client is the connection's
/// peer (or the address `xff_num_trusted_hops` from the right of x-forwarded-for) and its
/// address is appended; elsewhere the headers are trusted as they come.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Forwarding {
    pub use_remote_address: bool,
    pub xff_num_trusted_hops: u32,
    pub skip_xff_append: bool,
    /// x-forwarded-client-cert (`forward_client_cert_details`,
    /// `set_current_client_cert_details`).
    pub client_cert: crate::http::xfcc::ClientCertConfig,
}

/// Downstream HTTP codec (`codec_type`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Codec {
    /// HTTP/1.1, or HTTP/2 when the connection opens with the HTTP/2 preface (h2c prior
    /// knowledge) — Envoy's AUTO on plaintext.
    #[default]
    Auto,
    Http1,
    Http2,
}

/// Where the connection manager's route configuration comes from.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RouteSource {
    /// By name over ADS (RDS); until it arrives every request gets 404 NR.
    Rds(String),
    Inline(Arc<RouteConfig>),
}

impl Listener {
    /// Every connection manager of the listener, for RDS subscriptions.
    pub fn http_connection_managers(&self) -> impl Iterator<Item = &HttpConnectionManager> {
        self.filter_chains.iter().filter_map(|c| match &c.filter {
            NetworkFilter::Http(h) => Some(h.as_ref()),
            NetworkFilter::TcpProxy { .. } => None,
        })
    }
}
