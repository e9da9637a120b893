//! The mesh at one revision: every stored resource, indexed, plus the service registry
//! derived from it. Built once per (debounced) change and shared by every proxy's push.

use crate::mesh::MeshConfig;
use crate::registry::Registry;
use std::sync::Arc;
use weft_config::{Kind, Resource};

/// Immutable view of config and registry; cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct MeshSnapshot {
    /// Store revision this snapshot was built from.
    pub revision: u64,
    pub resources: Arc<Vec<Resource>>,
    pub registry: Arc<Registry>,
    /// Mesh-wide settings (weftd's --mesh-config, else Istio's defaults).
    pub mesh: Arc<MeshConfig>,
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
        }
    }

    /// The same snapshot under other mesh-wide settings.
    pub fn with_mesh(mut self, mesh: Arc<MeshConfig>) -> MeshSnapshot {
        self.mesh = mesh;
        self
    }

    /// Every resource of one kind.
    pub fn of_kind(&self, kind: Kind) -> impl Iterator<Item = &Resource> {
        self.resources.iter().filter(move |r| r.kind() == kind)
    }
}
