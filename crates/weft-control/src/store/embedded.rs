//! The embedded store: one redb file in the data directory, every write a durable commit.
//!
//! Objects live in one table keyed `Kind/namespace/name`; the global revision lives in a
//! second table and moves in the same transaction, so after a crash the two always agree.
//! Commits use `Durability::Immediate` (fsync before `commit` returns) and the API answers
//! only after the commit, so a kill -9 never loses an acknowledged write.

use super::stamp::{set_revision, stamp_create, stamp_replace, strip_server_fields};
use super::{
    resource_version, Event, EventStream, EventType, ListOptions, Listing, ObjectKey, PutOutcome,
    Store, StoreError, StoreFuture,
};
use futures::StreamExt;
use redb::{Database, Durability, ReadableTable, TableDefinition};
use serde_json::Value;
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use tokio::sync::broadcast;
use tokio::sync::broadcast::error::RecvError;

const OBJECTS: TableDefinition<&str, &[u8]> = TableDefinition::new("objects");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const REVISION: &str = "revision";
/// Recent events kept in memory so a watcher can resume from a resourceVersion.
const HISTORY: usize = 1024;
/// Events a watcher may fall behind by before its stream is closed.
const WATCH_BUFFER: usize = 1024;

macro_rules! from_redb {
    ($($t:ty),*) => {
        $(impl From<$t> for StoreError {
            fn from(e: $t) -> Self {
                StoreError::Embedded(Box::new(e.into()))
            }
        })*
    };
}
from_redb!(
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

/// The default store: a redb database at `<data-dir>/store.redb`.
#[derive(Clone)]
pub struct EmbeddedStore {
    inner: Arc<Inner>,
}

struct Inner {
    db: Database,
    path: PathBuf,
    /// Held from commit to publish so events leave in revision order, and while a new
    /// watcher takes its snapshot so it sees each change exactly once.
    feed: Mutex<Feed>,
}

struct Feed {
    history: VecDeque<Event>,
    tx: broadcast::Sender<Event>,
}

/// What a write decided to do once it saw the current object.
enum Decision {
    Store(Value, EventType),
    Remove(Value),
    /// Nothing changed: answer with the stored object and write nothing.
    Keep(Value),
}

impl EmbeddedStore {
    /// Opens (or creates) the store in `data_dir`. A file left by a crash is recovered
    /// by redb to its last committed transaction.
    pub fn open(data_dir: &Path) -> Result<Self, StoreError> {
        let path = data_dir.join("store.redb");
        let db = Database::create(&path)?;
        let txn = db.begin_write()?;
        txn.open_table(OBJECTS)?;
        txn.open_table(META)?;
        txn.commit()?;
        let (tx, _) = broadcast::channel(WATCH_BUFFER);
        let store = EmbeddedStore {
            inner: Arc::new(Inner {
                db,
                path,
                feed: Mutex::new(Feed {
                    history: VecDeque::new(),
                    tx,
                }),
            }),
        };
        tracing::info!(path = %store.inner.path.display(), revision = store.inner.revision()?, "embedded store open");
        Ok(store)
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Inner) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || f(&inner))
            .await
            .map_err(|e| StoreError::Task(e.to_string()))?
    }
}

fn encode_key(key: &ObjectKey) -> String {
    format!("{}/{}/{}", key.kind, key.namespace, key.name)
}

/// Normalizes a client's object for storage: server fields are the store's to set, and
/// objects are kept in the kind's preferred version (the API rewrites it per request).
fn prepare(mut object: Value, key: &ObjectKey) -> Value {
    strip_server_fields(&mut object);
    object["apiVersion"] = key.kind.preferred_api_version().into();
    object
}

fn same_content(new: &Value, old: &Value) -> bool {
    let mut old = old.clone();
    strip_server_fields(&mut old);
    *new == old
}

impl Inner {
    fn revision(&self) -> Result<u64, StoreError> {
        let txn = self.db.begin_read()?;
        let meta = txn.open_table(META)?;
        Ok(meta.get(REVISION)?.map_or(0, |g| g.value()))
    }

