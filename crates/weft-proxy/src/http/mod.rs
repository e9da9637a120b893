//! The HTTP connection manager's data path: downstream connections, route selection, and
//! the HTTP filters Envoy's sidecars run (fault, CORS, router) with per-route config.

mod cors;
mod fault;
pub mod hash;
mod headers;
mod local_reply;
pub mod metadata;
mod mirror;
mod retry;
mod rewrite;
mod router;
pub mod routing;
mod upgrade;
pub mod xfcc;

pub use hash::LbContext;

use crate::cluster::UpstreamBody;
use crate::listener::Downstream;
use crate::model::{Action, Codec, HttpConnectionManager, RouteSource, WeightedCluster};
use crate::state::Proxy;
use crate::stats::inc;
use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use local_reply::{local_reply, ResponseFlag};
use rand::Rng;
use std::convert::Infallible;
use std::sync::Arc;

pub type ResponseBody = UpstreamBody;

/// Names the data path sets on most requests, parsed once.
static X_REQUEST_ID: header::HeaderName = header::HeaderName::from_static("x-request-id");
static X_FORWARDED_PROTO: header::HeaderName = header::HeaderName::from_static("x-forwarded-proto");

/// Headers that describe one hop and never travel on (RFC 9110 7.6.1, plus proxy-connection).
/// Parsed once: removing by a `&str` name would parse it on every request.
static HOP_BY_HOP: [header::HeaderName; 7] = [
    header::CONNECTION,
    header::HeaderName::from_static("proxy-connection"),
    header::HeaderName::from_static("keep-alive"),
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// Serves one downstream connection with connection manager `hcm`: HTTP/1.1 (upgrades
/// included), or HTTP/2 when the codec allows it and the client opens with the HTTP/2
/// preface (h2c prior knowledge, or `h2` negotiated over TLS).
pub async fn serve_connection<S>(proxy: Arc<Proxy>, hcm: Arc<HttpConnectionManager>, stream: S)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    serve_connection_from(proxy, hcm, stream, Arc::default()).await
}

