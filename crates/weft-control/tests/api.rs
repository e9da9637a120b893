//! The HTTP API as a client sees it, against a real weftd.

mod common;

use common::*;
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};

#[test]
fn readiness_reports_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let weftd = Weftd::start(dir.path());
    let status: Value = weftd.get("/").json().unwrap();
    assert_eq!(status["name"], "weftd");
    assert_eq!(status["status"], "ok");
    assert_eq!(status["store"], "embedded");
    assert_eq!(status["dataDir"], dir.path().display().to_string());
}

#[test]
fn crud_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let weftd = Weftd::start(dir.path());
    let path = format!("{VS}/reviews");

    let res = weftd.put(&path, &virtual_service("reviews", "reviews"));
    assert_eq!(res.status(), StatusCode::CREATED);
    let created: Value = res.json().unwrap();
    assert_eq!(created["metadata"]["generation"], 1);
    assert!(created["metadata"]["uid"]
        .as_str()
        .is_some_and(|u| u.len() == 36));
    assert!(created["metadata"]["creationTimestamp"]
        .as_str()
        .unwrap()
        .ends_with('Z'));

    // Any served version reads it, and the answer speaks that version.
    let old =
        weftd.get("/apis/networking.istio.io/v1alpha3/namespaces/default/virtualservices/reviews");
    assert_eq!(old.status(), StatusCode::OK);
    let old: Value = old.json().unwrap();
    assert_eq!(old["apiVersion"], "networking.istio.io/v1alpha3");
    assert_eq!(old["spec"]["hosts"], json!(["reviews"]));
    assert_eq!(
        old["metadata"]["resourceVersion"],
        created["metadata"]["resourceVersion"]
    );

    let mut changed = virtual_service("reviews", "reviews");
    changed["spec"]["http"][0]["timeout"] = "2s".into();
    let res = weftd.put(&path, &changed);
    assert_eq!(res.status(), StatusCode::OK);
    let replaced: Value = res.json().unwrap();
    assert_eq!(replaced["metadata"]["generation"], 2);
    assert_eq!(replaced["metadata"]["uid"], created["metadata"]["uid"]);
    assert_eq!(
        weftd.get(&path).json::<Value>().unwrap()["spec"]["http"][0]["timeout"],
        "2s"
    );

    // YAML bodies are accepted too.
    let yaml = "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata:\n  name: reviews\nspec:\n  host: reviews\n  subsets:\n  - name: v1\n    labels: {version: v1}\n";
    let res = client()
        .post(weftd.url(DR))
        .bearer_auth(&weftd.token)
        .header("Content-Type", "application/yaml")
        .body(yaml)
        .send()
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    let dr: Value = weftd.get(&format!("{DR}/reviews")).json().unwrap();
    assert_eq!(dr["metadata"]["namespace"], "default");
    assert_eq!(dr["spec"]["subsets"][0]["name"], "v1");

    let res = weftd.delete(&path);
    assert_eq!(res.status(), StatusCode::OK);
    let res = weftd.get(&path);
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    let status: Value = res.json().unwrap();
    assert_eq!(
        (status["kind"].as_str(), status["reason"].as_str()),
        (Some("Status"), Some("NotFound"))
    );
    assert_eq!(weftd.delete(&path).status(), StatusCode::NOT_FOUND);
    assert_eq!(
        weftd
            .get("/apis/networking.istio.io/v1/namespaces/default/pods")
            .status(),
        StatusCode::NOT_FOUND
    );
}

#[test]
fn invalid_resource_is_422_with_every_cause_and_not_stored() {
    let dir = tempfile::tempdir().unwrap();
    let weftd = Weftd::start(dir.path());
    let mut bad = virtual_service("reviews", "reviews");
    bad["spec"]["hosts"] = "reviews".into();
    bad["bogus"] = 1.into();
    let res = weftd.put(&format!("{VS}/reviews"), &bad);
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let status: Value = res.json().unwrap();
    assert_eq!(status["reason"], "Invalid");
    assert_eq!(status["code"], 422);
    assert_eq!(status["details"]["kind"], "VirtualService");
    let fields: Vec<&str> = status["details"]["causes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["field"].as_str().unwrap())
        .collect();
    assert!(fields.contains(&"bogus"), "{status}");
    assert!(
        fields.iter().any(|f| f.starts_with("spec.hosts")),
        "{status}"
    );
    assert!(status["message"]
        .as_str()
        .unwrap()
        .starts_with("VirtualService default/reviews: "));

    assert_eq!(
        weftd.get(&format!("{VS}/reviews")).status(),
        StatusCode::NOT_FOUND
    );
    let list: Value = weftd.get(VS).json().unwrap();
    assert!(names(&list).is_empty());
}

#[test]
fn writes_without_the_token_are_401() {
    let dir = tempfile::tempdir().unwrap();
    let weftd = Weftd::start(dir.path());
    let body = virtual_service("reviews", "reviews");
    let path = weftd.url(&format!("{VS}/reviews"));
    let res = client().put(&path).json(&body).send().unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let status: Value = res.json().unwrap();
    assert_eq!(status["reason"], "Unauthorized");
    assert!(status["message"].as_str().unwrap().contains("token"));
    let res = client()
        .put(&path)
        .bearer_auth("wrong")
        .json(&body)
        .send()
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let res = client().delete(&path).send().unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        weftd.get(&format!("{VS}/reviews")).status(),
        StatusCode::NOT_FOUND
    );

    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(dir.path().join("token"))
            .unwrap()
            .permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);
}

