//! Calls to other Bookinfo services, through the sidecar's outbound HTTP proxy when there is one.
//!
//! In explicit capture the application asks its sidecar for `http://reviews:9080/...` in
//! absolute form; the sidecar routes by that authority. Without a sidecar the names must
//! resolve by themselves (as they do in Kubernetes).

use axum::http::HeaderMap;
use serde_json::Value;
use std::fmt;
use std::time::Duration;

/// Why a call to another service produced no usable answer.
#[derive(Debug)]
pub enum UpstreamError {
    /// No answer within the caller's timeout.
    Timeout,
    /// An answer, but not a 2xx one (a fault injected by the mesh shows up here).
    Status(u16),
    /// Connection refused, reset, or a body that is not JSON.
    Failed(String),
}

impl fmt::Display for UpstreamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UpstreamError::Timeout => write!(f, "timed out"),
            UpstreamError::Status(code) => write!(f, "status {code}"),
            UpstreamError::Failed(e) => write!(f, "{e}"),
        }
    }
}

/// A client for `http://<service>:9080` URLs.
#[derive(Clone, Debug)]
pub struct Upstream {
    client: reqwest::Client,
}

impl Upstream {
    /// `proxy`: the sidecar's outbound listener, e.g. `http://127.0.0.1:15001`.
    pub fn new(proxy: Option<&str>) -> Result<Upstream, String> {
        // Environment proxies are ignored: the sidecar is the only proxy that belongs here.
        let mut builder = reqwest::Client::builder().no_proxy();
        if let Some(url) = proxy {
            let p = reqwest::Proxy::http(url)
                .map_err(|e| format!("--upstream-proxy {url:?} is not a proxy URL: {e}"))?;
            builder = builder.proxy(p);
        }
        let client = builder
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(Upstream { client })
    }

    /// `GET url` with `headers`, expecting JSON within `timeout`.
    pub async fn get_json(
        &self,
        url: &str,
        headers: HeaderMap,
        timeout: Duration,
    ) -> Result<Value, UpstreamError> {
        let classify = |e: reqwest::Error| {
            if e.is_timeout() {
                UpstreamError::Timeout
            } else {
                UpstreamError::Failed(e.to_string())
            }
        };
        let response = self
            .client
            .get(url)
            .headers(headers)
            .timeout(timeout)
            .send()
            .await
            .map_err(classify)?;
        let status = response.status();
        if !status.is_success() {
            tracing::info!(url, status = status.as_u16(), "upstream answered an error");
            return Err(UpstreamError::Status(status.as_u16()));
        }
        response.json::<Value>().await.map_err(classify)
    }
}

/// The URL of `path` on a Bookinfo service, by its mesh name (every service listens on 9080).
pub fn service_url(service: &str, path: &str) -> String {
    format!("http://{service}:9080{path}")
}
