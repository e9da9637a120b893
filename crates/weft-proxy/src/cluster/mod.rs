//! Clusters at run time: their hosts, load balancing, circuit breakers, outlier detection
//! and connection pools, and [`Upstream::send`], which takes a request to one host.

mod body;
mod http1;
mod lb;
mod maglev;
pub mod outlier;
mod pool;
mod ring_hash;
pub mod tls;
mod xxhash;

use crate::model::{Cluster, Discovery, Endpoint, LbPolicy, UpstreamProtocol};
use crate::stats::{inc, ClusterStats};
use bytes::Bytes;
use http::{HeaderValue, Request, Response};
use http_body_util::combinators::BoxBody;
use http_body_util::BodyExt;
use outlier::{HostOutlier, Outcome};
use pool::{Pool, PoolError};
use serde::Serialize;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

pub use lb::{pick, pick_hashed};
pub use xxhash::xxhash64;

/// Body of requests sent upstream: the downstream body, streamed.
pub type UpstreamBody = BoxBody<Bytes, hyper::Error>;

/// Header naming the host of an ORIGINAL_DST cluster with `use_http_header`.
pub const ORIGINAL_DST_HOST: &str = "x-envoy-original-dst-host";

/// Response extension set by [`Upstream::send`]: the host that answered, for telemetry
/// (its Istio workload metadata names the destination workload).
#[derive(Clone, Debug)]
pub struct UpstreamHost {
    pub authority: Arc<str>,
    pub workload: Option<Arc<str>>,
    /// What the TLS handshake with the host proved (Istio's principal labels).
    pub security: crate::telemetry::labels::Security,
}

/// A cluster with its resolved endpoints, as the data path uses it.
#[derive(Debug, Serialize)]
pub struct Upstream {
    pub config: Cluster,
    pub hosts: Vec<Host>,
    /// Round-robin position; restarts at 0 when the cluster's endpoints change.
    #[serde(skip)]
    next: AtomicUsize,
    #[serde(skip)]
    hashing: lb::Hashing,
    #[serde(skip)]
    pool: Arc<Pool>,
    #[serde(skip)]
    pub stats: Arc<ClusterStats>,
    /// Requests and retries in flight, for the circuit breakers; shared by every version
    /// of the cluster.
    #[serde(skip)]
    gauges: Arc<Gauges>,
}

#[derive(Debug, Default)]
struct Gauges {
    requests: AtomicU32,
    retries: AtomicU32,
}

/// One endpoint with its requests in flight and its outlier state, both kept across
/// config updates for the same address.
#[derive(Debug, Serialize)]
pub struct Host {
    pub endpoint: Endpoint,
    /// `endpoint`'s `host:port`, formatted once: the pool's key on every request.
    #[serde(skip)]
    pub authority: Arc<str>,
    #[serde(skip)]
    pub active: Arc<AtomicUsize>,
    #[serde(skip)]
    pub outlier: Arc<HostOutlier>,
}

/// Why a request got no response from a host; each maps to Envoy's local reply.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("no healthy upstream")]
    NoHealthyUpstream,
    #[error("circuit breaker overflow")]
    Overflow,
    #[error("upstream connection failure: {0}")]
    ConnectFailure(String),
    #[error("upstream reset before response headers: {0}")]
    Reset(hyper::Error),
}

impl UpstreamError {
    /// Envoy's response flag.
    pub fn response_flag(&self) -> &'static str {
        match self {
            UpstreamError::NoHealthyUpstream => "UH",
            UpstreamError::Overflow => "UO",
            UpstreamError::ConnectFailure(_) => "UF",
            UpstreamError::Reset(_) => "UC",
        }
    }

    /// The body of Envoy's 503 local reply.
    pub fn body(&self) -> &'static str {
        match self {
            UpstreamError::NoHealthyUpstream => "no healthy upstream",
            UpstreamError::Overflow => {
                "upstream connect error or disconnect/reset before headers. reset reason: overflow"
            }
            UpstreamError::ConnectFailure(_) => {
                "upstream connect error or disconnect/reset before headers. reset reason: connection failure"
            }
            UpstreamError::Reset(_) => {
                "upstream connect error or disconnect/reset before headers. reset reason: connection termination"
            }
        }
    }
}

