//! The router filter's forwarding: the upstream request built from the route (rewrites,
//! header edits, hash), mirrors, then tries under the route timeout, per-try timeout and
//! retry policy, and the response sent back with the route's response edits.

use super::headers::{self, apply_response};
use super::local_reply::{is_grpc, local_reply, ResponseFlag};
use super::retry::{backoff, grpc_status, retriable, Outcome, RequestBody};
use super::{
    choose_by, hash, mirror, rewrite, upgrade, uuid_v4, ResponseBody, HOP_BY_HOP,
    X_FORWARDED_PROTO, X_REQUEST_ID,
};
use crate::cluster::{self, UpstreamError};
use crate::model::{Forward, Route, RouteConfig, VirtualHost};
use crate::state::{Proxy, Snapshot};
use crate::stats::inc;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use std::net::SocketAddr;
use std::time::Instant;

/// The request's place in the configuration, shared by the filters.
pub struct RouteCtx<'a> {
    pub proxy: &'a Proxy,
    pub snapshot: &'a Snapshot,
    pub rc: &'a RouteConfig,
    pub vh: &'a VirtualHost,
    pub route: &'a Route,
    pub peer: Option<SocketAddr>,
    /// The downstream connection's original destination (transparent capture), where
    /// ORIGINAL_DST clusters (PassthroughCluster, InboundPassthroughCluster) connect.
    pub original_dst: Option<SocketAddr>,
    pub authority: &'a str,
    pub path_and_query: &'a str,
}

const TIMEOUT_BODY: &str = "upstream request timeout";

pub async fn forward(
    ctx: &RouteCtx<'_>,
    f: &Forward,
    req: Request<Incoming>,
) -> Response<ResponseBody> {
    let target = choose_by(&f.clusters, |c| c.weight);
    let mut resp = forward_to(ctx, f, target, req).await;
    // The destination the metrics and the access log report, local replies included; the
    // endpoint that answered names the destination workload.
    let reporter = crate::telemetry::labels::Reporter::of(Some(&target.name), "");
    let upstream = resp.extensions().get::<cluster::UpstreamHost>();
    let workload = upstream.and_then(|h| h.workload.as_deref());
    let dest = (ctx.proxy.telemetry.metrics).destination_to(reporter, Some(&target.name), workload);
    resp.extensions_mut().insert(crate::telemetry::Routed(dest));
    resp
}

