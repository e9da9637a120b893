//! Connection pools of a cluster under its circuit breakers: HTTP/1.1 connections (one
//! request at a time, kept for reuse until idle too long or used up) and one multiplexed
//! HTTP/2 (h2c) connection per host. Requests over a limit overflow (503 UO).
//!
//! An HTTP/1.1 connection is run by the task of the request holding it ([`Http1`]); an
//! HTTP/2 connection, shared by many requests, by a task of its own.

use super::http1::Http1;
use super::tls::{Origination, Stream};
use super::UpstreamBody;
use crate::model::{Cluster, Thresholds};
use crate::stats::{inc, ClusterStats};
use hyper::body::Incoming;
use hyper::client::conn::http2;
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

/// Counters a circuit breaker compares to its thresholds, shared with the connections
/// (which free their place when they close, wherever they are then).
#[derive(Debug, Default)]
struct Open {
    connections: AtomicU32,
    pending: AtomicU32,
    /// Woken when a connection goes idle or closes, for requests waiting on the limit.
    released: Notify,
}

/// A connection's place under `max_connections`, given back when dropped.
struct Slot(Arc<Open>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.connections.fetch_sub(1, Ordering::AcqRel);
        self.0.released.notify_waiters();
    }
}

#[derive(Debug)]
pub struct Pool {
    limits: Thresholds,
    connect_timeout: Duration,
    idle_timeout: Option<Duration>,
    max_requests_per_connection: Option<u32>,
    open: Arc<Open>,
    idle: Mutex<HashMap<Arc<str>, Vec<Conn>>>,
    h2: Mutex<HashMap<String, http2::SendRequest<UpstreamBody>>>,
    stats: Arc<ClusterStats>,
    /// TLS origination (`transport_socket`), with the secrets it was built from.
    pub(super) tls: Option<Arc<Origination>>,
}

/// A pooled HTTP/1.1 connection to `authority`.
struct Conn {
    http: Http1,
    authority: Arc<str>,
    since: Instant,
    used: u32,
    _slot: Slot,
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conn")
            .field("authority", &self.authority)
            .field("used", &self.used)
            .finish_non_exhaustive()
    }
}

/// An HTTP/1.1 connection lent to one request, whose task runs its I/O until the
/// response's end; then back to the pool.
pub struct Lease {
    pool: Arc<Pool>,
    conn: Conn,
}

impl Lease {
    /// Runs the connection's I/O (see [`Http1::poll_io`]); false once it ended.
    pub fn poll_io(&mut self, cx: &mut std::task::Context<'_>) -> bool {
        self.conn.http.poll_io(cx)
    }

    /// The response body ended cleanly: the connection may serve another request.
    pub fn release(self) {
        let spent = self
            .pool
            .max_requests_per_connection
            .is_some_and(|m| self.conn.used >= m);
        if spent || !self.conn.http.is_open() {
            return;
        }
        let Lease { pool, mut conn } = self;
        conn.since = Instant::now();
        pool.idle
            .lock()
            .expect("pool")
            .entry(conn.authority.clone())
            .or_default()
            .push(conn);
        pool.open.released.notify_waiters();
    }

    /// The response switched protocols: the connection's I/O runs to its end in a task of
    /// its own, which hands the socket to the upgrade; it keeps its place until then.
    pub fn upgrade(self) {
        let Conn { http, _slot, .. } = self.conn;
        http.spawn(_slot);
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
            open: Arc::default(),
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

    /// An HTTP/1.1 connection to `authority`, ready for a request: an idle one, a new one
    /// within `max_connections`, or the next one freed while at most
    /// `max_pending_requests` wait.
    pub async fn lease(self: &Arc<Self>, authority: &str) -> Result<Lease, PoolError> {
        let mut pending = None;
        loop {
            let released = self.open.released.notified();
            tokio::pin!(released);
            released.as_mut().enable();
            if let Some(mut conn) = self.take_idle(authority) {
                // Nobody ran it while idle: this shows a close by the server, and waits
                // until it is done with its last response.
                if conn.http.ready().await {
                    return Ok(Lease {
                        pool: self.clone(),
                        conn,
                    });
                }
                continue;
            }
            if try_take(&self.open.connections, self.limits.max_connections) {
                let slot = Slot(self.open.clone());
                let mut conn = self.open_http1(authority, slot).await?;
                if conn.http.ready().await {
                    return Ok(Lease {
                        pool: self.clone(),
                        conn,
                    });
                }
                return Err(PoolError::Connect("closed before the first request".into()));
            }
            if pending.is_none() {
                if !try_take(&self.open.pending, self.limits.max_pending_requests) {
                    inc(&self.stats.upstream_rq_pending_overflow);
                    return Err(PoolError::Overflow);
                }
                pending = Some(Counted(&self.open.pending));
            }
            // Idle connections that closed meanwhile still hold places; dropping them
            // wakes `released`.
            self.reap();
            released.await;
        }
    }

    fn take_idle(&self, authority: &str) -> Option<Conn> {
        let mut idle = self.idle.lock().expect("pool");
        let list = idle.get_mut(authority)?;
        while let Some(c) = list.pop() {
            let stale = self.idle_timeout.is_some_and(|t| c.since.elapsed() >= t);
            if !stale && c.http.is_open() {
                return Some(c);
            }
        }
        None
    }

    /// Drops idle connections (to any host) that timed out or were closed by the server.
    fn reap(&self) {
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        let mut idle = self.idle.lock().expect("pool");
        for list in idle.values_mut() {
            list.retain_mut(|c| {
                let stale = self.idle_timeout.is_some_and(|t| c.since.elapsed() >= t);
                // Polled here only to see an end; whoever takes it polls it again.
                !stale && c.http.poll_io(&mut cx) && c.http.is_open()
            });
        }
    }

    async fn open_http1(&self, authority: &str, slot: Slot) -> Result<Conn, PoolError> {
        let stream = self
            .connect_stream(authority)
            .await
            .map_err(PoolError::Connect)?;
        let http = Http1::handshake(stream)
            .await
            .map_err(|e| PoolError::Connect(e.to_string()))?;
        Ok(Conn {
            http,
            authority: authority.into(),
            since: Instant::now(),
            used: 0,
            _slot: slot,
        })
    }

    /// Sends on a leased HTTP/1.1 connection, running its I/O in this task until the
    /// response headers arrive; the lease comes back with the response.
    pub async fn send_http1(
        mut lease: Lease,
        req: http::Request<UpstreamBody>,
    ) -> Result<(http::Response<Incoming>, Lease), PoolError> {
        lease.conn.used += 1;
        let resp = lease.conn.http.send(req).await.map_err(PoolError::Reset)?;
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
                let slot = Slot(self.open.clone());
                let stream = self
                    .connect_stream(authority)
                    .await
                    .map_err(PoolError::Connect)?;
                let (sender, conn) = http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
                    .await
                    .map_err(|e| PoolError::Connect(e.to_string()))?;
                // Shared by every request to the host: its I/O is a task of its own,
                // which keeps the connection's place until it closes.
                tokio::spawn(async move {
                    let _ = conn.await;
                    drop(slot);
                });
                self.h2
                    .lock()
                    .expect("pool")
                    .insert(authority.to_string(), sender.clone());
                sender
            }
        };
        sender.ready().await.map_err(PoolError::Reset)?;
        sender.send_request(req).await.map_err(PoolError::Reset)
    }
}

#[cfg(test)]
#[path = "pool_tests.rs"]
mod tests;