/// A retry admitted by the cluster's `max_retries` circuit breaker, until dropped.
#[derive(Debug)]
pub struct RetryPermit(Arc<Gauges>);

impl Drop for RetryPermit {
    fn drop(&mut self) {
        self.0.retries.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A request counted against `max_requests` until its response body ends.
#[derive(Debug)]
struct RequestGuard(Arc<Gauges>);

impl Drop for RequestGuard {
    fn drop(&mut self) {
        self.0.requests.fetch_sub(1, Ordering::AcqRel);
    }
}

fn try_take(c: &AtomicU32, max: u32) -> bool {
    c.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
        (n < max).then_some(n + 1)
    })
    .is_ok()
}

impl Upstream {
    /// `previous`: the same cluster in the snapshot being replaced; its counters, host
    /// states and (when its settings did not change) connections carry over.
    /// `stats`: the cluster's counters (`crate::stats::Stats::cluster`).
    pub fn new(
        config: Cluster,
        endpoints: Vec<Endpoint>,
        previous: Option<&Upstream>,
        stats: Arc<ClusterStats>,
    ) -> Upstream {
        Upstream::with_secrets(config, endpoints, previous, stats, &Default::default())
    }

    /// [`Upstream::new`] for a cluster whose TLS context (if any) takes its certificates
    /// from `secrets` (SDS, by name). A secret not there yet makes connections fail (UF)
    /// until a snapshot with it replaces this one.
    pub fn with_secrets(
        config: Cluster,
        endpoints: Vec<Endpoint>,
        previous: Option<&Upstream>,
        stats: Arc<ClusterStats>,
        secrets: &std::collections::BTreeMap<String, Arc<crate::model::Secret>>,
    ) -> Upstream {
        let gauges = previous.map_or_else(Arc::default, |p| p.gauges.clone());
        let kept = previous.and_then(|p| p.pool.tls.clone());
        // transport_socket and transport_socket_matches, chosen per endpoint.
        let tls = tls::Origination::for_cluster(&config, &endpoints, secrets, kept);
        let pool = match previous {
            Some(p) if p.pool.fits(&config, tls.as_deref()) => p.pool.clone(),
            _ => Pool::new(&config, stats.clone(), tls),
        };
        let hosts: Vec<Host> = endpoints
            .into_iter()
            .map(|endpoint| {
                let old = previous.and_then(|p| {
                    p.hosts.iter().find(|h| {
                        h.endpoint.host == endpoint.host && h.endpoint.port == endpoint.port
                    })
                });
                Host {
                    active: old.map_or_else(Arc::default, |h| h.active.clone()),
                    // Envoy rebuilds a cluster whose CDS config changed, ejections
                    // included; endpoint (EDS) updates keep them.
                    outlier: old
                        .filter(|_| previous.is_some_and(|p| p.config == config))
                        .map_or_else(Arc::default, |h| h.outlier.clone()),
                    authority: endpoint.authority().into(),
                    endpoint,
                }
            })
            .collect();
        let hashing = lb::Hashing::build(&config.lb_policy, &hosts);
        Upstream {
            hosts,
            config,
            next: AtomicUsize::new(0),
            hashing,
            pool,
            stats,
            gauges,
        }
    }

    /// What the last TLS handshake with `authority` proved: the host's verified SPIFFE
    /// id and the one this proxy presented (nothing over plain text).
    pub fn security(&self, authority: &str) -> crate::telemetry::labels::Security {
        match &self.pool.tls {
            Some(tls) => tls.verified(authority),
            None => Default::default(),
        }
    }

    /// A connection to `authority` (`host:port`) for the TCP proxy: TLS when the cluster
    /// originates it, within `connect_timeout`; not pooled.
    pub async fn connect(&self, authority: &str) -> Result<tls::Stream, String> {
        self.pool.connect_stream(authority).await
    }

