//! `--config-dir`: load at start, follow edits, keep the last good state of a bad file.

mod common;

use common::*;
use serde_json::Value;
use std::time::{Duration, Instant};

const REVIEWS: &str = "\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {host: reviews}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: reviews
spec:
  host: reviews
";

const REVIEWS_TIMEOUT: &str = "\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
spec:
  hosts: [reviews]
  http:
  - timeout: 5s
    route:
    - destination: {host: reviews}
";

/// The second document has an unknown field.
const BROKEN: &str = "\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {host: reviews}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: ratings
spec:
  hosts: [ratings]
  nonsense: true
";

fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn folder_is_loaded_followed_and_bad_edits_keep_the_last_good_state() {
    let data = tempfile::tempdir().unwrap();
    let folder = tempfile::tempdir().unwrap();
    std::fs::write(folder.path().join("reviews.yaml"), REVIEWS).unwrap();
    let weftd = Weftd::start_with(
        data.path(),
        &["--config-dir", folder.path().to_str().unwrap()],
    );

    let vs_path = format!("{VS}/reviews");
    eventually("the folder to load", || {
        weftd.get(&vs_path).status().is_success()
    });
    let vs: Value = weftd.get(&vs_path).json().unwrap();
    assert_eq!(
        vs["metadata"]["annotations"]["weft.io/config-source"],
        "reviews.yaml"
    );
    assert!(weftd.get(&format!("{DR}/reviews")).status().is_success());

    // An edit is followed; the DestinationRule left the file, so it leaves the store.
    std::fs::write(folder.path().join("reviews.yaml"), REVIEWS_TIMEOUT).unwrap();
    eventually("the edit", || {
        weftd.get(&vs_path).json::<Value>().unwrap()["spec"]["http"][0]["timeout"] == "5s"
    });
    eventually("the removed DestinationRule", || {
        weftd.get(&format!("{DR}/reviews")).status() == 404
    });

    // A broken edit is logged with file, document and field, and changes nothing.
    std::fs::write(folder.path().join("reviews.yaml"), BROKEN).unwrap();
    let line = weftd.wait_for_log(&["reviews.yaml", "document=1", "spec.nonsense"]);
    assert!(
        line.contains("WARN") && line.contains("VirtualService default/ratings"),
        "{line}"
    );
    let vs: Value = weftd.get(&vs_path).json().unwrap();
    assert_eq!(vs["spec"]["http"][0]["timeout"], "5s");
    assert_eq!(weftd.get(&format!("{VS}/ratings")).status(), 404);

    // A new file is picked up; a deleted file's resources go away.
    std::fs::write(
        folder.path().join("rules.json"),
        serde_json::to_string(&destination_rule("ratings", "ratings", &["v1"])).unwrap(),
    )
    .unwrap();
    eventually("the new file", || {
        weftd.get(&format!("{DR}/ratings")).status().is_success()
    });
    std::fs::remove_file(folder.path().join("reviews.yaml")).unwrap();
    eventually("the deleted file", || weftd.get(&vs_path).status() == 404);
    assert!(weftd.get(&format!("{DR}/ratings")).status().is_success());
}
