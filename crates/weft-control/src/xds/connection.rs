//! What both ADS variants share per stream: registration in the status table, the proxy's
//! generated resources, regeneration on new snapshots, and the bookkeeping of ACK/NACK.

use super::pipeline::Published;
use super::resources::{self, Typed, XdsType};
use super::status::{ConnectionStatus, Mode};
use super::Xds;
use crate::model::Proxy;
use crate::translate::Generated;
use envoy_types::pb::google::rpc::Status as RpcStatus;
use std::sync::Arc;
use tokio::sync::watch;

use super::metrics::Metrics;

fn label(t: XdsType) -> super::metrics::TypeLabel {
    Metrics::label(t.short())
}

/// One open stream. Dropping it unregisters the stream (and starts the auto-registration
/// grace period when it was the proxy's last).
pub(super) struct Connection {
    pub id: u64,
    pub xds: Xds,
    pub proxy: Proxy,
    pub snapshots: watch::Receiver<Arc<Published>>,
    pub stop: watch::Receiver<bool>,
    generated: Generated,
    pub typed: Typed,
    /// When the change behind the latest regeneration happened.
    changed_at: Option<std::time::Instant>,
}

impl Connection {
    /// Registers the stream and generates the proxy's resources from the current snapshot.
    pub async fn open(xds: Xds, proxy: Proxy, mode: Mode) -> Result<Connection, tonic::Status> {
        let shared = &xds.shared;
        let proxy = match &proxy.workload_group {
            Some(_) => shared
                .registrar
                .connected(&proxy)
                .await
                .map_err(|e| tonic::Status::failed_precondition(e.to_string()))?,
            None => proxy,
        };
        let id = shared
            .next_id
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        shared
            .connections
            .insert(id, ConnectionStatus::new(proxy.clone(), mode));
        shared.metrics.connected.inc();
        tracing::info!(proxy = %proxy.id, stream = id, ?mode, "proxy connected");
        let mut snapshots = shared.snapshots.clone();
        let published = snapshots.borrow_and_update().clone();
        let generated = (shared.generator)(&published.snapshot, &proxy);
        let typed = resources::encode(None, &generated);
        Ok(Connection {
            id,
            stop: shared.stop.clone(),
            xds,
            proxy,
            snapshots,
            generated,
            typed,
            changed_at: None,
        })
    }

    /// Regenerates from the latest snapshot; false when nothing changed for this proxy.
    pub fn regenerate(&mut self) -> bool {
        let published = self.snapshots.borrow_and_update().clone();
        let generated = (self.xds.shared.generator)(&published.snapshot, &self.proxy);
        if generated == self.generated {
            return false;
        }
        self.typed = resources::encode(Some((&self.generated, &self.typed)), &generated);
        self.generated = generated;
        self.changed_at = Some(published.changed_at);
        true
    }

    /// Records a push: version sent, what the proxy now holds, metrics.
    pub fn pushed(&mut self, t: XdsType, version: &str, holds: resources::Resources) {
        let shared = &self.xds.shared;
        shared.metrics.pushes.get_or_create(&label(t)).inc();
        if let Some(at) = self.changed_at {
            shared
                .metrics
                .convergence
                .observe(at.elapsed().as_secs_f64());
        }
        shared.connections.update(self.id, |c| {
            let s = c.of(t);
            s.sent = Some(version.to_string());
            s.resources = holds;
            s.unsubscribed = false;
        });
        tracing::debug!(proxy = %self.proxy.id, r#type = t.short(), version, "pushed");
    }

    /// All pushes of the current generation are out: convergence is measured once.
    pub fn push_done(&mut self) {
        self.changed_at = None;
    }

    /// An ACK (no error) or NACK of `version`. A NACK changes nothing on weftd's side:
    /// the proxy keeps its last good config and the next change is pushed as usual.
    pub fn acknowledged(&self, t: XdsType, version: &str, error: Option<&RpcStatus>) {
        let shared = &self.xds.shared;
        match error {
            None => shared.connections.update(self.id, |c| {
                let s = c.of(t);
                s.acked = Some(version.to_string());
                s.nack = None;
            }),
            Some(error) => {
                tracing::warn!(
                    proxy = %self.proxy.id,
                    r#type = t.short(),
                    code = error.code,
                    reason = %error.message,
                    "proxy rejected the configuration (NACK)"
                );
                shared.metrics.rejects.get_or_create(&label(t)).inc();
                shared.connections.update(self.id, |c| {
                    c.of(t).nack = Some(error.message.clone());
                });
            }
        }
    }

    /// The proxy unsubscribed from every resource of `t`: it holds none, and a response
    /// still in flight will not be answered, so nothing is pending.
    pub fn unsubscribed(&self, t: XdsType) {
        tracing::debug!(proxy = %self.proxy.id, r#type = t.short(), "unsubscribed from every resource");
        self.xds.shared.connections.update(self.id, |c| {
            let s = c.of(t);
            s.unsubscribed = true;
            s.resources.clear();
        });
    }

    /// A health report (`istio.io/health`) from the proxy's agent, written in the background.
    pub fn health(&self, error: Option<&RpcStatus>) {
        if self.proxy.workload_group.is_none() {
            return;
        }
        let registrar = self.xds.shared.registrar.clone();
        let proxy = self.proxy.clone();
        let unhealthy = error.map(|e| e.message.clone());
        tokio::spawn(async move { registrar.report_health(&proxy, unhealthy).await });
    }

    pub fn nonce(&self) -> String {
        self.xds.nonce()
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        let shared = &self.xds.shared;
        shared.connections.remove(self.id);
        shared.metrics.connected.dec();
        tracing::info!(proxy = %self.proxy.id, stream = self.id, "proxy disconnected");
        if self.proxy.workload_group.is_some() {
            shared.registrar.disconnected(&self.proxy);
        }
    }
}

/// Waits until weftd stops (or forever if the stop signal is gone).
pub(super) async fn stopped(stop: &mut watch::Receiver<bool>) {
    if stop.wait_for(|s| *s).await.is_err() {
        std::future::pending::<()>().await;
    }
}