/// [`serve_connection`] knowing the downstream connection: the client's address (source-IP
/// hashing, cookies, `%DOWNSTREAM_REMOTE_ADDRESS%`), its original destination and identity.
pub async fn serve_connection_from<S>(
    proxy: Arc<Proxy>,
    hcm: Arc<HttpConnectionManager>,
    stream: S,
    downstream: Arc<Downstream>,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    inc(&proxy.stats.downstream_cx_total);
    let drained = proxy.drain.started();
    let replaced = listener_replaced(
        proxy.clone(),
        downstream.listener.clone(),
        downstream.listener_config.clone(),
    );
    let codec = hcm.codec;
    let service = service_fn(move |req| {
        let proxy = proxy.clone();
        let hcm = hcm.clone();
        let downstream = downstream.clone();
        async move { Ok::<_, Infallible>(handle(&proxy, &hcm, &downstream, req).await) }
    });
    let mut builder = auto::Builder::new(TokioExecutor::new());
    match codec {
        Codec::Auto => {}
        Codec::Http1 => builder = builder.http1_only(),
        Codec::Http2 => builder = builder.http2_only(),
    }
    builder.http1().keep_alive(true);
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
    tokio::pin!(conn);
    // On drain: finish the request in flight, answer it with `Connection: close` (HTTP/1)
    // or GOAWAY (HTTP/2), then close.
    let result = tokio::select! {
        r = conn.as_mut() => r,
        () = async { tokio::select! { () = drained => {}, () = replaced => {} } } => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = result {
        tracing::debug!(error = %e, "downstream connection ended with an error");
    }
}

/// Resolves once the listener `name` is updated or removed. The connection then closes
/// after its request in flight (HTTP/1.1 `Connection: close`, HTTP/2 GOAWAY), so a changed
/// connection manager (authorization, JWT, filters) applies to the next connection instead
/// of never reaching clients that keep their connections alive. Envoy drains the
/// connections of a replaced listener the same way. Resent unchanged, a listener keeps its
/// accepted encoding and nothing is drained.
///
/// `initial` is the accepted config from the snapshot that picked the listener when the
/// connection arrived; an update that landed during the TLS handshake drains at once.
async fn listener_replaced(
    proxy: Arc<Proxy>,
    name: String,
    initial: Option<Arc<crate::xds::store::Accepted>>,
) {
    // Subscribed before the first comparison, so no update falls between the two.
    let mut changed = proxy.changed.subscribe();
    let Some(initial) = initial.filter(|_| !name.is_empty()) else {
        return std::future::pending().await;
    };
    loop {
        let same = match proxy.snapshot.load().accepted.listeners.get(&name) {
            Some(now) => Arc::ptr_eq(&initial, now) || initial.encoded == now.encoded,
            None => false,
        };
        if !same {
            return;
        }
        if changed.changed().await.is_err() {
            return std::future::pending().await;
        }
    }
}

/// One request: loads the snapshot once and uses it to the end.
async fn handle(
    proxy: &Proxy,
    hcm: &HttpConnectionManager,
    downstream: &Downstream,
    mut req: Request<Incoming>,
) -> Response<ResponseBody> {
    inc(&proxy.stats.downstream_rq_total);
    let grpc = local_reply::is_grpc(req.headers());
    headers::connection_manager_request(&mut req, downstream, hcm.forwarding);
    xfcc::mutate_request(
        req.headers_mut(),
        hcm.forwarding.client_cert,
        downstream.peer_certificate.as_deref(),
        downstream.local_principal.as_deref(),
    );
    let info = crate::telemetry::StreamInfo::begin(
        &proxy.telemetry,
        &req,
        &hcm.stat_prefix,
        downstream,
        grpc,
    );
    let mut resp = local_reply::finish(filter_chain(proxy, hcm, downstream, req).await, grpc);
    // Envoy's default server_header_transformation, OVERWRITE with its server name.
    resp.headers_mut()
        .insert(header::SERVER, HeaderValue::from_static("envoy"));
    info.finish(&proxy.telemetry, resp)
}

/// Route selection, then the filters Envoy's sidecars run: fault, CORS, router.
async fn filter_chain(
    proxy: &Proxy,
    hcm: &HttpConnectionManager,
    downstream: &Downstream,
    mut req: Request<Incoming>,
) -> Response<ResponseBody> {
    let peer = downstream.remote;
    // jwt_authn first: it writes the payload RBAC and route matches read.
    if let Some(jwt) = &hcm.jwt {
        if let Err(r) = jwt.authenticate(&mut req, crate::jwt::unix_now()) {
            let mut resp = local_reply(r.status, ResponseFlag::None, &r.body);
            r.challenge(resp.headers_mut());
            return resp;
        }
    }
    let snapshot = proxy.snapshot.load_full();
    let route_config = match &hcm.routes {
        RouteSource::Inline(rc) => Some(rc.clone()),
        RouteSource::Rds(name) => snapshot.routes.get(name).cloned(),
    };
    // Absolute-form (HTTP proxy clients) carries the authority in the URI; origin-form in
    // Host; HTTP/2 in :authority (the URI).
    // Cheap copies (shared buffers) that outlive `req`, which the router consumes.
    let uri = req.uri().clone();
    let host_header = req.headers().get(header::HOST).cloned();
    let authority = uri
        .authority()
        .map(|a| a.as_str())
        .or_else(|| host_header.as_ref().and_then(|h| h.to_str().ok()))
        .unwrap_or_default();
    let path_and_query = uri.path_and_query().map_or("/", |p| p.as_str());
    // RBAC runs before routing, as Envoy's HTTP filters see the request before the router.
    if !hcm.rbac.is_empty() {
        if let Err(policy) = rbac_check(proxy, hcm, downstream, &req, authority, path_and_query) {
            let mut resp = local_reply(
                StatusCode::FORBIDDEN,
                ResponseFlag::None,
                crate::rbac::DENIED_BODY,
            );
            resp.extensions_mut().insert(crate::telemetry::Flags {
                flags: crate::rbac::DENIED_FLAG,
                details: crate::rbac::denied_details(policy.as_deref()),
            });
            return resp;
        }
    }
    let Some(rc) = route_config else {
        inc(&proxy.stats.rq_no_route);
        return local_reply(StatusCode::NOT_FOUND, ResponseFlag::NoRoute, "");
    };
    let proto_header = req.headers().get("x-forwarded-proto").cloned();
    let scheme = proto_header
        .as_ref()
        .and_then(|v| v.to_str().ok())
        .unwrap_or("http");
    let info = routing::RequestInfo {
        method: req.method().as_str(),
        authority,
        path_and_query,
        scheme,
        headers: req.headers(),
        metadata: routing::routing_metadata(&req),
    };
    let matched =
        routing::virtual_host(&rc, authority).and_then(|vh| Some((vh, routing::route(vh, &info)?)));
    let Some((vh, route)) = matched else {
        inc(&proxy.stats.rq_no_route);
        return local_reply(StatusCode::NOT_FOUND, ResponseFlag::NoRoute, "");
    };
    // As Envoy: a routed HTTP/1.1 upgrade of a type `upgrade_configs` does not enable.
    if let Some(kind) = upgrade::requested(req.version(), req.headers()) {
        if !hcm.upgrades.contains(&kind) {
            tracing::debug!(upgrade = %kind, "upgrade not enabled: 403");
            return upgrade::refused();
        }
    }
    let ctx = router::RouteCtx {
        proxy,
        snapshot: &snapshot,
        rc: &rc,
        vh,
        route,
        peer,
        original_dst: downstream.original_dst,
        authority,
        path_and_query,
    };
    // Per-filter config: the most specific level that has one.
    let fault = [&route.filters, &vh.filters, &rc.filters]
        .into_iter()
        .find_map(|f| f.fault.as_deref());
    if let Some(f) = fault {
        if let Some(resp) = fault::inject(f, &info).await {
            return resp;
        }
    }
    let cors = cors::Cors::new([
        route.filters.cors.as_deref(),
        vh.filters.cors.as_deref(),
        rc.filters.cors.as_deref(),
    ]);
    let latched = match cors.decode(req.method(), req.headers()) {
        cors::Decision::Respond(resp) => return resp,
        cors::Decision::Continue(l) => l,
    };
    let mut resp = match &route.action {
        Action::Forward(f) => router::forward(&ctx, f, req).await,
        Action::DirectResponse { status, body } => {
            let status = StatusCode::from_u16(*status).unwrap_or(StatusCode::OK);
            let body = body.as_deref().unwrap_or("");
            let mut resp = local_reply(status, ResponseFlag::None, body);
            let levels = headers::levels(&rc, vh, route, None);
            headers::apply_response(&levels, resp.headers_mut(), peer, req.headers());
            resp
        }
        Action::Redirect(r) => {
            let location =
                rewrite::location(r, &route.matcher.path, scheme, authority, path_and_query);
            let status = StatusCode::from_u16(r.status).unwrap_or(StatusCode::MOVED_PERMANENTLY);
            let mut resp = local_reply(status, ResponseFlag::None, "");
            if let Ok(v) = HeaderValue::from_str(&location) {
                resp.headers_mut().insert(header::LOCATION, v);
            }
            let levels = headers::levels(&rc, vh, route, None);
            headers::apply_response(&levels, resp.headers_mut(), peer, req.headers());
            resp
        }
    };
    cors.encode(&latched, resp.headers_mut());
    resp
}

/// The connection manager's RBAC filters on one request: `Err` names the deciding policy.
fn rbac_check(
    proxy: &Proxy,
    hcm: &HttpConnectionManager,
    downstream: &Downstream,
    req: &Request<Incoming>,
    authority: &str,
    path_and_query: &str,
) -> Result<(), Option<String>> {
    let scheme = if downstream.tls { "https" } else { "http" };
    let path = crate::rbac::normalized_path(path_and_query);
    let subject = crate::rbac::Subject {
        request: Some(crate::rbac::RequestAttrs {
            method: req.method().as_str(),
            authority,
            path: &path,
            scheme,
            headers: req.headers(),
        }),
        metadata: metadata::DynamicMetadata::of(req).map(metadata::DynamicMetadata::as_map),
        remote: crate::rbac::remote_address(
            req.headers(),
            downstream.remote,
            proxy.telemetry.is_gateway(),
        ),
        ..crate::rbac::connection(downstream)
    };
    crate::rbac::check_all(&hcm.rbac, &subject)
}

/// A cluster by weight, at random (Envoy's weighted_clusters; the TCP proxy's too).
pub fn choose(clusters: &[WeightedCluster]) -> &WeightedCluster {
    choose_by(clusters, |c| c.weight)
}

/// One of `items` at random by `weight`; the first when all weigh nothing.
pub fn choose_by<T>(items: &[T], weight: impl Fn(&T) -> u32) -> &T {
    let total: u64 = items.iter().map(|c| u64::from(weight(c))).sum();
    if items.len() == 1 || total == 0 {
        return &items[0];
    }
    let mut n = rand::rng().random_range(0..total);
    for c in items {
        let w = u64::from(weight(c));
        if n < w {
            return c;
        }
        n -= w;
    }
    &items[0]
}

pub fn full(body: String) -> ResponseBody {
    http_body_util::Full::new(Bytes::from(body))
        .map_err(|never| match never {})
        .boxed()
}

/// A random (version 4) UUID for `x-request-id`, written straight into the header value.
fn uuid_v4() -> HeaderValue {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut b: [u8; 16] = rand::rng().random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let mut out = [0u8; 36];
    let mut j = 0;
    for (i, x) in b.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            out[j] = b'-';
            j += 1;
        }
        out[j] = HEX[usize::from(x >> 4)];
        out[j + 1] = HEX[usize::from(x & 0x0f)];
        j += 2;
    }
    HeaderValue::from_bytes(&out).expect("hex and dashes")
}

#[cfg(test)]
mod uuid_tests {
    #[test]
    fn request_ids_are_random_version_4_uuids() {
        let a = super::uuid_v4();
        let a = a.to_str().unwrap();
        let groups: Vec<usize> = a.split('-').map(str::len).collect();
        assert_eq!(groups, [8, 4, 4, 4, 12], "{a}");
        assert!(a
            .bytes()
            .all(|c| c == b'-' || c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        assert_eq!(&a[14..15], "4", "version nibble: {a}");
        assert!(
            matches!(&a[19..20], "8" | "9" | "a" | "b"),
            "variant bits: {a}"
        );
        assert_ne!(a, super::uuid_v4().to_str().unwrap());
    }
}