#[test]
fn stale_resource_version_and_duplicate_create_are_409() {
    let dir = tempfile::tempdir().unwrap();
    let weftd = Weftd::start(dir.path());
    let res = weftd.post(VS, &virtual_service("reviews", "reviews"));
    assert_eq!(res.status(), StatusCode::CREATED);
    let first: Value = res.json().unwrap();

    let res = weftd.post(VS, &virtual_service("reviews", "reviews"));
    assert_eq!(res.status(), StatusCode::CONFLICT);
    assert_eq!(res.json::<Value>().unwrap()["reason"], "AlreadyExists");

    // Two clients start from the same read; the second to write loses.
    let mut a = first.clone();
    a["spec"]["http"][0]["timeout"] = "1s".into();
    let mut b = first.clone();
    b["spec"]["http"][0]["timeout"] = "9s".into();
    assert_eq!(
        weftd.put(&format!("{VS}/reviews"), &a).status(),
        StatusCode::OK
    );
    let res = weftd.put(&format!("{VS}/reviews"), &b);
    assert_eq!(res.status(), StatusCode::CONFLICT);
    assert_eq!(res.json::<Value>().unwrap()["reason"], "Conflict");
    let stored: Value = weftd.get(&format!("{VS}/reviews")).json().unwrap();
    assert_eq!(stored["spec"]["http"][0]["timeout"], "1s");
}

#[test]
fn list_with_label_selector() {
    let dir = tempfile::tempdir().unwrap();
    let weftd = Weftd::start(dir.path());
    for (name, app, version) in [
        ("r1", "reviews", "v1"),
        ("r2", "reviews", "v2"),
        ("p", "ratings", "v1"),
    ] {
        let mut vs = virtual_service(name, app);
        vs["metadata"]["labels"]["version"] = version.into();
        assert!(weftd
            .put(&format!("{VS}/{name}"), &vs)
            .status()
            .is_success());
    }
    let mut canary = virtual_service("c", "reviews");
    canary["metadata"]["labels"] = json!({"app": "reviews", "canary": "true"});
    assert!(weftd.put(&format!("{VS}/c"), &canary).status().is_success());

    let list = |selector: &str| -> Value {
        client()
            .get(weftd.url(VS))
            .query(&[("labelSelector", selector)])
            .send()
            .unwrap()
            .json()
            .unwrap()
    };
    let all = list("");
    assert_eq!(all["kind"], "VirtualServiceList");
    assert_eq!(all["apiVersion"], "networking.istio.io/v1");
    assert_eq!(all["metadata"]["resourceVersion"], "4");
    assert_eq!(names(&all), ["c", "p", "r1", "r2"]);
    assert_eq!(names(&list("app=reviews,version!=v1")), ["c", "r2"]);
    assert_eq!(names(&list("app==reviews,!canary")), ["r1", "r2"]);
    assert_eq!(names(&list("canary")), ["c"]);
    assert_eq!(names(&list("version in (v1,v3)")), ["p", "r1"]);
    let cluster_wide: Value = weftd
        .get("/apis/networking.istio.io/v1/virtualservices?labelSelector=app%3Dratings")
        .json()
        .unwrap();
    assert_eq!(names(&cluster_wide), ["p"]);
    let res = client()
        .get(weftd.url(VS))
        .query(&[("labelSelector", "app=(x")])
        .send()
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
}

#[test]
fn watch_streams_added_modified_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let weftd = Weftd::start(dir.path());
    assert!(weftd
        .put(
            &format!("{VS}/reviews"),
            &virtual_service("reviews", "reviews")
        )
        .status()
        .is_success());
    let res =
        client()
            .get(weftd.url(
                "/apis/networking.istio.io/v1beta1/namespaces/default/virtualservices?watch=true",
            ))
            .send()
            .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let mut lines = BufReader::new(res).lines();
    let mut next = || -> Value { serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap() };

    let added = next();
    assert_eq!(added["type"], "ADDED");
    assert_eq!(added["object"]["metadata"]["name"], "reviews");
    assert_eq!(added["object"]["apiVersion"], "networking.istio.io/v1beta1");

    // A DestinationRule is another kind: not in this watch.
    assert!(weftd
        .put(
            &format!("{DR}/reviews"),
            &destination_rule("reviews", "reviews", &["v1"])
        )
        .status()
        .is_success());
    let mut changed = virtual_service("reviews", "reviews");
    changed["spec"]["http"][0]["timeout"] = "3s".into();
    assert_eq!(
        weftd.put(&format!("{VS}/reviews"), &changed).status(),
        StatusCode::OK
    );
    assert_eq!(
        weftd.delete(&format!("{VS}/reviews")).status(),
        StatusCode::OK
    );

    let modified = next();
    assert_eq!(modified["type"], "MODIFIED");
    assert_eq!(modified["object"]["spec"]["http"][0]["timeout"], "3s");
    let deleted = next();
    assert_eq!(deleted["type"], "DELETED");
    assert_eq!(deleted["object"]["metadata"]["name"], "reviews");

    // Resuming from the first revision replays what came after it.
    let res = client()
        .get(weftd.url(VS))
        .query(&[("watch", "true"), ("resourceVersion", "1")])
        .send()
        .unwrap();
    let types: Vec<String> = BufReader::new(res)
        .lines()
        .take(2)
        .map(|l| {
            serde_json::from_str::<Value>(&l.unwrap()).unwrap()["type"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(types, ["MODIFIED", "DELETED"]);
}
