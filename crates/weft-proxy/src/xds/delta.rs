//! The incremental ADS client (`DeltaAggregatedResources`, bootstrap `api_type: DELTA_GRPC`).
//!
//! CDS and LDS are wildcard subscriptions; EDS, SDS and RDS subscribe and unsubscribe name
//! by name as clusters and listeners come and go (SDS: the secrets their TLS contexts
//! name). Each response carries only what changed plus the names removed; it is merged
//! into what was accepted before and applied through the same [`Store`] as
//! state-of-the-world, then ACKed, or NACKed with the reason. On reconnect the versions held
//! are sent as `initial_resource_versions`, so the server resends only what changed while
//! the stream was down; the last good config stays in force meanwhile.

use super::session::{connect, nack, update_stats, Backoff, SessionError};
use super::store::{Assignments, Change, Clusters, Incoming, Listeners, Routes, Secrets, Store};
use super::{CDS, EDS, LDS, RDS, SDS};
use crate::bootstrap::Settings;
use crate::state::Proxy;
use crate::stats::inc;
use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse,
};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

/// The order Envoy subscribes in: a cluster before its endpoints and secrets, a listener
/// before its routes.
const TYPES: [&str; 5] = [CDS, EDS, SDS, LDS, RDS];

/// What the client holds; it outlives streams.
#[derive(Debug, Default)]
pub struct Delta {
    /// The accepted resources, with the version each came with (what
    /// `initial_resource_versions` reports on a new stream).
    store: Store,
    /// Per named type (EDS, SDS, RDS): the names subscribed to on the current stream.
    subscribed: BTreeMap<&'static str, BTreeSet<String>>,
}

fn is_wildcard(type_url: &str) -> bool {
    type_url == CDS || type_url == LDS
}

/// The named types whose subscriptions follow `type_url`'s resources: clusters name
/// endpoints and secrets, listeners route configurations and secrets.
fn dependents(type_url: &str) -> &'static [&'static str] {
    match type_url {
        CDS => &[EDS, SDS],
        LDS => &[RDS, SDS],
        _ => &[],
    }
}

impl Delta {
    /// Names of `type_url` the accepted clusters/listeners reference.
    fn wanted(&self, type_url: &str) -> BTreeSet<String> {
        match type_url {
            EDS => self.store.eds_names(),
            RDS => self.store.rds_names(),
            SDS => self.store.sds_names(),
            _ => BTreeSet::new(),
        }
    }

    fn versions(&self, type_url: &str) -> std::collections::HashMap<String, String> {
        let a = &self.store.accepted;
        let held = match type_url {
            CDS => &a.clusters,
            LDS => &a.listeners,
            RDS => &a.routes,
            SDS => &a.secrets,
            _ => &a.assignments,
        };
        held.iter()
            .map(|(name, h)| (name.clone(), h.version.clone()))
            .collect()
    }

    /// The first request of each type on a new stream: wildcard CDS/LDS, the referenced
    /// EDS/SDS/RDS names, and every version already held.
    pub fn initial_requests(&mut self, node: Node) -> Vec<DeltaDiscoveryRequest> {
        let mut node = Some(node);
        let mut out = Vec::new();
        for type_url in TYPES {
            let subscribe = if is_wildcard(type_url) {
                vec!["*".to_string()]
            } else {
                let names = self.wanted(type_url);
                self.subscribed.insert(type_url, names.clone());
                if names.is_empty() {
                    continue;
                }
                names.into_iter().collect()
            };
            out.push(DeltaDiscoveryRequest {
                node: node.take(),
                type_url: type_url.to_string(),
                resource_names_subscribe: subscribe,
                initial_resource_versions: self.versions(type_url),
                ..Default::default()
            });
        }
        out
    }