    /// The next round-robin ticket.
    fn ticket(&self) -> usize {
        self.next.fetch_add(1, Ordering::Relaxed)
    }

    /// A retry slot under `max_retries`; None (and `upstream_rq_retry_overflow`) when the
    /// cluster already has that many retries in flight.
    pub fn retry_permit(&self) -> Option<RetryPermit> {
        if try_take(
            &self.gauges.retries,
            self.config.circuit_breakers.max_retries,
        ) {
            Some(RetryPermit(self.gauges.clone()))
        } else {
            inc(&self.stats.upstream_rq_retry_overflow);
            None
        }
    }

    /// Sends `req` to a host chosen by the cluster's load balancer (`hash`: the route's
    /// hash policy result, for RING_HASH and MAGLEV; random without one). The request's
    /// URI needs only its path and query; `Host` should be set. Requests in flight are
    /// counted until the response body ends, so LEAST_REQUEST and `max_requests` see
    /// streaming responses too.
    pub async fn send(
        &self,
        req: Request<UpstreamBody>,
        hash: Option<u64>,
    ) -> Result<Response<UpstreamBody>, UpstreamError> {
        self.send_to(req, hash, None).await
    }

    /// [`Upstream::send`] from a downstream connection whose original destination
    /// (SO_ORIGINAL_DST, transparent capture) is `original_dst`: where an ORIGINAL_DST
    /// cluster connects, unless `use_http_header` and a valid `x-envoy-original-dst-host`
    /// name another `ip:port` (an invalid one falls back to the original destination, as
    /// in Envoy). Neither known: 503 UH.
    pub async fn send_to(
        &self,
        req: Request<UpstreamBody>,
        hash: Option<u64>,
        original_dst: Option<std::net::SocketAddr>,
    ) -> Result<Response<UpstreamBody>, UpstreamError> {
        if !try_take(
            &self.gauges.requests,
            self.config.circuit_breakers.max_requests,
        ) {
            inc(&self.stats.upstream_rq_pending_overflow);
            return Err(UpstreamError::Overflow);
        }
        let request_guard = RequestGuard(self.gauges.clone());
        let original;
        let host = match &self.config.discovery {
            Discovery::OriginalDst { use_http_header } => {
                let dst = use_http_header
                    .then(|| req.headers().get(ORIGINAL_DST_HOST))
                    .flatten()
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<std::net::SocketAddr>().ok())
                    .or(original_dst)
                    .ok_or(UpstreamError::NoHealthyUpstream)?;
                original = Host {
                    authority: dst.to_string().into(),
                    endpoint: Endpoint {
                        host: dst.ip().to_string(),
                        port: dst.port(),
                        weight: 1,
                        healthy: true,
                        workload: None,
                        transport_socket_match: Default::default(),
                    },
                    active: Arc::default(),
                    outlier: Arc::default(),
                };
                &original
            }
            _ => pick_hashed(self, hash).ok_or(UpstreamError::NoHealthyUpstream)?,
        };
        let active = ActiveRequest::start(host);
        let authority = host.authority.clone();
        let result = self.exchange(&authority, req).await;
        if let Some(od) = &self.config.outlier_detection {
            let outcome = match &result {
                Ok((resp, _)) => Some(Outcome::Status(resp.status().as_u16())),
                Err(PoolError::Overflow) => None,
                Err(_) => Some(Outcome::ConnectFailure),
            };
            if let Some(outcome) = outcome {
                let may_eject = || {
                    let now = Instant::now();
                    let ejected = self
                        .hosts
                        .iter()
                        // `host`'s own state is locked by `record` while this runs (and
                        // it is not ejected, or `record` would not ask).
                        .filter(|h| !std::ptr::eq(*h, host) && h.outlier.ejected(now))
                        .count();
                    (ejected + 1) * 100 <= od.max_ejection_percent as usize * self.hosts.len()
                };
                if host.outlier.record(od, outcome, Instant::now(), may_eject) {
                    inc(&self.stats.outlier_ejections_enforced_total);
                    tracing::info!(cluster = %self.config.name, host = %host.endpoint.authority(), "outlier ejected");
                }
            }
        }
        match result {
            Ok((resp, mut lease)) => {
                if resp.status() == http::StatusCode::SWITCHING_PROTOCOLS {
                    // The connection becomes the tunnel; its I/O hands it over.
                    if let Some(l) = lease.take() {
                        l.upgrade();
                    }
                }
                let (mut parts, body) = resp.into_parts();
                parts.extensions.insert(UpstreamHost {
                    security: self.security(&authority),
                    authority,
                    workload: host.endpoint.workload.clone(),
                });
                let body = body::Tracked::new(body, lease, (active, request_guard));
                Ok(Response::from_parts(parts, body.boxed()))
            }
            Err(PoolError::Overflow) => Err(UpstreamError::Overflow),
            Err(PoolError::Connect(e)) => Err(UpstreamError::ConnectFailure(e)),
            Err(PoolError::Reset(e)) => Err(UpstreamError::Reset(e)),
        }
    }

    /// One request/response on a pooled connection to `authority`.
    async fn exchange(
        &self,
        authority: &str,
        req: Request<UpstreamBody>,
    ) -> Result<(Response<hyper::body::Incoming>, Option<pool::Lease>), PoolError> {
        let (mut parts, body) = req.into_parts();
        let h2 = match self.config.protocol {
            UpstreamProtocol::Http1 => false,
            UpstreamProtocol::Http2 => true,
            UpstreamProtocol::Downstream => parts.version == http::Version::HTTP_2,
        };
        if h2 {
            // HTTP/2 carries the authority in :authority, taken from the URI.
            let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
            let logical = parts
                .headers
                .remove(http::header::HOST)
                .and_then(|h| h.to_str().ok().map(str::to_string))
                .unwrap_or_else(|| authority.to_string());
            parts.uri = format!("http://{logical}{path}")
                .parse()
                .map_err(|_| PoolError::Connect(format!("bad authority {logical}")))?;
            parts.version = http::Version::HTTP_2;
            let resp = self
                .pool
                .send_http2(authority, Request::from_parts(parts, body))
                .await?;
            return Ok((resp, None));
        }
        if parts.uri.scheme().is_some() || parts.uri.authority().is_some() {
            parts.uri = origin_form(&parts.uri);
        }
        parts.version = http::Version::HTTP_11;
        if !parts.headers.contains_key(http::header::HOST) {
            if let Ok(v) = HeaderValue::from_str(authority) {
                parts.headers.insert(http::header::HOST, v);
            }
        }
        let lease = self.pool.lease(authority).await?;
        let (resp, lease) = Pool::send_http1(lease, Request::from_parts(parts, body)).await?;
        Ok((resp, Some(lease)))
    }
}

/// `uri`'s path and query alone (origin form, as HTTP/1.1 requests carry it), sharing its
/// buffer rather than copying it.
pub fn origin_form(uri: &http::Uri) -> http::Uri {
    let mut parts = http::uri::Parts::default();
    parts.path_and_query = Some(
        uri.path_and_query()
            .cloned()
            .unwrap_or_else(|| http::uri::PathAndQuery::from_static("/")),
    );
    http::Uri::from_parts(parts).expect("a path alone is a valid URI")
}

/// Counts a request in flight on a host until dropped.
#[derive(Debug)]
pub struct ActiveRequest(Arc<AtomicUsize>);

impl ActiveRequest {
    pub fn start(host: &Host) -> ActiveRequest {
        host.active.fetch_add(1, Ordering::Relaxed);
        ActiveRequest(host.active.clone())
    }
}

impl Drop for ActiveRequest {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Whether the policy consumes a request hash.
pub fn uses_hash(policy: &LbPolicy) -> bool {
    matches!(policy, LbPolicy::RingHash { .. } | LbPolicy::Maglev { .. })
}

#[cfg(test)]
#[path = "send_tests.rs"]
mod send_tests;
