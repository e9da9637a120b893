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
pub mod views;

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

/// Turns a snapshot into one proxy's whole configuration: tests inject their own to
/// exercise the ADS mechanics alone.
pub type Generator = Arc<dyn Fn(&MeshSnapshot, &Proxy) -> Generated + Send + Sync>;

/// Adds to a proxy's own part what translation cannot know (weftd's CA secrets); the part
/// may come with a shared outbound part, whose SDS references it lists
/// ([`Generated::referenced_secrets`]).
pub type LocalHook = Arc<dyn Fn(&MeshSnapshot, &Proxy, &mut Generated) + Send + Sync>;

/// How a stream gets its proxy's resources.
enum Translation {
    /// A generator's whole configuration per proxy.
    Whole(Generator),
    /// weftd's translation: the outbound part shared per view, the rest per proxy.
    Shared {
        views: views::ViewCache,
        hook: Option<LocalHook>,
    },
}

/// One proxy's resources at one snapshot: its view's shared part, if any, and its own.
pub(crate) struct Translated {
    pub view: Option<Arc<views::View>>,
    pub own: Generated,
}

impl Translation {
    fn translate(&self, snapshot: &MeshSnapshot, proxy: &Proxy) -> Translated {
        match self {
            Translation::Whole(generate) => Translated {
                view: None,
                own: generate(snapshot, proxy),
            },
            Translation::Shared { views, hook } => {
                let view = views.get(snapshot, proxy);
                let mut own = match &view {
                    Some(view) => translate::local(snapshot, proxy, &view.outbound),
                    None => translate::generate(snapshot, proxy),
                };
                if let Some(hook) = hook {
                    hook(snapshot, proxy, &mut own);
                }
                Translated { view, own }
            }
        }
    }
}

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
    translation: Translation,
    connections: Connections,
    metrics: Metrics,
    registrar: Arc<AutoRegistrar>,
    /// Turns true when weftd stops; open streams end so the server can drain.
    stop: watch::Receiver<bool>,
    next_id: AtomicU64,
    next_nonce: AtomicU64,
    /// See [`Xds::regenerate_on_secret_rotation`].
    secret_rotations: std::sync::OnceLock<watch::Receiver<u64>>,
}

impl Xds {
    /// An ADS server over published snapshots, translating with [`translate`]: what
    /// [`translate::generate`] returns, with the outbound side shared between proxies.
    pub fn new(
        snapshots: watch::Receiver<Arc<Published>>,
        store: Arc<dyn Store>,
        config: XdsConfig,
        stop: watch::Receiver<bool>,
    ) -> Xds {
        Self::build(
            snapshots,
            store,
            config,
            stop,
            Translation::Shared {
                views: views::ViewCache::default(),
                hook: None,
            },
        )
    }

    /// [`Xds::new`], with `hook` completing each proxy's own part.
    pub fn with_local_hook(
        snapshots: watch::Receiver<Arc<Published>>,
        store: Arc<dyn Store>,
        config: XdsConfig,
        stop: watch::Receiver<bool>,
        hook: LocalHook,
    ) -> Xds {
        Self::build(
            snapshots,
            store,
            config,
            stop,
            Translation::Shared {
                views: views::ViewCache::default(),
                hook: Some(hook),
            },
        )
    }

    /// An ADS server whose proxies get what `generator` returns.
    pub fn with_generator(
        snapshots: watch::Receiver<Arc<Published>>,
        store: Arc<dyn Store>,
        config: XdsConfig,
        stop: watch::Receiver<bool>,
        generator: Generator,
    ) -> Xds {
        Self::build(
            snapshots,
            store,
            config,
            stop,
            Translation::Whole(generator),
        )
    }

    fn build(
        snapshots: watch::Receiver<Arc<Published>>,
        store: Arc<dyn Store>,
        config: XdsConfig,
        stop: watch::Receiver<bool>,
        translation: Translation,
    ) -> Xds {
        Xds {
            shared: Arc::new(Shared {
                snapshots,
                translation,
                connections: Connections::default(),
                metrics: Metrics::default(),
                registrar: Arc::new(AutoRegistrar::new(store, config.auto_register_grace)),
                stop,
                next_id: AtomicU64::new(1),
                next_nonce: AtomicU64::new(1),
                secret_rotations: std::sync::OnceLock::new(),
            }),
        }
    }

    /// Streams of proxies whose ADS stream carries a bootstrap token (weftd issues their
    /// `default` certificate) regenerate whenever `rotations` changes: weftd renewed
    /// certificates without any config change. Set once, before proxies connect.
    pub fn regenerate_on_secret_rotation(&self, rotations: watch::Receiver<u64>) {
        let _ = self.shared.secret_rotations.set(rotations);
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