    /// Applies one response; returns its ACK or NACK, then any subscription change it
    /// causes.
    pub fn on_response(
        &mut self,
        proxy: &Proxy,
        resp: DeltaDiscoveryResponse,
    ) -> Vec<DeltaDiscoveryRequest> {
        let Some(type_url) = TYPES.into_iter().find(|t| *t == resp.type_url) else {
            tracing::warn!(type_url = %resp.type_url, "ignoring a response of a type never asked for");
            return Vec::new();
        };
        let stats = update_stats(proxy, type_url);
        let mut removed: Vec<String> = resp.removed_resources.clone();
        let mut updated = Vec::new();
        for r in &resp.resources {
            match &r.resource {
                Some(resource) => updated.push(Incoming {
                    resource,
                    version: &r.version,
                }),
                // A name without a body: the server has none by that name.
                None => removed.push(r.name.clone()),
            }
        }
        // Every type merges name by name; what a dropped cluster or listener referenced
        // (endpoints, routes, secrets) goes with it when the store prunes.
        let version = resp.system_version_info.as_str();
        let change = Change::Update {
            resources: &updated,
            removed: &removed,
        };
        let result = match type_url {
            CDS => self.store.apply_kind::<Clusters>(version, change),
            LDS => self.store.apply_kind::<Listeners>(version, change),
            EDS => self.store.apply_kind::<Assignments>(version, change),
            RDS => self.store.apply_kind::<Routes>(version, change),
            _ => self.store.apply_kind::<Secrets>(version, change),
        };
        let mut out = Vec::new();
        match result {
            Ok(()) => {
                inc(&stats.update_success);
                tracing::info!(
                    type_url,
                    version = %resp.system_version_info,
                    updated = updated.len(),
                    removed = removed.len(),
                    "applied (delta)"
                );
                proxy.publish(self.store.snapshot(&proxy.snapshot.load(), &proxy.stats));
                out.push(DeltaDiscoveryRequest {
                    type_url: type_url.to_string(),
                    response_nonce: resp.nonce,
                    ..Default::default()
                });
            }
            Err(errors) => {
                inc(&stats.update_rejected);
                let status = nack(&errors);
                let message = &status.message;
                tracing::warn!(type_url, version = %resp.system_version_info, %message, "rejected (delta NACK)");
                out.push(DeltaDiscoveryRequest {
                    type_url: type_url.to_string(),
                    response_nonce: resp.nonce,
                    error_detail: Some(status),
                    ..Default::default()
                });
            }
        }
        for dep in dependents(type_url) {
            out.extend(self.follow(dep));
        }
        out
    }

    /// Subscribes to the names of `type_url` now referenced and unsubscribes from those no
    /// longer referenced (the store has already forgotten those, as Envoy does).
    fn follow(&mut self, type_url: &'static str) -> Option<DeltaDiscoveryRequest> {
        let wanted = self.wanted(type_url);
        let current = self.subscribed.entry(type_url).or_default();
        let subscribe: Vec<String> = wanted.difference(current).cloned().collect();
        let unsubscribe: Vec<String> = current.difference(&wanted).cloned().collect();
        if subscribe.is_empty() && unsubscribe.is_empty() {
            return None;
        }
        *current = wanted;
        Some(DeltaDiscoveryRequest {
            type_url: type_url.to_string(),
            resource_names_subscribe: subscribe,
            resource_names_unsubscribe: unsubscribe,
            ..Default::default()
        })
    }
}

/// Runs the delta ADS client forever, reconnecting with jittered exponential backoff.
pub async fn run(proxy: Arc<Proxy>, settings: Arc<Settings>) {
    let mut delta = Delta::default();
    let mut backoff = Backoff::default();
    loop {
        let mut got_response = false;
        let ended = session(&proxy, &settings, &mut delta, &mut got_response).await;
        backoff.after("delta ADS", ended, got_response).await;
    }
}

async fn session(
    proxy: &Proxy,
    settings: &Settings,
    delta: &mut Delta,
    got_response: &mut bool,
) -> Result<(), SessionError> {
    let mut client = connect(settings).await?;
    let (tx, rx) = mpsc::channel::<DeltaDiscoveryRequest>(16);
    for req in delta.initial_requests(super::client::node(settings)) {
        tx.send(req).await.map_err(|_| SessionError::Closed)?;
    }
    let mut stream = client
        .delta_aggregated_resources(ReceiverStream::new(rx))
        .await?
        .into_inner();
    tracing::info!(xds = %settings.xds, "delta ADS stream open");
    while let Some(resp) = stream.message().await? {
        *got_response = true;
        for req in delta.on_response(proxy, resp) {
            tx.send(req).await.map_err(|_| SessionError::Closed)?;
        }
    }
    Ok(())
}

#[cfg(test)]
#[path = "delta_tests.rs"]
mod tests;
