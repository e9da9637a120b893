//! Incremental ADS (`DeltaAggregatedResources`): only changed resources are sent, removed
//! ones are named in `removed_resources`; subscriptions change name by name.

use super::autoregister::HEALTH_TYPE;
use super::connection::{rotated, stopped, Connection};
use super::resources::{Resources, XdsType, TYPES};
use envoy_types::pb::envoy::config::core::v3::ControlPlane;
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, Resource,
};
use std::collections::{BTreeMap, BTreeSet};
use tokio::sync::mpsc;
use tonic::{Status, Streaming};

/// One type's subscription and what the proxy holds of it.
#[derive(Debug, Default)]
struct Watch {
    wildcard: bool,
    names: BTreeSet<String>,
    /// Name -> version the proxy has (from initial_resource_versions and our responses).
    has: BTreeMap<String, String>,
    /// Responses not yet answered: nonce -> system version.
    pending: BTreeMap<String, String>,
    version: u64,
}

impl Watch {
    fn wants(&self, name: &str) -> bool {
        self.wildcard || self.names.contains(name)
    }
}

type Outbound = mpsc::Sender<Result<DeltaDiscoveryResponse, Status>>;

/// Serves one stream until the proxy goes away or weftd stops.
pub(super) async fn run(
    mut conn: Connection,
    first: DeltaDiscoveryRequest,
    mut inbound: Streaming<DeltaDiscoveryRequest>,
    tx: Outbound,
) -> Result<(), Status> {
    let mut watches: [Option<Watch>; TYPES] = Default::default();
    let mut stop = conn.stop.clone();
    on_request(&mut conn, &mut watches, first, &tx).await?;
    loop {
        tokio::select! {
            request = inbound.message() => match request {
                Ok(Some(request)) => on_request(&mut conn, &mut watches, request, &tx).await?,
                Ok(None) => return Ok(()),
                Err(status) => {
                    tracing::debug!(proxy = %conn.proxy.id, %status, "stream ended");
                    return Ok(());
                }
            },
            changed = conn.snapshots.changed() => {
                if changed.is_err() {
                    return Ok(());
                }
                if conn.regenerate() {
                    push_changes(&mut conn, &mut watches, &tx).await?;
                }
            }
            () = rotated(&mut conn.rotations) => {
                if conn.regenerate_for_rotation() {
                    push_changes(&mut conn, &mut watches, &tx).await?;
                }
            }
            _ = stopped(&mut stop) => return Ok(()),
        }
    }
}