    fn lock_feed(&self) -> std::sync::MutexGuard<'_, Feed> {
        self.feed.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn get(&self, key: &ObjectKey) -> Result<Option<Value>, StoreError> {
        let txn = self.db.begin_read()?;
        let objects = txn.open_table(OBJECTS)?;
        let found = objects.get(encode_key(key).as_str())?;
        Ok(found
            .map(|g| serde_json::from_slice(g.value()))
            .transpose()?)
    }

    fn list(&self, options: &ListOptions) -> Result<Listing, StoreError> {
        let txn = self.db.begin_read()?;
        let objects = txn.open_table(OBJECTS)?;
        let meta = txn.open_table(META)?;
        let revision = meta.get(REVISION)?.map_or(0, |g| g.value());
        // Keys sort by kind then namespace, so a list is one range scan.
        let prefix = match (options.kind, &options.namespace) {
            (Some(kind), Some(ns)) => format!("{kind}/{ns}/"),
            (Some(kind), None) => format!("{kind}/"),
            (None, _) => String::new(),
        };
        let mut items = Vec::new();
        for entry in objects.range::<&str>(prefix.as_str()..)? {
            let (key, value) = entry?;
            if !key.value().starts_with(&prefix) {
                break;
            }
            let object: Value = serde_json::from_slice(value.value())?;
            if options.matches(&object) {
                items.push(object);
            }
        }
        Ok(Listing { revision, items })
    }

    /// Runs one write transaction: reads the current object, lets `decide` choose, commits
    /// durably, then publishes the event.
    fn write(
        &self,
        key: &ObjectKey,
        decide: impl FnOnce(Option<Value>, u64) -> Result<Decision, StoreError>,
    ) -> Result<(Value, Option<EventType>), StoreError> {
        let mut feed = self.lock_feed();
        let mut txn = self.db.begin_write()?;
        txn.set_durability(Durability::Immediate);
        let db_key = encode_key(key);
        let (object, kind, revision) = {
            let mut objects = txn.open_table(OBJECTS)?;
            let mut meta = txn.open_table(META)?;
            let revision = meta.get(REVISION)?.map_or(0, |g| g.value()) + 1;
            let current: Option<Value> = objects
                .get(db_key.as_str())?
                .map(|g| serde_json::from_slice(g.value()))
                .transpose()?;
            match decide(current, revision)? {
                Decision::Keep(object) => return Ok((object, None)),
                Decision::Store(object, kind) => {
                    objects.insert(db_key.as_str(), serde_json::to_vec(&object)?.as_slice())?;
                    meta.insert(REVISION, revision)?;
                    (object, kind, revision)
                }
                Decision::Remove(object) => {
                    objects.remove(db_key.as_str())?;
                    meta.insert(REVISION, revision)?;
                    (object, EventType::Deleted, revision)
                }
            }
        };
        txn.commit()?;
        let event = Event {
            kind,
            object: object.clone(),
            revision,
        };
        if feed.history.len() == HISTORY {
            feed.history.pop_front();
        }
        feed.history.push_back(event.clone());
        // No receivers is normal; a lagging receiver finds out on its next recv.
        let _ = feed.tx.send(event);
        Ok((object, Some(kind)))
    }

