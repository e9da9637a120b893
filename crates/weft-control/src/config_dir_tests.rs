//! Unit tests for the config folder: load, follow, bad files, removal across restarts.

use super::*;
use crate::store::EmbeddedStore;
use weft_config::Kind;

const GOOD: &str = "apiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata:\n  name: s1\nspec: {egress: [{hosts: [\"./*\"]}]}\n---\napiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata:\n  name: s2\n  namespace: prod\nspec: {egress: [{hosts: [\"./*\"]}]}\n";
const ONE: &str = "apiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata:\n  name: s1\n  labels: {v: two}\nspec: {egress: [{hosts: [\"./*\"]}]}\n";
const BAD: &str = "apiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata:\n  name: s1\nspec: {egress: [{hosts: [\"./*\"]}]}\n---\napiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata:\n  name: Bad_Name\nspec: {egress: [{hosts: [\"./*\"]}]}\n";

fn key(ns: &str, name: &str) -> ObjectKey {
    ObjectKey::new(Kind::Sidecar, ns, name)
}

async fn names(store: &Arc<dyn Store>) -> Vec<String> {
    let listing = store.list(ListOptions::default()).await.unwrap();
    listing
        .items
        .iter()
        .map(|o| ObjectKey::of(o).unwrap())
        .map(|k| format!("{}/{}", k.namespace, k.name))
        .collect()
}

#[tokio::test]
async fn folder_is_loaded_followed_and_bad_files_keep_last_good_state() {
    let data = tempfile::tempdir().unwrap();
    let folder = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(EmbeddedStore::open(data.path()).unwrap());
    std::fs::write(folder.path().join("mesh.yaml"), GOOD).unwrap();
    std::fs::write(folder.path().join("notes.txt"), "not config").unwrap();

    let mut dir = ConfigDir::new(folder.path().to_path_buf(), store.clone());
    dir.sync().await;
    assert_eq!(names(&store).await, ["default/s1", "prod/s2"]);
    let s1 = store.get(key("default", "s1")).await.unwrap().unwrap();
    assert_eq!(
        s1["metadata"]["annotations"][SOURCE_ANNOTATION],
        "mesh.yaml"
    );

    // An unchanged folder writes nothing.
    let revision = store.list(ListOptions::default()).await.unwrap().revision;
    dir.sync().await;
    assert_eq!(
        store.list(ListOptions::default()).await.unwrap().revision,
        revision
    );

    // A bad edit is ignored as a whole.
    std::fs::write(folder.path().join("mesh.yaml"), BAD).unwrap();
    dir.sync().await;
    assert_eq!(names(&store).await, ["default/s1", "prod/s2"]);

    // A good edit applies, and what left the file leaves the store.
    std::fs::write(folder.path().join("mesh.yaml"), ONE).unwrap();
    dir.sync().await;
    assert_eq!(names(&store).await, ["default/s1"]);
    let s1 = store.get(key("default", "s1")).await.unwrap().unwrap();
    assert_eq!(s1["metadata"]["labels"]["v"], "two");

    // A file removed while weftd is down is noticed on the next start.
    drop(dir);
    std::fs::remove_file(folder.path().join("mesh.yaml")).unwrap();
    let mut restarted = ConfigDir::new(folder.path().to_path_buf(), store.clone());
    restarted.sync().await;
    assert!(names(&store).await.is_empty());
}

#[tokio::test]
async fn objects_written_through_the_api_are_not_deleted_by_the_folder() {
    let data = tempfile::tempdir().unwrap();
    let folder = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(EmbeddedStore::open(data.path()).unwrap());
    std::fs::write(folder.path().join("a.yml"), ONE).unwrap();
    let mut dir = ConfigDir::new(folder.path().to_path_buf(), store.clone());
    dir.sync().await;

    // Someone takes the object over through the API (no source annotation).
    let mut taken = store.get(key("default", "s1")).await.unwrap().unwrap();
    taken["metadata"]["annotations"] = serde_json::json!({});
    store.put(taken, None).await.unwrap();

    std::fs::remove_file(folder.path().join("a.yml")).unwrap();
    dir.sync().await;
    assert_eq!(names(&store).await, ["default/s1"]);
}
