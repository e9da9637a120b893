//! Unit tests for the embedded store: revisions, concurrency checks, watch replay.

use super::*;
use crate::store::ListOptions;
use serde_json::json;
use weft_config::Kind;

fn vs(name: &str, host: &str) -> Value {
    json!({
        "apiVersion": "networking.istio.io/v1alpha3",
        "kind": "VirtualService",
        "metadata": {"name": name, "namespace": "default", "labels": {"app": host}},
        "spec": {"hosts": [host]}
    })
}

fn key(name: &str) -> ObjectKey {
    ObjectKey::new(Kind::VirtualService, "default", name)
}

async fn next(stream: &mut EventStream) -> Event {
    tokio::time::timeout(std::time::Duration::from_secs(5), stream.next())
        .await
        .expect("event in time")
        .expect("stream open")
        .expect("no error")
}

#[tokio::test]
async fn writes_stamp_metadata_and_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(dir.path()).unwrap();
    let created = store.create(vs("a", "reviews")).await.unwrap();
    assert_eq!(created["apiVersion"], "networking.istio.io/v1");
    assert_eq!(resource_version(&created), Some(1));
    assert_eq!(created["metadata"]["generation"], 1);
    assert!(matches!(
        store.create(vs("a", "reviews")).await,
        Err(StoreError::AlreadyExists(_))
    ));

    // The same content again is not a change: no new revision.
    let same = store.put(vs("a", "reviews"), None).await.unwrap();
    assert!(!same.created);
    assert_eq!(resource_version(&same.object), Some(1));

    let changed = store.put(vs("a", "ratings"), Some(1)).await.unwrap();
    assert_eq!(resource_version(&changed.object), Some(2));
    assert_eq!(changed.object["metadata"]["generation"], 2);
    assert_eq!(
        changed.object["metadata"]["uid"],
        created["metadata"]["uid"]
    );
    assert!(matches!(
        store.put(vs("a", "details"), Some(1)).await,
        Err(StoreError::Conflict {
            expected: 1,
            actual: Some(2),
            ..
        })
    ));
    drop(store);

    let store = EmbeddedStore::open(dir.path()).unwrap();
    let got = store.get(key("a")).await.unwrap().unwrap();
    assert_eq!(got, changed.object);
    let created_b = store.put(vs("b", "x"), None).await.unwrap();
    assert!(created_b.created);
    assert_eq!(resource_version(&created_b.object), Some(3));
}

#[tokio::test]
async fn list_filters_by_kind_namespace_and_labels() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(dir.path()).unwrap();
    store.create(vs("a", "reviews")).await.unwrap();
    store.create(vs("b", "ratings")).await.unwrap();
    let mut other_ns = vs("c", "reviews");
    other_ns["metadata"]["namespace"] = "prod".into();
    store.create(other_ns).await.unwrap();

    let names = |l: Listing| -> Vec<String> {
        l.items
            .iter()
            .map(|o| o["metadata"]["name"].as_str().unwrap().to_string())
            .collect()
    };
    let all = store.list(ListOptions::default()).await.unwrap();
    assert_eq!(all.revision, 3);
    assert_eq!(names(all), ["a", "b", "c"]);
    let reviews = ListOptions {
        kind: Some(Kind::VirtualService),
        selector: "app=reviews".parse().unwrap(),
        ..Default::default()
    };
    assert_eq!(names(store.list(reviews).await.unwrap()), ["a", "c"]);
    let default_ns = ListOptions {
        kind: Some(Kind::VirtualService),
        namespace: Some("default".into()),
        ..Default::default()
    };
    assert_eq!(names(store.list(default_ns).await.unwrap()), ["a", "b"]);
    let rules = ListOptions {
        kind: Some(Kind::DestinationRule),
        ..Default::default()
    };
    assert!(store.list(rules).await.unwrap().items.is_empty());
}

#[tokio::test]
async fn watch_sends_snapshot_then_changes_and_resumes_from_revision() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(dir.path()).unwrap();
    store.create(vs("a", "reviews")).await.unwrap();

    let mut w = store.watch(None).await.unwrap();
    let first = next(&mut w).await;
    assert_eq!(
        (first.kind, first.object["metadata"]["name"].clone()),
        (EventType::Added, "a".into())
    );

    store.put(vs("a", "ratings"), None).await.unwrap();
    store.delete(key("a"), None).await.unwrap();
    let modified = next(&mut w).await;
    assert_eq!(modified.kind, EventType::Modified);
    assert_eq!(modified.object["spec"]["hosts"][0], "ratings");
    let deleted = next(&mut w).await;
    assert_eq!(deleted.kind, EventType::Deleted);
    assert_eq!(resource_version(&deleted.object), Some(3));

    let mut resumed = store.watch(Some(1)).await.unwrap();
    assert_eq!(next(&mut resumed).await.revision, 2);
    assert_eq!(next(&mut resumed).await.revision, 3);
    assert!(matches!(
        store.delete(key("a"), None).await,
        Err(StoreError::NotFound(_))
    ));
    drop(store);

    // History is in memory: after a restart an old revision must be re-listed.
    let store = EmbeddedStore::open(dir.path()).unwrap();
    assert!(matches!(
        store.watch(Some(1)).await,
        Err(StoreError::Expired {
            requested: 1,
            oldest: 3
        })
    ));
    assert!(store.watch(Some(3)).await.is_ok());
}

#[tokio::test]
async fn a_lagging_watcher_is_closed_and_writers_go_on() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(dir.path()).unwrap();
    let mut w = store.watch(None).await.unwrap();
    let mut obj = vs("a", "h0");
    for i in 0..(super::WATCH_BUFFER + 5) {
        obj["spec"]["hosts"][0] = format!("h{i}").into();
        let o = obj.clone();
        // Writes go straight to the feed; nothing reads `w` meanwhile.
        let inner = store.inner.clone();
        let k = key("a");
        tokio::task::spawn_blocking(move || {
            inner.write(&k, |_, rev| {
                let mut o = o;
                stamp_create(&mut o, rev);
                Ok(Decision::Store(o, EventType::Modified))
            })
        })
        .await
        .unwrap()
        .unwrap();
    }
    let mut saw_lag = false;
    while let Some(item) = w.next().await {
        if matches!(item, Err(StoreError::WatchLagged)) {
            saw_lag = true;
        }
    }
    assert!(saw_lag, "the stream ends with a lag error");
}
