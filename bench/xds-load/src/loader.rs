//! Writes resources through weftd's HTTP API (docs/api.md), many requests in flight: every
//! write is its own fsync'd transaction, so concurrency is what makes a bulk load fast.

use futures::stream::{self, StreamExt};
use serde_json::Value;
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("PUT {path}: {source}")]
    Transport {
        path: String,
        source: reqwest::Error,
    },
    #[error("PUT {path}: HTTP {code}: {body}")]
    Refused {
        path: String,
        code: u16,
        body: String,
    },
}

/// Kubernetes-shaped path of a networking.istio.io resource.
pub fn path(object: &Value) -> String {
    let kind = object["kind"].as_str().unwrap_or_default();
    let plural = match kind {
        "ServiceEntry" => "serviceentries".to_string(),
        "WorkloadEntry" => "workloadentries".to_string(),
        "Sidecar" => "sidecars".to_string(),
        other => format!("{}s", other.to_lowercase()),
    };
    format!(
        "/apis/networking.istio.io/v1/namespaces/{}/{}/{}",
        object["metadata"]["namespace"]
            .as_str()
            .unwrap_or("default"),
        plural,
        object["metadata"]["name"].as_str().unwrap_or_default()
    )
}

/// PUTs every object (create or replace), `parallel` at a time.
pub async fn put_all(
    server: &str,
    token: &str,
    objects: Vec<Value>,
    parallel: usize,
) -> Result<Duration, LoadError> {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(parallel)
        .build()
        .expect("an HTTP client with default TLS settings");
    let started = Instant::now();
    let results: Vec<Result<(), LoadError>> = stream::iter(objects)
        .map(|object| {
            let http = http.clone();
            async move {
                let path = path(&object);
                let response = http
                    .put(format!("{server}{path}"))
                    .bearer_auth(token)
                    .json(&object)
                    .send()
                    .await
                    .map_err(|source| LoadError::Transport {
                        path: path.clone(),
                        source,
                    })?;
                let code = response.status().as_u16();
                if code >= 300 {
                    let body = response.text().await.unwrap_or_default();
                    return Err(LoadError::Refused { path, code, body });
                }
                Ok(())
            }
        })
        .buffer_unordered(parallel)
        .collect()
        .await;
    results.into_iter().collect::<Result<(), _>>()?;
    Ok(started.elapsed())
}