async fn forward_to(
    ctx: &RouteCtx<'_>,
    f: &Forward,
    target: &crate::model::route::RouteCluster,
    mut req: Request<Incoming>,
) -> Response<ResponseBody> {
    // An upgrade the connection manager allows (it refused the others): the request goes
    // out with its upgrade headers and, on a 101, the two connections are spliced.
    let upgrade_value = upgrade::requested(req.version(), req.headers())
        .and_then(|_| req.headers().get(header::UPGRADE).cloned());
    let mut downstream_upgrade = upgrade_value.as_ref().map(|_| hyper::upgrade::on(&mut req));
    let levels = headers::levels(ctx.rc, ctx.vh, ctx.route, Some(target));
    // Kept for the response only when a response edit reads it (`%REQ(...)%`).
    let downstream_headers = if levels.response_reads_request() {
        req.headers().clone()
    } else {
        HeaderMap::new()
    };
    // Router local replies carry the route's response edits too, as in Envoy.
    let reply = |status: StatusCode, flag: ResponseFlag, body: &str| {
        let mut r = local_reply(status, flag, body);
        apply_response(&levels, r.headers_mut(), ctx.peer, &downstream_headers);
        r
    };
    let Some(cluster) = ctx.snapshot.clusters.get(&target.name) else {
        return reply(
            StatusCode::SERVICE_UNAVAILABLE,
            ResponseFlag::NoClusterFound,
            "",
        );
    };
    let proxy = ctx.proxy;
    // The same counters as `proxy.stats.cluster(name)`, without the lookup.
    let cluster_stats = &cluster.stats;
    let (mut parts, body) = req.into_parts();
    let h = &mut parts.headers;
    for name in &HOP_BY_HOP {
        h.remove(name);
    }
    if let Some(value) = &upgrade_value {
        upgrade::restore(h, value.clone());
    }
    if !h.contains_key(&X_REQUEST_ID) {
        h.insert(X_REQUEST_ID.clone(), uuid_v4());
    }
    if !h.contains_key(&X_FORWARDED_PROTO) {
        h.insert(X_FORWARDED_PROTO.clone(), HeaderValue::from_static("http"));
    }
    let mut rewritten = None;
    if let Some(rw) = &f.path_rewrite {
        let new = rewrite::rewrite(rw, &ctx.route.matcher.path, ctx.path_and_query);
        if new != ctx.path_and_query {
            if let Ok(v) = HeaderValue::from_str(ctx.path_and_query) {
                h.insert(HeaderName::from_static("x-envoy-original-path"), v);
            }
            rewritten = Some(new);
        }
    }
    // Only a hashing balancer asks for the hash (and so only then is a cookie generated).
    let (lb, set_cookies) = if cluster::uses_hash(&cluster.config.lb_policy) {
        let query = ctx
            .path_and_query
            .find('?')
            .map_or("", |i| &ctx.path_and_query[i..]);
        hash::compute(&f.hash_policy, h, query, ctx.peer)
    } else {
        Default::default()
    };
    headers::apply_request(&levels, h, ctx.peer);
    let host = target
        .host_rewrite
        .as_deref()
        .or(f.host_rewrite.as_deref())
        .unwrap_or(ctx.authority);
    // Most often the Host the request came with: kept, not copied.
    let mut present = h.get_all(header::HOST).iter();
    let same = present
        .next()
        .is_some_and(|v| v.as_bytes() == host.as_bytes())
        && present.next().is_none();
    if !same {
        if let Ok(v) = HeaderValue::from_str(host) {
            h.insert(header::HOST, v);
        }
    }
    let uri: http::Uri = match rewritten.map(|p| p.parse()) {
        Some(Ok(u)) => u,
        Some(Err(_)) => return reply(StatusCode::BAD_REQUEST, ResponseFlag::None, ""),
        None => cluster::origin_form(&parts.uri),
    };
    // A streaming gRPC call over HTTP/2 may wait for answers before it ends its body, so
    // it is never held back for buffering (and so is not retried after it started).
    let mut body = if is_grpc(&parts.headers) && parts.version == http::Version::HTTP_2 {
        RequestBody::Streaming(body.boxed())
    } else {
        match RequestBody::read(body).await {
            Ok(b) => b,
            Err(e) => {
                tracing::debug!(error = %e, "downstream body ended with an error");
                return reply(StatusCode::BAD_REQUEST, ResponseFlag::None, "");
            }
        }
    };
    for m in f.mirrors.iter().chain(&ctx.vh.mirrors) {
        // A shadow cannot take part in an upgraded stream.
        if upgrade_value.is_some() || !m.fraction.sample() {
            continue;
        }
        // Bodies too large to keep are not mirrored.
        if let Some(b) = body.buffered() {
            let copy = mirror::Copy {
                method: &parts.method,
                uri: &uri,
                version: parts.version,
                headers: &parts.headers,
                body: b.clone(),
            };
            mirror::send(ctx.snapshot, m, copy, f.timeout);
        }
    }

    let policy = f.retry_policy.as_ref().or(ctx.vh.retry_policy.as_ref());
    let started = Instant::now();
    let deadline = f.timeout.map(|t| started + t);
    let mut attempt: u32 = 1;
    let mut _retry_permit = None;
    loop {
        let mut try_req = Request::new(body.take());
        *try_req.method_mut() = parts.method.clone();
        *try_req.uri_mut() = uri.clone();
        *try_req.version_mut() = parts.version;
        // The headers are copied only while another try may need them.
        let may_retry = policy.is_some_and(|p| attempt <= p.num_retries) && body.replayable();
        *try_req.headers_mut() = if may_retry {
            parts.headers.clone()
        } else {
            std::mem::take(&mut parts.headers)
        };
        if ctx.vh.include_request_attempt_count {
            try_req.headers_mut().insert(
                HeaderName::from_static("x-envoy-attempt-count"),
                HeaderValue::from(attempt),
            );
        }
        let now = Instant::now();
        let per_try = policy.and_then(|p| p.per_try_timeout);
        let limit = match (deadline.map(|d| d.saturating_duration_since(now)), per_try) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        inc(&proxy.stats.upstream_rq_total);
        inc(&cluster_stats.upstream_rq_total);
        let sent = cluster.send_to(try_req, lb.hash, ctx.original_dst);
        let result = match limit {
            Some(l) => tokio::time::timeout(l, sent).await.ok(),
            None => Some(sent.await),
        };
        let (outcome, response, error) = match result {
            None if deadline.is_some_and(|d| Instant::now() >= d) => {
                inc(&proxy.stats.rq_timeout);
                inc(&cluster_stats.upstream_rq_timeout);
                return reply(
                    StatusCode::GATEWAY_TIMEOUT,
                    ResponseFlag::UpstreamRequestTimeout,
                    TIMEOUT_BODY,
                );
            }
            None => {
                inc(&cluster_stats.upstream_rq_per_try_timeout);
                (Outcome::PerTryTimeout, None, None)
            }
            Some(Ok(resp)) => {
                let o = Outcome::Status(resp.status().as_u16(), grpc_status(resp.headers()));
                (o, Some(resp), None)
            }
            Some(Err(UpstreamError::NoHealthyUpstream)) => {
                inc(&proxy.stats.rq_no_healthy_upstream);
                inc(&cluster_stats.upstream_cx_none_healthy);
                return reply(
                    StatusCode::SERVICE_UNAVAILABLE,
                    ResponseFlag::NoHealthyUpstream,
                    "no healthy upstream",
                );
            }
            Some(Err(e @ UpstreamError::Overflow)) => {
                return reply(
                    StatusCode::SERVICE_UNAVAILABLE,
                    ResponseFlag::UpstreamOverflow,
                    e.body(),
                );
            }
            Some(Err(e @ UpstreamError::ConnectFailure(_))) => {
                inc(&proxy.stats.rq_upstream_failure);
                inc(&cluster_stats.upstream_cx_connect_fail);
                (Outcome::ConnectFailure, None, Some(e))
            }
            Some(Err(e @ UpstreamError::Reset(_))) => (Outcome::Reset, None, Some(e)),
        };
        tracing::debug!(cluster = %target.name, attempt, ?outcome, "upstream try");
        let retry = policy
            .filter(|p| attempt <= p.num_retries && retriable(p, outcome) && body.replayable());
        if let Some(p) = retry {
            let pause = backoff(p, attempt);
            let in_time = deadline.is_none_or(|d| Instant::now() + pause < d);
            if in_time {
                if let Some(permit) = cluster.retry_permit() {
                    _retry_permit = Some(permit);
                    inc(&cluster_stats.upstream_rq_retry);
                    drop(response);
                    tokio::time::sleep(pause).await;
                    attempt += 1;
                    continue;
                }
            }
        }
        let mut resp = match (response, error) {
            (Some(resp), _) => {
                let (mut rp, rb) = resp.into_parts();
                let upstream_upgrade = rp.headers.get(header::UPGRADE).cloned();
                for name in &HOP_BY_HOP {
                    rp.headers.remove(name);
                }
                let ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
                rp.headers.insert(
                    HeaderName::from_static("x-envoy-upstream-service-time"),
                    HeaderValue::from(ms),
                );
                let switched = rp.status == StatusCode::SWITCHING_PROTOCOLS;
                let tunnel = (
                    downstream_upgrade.take().filter(|_| switched),
                    rp.extensions.remove::<hyper::upgrade::OnUpgrade>(),
                    upstream_upgrade,
                );
                let body = match tunnel {
                    (Some(down), Some(up), Some(value)) => {
                        upgrade::restore(&mut rp.headers, value);
                        // The 101's (empty) body holds the request's place until the
                        // tunnel closes.
                        upgrade::splice(down, up, rb);
                        super::full(String::new())
                    }
                    _ => rb.boxed(),
                };
                let mut resp = Response::from_parts(rp, body);
                apply_response(&levels, resp.headers_mut(), ctx.peer, &downstream_headers);
                resp
            }
            (None, Some(e)) => {
                let flag = match e {
                    UpstreamError::ConnectFailure(_) => ResponseFlag::UpstreamConnectionFailure,
                    _ => ResponseFlag::UpstreamConnectionTermination,
                };
                reply(StatusCode::SERVICE_UNAVAILABLE, flag, e.body())
            }
            // The last try hit its per-try timeout.
            (None, None) => {
                inc(&proxy.stats.rq_timeout);
                reply(
                    StatusCode::GATEWAY_TIMEOUT,
                    ResponseFlag::UpstreamRequestTimeout,
                    TIMEOUT_BODY,
                )
            }
        };
        add_response_extras(
            resp.headers_mut(),
            &set_cookies,
            ctx.vh.include_attempt_count_in_response.then_some(attempt),
        );
        return resp;
    }
}

fn add_response_extras(h: &mut HeaderMap, set_cookies: &[HeaderValue], attempts: Option<u32>) {
    for c in set_cookies {
        h.append(header::SET_COOKIE, c.clone());
    }
    if let Some(n) = attempts {
        h.insert(
            HeaderName::from_static("x-envoy-attempt-count"),
            HeaderValue::from(n),
        );
    }
}

#[cfg(test)]
#[path = "router_tests.rs"]
mod tests;
