//! Kubernetes Secrets over the API: core-group paths, and reads guarded by the token.

mod common;

use common::*;
use reqwest::StatusCode;
use serde_json::{json, Value};

const SECRETS: &str = "/api/v1/namespaces/istio-system/secrets";

fn tls_secret(name: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name},
        "type": "kubernetes.io/tls",
        // "cert" and "key", base64.
        "data": {"tls.crt": "Y2VydA==", "tls.key": "a2V5"},
    })
}

#[test]
fn secrets_are_stored_under_api_v1_and_read_only_with_the_token() {
    let dir = tempfile::tempdir().unwrap();
    let weftd = Weftd::start(dir.path());
    let path = format!("{SECRETS}/cred");

    let res = weftd.put(&path, &tls_secret("cred"));
    assert_eq!(res.status(), StatusCode::CREATED);
    let stored: Value = res.json().unwrap();
    assert_eq!(stored["apiVersion"], "v1");
    assert_eq!(stored["kind"], "Secret");
    assert_eq!(stored["metadata"]["namespace"], "istio-system");
    assert_eq!(stored["type"], "kubernetes.io/tls");
    assert_eq!(stored["data"]["tls.key"], "a2V5");
    assert!(stored.get("spec").is_none(), "{stored}");

    // Without the token (or with a wrong one), neither get, list nor watch shows it.
    for url in [
        path.clone(),
        SECRETS.to_string(),
        "/api/v1/secrets".to_string(),
        format!("{SECRETS}?watch=true"),
    ] {
        let res = client().get(weftd.url(&url)).send().unwrap();
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "{url}");
        let body = res.text().unwrap();
        assert!(!body.contains("a2V5"), "{url}: {body}");
        let res = client()
            .get(weftd.url(&url))
            .bearer_auth("wrong")
            .send()
            .unwrap();
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "{url}");
    }

    // With it: get, and list in one or all namespaces, Kubernetes-shaped.
    let got: Value = client()
        .get(weftd.url(&path))
        .bearer_auth(&weftd.token)
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(got["data"]["tls.crt"], "Y2VydA==");
    for url in [SECRETS, "/api/v1/secrets"] {
        let list: Value = client()
            .get(weftd.url(url))
            .bearer_auth(&weftd.token)
            .send()
            .unwrap()
            .json()
            .unwrap();
        assert_eq!(list["kind"], "SecretList", "{url}");
        assert_eq!(list["apiVersion"], "v1", "{url}");
        assert_eq!(names(&list), ["cred"], "{url}");
    }

    // Other kinds stay readable without a token.
    assert_eq!(weftd.get(VS).status(), StatusCode::OK);
    // Secrets are not served under a group, nor Istio kinds under /api/v1.
    let res = client()
        .get(weftd.url("/apis/networking.istio.io/v1/namespaces/istio-system/secrets"))
        .send()
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        weftd
            .get("/api/v1/namespaces/default/virtualservices")
            .status(),
        StatusCode::NOT_FOUND
    );

    let res = weftd.delete(&path);
    assert_eq!(res.status(), StatusCode::OK);
}

#[test]
fn invalid_secrets_are_422_with_kubernetes_messages() {
    let dir = tempfile::tempdir().unwrap();
    let weftd = Weftd::start(dir.path());
    let mut body = tls_secret("cred");
    body["data"] = json!({"tls.crt": "Y2VydA=="});
    let res = weftd.put(&format!("{SECRETS}/cred"), &body);
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let status: Value = res.json().unwrap();
    assert_eq!(status["details"]["causes"][0]["field"], "data[tls.key]");
    assert_eq!(status["details"]["causes"][0]["message"], "Required value");

    body["data"] = json!({"tls.crt": "%%%", "tls.key": "a2V5"});
    let res = weftd.put(&format!("{SECRETS}/cred"), &body);
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let status: Value = res.json().unwrap();
    assert_eq!(
        status["details"]["causes"][0]["message"],
        "Invalid value: illegal base64 data at input byte 0"
    );
}
