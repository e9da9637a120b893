//! Connection pools of a cluster under its circuit breakers: HTTP/1.1 connections (one
//! request at a time, kept for reuse until idle too long or used up) and one multiplexed
//! HTTP/2 (h2c) connection per host. Requests over a limit overflow (503 UO).

use super::tls::{Origination, Stream};
use super::UpstreamBody;
use crate::model::{Cluster, Thresholds};
use crate::stats::{inc, ClusterStats};
use hyper::body::Incoming;
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use tokio::sync::Notify;

/// Why no request could be sent.
#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    #[error("circuit breaker overflow")]
    Overflow,
    #[error("connection failure: {0}")]
    Connect(String),
    #[error("connection reset before headers: {0}")]
    Reset(hyper::Error),
}

/// Counters a circuit breaker compares to its thresholds.
#[derive(Debug, Default)]
struct Open {
    connections: AtomicU32,
    pending: AtomicU32,
}

#[derive(Debug)]
pub struct Pool {
    limits: Thresholds,
    connect_timeout: Duration,
    idle_timeout: Option<Duration>,
    max_requests_per_connection: Option<u32>,
    open: Open,
    /// Woken when a connection goes idle or closes, for requests waiting on the limit.
    released: Notify,
    idle: Mutex<HashMap<String, Vec<IdleConnection>>>,
    h2: Mutex<HashMap<String, http2::SendRequest<UpstreamBody>>>,
    stats: Arc<ClusterStats>,
    /// TLS origination (`transport_socket`), with the secrets it was built from.
    pub(super) tls: Option<Arc<Origination>>,
}

#[derive(Debug)]
struct IdleConnection {
    sender: http1::SendRequest<UpstreamBody>,
    since: Instant,
    used: u32,
}

/// An HTTP/1.1 connection lent to one request; back to the pool at the response's end.
#[derive(Debug)]
pub struct Lease {
    pool: Arc<Pool>,
    authority: String,
    sender: http1::SendRequest<UpstreamBody>,
    used: u32,
}

impl Lease {
    /// The response body ended cleanly: the connection may serve another request.
    pub fn release(self) {
        let spent = self
            .pool
            .max_requests_per_connection
            .is_some_and(|m| self.used >= m);
        if spent || self.sender.is_closed() {
            return;
        }
        self.pool
            .idle
            .lock()
            .expect("pool")
            .entry(self.authority)
            .or_default()
            .push(IdleConnection {
                sender: self.sender,
                since: Instant::now(),
                used: self.used,
            });
        self.pool.released.notify_waiters();
    }
}

/// Decrements a counter when dropped.
struct Counted<'a>(&'a AtomicU32);

impl Drop for Counted<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Increments `c` if it stays within `max`.
fn try_take(c: &AtomicU32, max: u32) -> bool {
    c.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
        (n < max).then_some(n + 1)
    })
    .is_ok()
}

impl Pool {
    pub fn new(
        config: &Cluster,
        stats: Arc<ClusterStats>,
        tls: Option<Arc<Origination>>,
    ) -> Arc<Pool> {
        Arc::new(Pool {
            limits: config.circuit_breakers,
            connect_timeout: config.connect_timeout,
            idle_timeout: config.idle_timeout,
            max_requests_per_connection: config.max_requests_per_connection,
            open: Open::default(),
            released: Notify::new(),
            idle: Mutex::default(),
            h2: Mutex::default(),
            stats,
            tls,
        })
    }

    /// Whether a pool built for `config` would be this one (so it can be kept).
    pub fn fits(&self, config: &Cluster, tls: Option<&Origination>) -> bool {
        self.tls.as_deref() == tls
            && self.limits == config.circuit_breakers
            && self.connect_timeout == config.connect_timeout
            && self.idle_timeout == config.idle_timeout
            && self.max_requests_per_connection == config.max_requests_per_connection
    }

    async fn connect(self: &Arc<Self>, authority: &str) -> Result<TokioIo<Stream>, PoolError> {
        self.connect_stream(authority)
            .await
            .map(TokioIo::new)
            .map_err(PoolError::Connect)
    }

    /// A connection to `authority` (`host:port`), TLS when the cluster originates it;
    /// the handshake counts against `connect_timeout` too, as in Envoy.
    pub async fn connect_stream(&self, authority: &str) -> Result<Stream, String> {
        let open = async {
            let stream = TcpStream::connect(authority)
                .await
                .map_err(|e| e.to_string())?;
            let _ = stream.set_nodelay(true);
            inc(&self.stats.upstream_cx_total);
            match &self.tls {
                None => Ok(Stream::Plain(stream)),
                Some(tls) => {
                    let host = authority
                        .rsplit_once(':')
                        .map_or(authority, |(h, _)| h)
                        .trim_start_matches('[')
                        .trim_end_matches(']');
                    tls.connect_to(authority, host, stream).await
                }
            }
        };
        tokio::time::timeout(self.connect_timeout, open)
            .await
            .map_err(|_| "connect timeout".to_string())?
    }

