//! What survives a restart, and how weftd stops.

mod common;

use common::*;
use reqwest::StatusCode;
use serde_json::Value;

#[test]
fn restart_keeps_data_and_the_token() {
    let dir = tempfile::tempdir().unwrap();
    let mut weftd = Weftd::start(dir.path());
    assert_eq!(
        weftd
            .put(
                &format!("{VS}/reviews"),
                &virtual_service("reviews", "reviews")
            )
            .status(),
        StatusCode::CREATED
    );
    assert_eq!(
        weftd
            .put(
                &format!("{DR}/reviews"),
                &destination_rule("reviews", "reviews", &["v1", "v2"])
            )
            .status(),
        StatusCode::CREATED
    );
    let before: Value = weftd.get(&format!("{DR}/reviews")).json().unwrap();
    let token = weftd.token.clone();

    // SIGTERM is a clean stop with exit status 0.
    assert!(weftd.terminate().success());

    let weftd = Weftd::start(dir.path());
    assert_eq!(weftd.token, token, "the token is kept across restarts");
    let after: Value = weftd.get(&format!("{DR}/reviews")).json().unwrap();
    assert_eq!(after, before);
    let list: Value = weftd.get(VS).json().unwrap();
    assert_eq!(names(&list), ["reviews"]);
    assert_eq!(list["metadata"]["resourceVersion"], "2");
    // Revisions keep growing after a restart.
    let res = weftd.put(
        &format!("{VS}/ratings"),
        &virtual_service("ratings", "ratings"),
    );
    assert_eq!(
        res.json::<Value>().unwrap()["metadata"]["resourceVersion"],
        "3"
    );
}

#[test]
fn an_open_watch_does_not_hold_up_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let mut weftd = Weftd::start(dir.path());
    let res = client()
        .get(weftd.url(&format!("{VS}?watch=true")))
        .send()
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let started = std::time::Instant::now();
    assert!(weftd.terminate().success());
    assert!(
        started.elapsed() < std::time::Duration::from_secs(4),
        "took {:?}",
        started.elapsed()
    );
    drop(res);
}

#[test]
fn a_second_weftd_on_the_same_data_dir_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let _first = Weftd::start(dir.path());
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_weftd"))
        .arg("--data-dir")
        .arg(dir.path())
        .args(["--api-addr", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("another weftd"), "{stderr}");
}
