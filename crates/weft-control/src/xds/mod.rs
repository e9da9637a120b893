//! The ADS server: one gRPC stream per proxy, state-of-the-world and delta, fed by debounced
//! mesh snapshots; plus what the debug API reads (sync status, config dump, metrics).

mod ads;
pub mod autoregister;
mod connection;
mod delta;
pub mod dump;
pub mod metrics;
pub mod pipeline;
pub mod resources;
mod sotw;
pub mod status;

use crate::model::{MeshSnapshot, Proxy};
use crate::store::Store;
use crate::translate::{self, Generated};
use autoregister::AutoRegistrar;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_server::AggregatedDiscoveryServiceServer;
use metrics::Metrics;
use pipeline::{Debounce, Published};
use serde_json::Value;
use status::Connections;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Tunables of the xDS server.
#[derive(Clone, Copy, Debug)]
pub struct XdsConfig {
    pub debounce: Debounce,
    /// How long an auto-registered WorkloadEntry outlives its proxy's last stream; a
    /// reconnect within it keeps the entry (and its endpoints) in place.
    pub auto_register_grace: Duration,
}

impl Default for XdsConfig {
    fn default() -> Self {
        XdsConfig {
            debounce: Debounce {
                after: Duration::from_millis(100),
                max: Duration::from_secs(1),
            },
            auto_register_grace: Duration::from_secs(10),
        }
    }
}

/// Turns a snapshot into one proxy's resources: [`translate::generate`] in weftd; tests
/// inject their own to exercise the ADS mechanics alone.
pub type Generator = Arc<dyn Fn(&MeshSnapshot, &Proxy) -> Generated + Send + Sync>;

/// The ADS service and the state the debug API reads; cheap to clone.
#[derive(Clone)]
pub struct Xds {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Xds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Xds").finish_non_exhaustive()
    }
}

struct Shared {
    snapshots: watch::Receiver<Arc<Published>>,
    generator: Generator,
    connections: Connections,
    metrics: Metrics,
    registrar: Arc<AutoRegistrar>,
    /// Turns true when weftd stops; open streams end so the server can drain.
    stop: watch::Receiver<bool>,
    next_id: AtomicU64,
    next_nonce: AtomicU64,
}

impl Xds {
    /// An ADS server over published snapshots, generating with [`translate::generate`].
    pub fn new(
        snapshots: watch::Receiver<Arc<Published>>,
        store: Arc<dyn Store>,
        config: XdsConfig,
        stop: watch::Receiver<bool>,
    ) -> Xds {
        Self::with_generator(
            snapshots,
            store,
            config,
            stop,
            Arc::new(translate::generate),
        )
    }

    pub fn with_generator(
        snapshots: watch::Receiver<Arc<Published>>,
        store: Arc<dyn Store>,
        config: XdsConfig,
        stop: watch::Receiver<bool>,
        generator: Generator,
    ) -> Xds {
        Xds {
            shared: Arc::new(Shared {
                snapshots,
                generator,
                connections: Connections::default(),
                metrics: Metrics::default(),
                registrar: Arc::new(AutoRegistrar::new(store, config.auto_register_grace)),
                stop,
                next_id: AtomicU64::new(1),
                next_nonce: AtomicU64::new(1),
            }),
        }
    }

    /// The tonic service to mount on a gRPC server.
    pub fn service(&self) -> AggregatedDiscoveryServiceServer<Xds> {
        AggregatedDiscoveryServiceServer::new(self.clone())
            // Large meshes produce large CDS/LDS responses; tonic's 4 MiB default is too
            // small for them and Envoy itself accepts far more.
            .max_encoding_message_size(usize::MAX)
    }

    /// Schedules removal of auto-registered entries left by a previous run whose proxies
    /// do not come back within the grace period.
    pub async fn adopt_orphans(&self) {
        self.shared.registrar.adopt_orphans().await;
    }

    /// `/debug/proxies`: every open stream with its sync status.
    pub fn proxies(&self) -> Vec<Value> {
        self.shared
            .connections
            .all()
            .iter()
            .map(status::ConnectionStatus::to_json)
            .collect()
    }

    /// `/debug/config_dump`: what weftd last sent to the proxy with this node id.
    pub fn config_dump(&self, proxy_id: &str) -> Option<Value> {
        self.shared
            .connections
            .find(proxy_id)
            .map(|c| dump::config_dump(&c))
    }

    /// `/metrics`: Prometheus text.
    pub fn metrics_text(&self) -> String {
        self.shared.metrics.encode()
    }

    fn nonce(&self) -> String {
        self.shared
            .next_nonce
            .fetch_add(1, Ordering::Relaxed)
            .to_string()
    }
}
