//! The admin endpoint on loopback: /ready, /server_info, /config_dump, /clusters, /stats,
//! /drain, /quitquitquit.

pub mod config_dump;
pub mod drain;

use crate::bootstrap::Settings;
use crate::http::{full, ResponseBody};
use crate::state::Proxy;
use config_dump::Static;
use http::{header, HeaderValue, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::json;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::SystemTime;
use tokio::net::TcpListener;

/// Serves the admin API on `addr` until the process ends; the settings' `drain_time`
/// bounds `/drain`, their bootstrap shows in `/config_dump`.
pub async fn serve(
    proxy: Arc<Proxy>,
    settings: Arc<Settings>,
    addr: SocketAddr,
) -> std::io::Result<()> {
    let socket = TcpListener::bind(addr).await?;
    tracing::info!(%addr, "admin listening");
    let boot = Arc::new(Static {
        settings,
        started: SystemTime::now(),
    });
    loop {
        let (stream, _) = socket.accept().await?;
        let proxy = proxy.clone();
        let boot = boot.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let proxy = proxy.clone();
                let boot = boot.clone();
                async move { Ok::<_, Infallible>(handle(&proxy, &boot, &req)) }
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn handle(proxy: &Arc<Proxy>, boot: &Static, req: &Request<Incoming>) -> Response<ResponseBody> {
    let drain_time = boot.settings.drain_time;
    let snapshot = proxy.snapshot.load();
    let query = req.uri().query();
    match req.uri().path() {
        "/ready" if snapshot.lds_applied => text(StatusCode::OK, "LIVE\n"),
        "/ready" => text(StatusCode::SERVICE_UNAVAILABLE, "PRE_INITIALIZING\n"),
        "/server_info" => json_reply(&json!({
            "state": if snapshot.lds_applied { "LIVE" } else { "PRE_INITIALIZING" },
            "version": concat!("weft-proxy/", env!("CARGO_PKG_VERSION")),
        })),
        "/stats" => stats(proxy, query),
        "/config_dump" => dump(&snapshot, boot, query),
        "/clusters" if query_param(query, "format").as_deref() == Some("json") => {
            json_reply(&clusters_json(&snapshot, &boot.settings.bootstrap))
        }
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

/// `/config_dump` with Envoy's `include_eds`, `resource` and `mask` parameters.
fn dump(
    snapshot: &crate::state::Snapshot,
    boot: &Static,
    query: Option<&str>,
) -> Response<ResponseBody> {
    let q = config_dump::Query {
        include_eds: query_param(query, "include_eds").is_some(),
        resource: query_param(query, "resource").filter(|r| !r.is_empty()),
        mask: query_param(query, "mask").filter(|m| !m.is_empty()),
    };
    // Rendered on a short-lived thread of its own: the descriptor pool's allocations then
    // come from (and go back to) one allocator arena that the next dump reuses, instead of
    // settling in each worker thread's.
    let rendered = std::thread::scope(|scope| {
        scope
            .spawn(|| config_dump::render(snapshot, boot, &q))
            .join()
    });
    let Ok(rendered) = rendered else {
        return text(StatusCode::INTERNAL_SERVER_ERROR, "config dump failed\n");
    };
    match rendered {
        Ok(v) => json_reply(&v),
        Err(e @ config_dump::DumpError::UnknownResource(_)) => {
            text(StatusCode::NOT_FOUND, &format!("{e}\n"))
        }
        Err(e) => text(StatusCode::BAD_REQUEST, &format!("{e}\n")),
    }
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

/// `/clusters?format=json` in Envoy's shape (`cluster_statuses[].host_statuses[]`), what
/// `weft proxy-config endpoints --admin` reads: address, EDS health, outlier ejection,
/// weight and requests in flight; the bootstrap's ADS cluster first, as Envoy lists its
/// static clusters.
fn clusters_json(s: &crate::state::Snapshot, bootstrap: &serde_json::Value) -> serde_json::Value {
    let now = std::time::Instant::now();
    let mut statuses = ads_cluster_status(bootstrap);
    let dynamic = s.clusters.iter().map(|(name, upstream)| {
        let hosts: Vec<_> = upstream
            .hosts
            .iter()
            .map(|host| {
                let e = &host.endpoint;
                let mut health = serde_json::Map::new();
                let eds = if e.healthy { "HEALTHY" } else { "UNHEALTHY" };
                health.insert("eds_health_status".into(), eds.into());
                if host.outlier.ejected(now) {
                    health.insert("failed_outlier_check".into(), true.into());
                }
                let active = host.active.load(std::sync::atomic::Ordering::Relaxed);
                json!({
                    "address": {"socket_address": {"address": e.host, "port_value": e.port}},
                    "stats": [{"name": "rq_active", "type": "GAUGE", "value": active}],
                    "health_status": health,
                    "weight": e.weight,
                })
            })
            .collect();
        json!({
            "name": name,
            "observability_name": name,
            "added_via_api": true,
            "host_statuses": hosts,
        })
    });
    statuses.extend(dynamic);
    json!({ "cluster_statuses": statuses })
}

/// The ADS cluster of the bootstrap (the static cluster weft-proxy uses) as a
/// `cluster_statuses` entry: its endpoints, healthy, as Envoy shows a STATIC cluster.
fn ads_cluster_status(bootstrap: &serde_json::Value) -> Vec<serde_json::Value> {
    let ads = bootstrap
        .pointer("/dynamic_resources/ads_config/grpc_services")
        .and_then(serde_json::Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|g| g.pointer("/envoy_grpc/cluster_name")?.as_str())
        .collect::<Vec<_>>();
    let clusters = bootstrap.pointer("/static_resources/clusters");
    clusters
        .and_then(serde_json::Value::as_array)
        .into_iter()
        .flatten()
        .filter(|c| c["name"].as_str().is_some_and(|n| ads.contains(&n)))
        .map(|c| {
            let hosts: Vec<_> = c
                .pointer("/load_assignment/endpoints")
                .and_then(serde_json::Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|l| l["lb_endpoints"].as_array())
                .flatten()
                .map(|e| {
                    json!({
                        "address": e.pointer("/endpoint/address"),
                        "health_status": {"eds_health_status": "HEALTHY"},
                        "weight": 1,
                    })
                })
                .collect();
            json!({"name": c["name"], "observability_name": c["name"], "host_statuses": hosts})
        })
        .collect()
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
