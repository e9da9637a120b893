//! Where weftd keeps resources: the [`Store`] trait and its embedded (redb) backend.
//!
//! Objects are Kubernetes-shaped JSON (`apiVersion`, `kind`, `metadata`, `spec`). The store
//! owns the server-set metadata: `resourceVersion` (the global revision of the object's last
//! write), `generation`, `creationTimestamp` and `uid`. Backends other than the embedded one
//! (etcd, Kubernetes) implement the same trait, so the API never knows which one it talks to.

mod embedded;
mod stamp;

pub use embedded::EmbeddedStore;
pub use stamp::{resource_version, rfc3339, SERVER_FIELDS};

use crate::selector::Selector;
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use serde::Serialize;
use serde_json::Value;
use std::fmt;
use thiserror::Error;
use weft_config::Kind;

/// Identifies one object: kind, namespace and name.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectKey {
    pub kind: Kind,
    pub namespace: String,
    pub name: String,
}

impl ObjectKey {
    pub fn new(kind: Kind, namespace: impl Into<String>, name: impl Into<String>) -> Self {
        ObjectKey {
            kind,
            namespace: namespace.into(),
            name: name.into(),
        }
    }

    /// Reads the key from an object's `kind`, `metadata.namespace` and `metadata.name`.
    pub fn of(object: &Value) -> Result<ObjectKey, StoreError> {
        let text = |v: Option<&Value>| v.and_then(Value::as_str).unwrap_or_default().to_string();
        let kind_name = text(object.get("kind"));
        let kind = Kind::from_kind_name(&kind_name)
            .ok_or_else(|| StoreError::InvalidObject(format!("unknown kind {kind_name:?}")))?;
        let meta = object.get("metadata");
        let key = ObjectKey::new(
            kind,
            text(meta.and_then(|m| m.get("namespace"))),
            text(meta.and_then(|m| m.get("name"))),
        );
        if key.name.is_empty() {
            return Err(StoreError::InvalidObject("metadata.name is empty".into()));
        }
        Ok(key)
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}/{}", self.kind, self.namespace, self.name)
    }
}

/// What a list or watch covers; `None` means every kind or every namespace.
#[derive(Clone, Debug, Default)]
pub struct ListOptions {
    pub kind: Option<Kind>,
    pub namespace: Option<String>,
    pub selector: Selector,
}

impl ListOptions {
    /// Whether `object` is one this list covers.
    pub fn matches(&self, object: &Value) -> bool {
        let Ok(key) = ObjectKey::of(object) else {
            return false;
        };
        self.kind.is_none_or(|k| k == key.kind)
            && self
                .namespace
                .as_deref()
                .is_none_or(|ns| ns == key.namespace)
            && self.selector.matches(object)
    }
}

/// A consistent snapshot: the objects and the revision they were read at.
#[derive(Clone, Debug, Default)]
pub struct Listing {
    pub revision: u64,
    pub items: Vec<Value>,
}

/// The result of a create-or-replace.
#[derive(Clone, Debug)]
pub struct PutOutcome {
    /// The object as stored, with server-set metadata.
    pub object: Value,
    pub created: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

/// One change, as a watcher sees it. A `Deleted` event carries the object's last state
/// with the revision of its deletion as `resourceVersion`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Event {
    #[serde(rename = "type")]
    pub kind: EventType,
    pub object: Value,
    #[serde(skip)]
    pub revision: u64,
}

/// Events in revision order. The stream yields [`StoreError::WatchLagged`] and ends when
/// the watcher fell too far behind; the client then lists again.
pub type EventStream = BoxStream<'static, Result<Event, StoreError>>;

/// A future returned by a [`Store`] method.
pub type StoreFuture<'a, T> = BoxFuture<'a, Result<T, StoreError>>;

/// A place that keeps resources. Every write is durable before its future resolves.
pub trait Store: Send + Sync + 'static {
    /// Short name shown in the readiness status ("embedded").
    fn backend(&self) -> &'static str;
    fn get(&self, key: ObjectKey) -> StoreFuture<'_, Option<Value>>;
    fn list(&self, options: ListOptions) -> StoreFuture<'_, Listing>;
    /// Stores a new object; [`StoreError::AlreadyExists`] if the key is taken.
    fn create(&self, object: Value) -> StoreFuture<'_, Value>;
    /// Creates or replaces. With `expected`, the stored `resourceVersion` must equal it
    /// (and the object must exist), else [`StoreError::Conflict`].
    fn put(&self, object: Value, expected: Option<u64>) -> StoreFuture<'_, PutOutcome>;
    /// Deletes and returns the last state; [`StoreError::NotFound`] if absent.
    fn delete(&self, key: ObjectKey, expected: Option<u64>) -> StoreFuture<'_, Value>;
    /// Without `from`: `Added` for every object, then every later change. With `from`:
    /// every change after that revision, or [`StoreError::Expired`] if it is too old.
    fn watch(&self, from: Option<u64>) -> StoreFuture<'_, EventStream>;
}

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("{0} not found")]
    NotFound(ObjectKey),
    #[error("{0} already exists")]
    AlreadyExists(ObjectKey),
    #[error("{key}: resourceVersion {expected} does not match the stored {}; read the object again and retry", .actual.map_or("(none)".to_string(), |v| v.to_string()))]
    Conflict {
        key: ObjectKey,
        expected: u64,
        actual: Option<u64>,
    },
    #[error("resourceVersion {requested} is too old (oldest kept: {oldest}); list again and watch from the list's resourceVersion")]
    Expired { requested: u64, oldest: u64 },
    #[error(
        "watcher fell behind and was closed; list again and watch from the list's resourceVersion"
    )]
    WatchLagged,
    #[error("invalid object: {0}")]
    InvalidObject(String),
    /// Boxed: redb's error is large and every store result would carry its size.
    #[error("embedded store: {0}")]
    Embedded(Box<redb::Error>),
    #[error("stored object is not valid JSON: {0}")]
    Corrupt(#[from] serde_json::Error),
    #[error("store task failed: {0}")]
    Task(String),
}