    fn watch(&self, from: Option<u64>) -> Result<EventStream, StoreError> {
        // Under the feed lock no write can publish, so the snapshot (or replay) and the
        // subscription meet exactly: nothing missed, nothing twice.
        let feed = self.lock_feed();
        let rx = feed.tx.subscribe();
        let (initial, after) = match from {
            None => {
                let listing = self.list(&ListOptions::default())?;
                let added = listing
                    .items
                    .into_iter()
                    .map(|object| Event {
                        kind: EventType::Added,
                        object,
                        revision: listing.revision,
                    })
                    .collect();
                (added, listing.revision)
            }
            Some(from) => {
                let current = self.revision()?;
                if from >= current {
                    (Vec::new(), from)
                } else {
                    let oldest = feed.history.front().map_or(current, |e| e.revision - 1);
                    if from < oldest {
                        return Err(StoreError::Expired {
                            requested: from,
                            oldest,
                        });
                    }
                    let replay: Vec<Event> = feed
                        .history
                        .iter()
                        .filter(|e| e.revision > from)
                        .cloned()
                        .collect();
                    (replay, current)
                }
            }
        };
        drop(feed);
        let live = futures::stream::unfold(Some(rx), move |rx| async move {
            let mut rx = rx?;
            loop {
                match rx.recv().await {
                    Ok(event) if event.revision <= after => continue,
                    Ok(event) => return Some((Ok(event), Some(rx))),
                    Err(RecvError::Lagged(missed)) => {
                        tracing::warn!(missed, "closing a watch that fell behind");
                        return Some((Err(StoreError::WatchLagged), None));
                    }
                    Err(RecvError::Closed) => return None,
                }
            }
        });
        Ok(futures::stream::iter(initial.into_iter().map(Ok))
            .chain(live)
            .boxed())
    }
}

impl Store for EmbeddedStore {
    fn backend(&self) -> &'static str {
        "embedded"
    }

    fn get(&self, key: ObjectKey) -> StoreFuture<'_, Option<Value>> {
        Box::pin(self.blocking(move |inner| inner.get(&key)))
    }

    fn list(&self, options: ListOptions) -> StoreFuture<'_, Listing> {
        Box::pin(self.blocking(move |inner| inner.list(&options)))
    }

    fn create(&self, object: Value) -> StoreFuture<'_, Value> {
        Box::pin(self.blocking(move |inner| {
            let key = ObjectKey::of(&object)?;
            let mut object = prepare(object, &key);
            let (stored, _) = inner.write(&key, |current, revision| {
                if current.is_some() {
                    return Err(StoreError::AlreadyExists(key.clone()));
                }
                stamp_create(&mut object, revision);
                Ok(Decision::Store(object, EventType::Added))
            })?;
            Ok(stored)
        }))
    }

    fn put(&self, object: Value, expected: Option<u64>) -> StoreFuture<'_, PutOutcome> {
        Box::pin(self.blocking(move |inner| {
            let key = ObjectKey::of(&object)?;
            let mut object = prepare(object, &key);
            let (stored, event) = inner.write(&key, |current, revision| {
                let actual = current.as_ref().and_then(resource_version);
                if let Some(expected) = expected.filter(|e| Some(*e) != actual) {
                    return Err(StoreError::Conflict {
                        key: key.clone(),
                        expected,
                        actual,
                    });
                }
                Ok(match current {
                    None => {
                        stamp_create(&mut object, revision);
                        Decision::Store(object, EventType::Added)
                    }
                    Some(old) if same_content(&object, &old) => Decision::Keep(old),
                    Some(old) => {
                        stamp_replace(&mut object, &old, revision);
                        Decision::Store(object, EventType::Modified)
                    }
                })
            })?;
            Ok(PutOutcome {
                object: stored,
                created: event == Some(EventType::Added),
            })
        }))
    }

    fn delete(&self, key: ObjectKey, expected: Option<u64>) -> StoreFuture<'_, Value> {
        Box::pin(self.blocking(move |inner| {
            let (last, _) = inner.write(&key, |current, revision| {
                let Some(mut old) = current else {
                    return Err(StoreError::NotFound(key.clone()));
                };
                let actual = resource_version(&old);
                if let Some(expected) = expected.filter(|e| Some(*e) != actual) {
                    return Err(StoreError::Conflict {
                        key: key.clone(),
                        expected,
                        actual,
                    });
                }
                set_revision(&mut old, revision);
                Ok(Decision::Remove(old))
            })?;
            Ok(last)
        }))
    }

    fn watch(&self, from: Option<u64>) -> StoreFuture<'_, EventStream> {
        Box::pin(self.blocking(move |inner| inner.watch(from)))
    }
}

#[cfg(test)]
#[path = "embedded_tests.rs"]
mod tests;
