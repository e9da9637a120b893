//! Clusters: how a named group of upstream hosts is discovered, balanced, limited and
//! reached.

use super::endpoint::LoadAssignment;
use serde::Serialize;
use std::time::Duration;

/// A cluster (CDS resource).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Cluster {
    pub name: String,
    pub discovery: Discovery,
    pub lb_policy: LbPolicy,
    /// TCP connect timeout to an endpoint; Envoy's default is 5s.
    pub connect_timeout: Duration,
    /// Endpoints given in the cluster itself (STATIC, STRICT_DNS, LOGICAL_DNS).
    pub load_assignment: Option<LoadAssignment>,
    /// The DEFAULT priority's circuit breaker thresholds.
    pub circuit_breakers: Thresholds,
    pub outlier_detection: Option<OutlierDetection>,
    /// `common_lb_config.healthy_panic_threshold` in percent (Envoy's default 50): below
    /// this share of usable hosts, the load balancer spreads over every host instead.
    pub healthy_panic_threshold: f64,
    /// How requests travel to the hosts (`HttpProtocolOptions`).
    pub protocol: UpstreamProtocol,
    /// A connection idle this long is closed (`common_http_protocol_options.idle_timeout`,
    /// Envoy's default 1h; None = never).
    pub idle_timeout: Option<Duration>,
    /// A connection is closed after this many requests; None = unlimited.
    pub max_requests_per_connection: Option<u32>,
    /// `transport_socket` `envoy.transport_sockets.tls`: TLS origination.
    pub tls: Option<super::tls::UpstreamTls>,
    /// `transport_socket_matches`: per endpoint, the first entry whose criteria its
    /// `envoy.transport_socket_match` metadata satisfies picks the transport (Istio's auto
    /// mTLS: `tlsMode: istio` endpoints get ISTIO_MUTUAL, the others plain text); an
    /// endpoint matching none uses `tls`.
    pub transport_socket_matches: Vec<TransportSocketMatch>,
}

/// One entry of `transport_socket_matches`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TransportSocketMatch {
    pub name: String,
    /// `match`: every key must be in the endpoint's metadata with this value; empty
    /// matches every endpoint.
    pub criteria: std::collections::BTreeMap<String, String>,
    /// TLS origination, or None for `raw_buffer` (plain text).
    pub tls: Option<super::tls::UpstreamTls>,
}

impl Cluster {
    /// A cluster with Envoy's defaults for everything but its name, discovery and policy.
    pub fn new(name: impl Into<String>, discovery: Discovery, lb_policy: LbPolicy) -> Cluster {
        Cluster {
            name: name.into(),
            discovery,
            lb_policy,
            connect_timeout: Duration::from_secs(5),
            load_assignment: None,
            circuit_breakers: Thresholds::default(),
            outlier_detection: None,
            healthy_panic_threshold: 50.0,
            protocol: UpstreamProtocol::Http1,
            idle_timeout: Some(Duration::from_secs(3600)),
            max_requests_per_connection: None,
            tls: None,
            transport_socket_matches: Vec::new(),
        }
    }

    /// Every TLS context the cluster may originate with: `transport_socket` and those of
    /// `transport_socket_matches` (for the secrets they need).
    pub fn tls_contexts(&self) -> impl Iterator<Item = &super::tls::UpstreamTls> {
        self.tls.iter().chain(
            self.transport_socket_matches
                .iter()
                .filter_map(|m| m.tls.as_ref()),
        )
    }
}

/// `type` of the cluster.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Discovery {
    Static,
    /// Every endpoint name is resolved, every address becomes a host; re-resolved every
    /// `refresh`.
    StrictDns {
        refresh: Duration,
        ipv4_only: bool,
    },
    /// One endpoint name; connections go to the first address of the latest resolution.
    LogicalDns {
        refresh: Duration,
        ipv4_only: bool,
    },
    /// Endpoints arrive over EDS under this service name.
    Eds {
        service_name: String,
    },
    /// The host is where the request was going: with `use_http_header`, the
    /// `x-envoy-original-dst-host` header; otherwise the downstream connection's original
    /// destination (transparent capture, not supported yet: 503 UH).
    OriginalDst {
        use_http_header: bool,
    },
}

/// `lb_policy` of the cluster.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum LbPolicy {
    /// Weighted round robin.
    RoundRobin,
    /// Power of `choice_count` choices by requests in flight (Envoy's default is 2).
    LeastRequest {
        choice_count: u32,
    },
    Random,
    /// Consistent hashing on a ring of at least `minimum_ring_size` entries (Envoy's
    /// default 1024, at most `maximum_ring_size`, default 8M).
    RingHash {
        minimum_ring_size: u64,
        maximum_ring_size: u64,
    },
    /// Maglev consistent hashing over a table of `table_size` entries (a prime; Envoy's
    /// default 65537).
    Maglev {
        table_size: u64,
    },
}

/// Circuit breaker limits, per cluster; a request over a limit gets 503 UO. Envoy's
/// defaults are 1024 connections, pending and active requests, and 3 concurrent retries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Thresholds {
    /// Open connections to all hosts of the cluster.
    pub max_connections: u32,
    /// Requests waiting for a connection.
    pub max_pending_requests: u32,
    /// Requests in flight, response bodies included.
    pub max_requests: u32,
    /// Retries in flight.
    pub max_retries: u32,
}

impl Default for Thresholds {
    fn default() -> Thresholds {
        Thresholds {
            max_connections: 1024,
            max_pending_requests: 1024,
            max_requests: 1024,
            max_retries: 3,
        }
    }
}

/// Passive health checking: a host answering errors in a row is ejected for a while.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct OutlierDetection {
    /// 5xx responses (and connect failures) in a row that eject a host (default 5).
    pub consecutive_5xx: u32,
    /// Chance in percent that reaching `consecutive_5xx` ejects (default 100).
    pub enforcing_consecutive_5xx: u32,
    /// 502, 503, 504 (and connect failures) in a row that eject a host (default 5).
    pub consecutive_gateway_failure: u32,
    /// Chance in percent for gateway failures (default 0: counted, never ejecting).
    pub enforcing_consecutive_gateway_failure: u32,
    /// How often ejections are reconsidered (default 10s).
    pub interval: Duration,
    /// An ejection lasts this times the host's number of ejections (default 30s) ...
    pub base_ejection_time: Duration,
    /// ... but never longer than this, or `base_ejection_time` if that is longer
    /// (default 300s).
    pub max_ejection_time: Duration,
    /// At most this share of the cluster's hosts is ejected at once (default 10), though
    /// one host always may be.
    pub max_ejection_percent: u32,
}

impl Default for OutlierDetection {
    fn default() -> OutlierDetection {
        OutlierDetection {
            consecutive_5xx: 5,
            enforcing_consecutive_5xx: 100,
            consecutive_gateway_failure: 5,
            enforcing_consecutive_gateway_failure: 0,
            interval: Duration::from_secs(10),
            base_ejection_time: Duration::from_secs(30),
            max_ejection_time: Duration::from_secs(300),
            max_ejection_percent: 10,
        }
    }
}

/// The HTTP version spoken to the hosts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UpstreamProtocol {
    Http1,
    /// HTTP/2 over cleartext (h2c with prior knowledge).
    Http2,
    /// The downstream request's version (`use_downstream_protocol_config`).
    Downstream,
}