    /// Runs a connection's I/O until it closes, then frees its place under the limit.
    fn drive<F>(self: &Arc<Self>, conn: F)
    where
        F: std::future::Future + Send + 'static,
    {
        let pool = self.clone();
        tokio::spawn(async move {
            let _ = conn.await;
            pool.open.connections.fetch_sub(1, Ordering::AcqRel);
            pool.released.notify_waiters();
        });
    }

    /// An HTTP/1.1 connection to `authority`: an idle one, a new one within
    /// `max_connections`, or the next one freed while at most `max_pending_requests` wait.
    pub async fn lease(self: &Arc<Self>, authority: &str) -> Result<Lease, PoolError> {
        let mut pending = None;
        loop {
            let released = self.released.notified();
            tokio::pin!(released);
            released.as_mut().enable();
            if let Some(mut idle) = self.take_idle(authority) {
                // Ready resolves once the connection has finished with the last response.
                if idle.sender.ready().await.is_ok() {
                    return Ok(Lease {
                        pool: self.clone(),
                        authority: authority.to_string(),
                        sender: idle.sender,
                        used: idle.used,
                    });
                }
                continue;
            }
            if try_take(&self.open.connections, self.limits.max_connections) {
                return match self.open_http1(authority).await {
                    Ok(sender) => Ok(Lease {
                        pool: self.clone(),
                        authority: authority.to_string(),
                        sender,
                        used: 0,
                    }),
                    Err(e) => {
                        self.open.connections.fetch_sub(1, Ordering::AcqRel);
                        self.released.notify_waiters();
                        Err(e)
                    }
                };
            }
            if pending.is_none() {
                if !try_take(&self.open.pending, self.limits.max_pending_requests) {
                    inc(&self.stats.upstream_rq_pending_overflow);
                    return Err(PoolError::Overflow);
                }
                pending = Some(Counted(&self.open.pending));
            }
            released.await;
        }
    }

    fn take_idle(&self, authority: &str) -> Option<IdleConnection> {
        let mut idle = self.idle.lock().expect("pool");
        let list = idle.get_mut(authority)?;
        while let Some(c) = list.pop() {
            let stale = self.idle_timeout.is_some_and(|t| c.since.elapsed() >= t);
            if !stale && !c.sender.is_closed() {
                return Some(c);
            }
        }
        None
    }

    async fn open_http1(
        self: &Arc<Self>,
        authority: &str,
    ) -> Result<http1::SendRequest<UpstreamBody>, PoolError> {
        let io = self.connect(authority).await?;
        let (sender, conn) = http1::handshake(io)
            .await
            .map_err(|e| PoolError::Connect(e.to_string()))?;
        self.drive(conn.with_upgrades());
        Ok(sender)
    }

    /// Sends on a leased HTTP/1.1 connection; the lease comes back with the response.
    pub async fn send_http1(
        mut lease: Lease,
        req: http::Request<UpstreamBody>,
    ) -> Result<(http::Response<Incoming>, Lease), PoolError> {
        lease.used += 1;
        let resp = lease
            .sender
            .send_request(req)
            .await
            .map_err(PoolError::Reset)?;
        Ok((resp, lease))
    }

    /// Sends over the host's HTTP/2 connection, opening it first when there is none.
    pub async fn send_http2(
        self: &Arc<Self>,
        authority: &str,
        req: http::Request<UpstreamBody>,
    ) -> Result<http::Response<Incoming>, PoolError> {
        let existing = self.h2.lock().expect("pool").get(authority).cloned();
        let mut sender = match existing {
            Some(s) if !s.is_closed() => s,
            _ => {
                if !try_take(&self.open.connections, self.limits.max_connections) {
                    inc(&self.stats.upstream_cx_overflow);
                    return Err(PoolError::Overflow);
                }
                let opened = async {
                    let io = self.connect(authority).await?;
                    http2::handshake(TokioExecutor::new(), io)
                        .await
                        .map_err(|e| PoolError::Connect(e.to_string()))
                }
                .await;
                match opened {
                    Ok((sender, conn)) => {
                        self.drive(conn);
                        self.h2
                            .lock()
                            .expect("pool")
                            .insert(authority.to_string(), sender.clone());
                        sender
                    }
                    Err(e) => {
                        self.open.connections.fetch_sub(1, Ordering::AcqRel);
                        return Err(e);
                    }
                }
            }
        };
        sender.ready().await.map_err(PoolError::Reset)?;
        sender.send_request(req).await.map_err(PoolError::Reset)
    }
}
