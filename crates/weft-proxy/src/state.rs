//! The config snapshot the data path reads: swapped atomically as a whole, so a request
//! sees one consistent set of listeners, routes and clusters from start to end.

use crate::cluster::Upstream;
use crate::model::{Listener, RouteConfig};
use crate::stats::Stats;
use arc_swap::ArcSwap;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Arc;
use tokio::sync::watch;

/// The version last accepted per resource type (`version_info` of the ACKed response).
#[derive(Clone, Debug, Default, Serialize)]
pub struct Versions {
    pub lds: String,
    pub cds: String,
    pub rds: String,
    pub eds: String,
    pub sds: String,
}

/// Everything in force at one moment.
#[derive(Debug, Default)]
pub struct Snapshot {
    pub listeners: BTreeMap<String, Arc<Listener>>,
    pub routes: BTreeMap<String, Arc<RouteConfig>>,
    pub clusters: BTreeMap<String, Arc<Upstream>>,
    pub versions: Versions,
    /// True once an LDS response has been applied: `/ready` answers 200 from then on.
    pub lds_applied: bool,
    /// TLS termination of every filter chain with a `DownstreamTlsContext`, built with
    /// the secrets in force; a chain finds its own by its context.
    pub tls_servers: Vec<Arc<crate::listener::tls::Termination>>,
    /// The xDS resources in force as received (encoded), for the admin `/config_dump`.
    pub accepted: crate::xds::store::AcceptedResources,
    /// The workload identity, when the proxy has one: its certificate is the secret
    /// `default` of every snapshot built after this one.
    pub identity: Option<Arc<crate::identity::Identity>>,
}

/// Shared by the xDS client (writer), the listeners and the admin endpoint (readers).
#[derive(Debug)]
pub struct Proxy {
    pub snapshot: ArcSwap<Snapshot>,
    /// Bumped after each swap so that the listener manager re-reads the listeners.
    pub changed: watch::Sender<u64>,
    pub stats: Stats,
    /// Set by the admin `/drain`; listeners and connections watch it.
    pub drain: crate::admin::drain::Drain,
    /// Istio's metrics and the access log.
    pub telemetry: Arc<crate::telemetry::Telemetry>,
}

impl Proxy {
    pub fn new() -> Arc<Proxy> {
        Arc::new(Proxy {
            snapshot: ArcSwap::from_pointee(Snapshot::default()),
            changed: watch::channel(0).0,
            stats: Stats::default(),
            drain: Default::default(),
            telemetry: Arc::default(),
        })
    }

    /// Gives the proxy its workload identity. Called once at start, before the xDS client
    /// publishes anything: later snapshots carry it over from this one.
    pub fn set_identity(&self, identity: Arc<crate::identity::Identity>) {
        self.publish(Snapshot {
            identity: Some(identity),
            ..Snapshot::default()
        });
    }

    /// Puts `next` in force; requests already running keep the snapshot they loaded.
    pub fn publish(&self, next: Snapshot) {
        self.snapshot.store(Arc::new(next));
        self.changed.send_modify(|g| *g += 1);
    }
}