async fn on_request(
    conn: &mut Connection,
    watches: &mut [Option<Watch>; TYPES],
    request: DeltaDiscoveryRequest,
    tx: &Outbound,
) -> Result<(), Status> {
    if request.type_url == HEALTH_TYPE {
        conn.health(request.error_detail.as_ref());
        return Ok(());
    }
    let Some(t) = XdsType::from_url(&request.type_url) else {
        tracing::debug!(proxy = %conn.proxy.id, type_url = %request.type_url, "request for a type weftd does not serve");
        return Ok(());
    };
    let first = watches[t.index()].is_none();
    let watch = watches[t.index()].get_or_insert_with(|| Watch {
        // Legacy wildcard: a first request naming nothing subscribes to everything.
        wildcard: t.is_wildcard() && request.resource_names_subscribe.is_empty(),
        has: request
            .initial_resource_versions
            .clone()
            .into_iter()
            .collect(),
        ..Watch::default()
    });
    if !request.response_nonce.is_empty() {
        match watch.pending.remove(&request.response_nonce) {
            Some(version) => {
                conn.acknowledged(t, &version, request.error_detail.as_ref());
                // Older unanswered responses are superseded by this answer.
                let nonce = request.response_nonce.parse::<u64>().unwrap_or(0);
                watch
                    .pending
                    .retain(|n, _| n.parse::<u64>().unwrap_or(0) > nonce);
            }
            None => {
                tracing::debug!(proxy = %conn.proxy.id, r#type = t.short(), "unknown nonce ignored")
            }
        }
    }
    let mut subscribed = false;
    for name in &request.resource_names_subscribe {
        if name == "*" {
            subscribed |= !watch.wildcard;
            watch.wildcard = true;
        } else {
            subscribed |= watch.names.insert(name.clone());
        }
    }
    for name in &request.resource_names_unsubscribe {
        if name == "*" {
            watch.wildcard = false;
        } else {
            watch.names.remove(name);
        }
        // The proxy drops what it unsubscribed from; nothing to remove on its behalf.
        if !watch.wants(name) {
            watch.has.remove(name);
        }
    }
    let unwatched = !watch.wildcard && watch.names.is_empty();
    if unwatched && !request.resource_names_unsubscribe.is_empty() {
        // The proxy watches nothing of this type any more; it does not answer responses
        // for a type it no longer watches, so none is pending.
        watch.pending.clear();
        conn.unsubscribed(t);
        return Ok(());
    }
    if first || subscribed {
        // Answer even an empty diff on the first request, so the initial fetch completes.
        push(conn, t, watch, &BTreeSet::new(), first, tx).await?;
    }
    Ok(())
}

/// After a regeneration, in CDS, EDS, SDS, LDS, RDS order, send what changed for every type.
async fn push_changes(
    conn: &mut Connection,
    watches: &mut [Option<Watch>; TYPES],
    tx: &Outbound,
) -> Result<(), Status> {
    let mut modified_clusters = BTreeSet::new();
    for t in XdsType::ALL {
        let Some(watch) = watches[t.index()].as_mut() else {
            continue;
        };
        let forced = if t == XdsType::Endpoint {
            std::mem::take(&mut modified_clusters)
        } else {
            BTreeSet::new()
        };
        if t == XdsType::Cluster {
            // Envoy warms a replaced cluster only once it has its endpoints again.
            modified_clusters = conn
                .typed
                .of(t)
                .iter()
                .filter(|(n, e)| watch.has.get(*n).is_some_and(|v| *v != e.version))
                .map(|(n, _)| n.clone())
                .collect();
        }
        push(conn, t, watch, &forced, false, tx).await?;
    }
    conn.push_done();
    Ok(())
}

/// Sends the difference between what the proxy has and what it should have, if any.
async fn push(
    conn: &mut Connection,
    t: XdsType,
    watch: &mut Watch,
    forced: &BTreeSet<String>,
    always: bool,
    tx: &Outbound,
) -> Result<(), Status> {
    let all = conn.typed.of(t);
    let resources: Vec<Resource> = all
        .iter()
        .filter(|(name, e)| {
            watch.wants(name)
                && (watch.has.get(*name) != Some(&e.version) || forced.contains(*name))
        })
        .map(|(name, e)| Resource {
            name: name.clone(),
            version: e.version.clone(),
            resource: Some(e.any.clone()),
            ..Resource::default()
        })
        .collect();
    let removed: Vec<String> = watch
        .has
        .keys()
        .filter(|name| !all.contains_key(*name))
        .cloned()
        .collect();
    let unwatched = !watch.wildcard && watch.names.is_empty();
    if (resources.is_empty() && removed.is_empty() || unwatched) && !always {
        return Ok(());
    }
    for r in &resources {
        watch.has.insert(r.name.clone(), r.version.clone());
    }
    for name in &removed {
        watch.has.remove(name);
    }
    watch.version += 1;
    let version = watch.version.to_string();
    let nonce = conn.nonce();
    watch.pending.insert(nonce.clone(), version.clone());
    let holds: Resources = watch
        .has
        .keys()
        .filter_map(|n| Some((n.clone(), all.get(n)?.clone())))
        .collect();
    let response = DeltaDiscoveryResponse {
        system_version_info: version.clone(),
        resources,
        type_url: t.url().to_string(),
        removed_resources: removed,
        nonce,
        control_plane: Some(ControlPlane {
            identifier: "weftd".to_string(),
        }),
        ..DeltaDiscoveryResponse::default()
    };
    tx.send(Ok(response))
        .await
        .map_err(|_| Status::cancelled("the proxy closed the stream"))?;
    conn.pushed(t, &version, holds);
    Ok(())
}
