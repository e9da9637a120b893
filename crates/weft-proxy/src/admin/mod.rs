//! The admin endpoint on loopback: /ready, /config_dump, /stats, /server_info, /quitquitquit.

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

/// Serves the admin API on `addr` until the process ends.
pub async fn serve(proxy: Arc<Proxy>, addr: SocketAddr) -> std::io::Result<()> {
    let socket = TcpListener::bind(addr).await?;
    tracing::info!(%addr, "admin listening");
    loop {
        let (stream, _) = socket.accept().await?;
        let proxy = proxy.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let proxy = proxy.clone();
                async move { Ok::<_, Infallible>(handle(&proxy, &req)) }
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn handle(proxy: &Proxy, req: &Request<Incoming>) -> Response<ResponseBody> {
    let snapshot = proxy.snapshot.load();
    match req.uri().path() {
        "/ready" if snapshot.lds_applied => text(StatusCode::OK, "LIVE\n"),
        "/ready" => text(StatusCode::SERVICE_UNAVAILABLE, "PRE_INITIALIZING\n"),
        "/server_info" => json_reply(&json!({
            "state": if snapshot.lds_applied { "LIVE" } else { "PRE_INITIALIZING" },
            "version": concat!("weft-proxy/", env!("CARGO_PKG_VERSION")),
        })),
        "/stats" => text(StatusCode::OK, &proxy.stats.render()),
        "/config_dump" => json_reply(&config_dump(&snapshot)),
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
