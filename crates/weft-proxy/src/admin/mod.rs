//! The admin endpoint on loopback: /ready, /server_info, /config_dump, /clusters, /stats,
//! /drain, /quitquitquit.

pub mod drain;

use crate::http::{full, ResponseBody};
use crate::state::Proxy;
use http::{header, HeaderValue, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::json;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;

/// Serves the admin API on `addr` until the process ends; `drain_time` bounds `/drain`.
pub async fn serve(
    proxy: Arc<Proxy>,
    addr: SocketAddr,
    drain_time: std::time::Duration,
) -> std::io::Result<()> {
    let socket = TcpListener::bind(addr).await?;
    tracing::info!(%addr, "admin listening");
    loop {
        let (stream, _) = socket.accept().await?;
        let proxy = proxy.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let proxy = proxy.clone();
                async move { Ok::<_, Infallible>(handle(&proxy, drain_time, &req)) }
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn handle(
    proxy: &Arc<Proxy>,
    drain_time: std::time::Duration,
    req: &Request<Incoming>,
) -> Response<ResponseBody> {
    let snapshot = proxy.snapshot.load();
    match req.uri().path() {
        "/ready" if snapshot.lds_applied => text(StatusCode::OK, "LIVE\n"),
        "/ready" => text(StatusCode::SERVICE_UNAVAILABLE, "PRE_INITIALIZING\n"),
        "/server_info" => json_reply(&json!({
            "state": if snapshot.lds_applied { "LIVE" } else { "PRE_INITIALIZING" },
            "version": concat!("weft-proxy/", env!("CARGO_PKG_VERSION")),
        })),
        "/stats" => stats(proxy, req.uri().query()),
        "/config_dump" => json_reply(&config_dump(&snapshot)),
        "/clusters" => text(StatusCode::OK, &clusters(&snapshot)),
        "/drain" if req.method() == http::Method::POST => {
            if proxy.drain.start() {
                tracing::info!(?drain_time, "draining: listeners closed, then exit");
                // Wakes the listener manager, which closes every listening socket.
                proxy.changed.send_modify(|g| *g += 1);
                let proxy = proxy.clone();
                tokio::spawn(async move {
                    let open = proxy.drain.wait_closed(drain_time).await;
                    tracing::info!(open, "drain over: exiting");
                    std::process::exit(0);
                });
            }
            text(StatusCode::OK, "OK\n")
        }
        "/quitquitquit" if req.method() == http::Method::POST => {
            tracing::info!("quitquitquit: exiting");
            // Let the reply go out before the process ends.
            tokio::spawn(async {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                std::process::exit(0);
            });
            text(StatusCode::OK, "OK\n")
        }
        _ => text(StatusCode::NOT_FOUND, "not found\n"),
    }
}

/// Envoy-shaped: `configs[]` of Listeners/Clusters/Routes dumps with names and versions,
/// each resource's weft-proxy model under `config` (not Envoy's proto).
pub fn config_dump(s: &crate::state::Snapshot) -> serde_json::Value {
    let v = &s.versions;
    let listeners: Vec<_> = s
        .listeners
        .values()
        .map(|l| json!({"name": l.name, "active_state": {"version_info": v.lds, "listener": l}}))
        .collect();
    let clusters: Vec<_> = s
        .clusters
        .values()
        .map(|c| json!({"version_info": v.cds, "cluster": c}))
        .collect();
    let routes: Vec<_> = s
        .routes
        .values()
        .map(|r| json!({"version_info": v.rds, "route_config": r}))
        .collect();
    json!({"configs": [
        {"@type": "type.googleapis.com/envoy.admin.v3.ListenersConfigDump",
         "version_info": v.lds, "dynamic_listeners": listeners},
        {"@type": "type.googleapis.com/envoy.admin.v3.ClustersConfigDump",
         "version_info": v.cds, "dynamic_active_clusters": clusters},
        {"@type": "type.googleapis.com/envoy.admin.v3.RoutesConfigDump",
         "dynamic_route_configs": routes},
    ]})
}

/// `/clusters` in Envoy's text form: `<cluster>::<host:port>::<field>::<value>` lines,
/// the hosts each cluster has now with their weight and requests in flight.
fn clusters(s: &crate::state::Snapshot) -> String {
    let mut out = String::new();
    for (name, upstream) in &s.clusters {
        out.push_str(&format!("{name}::observability_name::{name}\n"));
        for host in &upstream.hosts {
            let addr = host.endpoint.authority();
            let active = host.active.load(std::sync::atomic::Ordering::Relaxed);
            out.push_str(&format!("{name}::{addr}::rq_active::{active}\n"));
            out.push_str(&format!(
                "{name}::{addr}::weight::{}\n",
                host.endpoint.weight
            ));
        }
    }
    out
}

/// `/stats`, with Envoy's `?filter=<regex>`.
fn stats(proxy: &Proxy, query: Option<&str>) -> Response<ResponseBody> {
    let filter = query_param(query, "filter");
    let regex = match filter.as_deref().map(regex::Regex::new) {
        None => None,
        Some(Ok(r)) => Some(r),
        Some(Err(e)) => return text(StatusCode::BAD_REQUEST, &format!("invalid regex: {e}\n")),
    };
    text(StatusCode::OK, &proxy.stats.render(regex.as_ref()))
}

/// The percent-decoded value of `name` in a query string.
fn query_param(query: Option<&str>, name: &str) -> Option<String> {
    query?.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == name).then(|| percent_decode(v))
    })
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b'+', _) => {
                out.push(b' ');
                i += 1;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn text(status: StatusCode, body: &str) -> Response<ResponseBody> {
    let mut r = Response::new(full(body.to_string()));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    r
}

fn json_reply(v: &serde_json::Value) -> Response<ResponseBody> {
    let mut r = Response::new(full(serde_json::to_string_pretty(v).unwrap_or_default()));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_parameters_are_percent_decoded() {
        let q = Some("format=text&filter=outbound%5C%7C80%7C%7Cx+y.upstream_rq_total");
        assert_eq!(
            query_param(q, "filter").as_deref(),
            Some(r"outbound\|80||x y.upstream_rq_total")
        );
        assert_eq!(query_param(q, "nope"), None);
        assert_eq!(percent_decode("100%"), "100%");
    }
}
