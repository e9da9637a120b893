//! Kubernetes-style object metadata carried by every resource.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The metadata Weft reads and keeps. Fields Kubernetes adds that Weft does not use
/// (managedFields, ownerReferences, ...) are kept as they came so nothing is lost.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectMeta {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// Opaque version for optimistic concurrency; set by the store.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub resource_version: String,
    /// Incremented by the store when the spec changes.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub generation: i64,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub creation_timestamp: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub uid: String,
    #[serde(flatten)]
    pub other: serde_json::Map<String, serde_json::Value>,
}

fn is_zero(v: &i64) -> bool {
    *v == 0
}

impl ObjectMeta {
    /// `namespace/name`, the way istioctl names a resource.
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}
