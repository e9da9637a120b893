//! The stats port (Istio's 15090): `GET /stats/prometheus` in Prometheus text format.

use super::Telemetry;
use http::{header, HeaderValue, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;

/// Binds the stats port on all addresses (Prometheus scrapes it from outside); if it is
/// taken, warns and runs without it: telemetry must never stop the proxy.
pub async fn serve(telemetry: Arc<Telemetry>, port: u16) {
    let addr = SocketAddr::from(([0, 0, 0, 0], port));
    let socket = match TcpListener::bind(addr).await {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(%addr, error = %e, "cannot bind the stats port; no /stats/prometheus");
            return;
        }
    };
    tracing::info!(%addr, "stats listening");
    loop {
        let Ok((stream, _)) = socket.accept().await else {
            continue;
        };
        let telemetry = telemetry.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let telemetry = telemetry.clone();
                async move { Ok::<_, Infallible>(handle(&telemetry, &req)) }
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn handle(telemetry: &Telemetry, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    let (status, content_type, body) = match req.uri().path() {
        "/stats/prometheus" => (
            StatusCode::OK,
            "text/plain; version=0.0.4; charset=utf-8",
            telemetry.metrics.encode(),
        ),
        _ => (StatusCode::NOT_FOUND, "text/plain", "not found\n".into()),
    };
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}
