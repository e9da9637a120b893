//! State-of-the-world ADS (`StreamAggregatedResources`): every response carries the whole
//! set of a type (CDS/LDS). An EDS/RDS response answering a request carries the requested
//! names that exist; one pushed after a change carries only the resources that changed, as
//! the xDS protocol allows for non-wildcard types (the proxy keeps those it is not sent).

use super::autoregister::HEALTH_TYPE;
use super::connection::{rotated, stopped, Connection};
use super::resources::{Resources, XdsType, TYPES};
use envoy_types::pb::envoy::config::core::v3::ControlPlane;
use envoy_types::pb::envoy::service::discovery::v3::{DiscoveryRequest, DiscoveryResponse};
use std::collections::BTreeSet;
use tokio::sync::mpsc;
use tonic::{Status, Streaming};

/// What the proxy asked for of one type, and the last response.
#[derive(Debug, Default)]
struct Watch {
    wildcard: bool,
    names: BTreeSet<String>,
    /// Nonce of the last response: requests carrying an older one are stale.
    nonce: String,
    /// The proxy already ACKed or NACKed the last response: a further request carrying
    /// its nonce is a new request (see [`on_request`]).
    answered: bool,
    /// Version counter of this type on this stream.
    version: u64,
    /// What the last response held (name -> version), to push only real changes.
    sent: Vec<(String, String)>,
}

type Outbound = mpsc::Sender<Result<DiscoveryResponse, Status>>;

