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
    /// The proxy's own part, as generated and as encoded (its view's part is shared).
    own: Generated,
    own_typed: Typed,
    /// Everything the proxy should hold: its view's resources and its own.
    pub typed: Typed,
    /// When the change behind the latest regeneration happened.
    changed_at: Option<std::time::Instant>,
    /// Certificate rotations, for a proxy that may hold a certificate weftd issued.
    pub rotations: Option<watch::Receiver<u64>>,
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
        let translated = shared.translation.translate(&published.snapshot, &proxy);
        let own_typed = resources::encode(None, &translated.own);
        let typed = combined(translated.view.as_deref(), &own_typed);
        let rotations = proxy
            .bootstrap_token
            .as_ref()
            .and_then(|_| shared.secret_rotations.get().cloned())
            .map(|mut r| {
                r.borrow_and_update();
                r
            });
        Ok(Connection {
            id,
            stop: shared.stop.clone(),
            xds,
            proxy,
            snapshots,
            own: translated.own,
            own_typed,
            typed,
            changed_at: None,
            rotations,
        })
    }

    /// [`Self::regenerate`] after a certificate rotation. A rotation is no config change,
    /// so it adds no convergence time to the metrics.
    pub fn regenerate_for_rotation(&mut self) -> bool {
        let pending = self.changed_at;
        let changed = self.regenerate();
        self.changed_at = pending;
        changed
    }

    /// Regenerates from the latest snapshot; false when nothing changed for this proxy.
    pub fn regenerate(&mut self) -> bool {
        let published = self.snapshots.borrow_and_update().clone();
        let translated = self
            .xds
            .shared
            .translation
            .translate(&published.snapshot, &self.proxy);
        if translated.own != self.own {
            self.own_typed = resources::encode(Some((&self.own, &self.own_typed)), &translated.own);
            self.own = translated.own;
        }
        let typed = combined(translated.view.as_deref(), &self.own_typed);
        // Equal versions mean equal content: taking the new maps only lets go of the
        // previous snapshot's views.
        let changed = !typed.same_versions(&self.typed);
        self.typed = typed;
        if changed {
            self.changed_at = Some(published.changed_at);
        }
        changed
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

/// The view's shared resources with the proxy's own on top.
fn combined(view: Option<&super::views::View>, own: &Typed) -> Typed {
    match view {
        Some(view) => Typed::merge(&view.typed, own),
        None => own.clone(),
    }
}

/// Waits until weftd renews certificates (forever for a proxy that holds none).
pub(super) async fn rotated(rotations: &mut Option<watch::Receiver<u64>>) {
    let Some(r) = rotations else {
        return std::future::pending().await;
    };
    if r.changed().await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Waits until weftd stops (or forever if the stop signal is gone).
pub(super) async fn stopped(stop: &mut watch::Receiver<bool>) {
    if stop.wait_for(|s| *s).await.is_err() {
        std::future::pending::<()>().await;
    }
}
