//! The HTTP connection manager's data path: HTTP/1.1 downstream with keep-alive, route
//! selection, and forwarding to a cluster's host with the body streamed both ways.

mod local_reply;
pub mod routing;

use crate::cluster::{self, ActiveRequest, UpstreamBody};
use crate::model::{
    Action, Forward, Listener, NetworkFilter, Redirect, RouteSource, WeightedCluster,
};
use crate::state::Proxy;
use crate::stats::inc;
use bytes::Bytes;
use http::header::{self, HeaderName, HeaderValue};
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use local_reply::{local_reply, ResponseFlag};
use rand::Rng;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Instant;
use tokio::net::TcpStream;

pub type ResponseBody = UpstreamBody;

/// Headers that describe one hop and never travel on (RFC 9110 7.6.1, plus proxy-connection).
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "proxy-connection",
    "keep-alive",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Serves one downstream connection of listener `listener`.
pub async fn serve_connection(proxy: Arc<Proxy>, listener: Arc<Listener>, stream: TcpStream) {
    inc(&proxy.stats.downstream_cx_total);
    let service = service_fn(move |req| {
        let proxy = proxy.clone();
        let listener = listener.clone();
        async move { Ok::<_, Infallible>(handle(&proxy, &listener, req).await) }
    });
    let conn = http1::Builder::new()
        .keep_alive(true)
        .serve_connection(TokioIo::new(stream), service);
    if let Err(e) = conn.await {
        tracing::debug!(error = %e, "downstream connection ended with an error");
    }
}

/// One request: loads the snapshot once and uses it to the end.
async fn handle(
    proxy: &Proxy,
    accepted_on: &Listener,
    req: Request<Incoming>,
) -> Response<ResponseBody> {
    inc(&proxy.stats.downstream_rq_total);
    let snapshot = proxy.snapshot.load_full();
    // The listener as it is now; a connection outliving its listener keeps the old one.
    let listener = snapshot
        .listeners
        .get(&accepted_on.name)
        .map_or(accepted_on, |l| l.as_ref());
    let NetworkFilter::Http(hcm) = &listener.filter else {
        return local_reply(StatusCode::INTERNAL_SERVER_ERROR, ResponseFlag::NoRoute, "");
    };
    let route_config = match &hcm.routes {
        RouteSource::Inline(rc) => Some(rc.clone()),
        RouteSource::Rds(name) => snapshot.routes.get(name).cloned(),
    };
    // Absolute-form (HTTP proxy clients) carries the authority in the URI; origin-form in Host.
    let authority = req
        .uri()
        .authority()
        .map(|a| a.as_str().to_string())
        .or_else(|| {
            req.headers()
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .map(str::to_string)
        })
        .unwrap_or_default();
    let path_and_query = req
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_string();
    let matched = route_config.as_ref().and_then(|rc| {
        let vh = routing::virtual_host(rc, &authority)?;
        Some((vh, routing::route(vh, &path_and_query, req.headers())?))
    });
    let Some((vh, route)) = matched else {
        inc(&proxy.stats.rq_no_route);
        return local_reply(StatusCode::NOT_FOUND, ResponseFlag::NoRoute, "");
    };
    match &route.action {
        Action::DirectResponse { status, body } => {
            let status = StatusCode::from_u16(*status).unwrap_or(StatusCode::OK);
            let mut resp = Response::new(full(body.clone().unwrap_or_default()));
            *resp.status_mut() = status;
            resp
        }
        Action::Redirect(r) => redirect(r, &authority, &path_and_query),
        Action::Forward(f) => {
            let upstream = Upstream {
                authority,
                path_and_query,
                attempt_count: vh.include_request_attempt_count,
            };
            forward(proxy, &snapshot, f, upstream, req).await
        }
    }
}

/// What the upstream request is built from.
struct Upstream {
    authority: String,
    path_and_query: String,
    attempt_count: bool,
}

