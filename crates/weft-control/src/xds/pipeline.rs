//! From store changes to mesh snapshots: list, build, publish; then follow the store's
//! watch and rebuild once changes settle (debounced like istiod's PILOT_DEBOUNCE_AFTER/MAX).

use crate::mesh::MeshConfig;
use crate::model::MeshSnapshot;
use crate::store::{ListOptions, Store, StoreError};
use futures::StreamExt;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;
use weft_config::Resource;

/// A snapshot and when the change that led to it happened (for convergence time).
#[derive(Clone, Debug)]
pub struct Published {
    pub snapshot: MeshSnapshot,
    pub changed_at: std::time::Instant,
}

/// How long to wait for more changes before rebuilding.
#[derive(Clone, Copy, Debug)]
pub struct Debounce {
    /// Quiet time after the last change (PILOT_DEBOUNCE_AFTER).
    pub after: Duration,
    /// Longest delay after the first change of a burst (PILOT_DEBOUNCE_MAX).
    pub max: Duration,
}

/// Builds the first snapshot, then keeps publishing new ones until `stop` turns true.
pub async fn start(
    store: Arc<dyn Store>,
    mesh: Arc<MeshConfig>,
    debounce: Debounce,
    stop: watch::Receiver<bool>,
) -> Result<(watch::Receiver<Arc<Published>>, tokio::task::JoinHandle<()>), StoreError> {
    let first = build(store.as_ref(), &mesh).await?;
    let revision = first.snapshot.revision;
    let (tx, rx) = watch::channel(Arc::new(first));
    // A JWKS refresh that changes keys republishes the snapshot, so proxies get them.
    let jwks_tx = tx.clone();
    crate::translate::authn::jwks::spawn_refresher(
        crate::translate::authn::jwks::JwksResolver::global().clone(),
        stop.clone(),
        move || {
            jwks_tx.send_modify(|p| {
                *p = Arc::new(Published {
                    changed_at: std::time::Instant::now(),
                    ..(**p).clone()
                });
            });
        },
    );
    let task = tokio::spawn(follow(store, mesh, debounce, tx, revision, stop));
    Ok((rx, task))
}

/// Lists the store and builds a snapshot of every resource that parses.
async fn build(store: &dyn Store, mesh: &Arc<MeshConfig>) -> Result<Published, StoreError> {
    let listing = store.list(ListOptions::default()).await?;
    let resources: Vec<Resource> = listing
        .items
        .into_iter()
        .filter_map(|object| match weft_config::parse_value(0, object) {
            Ok(resource) => Some(resource),
            // Stored objects were validated on write; one that no longer parses (an older
            // weftd wrote it) must not keep the rest of the mesh from being served.
            Err(e) => {
                tracing::warn!(error = %e, "stored resource skipped in the mesh snapshot");
                None
            }
        })
        .collect();
    Ok(Published {
        snapshot: MeshSnapshot::build(listing.revision, resources).with_mesh(mesh.clone()),
        changed_at: std::time::Instant::now(),
    })
}

async fn follow(
    store: Arc<dyn Store>,
    mesh: Arc<MeshConfig>,
    debounce: Debounce,
    tx: watch::Sender<Arc<Published>>,
    mut revision: u64,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let mut events = match store.watch(Some(revision)).await {
            Ok(events) => events,
            Err(e) => {
                tracing::warn!(error = %e, "cannot watch the store; rebuilding from a fresh list");
                if !rebuild(
                    store.as_ref(),
                    &mesh,
                    &tx,
                    &mut revision,
                    std::time::Instant::now(),
                )
                .await
                    && wait_or_stop(&mut stop, Duration::from_secs(1)).await
                {
                    return;
                }
                continue;
            }
        };
        // One burst per iteration: wait for its first change, then for quiet.
        let first = tokio::select! {
            _ = stop.wait_for(|s| *s) => return,
            event = events.next() => event,
        };
        let first_at = std::time::Instant::now();
        let ended = !matches!(first, Some(Ok(_)));
        if !ended {
            let start = Instant::now();
            let mut last = start;
            loop {
                let deadline = (last + debounce.after).min(start + debounce.max);
                tokio::select! {
                    _ = stop.wait_for(|s| *s) => return,
                    _ = tokio::time::sleep_until(deadline) => break,
                    event = events.next() => match event {
                        Some(Ok(_)) => last = Instant::now(),
                        // Lagged or closed: a fresh list below covers what was missed.
                        _ => break,
                    },
                }
            }
        }
        if !rebuild(store.as_ref(), &mesh, &tx, &mut revision, first_at).await
            && wait_or_stop(&mut stop, Duration::from_secs(1)).await
        {
            return;
        }
    }
}

/// Lists and publishes if the revision moved; false when the store failed.
async fn rebuild(
    store: &dyn Store,
    mesh: &Arc<MeshConfig>,
    tx: &watch::Sender<Arc<Published>>,
    revision: &mut u64,
    changed_at: std::time::Instant,
) -> bool {
    match build(store, mesh).await {
        Ok(mut published) => {
            if published.snapshot.revision != *revision {
                *revision = published.snapshot.revision;
                published.changed_at = changed_at;
                tracing::debug!(revision = *revision, "mesh snapshot rebuilt");
                tx.send_replace(Arc::new(published));
            }
            true
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot list the store; keeping the last snapshot");
            false
        }
    }
}

/// Sleeps `pause`; true when weftd is stopping.
async fn wait_or_stop(stop: &mut watch::Receiver<bool>, pause: Duration) -> bool {
    tokio::select! {
        _ = stop.wait_for(|s| *s) => true,
        _ = tokio::time::sleep(pause) => false,
    }
}