/// Serves one stream until the proxy goes away or weftd stops.
pub(super) async fn run(
    mut conn: Connection,
    first: DiscoveryRequest,
    mut inbound: Streaming<DiscoveryRequest>,
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
    request: DiscoveryRequest,
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
    let (wildcard, names) = subscription(t, &request.resource_names);
    // No names of a non-wildcard type: the proxy watches nothing of it any more (its last
    // EDS cluster or SDS-using listener is gone). Envoy neither ACKs nor re-requests after
    // this, so it is honoured even with a stale nonce, and never answered.
    let unsubscribe_all = !wildcard && names.is_empty();
    let watch = watches[t.index()].get_or_insert_with(Watch::default);
    if !request.response_nonce.is_empty() {
        if request.response_nonce != watch.nonce {
            if !unsubscribe_all {
                // Answers a response that a newer one has replaced; the proxy will answer
                // the newer one too.
                tracing::debug!(proxy = %conn.proxy.id, r#type = t.short(), "stale nonce ignored");
                return Ok(());
            }
        } else if !watch.answered {
            watch.answered = true;
            conn.acknowledged(t, &request.version_info, request.error_detail.as_ref());
            let unchanged = wildcard == watch.wildcard && names == watch.names;
            if request.error_detail.is_some() || (unchanged && !unsubscribe_all) {
                return Ok(());
            }
        } else {
            // The response was ACKed already, so this is no ACK: Envoy sends the current
            // nonce and names again when a new subscription of this type starts on names
            // it already watches (e.g. a listener's SDS config for `default` differs from
            // the clusters' one). That subscription has nothing until it gets a response.
            tracing::debug!(proxy = %conn.proxy.id, r#type = t.short(), "request after the ACK answered again");
        }
    }
    if unsubscribe_all {
        watch.wildcard = false;
        watch.names.clear();
        watch.sent.clear();
        conn.unsubscribed(t);
        return Ok(());
    }
    // A first request, a re-request after reconnecting, or new names alongside an ACK:
    // always answered, so the proxy's initial fetch completes even when the set is empty.
    watch.wildcard = wildcard;
    watch.names = names;
    push(conn, t, watch, tx).await
}

/// An empty name list (or `*`) subscribes to every resource of a wildcard type.
fn subscription(t: XdsType, names: &[String]) -> (bool, BTreeSet<String>) {
    let wildcard = t.is_wildcard() && (names.is_empty() || names.iter().any(|n| n == "*"));
    let names = names.iter().filter(|n| *n != "*").cloned().collect();
    (wildcard, names)
}

/// Unsubscribed from every name of a non-wildcard type: nothing is sent to it.
fn unwatched(watch: &Watch) -> bool {
    !watch.wildcard && watch.names.is_empty()
}

/// What a response of this type holds right now.
fn selection(conn: &Connection, t: XdsType, watch: &Watch) -> Resources {
    let all = conn.typed.of(t);
    if watch.wildcard {
        all.clone()
    } else {
        watch
            .names
            .iter()
            .filter_map(|n| Some((n.clone(), all.get(n)?.clone())))
            .collect()
    }
}

fn versions(resources: &Resources) -> Vec<(String, String)> {
    resources
        .iter()
        .map(|(n, e)| (n.clone(), e.version.clone()))
        .collect()
}

/// After a regeneration: in CDS, EDS, SDS, LDS, RDS order, push every watched type whose
/// selection changed. A modified cluster also gets its endpoints again, since Envoy
/// warms a replaced cluster only once it has its endpoints.
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
        if (watch.nonce.is_empty() && watch.version == 0) || unwatched(watch) {
            continue;
        }
        let now = versions(&selection(conn, t, watch));
        let forced =
            t == XdsType::Endpoint && now.iter().any(|(n, _)| modified_clusters.contains(n));
        if now == watch.sent && !forced {
            continue;
        }
        if matches!(t, XdsType::Endpoint | XdsType::Route) {
            // Only what changed: one workload joining a service sends every proxy that
            // service's assignment, not all ~60 it subscribes to.
            let before: BTreeSet<_> = watch.sent.iter().collect();
            let changed: BTreeSet<String> = now
                .iter()
                .filter(|e| !before.contains(e) || modified_clusters.contains(&e.0))
                .map(|(n, _)| n.clone())
                .collect();
            if changed.is_empty() {
                // Only names that are gone: the proxy drops them with their cluster or
                // listener; there is nothing to send.
                watch.sent = now;
                continue;
            }
            push_only(conn, t, watch, tx, Some(&changed)).await?;
            continue;
        }
        if t == XdsType::Cluster {
            let before: std::collections::BTreeMap<_, _> = watch.sent.iter().cloned().collect();
            modified_clusters = now
                .iter()
                .filter(|(n, v)| before.get(n).is_some_and(|old| old != v))
                .map(|(n, _)| n.clone())
                .collect();
        }
        push(conn, t, watch, tx).await?;
    }
    conn.push_done();
    Ok(())
}

/// Sends the whole selection of `t`.
async fn push(
    conn: &mut Connection,
    t: XdsType,
    watch: &mut Watch,
    tx: &Outbound,
) -> Result<(), Status> {
    push_only(conn, t, watch, tx, None).await
}

/// Sends the selection of `t`, or of it only the names in `only`; either way the proxy
/// holds the whole selection afterwards.
async fn push_only(
    conn: &mut Connection,
    t: XdsType,
    watch: &mut Watch,
    tx: &Outbound,
    only: Option<&BTreeSet<String>>,
) -> Result<(), Status> {
    let holds = selection(conn, t, watch);
    watch.version += 1;
    watch.nonce = conn.nonce();
    watch.answered = false;
    watch.sent = versions(&holds);
    let version = watch.version.to_string();
    let response = DiscoveryResponse {
        version_info: version.clone(),
        resources: holds
            .iter()
            .filter(|(n, _)| only.is_none_or(|only| only.contains(*n)))
            .map(|(_, e)| e.any.clone())
            .collect(),
        type_url: t.url().to_string(),
        nonce: watch.nonce.clone(),
        control_plane: Some(ControlPlane {
            identifier: "weftd".to_string(),
        }),
        ..DiscoveryResponse::default()
    };
    tx.send(Ok(response))
        .await
        .map_err(|_| Status::cancelled("the proxy closed the stream"))?;
    conn.pushed(t, &version, holds);
    Ok(())
}