async fn forward(
    proxy: &Proxy,
    snapshot: &crate::state::Snapshot,
    f: &Forward,
    up: Upstream,
    req: Request<Incoming>,
) -> Response<ResponseBody> {
    let cluster_name = &choose(&f.clusters).name;
    let Some(cluster) = snapshot.clusters.get(cluster_name) else {
        return local_reply(
            StatusCode::SERVICE_UNAVAILABLE,
            ResponseFlag::NoClusterFound,
            "",
        );
    };
    let Some(host) = cluster::pick(cluster) else {
        inc(&proxy.stats.rq_no_healthy_upstream);
        return local_reply(
            StatusCode::SERVICE_UNAVAILABLE,
            ResponseFlag::NoHealthyUpstream,
            "no healthy upstream",
        );
    };
    let _active = ActiveRequest::start(host);
    let (mut parts, body) = req.into_parts();
    let uri = format!("http://{}{}", host.endpoint.authority(), up.path_and_query);
    parts.uri = match uri.parse() {
        Ok(u) => u,
        Err(_) => return local_reply(StatusCode::BAD_REQUEST, ResponseFlag::None, ""),
    };
    parts.version = http::Version::HTTP_11;
    let headers = &mut parts.headers;
    for name in HOP_BY_HOP {
        headers.remove(*name);
    }
    if !headers.contains_key(header::HOST) {
        if let Ok(v) = HeaderValue::from_str(&up.authority) {
            headers.insert(header::HOST, v);
        }
    }
    let request_id = HeaderName::from_static("x-request-id");
    if !headers.contains_key(&request_id) {
        headers.insert(
            request_id,
            HeaderValue::from_str(&uuid_v4()).expect("hex and dashes"),
        );
    }
    let proto = HeaderName::from_static("x-forwarded-proto");
    if !headers.contains_key(&proto) {
        headers.insert(proto, HeaderValue::from_static("http"));
    }
    if up.attempt_count {
        headers.insert(
            HeaderName::from_static("x-envoy-attempt-count"),
            HeaderValue::from_static("1"),
        );
    }
    let upstream_req = Request::from_parts(parts, body.boxed());
    inc(&proxy.stats.upstream_rq_total);
    let started = Instant::now();
    let sent = cluster.client.request(upstream_req);
    let result = match f.timeout {
        Some(t) => match tokio::time::timeout(t, sent).await {
            Ok(r) => r,
            Err(_) => {
                inc(&proxy.stats.rq_timeout);
                return local_reply(
                    StatusCode::GATEWAY_TIMEOUT,
                    ResponseFlag::UpstreamRequestTimeout,
                    "upstream request timeout",
                );
            }
        },
        None => sent.await,
    };
    match result {
        Ok(resp) => {
            let (mut parts, body) = resp.into_parts();
            for name in HOP_BY_HOP {
                parts.headers.remove(*name);
            }
            let ms = started.elapsed().as_millis().to_string();
            parts.headers.insert(
                HeaderName::from_static("x-envoy-upstream-service-time"),
                HeaderValue::from_str(&ms).expect("digits"),
            );
            Response::from_parts(parts, body.boxed())
        }
        Err(e) => {
            inc(&proxy.stats.rq_upstream_failure);
            tracing::debug!(cluster = %cluster_name, error = %e, "upstream request failed");
            local_reply(
                StatusCode::SERVICE_UNAVAILABLE,
                ResponseFlag::UpstreamConnectionFailure,
                "upstream connect error or disconnect/reset before headers. reset reason: connection failure",
            )
        }
    }
}

/// A cluster by weight, at random (Envoy's weighted_clusters).
pub fn choose(clusters: &[WeightedCluster]) -> &WeightedCluster {
    let total: u64 = clusters.iter().map(|c| u64::from(c.weight)).sum();
    if clusters.len() == 1 || total == 0 {
        return &clusters[0];
    }
    let mut n = rand::rng().random_range(0..total);
    for c in clusters {
        let w = u64::from(c.weight);
        if n < w {
            return c;
        }
        n -= w;
    }
    &clusters[0]
}

fn redirect(r: &Redirect, authority: &str, path_and_query: &str) -> Response<ResponseBody> {
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if p.parse::<u16>().is_ok() => (h, Some(p.to_string())),
        _ => (authority, None),
    };
    let scheme = r.scheme.as_deref().unwrap_or("http");
    let host = r.host.as_deref().unwrap_or(host);
    // A scheme change drops the original port, as Envoy does.
    let port = match (r.port, &r.scheme) {
        (Some(p), _) => Some(p.to_string()),
        (None, Some(_)) => None,
        (None, None) => port,
    };
    let path = r.path.as_deref().unwrap_or(path_and_query);
    let location = match port {
        Some(p) => format!("{scheme}://{host}:{p}{path}"),
        None => format!("{scheme}://{host}{path}"),
    };
    let mut resp = Response::new(full(String::new()));
    *resp.status_mut() = StatusCode::from_u16(r.status).unwrap_or(StatusCode::MOVED_PERMANENTLY);
    if let Ok(v) = HeaderValue::from_str(&location) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp
}

pub fn full(body: String) -> ResponseBody {
    http_body_util::Full::new(Bytes::from(body))
        .map_err(|never| match never {})
        .boxed()
}

/// A random (version 4) UUID for `x-request-id`.
fn uuid_v4() -> String {
    let mut b: [u8; 16] = rand::rng().random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}
