//! The mesh at one revision: every stored resource, indexed, plus the service registry
//! derived from it. Built once per (debounced) change and shared by every proxy's push.

use crate::mesh::MeshConfig;
use crate::registry::Registry;
use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use weft_config::{Kind, Resource, Spec};

/// (namespace, name or address) -> positions in a list, for lookups done per proxy.
pub type PositionIndex = HashMap<(String, String), Vec<usize>>;

/// Immutable view of config and registry; cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct MeshSnapshot {
    /// Store revision this snapshot was built from.
    pub revision: u64,
    pub resources: Arc<Vec<Resource>>,
    pub registry: Arc<Registry>,
    /// Mesh-wide settings (weftd's --mesh-config, else Istio's defaults).
    pub mesh: Arc<MeshConfig>,
    /// (namespace, address) -> positions in `resources` of the WorkloadEntries there, built
    /// on first use: every proxy's own part looks its WorkloadEntry up several times per
    /// push, and a scan of every resource each time showed in the control-plane benchmark.
    pub workload_entries: Arc<OnceLock<PositionIndex>>,
}

impl MeshSnapshot {
    /// Builds the snapshot (and the registry) from every stored resource.
    pub fn build(revision: u64, resources: Vec<Resource>) -> MeshSnapshot {
        let registry = Registry::build(&resources);
        MeshSnapshot {
            revision,
            resources: Arc::new(resources),
            registry: Arc::new(registry),
            mesh: Arc::default(),
            workload_entries: Arc::default(),
        }
    }

    /// The same snapshot under other mesh-wide settings.
    pub fn with_mesh(mut self, mesh: Arc<MeshConfig>) -> MeshSnapshot {
        self.mesh = mesh;
        self
    }

    /// The WorkloadEntries (resource and spec) in `namespace` with address `address`, in
    /// store order.
    pub fn workload_entries_at<'a>(
        &'a self,
        namespace: &str,
        address: &str,
    ) -> impl Iterator<
        Item = (
            &'a Resource,
            &'a weft_config::networking::workload_entry::WorkloadEntry,
        ),
    > + 'a {
        let index = self.workload_entries.get_or_init(|| {
            let mut index = PositionIndex::new();
            for (i, r) in self.resources.iter().enumerate() {
                if let Spec::WorkloadEntry(w) = &r.spec {
                    if let Some(address) = &w.address {
                        index
                            .entry((r.metadata.namespace.clone(), address.clone()))
                            .or_default()
                            .push(i);
                    }
                }
            }
            index
        });
        index
            .get(&(namespace.to_string(), address.to_string()))
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .filter_map(|&i| {
                let r = self.resources.get(i)?;
                match &r.spec {
                    Spec::WorkloadEntry(w) => Some((r, w.as_ref())),
                    _ => None,
                }
            })
    }

    /// Every resource of one kind.
    pub fn of_kind(&self, kind: Kind) -> impl Iterator<Item = &Resource> {
        self.resources.iter().filter(move |r| r.kind() == kind)
    }
}
