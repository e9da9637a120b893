//! Request mirroring (`request_mirror_policies`): a fire-and-forget copy of the request to
//! another cluster, its Host suffixed `-shadow` as Envoy does; the answer is discarded.

use super::retry::full_bytes;
use crate::model::route::Mirror;
use crate::state::Snapshot;
use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Request, Uri, Version};
use http_body_util::BodyExt;
use std::time::Duration;

/// What the copy is made of: the request as it goes upstream.
pub struct Copy<'a> {
    pub method: &'a Method,
    pub uri: &'a Uri,
    pub version: Version,
    pub headers: &'a HeaderMap,
    pub body: Bytes,
}

/// Starts the copy in the background; unknown clusters are skipped (Envoy counts them).
pub fn send(snapshot: &Snapshot, m: &Mirror, copy: Copy<'_>, timeout: Option<Duration>) {
    let Some(cluster) = snapshot.clusters.get(&m.cluster).cloned() else {
        tracing::debug!(cluster = %m.cluster, "mirror cluster not found");
        return;
    };
    let mut headers = copy.headers.clone();
    if !m.keep_host {
        let host = headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .map(shadow_host);
        if let Some(v) = host.and_then(|h| HeaderValue::from_str(&h).ok()) {
            headers.insert(header::HOST, v);
        }
    }
    let mut req = Request::new(full_bytes(copy.body));
    *req.method_mut() = copy.method.clone();
    *req.uri_mut() = copy.uri.clone();
    *req.version_mut() = copy.version;
    *req.headers_mut() = headers;
    tokio::spawn(async move {
        let exchange = async {
            if let Ok(resp) = cluster.send(req, None).await {
                // Read to the end so the connection can be reused.
                let _ = resp.into_body().collect().await;
            }
        };
        match timeout {
            Some(t) => {
                let _ = tokio::time::timeout(t, exchange).await;
            }
            None => exchange.await,
        }
    });
}

/// `reviews:9080` -> `reviews-shadow:9080`, `reviews` -> `reviews-shadow`.
pub fn shadow_host(host: &str) -> String {
    let port_at = if host.starts_with('[') {
        host.rfind("]:").map(|i| i + 1)
    } else {
        host.rfind(':')
    };
    match port_at {
        Some(i) => format!("{}-shadow{}", &host[..i], &host[i..]),
        None => format!("{host}-shadow"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shadow_suffix_goes_before_the_port() {
        assert_eq!(shadow_host("reviews:9080"), "reviews-shadow:9080");
        assert_eq!(
            shadow_host("reviews.default.svc"),
            "reviews.default.svc-shadow"
        );
    }
}
