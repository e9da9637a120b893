//! The sidecar readiness endpoint (Istio's 15021): `GET /healthz/ready` answers 200 once
//! listeners are applied, the same condition as the admin `/ready`, 503 before.

use crate::http::{full, ResponseBody};
use crate::state::Proxy;
use http::{header, HeaderValue, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;

/// Node metadata key that sets the health port (tests run many proxies on one host).
pub const HEALTH_PORT_KEY: &str = "WEFT_HEALTH_PORT";
/// Istio's sidecar status port.
pub const DEFAULT_HEALTH_PORT: u16 = 15021;

/// The health port: node metadata `WEFT_HEALTH_PORT` (string or number), else `flag`,
/// else 15021.
pub fn port(metadata: &serde_json::Map<String, serde_json::Value>, flag: Option<u16>) -> u16 {
    let from_metadata = metadata.get(HEALTH_PORT_KEY).and_then(|v| match v {
        serde_json::Value::String(s) => s.parse().ok(),
        serde_json::Value::Number(n) => n.as_u64().and_then(|n| u16::try_from(n).ok()),
        _ => None,
    });
    from_metadata.or(flag).unwrap_or(DEFAULT_HEALTH_PORT)
}

/// Binds `port` on all addresses (the kubelet probes from outside the pod); if it is
/// taken, warns and runs without it: a probe endpoint must never stop the proxy.
pub async fn serve(proxy: Arc<Proxy>, port: u16) {
    let addr = SocketAddr::from(([0, 0, 0, 0], port));
    match TcpListener::bind(addr).await {
        Ok(socket) => {
            tracing::info!(%addr, "health listening");
            serve_on(proxy, socket).await;
        }
        Err(e) => {
            tracing::warn!(%addr, error = %e, "cannot bind the health port; no /healthz/ready");
        }
    }
}

/// Serves `/healthz/ready` on an already bound socket until the process ends.
pub async fn serve_on(proxy: Arc<Proxy>, socket: TcpListener) {
    loop {
        let Ok((stream, _)) = socket.accept().await else {
            continue;
        };
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
    let (status, body) = match req.uri().path() {
        "/healthz/ready" if proxy.snapshot.load().lds_applied => (StatusCode::OK, ""),
        "/healthz/ready" => (StatusCode::SERVICE_UNAVAILABLE, "not ready\n"),
        _ => (StatusCode::NOT_FOUND, "not found\n"),
    };
    let mut r = Response::new(full(body.to_string()));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::Snapshot;

    #[test]
    fn port_from_metadata_then_flag_then_default() {
        let with = serde_json::json!({"WEFT_HEALTH_PORT": "16021"});
        let with = with.as_object().unwrap();
        assert_eq!(port(with, Some(17021)), 16021);
        let number = serde_json::json!({"WEFT_HEALTH_PORT": 16022});
        assert_eq!(port(number.as_object().unwrap(), None), 16022);
        let without = serde_json::Map::new();
        assert_eq!(port(&without, Some(17021)), 17021);
        assert_eq!(port(&without, None), 15021);
    }

    #[tokio::test]
    async fn ready_once_listeners_are_applied() {
        let proxy = Proxy::new();
        let socket = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = socket.local_addr().unwrap();
        tokio::spawn(serve_on(proxy.clone(), socket));
        let get = |path: &'static str| async move {
            reqwest::get(format!("http://{addr}{path}"))
                .await
                .unwrap()
                .status()
                .as_u16()
        };
        assert_eq!(get("/healthz/ready").await, 503);
        proxy.publish(Snapshot {
            lds_applied: true,
            ..Default::default()
        });
        assert_eq!(get("/healthz/ready").await, 200);
        assert_eq!(get("/other").await, 404);
    }

    #[tokio::test]
    async fn a_taken_port_is_skipped_not_fatal() {
        let taken = TcpListener::bind("0.0.0.0:0").await.unwrap();
        let port = taken.local_addr().unwrap().port();
        // Returns (after a warning) instead of failing or hanging.
        tokio::time::timeout(std::time::Duration::from_secs(5), serve(Proxy::new(), port))
            .await
            .expect("serve gives up at once on a taken port");
    }
}
