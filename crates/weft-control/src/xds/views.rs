//! The outbound configuration shared by every transparent sidecar with the same view
//! ([`crate::translate::view`]): translated and encoded once per snapshot and view, then
//! handed to each of those proxies' streams as the same `Arc`ed resources.

use super::resources::{self, Typed};
use crate::mesh::MeshConfig;
use crate::model::{MeshSnapshot, Proxy};
use crate::registry::Registry;
use crate::translate::view::{SelectorKeys, ViewKey};
use crate::translate::{self, Outbound};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use weft_config::Resource;

/// One view's outbound part: the messages (to tell real changes from re-encodings at the
/// next snapshot) and their encoded form, which every stream of the view points at.
#[derive(Debug)]
pub struct View {
    pub outbound: Outbound,
    pub typed: Typed,
}

impl View {
    /// Translates and encodes; resources equal to the previous snapshot's keep their
    /// encoding and version, so proxies are not sent what did not change.
    fn build(snapshot: &MeshSnapshot, proxy: &Proxy, previous: Option<&View>) -> View {
        let outbound = translate::outbound(snapshot, proxy);
        let typed = resources::encode(
            previous.map(|p| (&p.outbound.generated, &p.typed)),
            &outbound.generated,
        );
        View { outbound, typed }
    }
}

type Slot = Arc<OnceLock<Arc<View>>>;

/// The parts of a snapshot translation reads.
type SnapshotParts = (Arc<Vec<Resource>>, Arc<Registry>, Arc<MeshConfig>);

/// Views of the current snapshot, built on first use; plus the last view built for each
/// key, which the next snapshot's view compares against.
#[derive(Default)]
pub struct ViewCache {
    inner: Mutex<Generation>,
}

impl std::fmt::Debug for ViewCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ViewCache").finish_non_exhaustive()
    }
}

#[derive(Default)]
struct Generation {
    /// The snapshot the views are for: its parts are held, so that a pointer can never be
    /// reused by a later snapshot while it is compared.
    of: Option<SnapshotParts>,
    keys: SelectorKeys,
    current: HashMap<ViewKey, Slot>,
    previous: HashMap<ViewKey, Arc<View>>,
}

impl Generation {
    fn is_for(&self, snapshot: &MeshSnapshot) -> bool {
        self.of.as_ref().is_some_and(|(resources, registry, mesh)| {
            Arc::ptr_eq(resources, &snapshot.resources)
                && Arc::ptr_eq(registry, &snapshot.registry)
                && Arc::ptr_eq(mesh, &snapshot.mesh)
        })
    }

    /// Moves on to `snapshot`: the views built so far become the previous ones.
    fn advance(&mut self, snapshot: &MeshSnapshot) {
        for (key, slot) in self.current.drain() {
            if let Some(view) = slot.get() {
                self.previous.insert(key, view.clone());
            }
        }
        self.keys = SelectorKeys::of(snapshot);
        self.of = Some((
            snapshot.resources.clone(),
            snapshot.registry.clone(),
            snapshot.mesh.clone(),
        ));
    }
}

impl ViewCache {
    /// The proxy's shared outbound part at `snapshot`; `None` for proxies translated whole.
    pub fn get(&self, snapshot: &MeshSnapshot, proxy: &Proxy) -> Option<Arc<View>> {
        let (slot, previous) = {
            let mut generation = self.inner.lock().unwrap_or_else(|e| e.into_inner());
            if !generation.is_for(snapshot) {
                generation.advance(snapshot);
            }
            let key = ViewKey::of(&generation.keys, proxy)?;
            let previous = generation.previous.get(&key).cloned();
            (generation.current.entry(key).or_default().clone(), previous)
        };
        // Outside the lock: other views build meanwhile; streams of this view wait for it.
        Some(
            slot.get_or_init(|| Arc::new(View::build(snapshot, proxy, previous.as_deref())))
                .clone(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::CaptureMode;

    fn sidecar(ns: &str, ip: &str) -> Proxy {
        Proxy {
            id: format!("sidecar~{ip}~w.{ns}~{ns}.svc.cluster.local"),
            ip: ip.into(),
            namespace: ns.into(),
            capture: CaptureMode::Transparent,
            ..Proxy::default()
        }
    }

    fn snapshot(revision: u64) -> MeshSnapshot {
        let docs = r#"
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ratings, namespace: shared}
spec:
  hosts: [ratings.shared.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 8080, name: http, protocol: HTTP}]
  endpoints: [{address: 10.0.0.1}]
"#;
        let resources = weft_config::parse_documents(docs)
            .into_iter()
            .collect::<Result<Vec<_>, _>>()
            .expect("valid test config");
        MeshSnapshot::build(revision, resources)
    }

    #[test]
    fn proxies_of_one_view_share_the_encoded_resources() {
        let cache = ViewCache::default();
        let snap = snapshot(1);
        let a = cache.get(&snap, &sidecar("team", "10.1.0.1")).unwrap();
        let b = cache.get(&snap, &sidecar("team", "10.1.0.2")).unwrap();
        let other = cache.get(&snap, &sidecar("other", "10.1.0.3")).unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        assert!(!Arc::ptr_eq(&a, &other));
        let clusters = a.typed.of(resources::XdsType::Cluster);
        assert!(clusters.contains_key("outbound|8080||ratings.shared.svc.cluster.local"));
    }

    #[test]
    fn a_new_snapshot_rebuilds_but_keeps_versions_of_unchanged_resources() {
        let cache = ViewCache::default();
        let first = cache
            .get(&snapshot(1), &sidecar("team", "10.1.0.1"))
            .unwrap();
        let second = cache
            .get(&snapshot(2), &sidecar("team", "10.1.0.1"))
            .unwrap();
        assert!(!Arc::ptr_eq(&first, &second));
        for t in resources::XdsType::ALL {
            let (before, after) = (first.typed.of(t), second.typed.of(t));
            assert_eq!(before.len(), after.len());
            for (name, encoded) in after {
                assert!(Arc::ptr_eq(encoded, &before[name]), "{name} re-encoded");
            }
        }
    }
}
