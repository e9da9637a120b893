//! Responses the proxy makes itself, tagged with Envoy's response flag, and their gRPC
//! form: a request with a gRPC content type gets a trailers-only response (HTTP 200,
//! `grpc-status`, `grpc-message`) instead, as Envoy's `sendLocalReply` does.

use super::{full, ResponseBody};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Response, StatusCode};

/// Why the proxy answered itself (Envoy's response flags, short names in `as_str`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResponseFlag {
    None,
    /// NR: no route matched.
    NoRoute,
    /// NC: the route's cluster does not exist.
    NoClusterFound,
    /// UH: the cluster has no healthy host.
    NoHealthyUpstream,
    /// UF: connecting to the host failed.
    UpstreamConnectionFailure,
    /// UC: the upstream connection ended before response headers.
    UpstreamConnectionTermination,
    /// UO: a circuit breaker refused the request.
    UpstreamOverflow,
    /// UT: no response headers before the route timeout (or the last per-try timeout).
    UpstreamRequestTimeout,
    /// FI: the fault filter aborted the request.
    FaultInjected,
}

impl ResponseFlag {
    pub fn as_str(self) -> &'static str {
        match self {
            ResponseFlag::None => "-",
            ResponseFlag::NoRoute => "NR",
            ResponseFlag::NoClusterFound => "NC",
            ResponseFlag::NoHealthyUpstream => "UH",
            ResponseFlag::UpstreamConnectionFailure => "UF",
            ResponseFlag::UpstreamConnectionTermination => "UC",
            ResponseFlag::UpstreamOverflow => "UO",
            ResponseFlag::UpstreamRequestTimeout => "UT",
            ResponseFlag::FaultInjected => "FI",
        }
    }
}

/// Marks a response as a local reply (response extension), with what its gRPC form needs.
#[derive(Clone, Debug)]
pub struct LocalReply {
    pub body: String,
    /// An explicit gRPC status (fault `grpc_status`); else mapped from the HTTP status.
    pub grpc_status: Option<u32>,
}

pub fn local_reply(status: StatusCode, flag: ResponseFlag, body: &str) -> Response<ResponseBody> {
    tracing::debug!(
        status = status.as_u16(),
        flag = flag.as_str(),
        "local reply"
    );
    let mut resp = Response::new(full(body.to_string()));
    *resp.status_mut() = status;
    if !body.is_empty() {
        resp.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    }
    resp.extensions_mut().insert(LocalReply {
        body: body.to_string(),
        grpc_status: None,
    });
    if flag != ResponseFlag::None {
        resp.extensions_mut()
            .insert(crate::telemetry::Flags::of(flag.as_str()));
    }
    resp
}

/// A local reply carrying an explicit gRPC status (HTTP 200 for non-gRPC clients).
pub fn grpc_local_reply(
    grpc_status: u32,
    flag: ResponseFlag,
    body: &str,
) -> Response<ResponseBody> {
    let mut resp = local_reply(StatusCode::OK, flag, body);
    resp.extensions_mut().insert(LocalReply {
        body: body.to_string(),
        grpc_status: Some(grpc_status),
    });
    resp
}

/// Envoy's test for a gRPC request: `application/grpc`, optionally `+proto`/`;...`.
pub fn is_grpc(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| {
            ct == "application/grpc"
                || ct.starts_with("application/grpc+")
                || ct.starts_with("application/grpc;")
        })
}

/// Envoy's HTTP status -> gRPC status mapping for local replies.
pub fn http_to_grpc_status(status: u16) -> u32 {
    match status {
        400 => 13,
        401 => 16,
        403 => 7,
        404 => 12,
        429 | 502 | 503 | 504 => 14,
        _ => 2,
    }
}

/// Turns a local reply into its gRPC form when the request was gRPC; other responses,
/// and every response to non-gRPC requests, pass unchanged.
pub fn finish(mut resp: Response<ResponseBody>, grpc: bool) -> Response<ResponseBody> {
    if !grpc {
        return resp;
    }
    let Some(reply) = resp.extensions_mut().remove::<LocalReply>() else {
        return resp;
    };
    let status = reply
        .grpc_status
        .unwrap_or_else(|| http_to_grpc_status(resp.status().as_u16()));
    let (mut parts, _) = resp.into_parts();
    parts.status = StatusCode::OK;
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        HeaderName::from_static("grpc-status"),
        HeaderValue::from(status),
    );
    if !reply.body.is_empty() {
        if let Ok(v) = HeaderValue::from_str(&grpc_message(&reply.body)) {
            parts
                .headers
                .insert(HeaderName::from_static("grpc-message"), v);
        }
    }
    Response::from_parts(parts, full(String::new()))
}

/// gRPC's percent-encoding of `grpc-message`: printable ASCII except `%` stays.
fn grpc_message(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if (0x20..=0x7e).contains(&b) && b != b'%' {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_requests_get_trailers_only_replies() {
        let resp = finish(
            local_reply(
                StatusCode::SERVICE_UNAVAILABLE,
                ResponseFlag::NoHealthyUpstream,
                "no healthy upstream",
            ),
            true,
        );
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(resp.headers()["grpc-status"], "14");
        assert_eq!(resp.headers()["grpc-message"], "no healthy upstream");
        assert_eq!(resp.headers()["content-type"], "application/grpc");
        let plain = finish(
            local_reply(StatusCode::NOT_FOUND, ResponseFlag::NoRoute, ""),
            false,
        );
        assert_eq!(plain.status(), StatusCode::NOT_FOUND);
        assert!(plain.headers().get("grpc-status").is_none());
    }

    #[test]
    fn explicit_grpc_status_and_encoding() {
        let resp = finish(
            grpc_local_reply(14, ResponseFlag::FaultInjected, "100% down"),
            true,
        );
        assert_eq!(resp.headers()["grpc-status"], "14");
        assert_eq!(resp.headers()["grpc-message"], "100%25 down");
        assert_eq!(http_to_grpc_status(404), 12);
        assert_eq!(http_to_grpc_status(500), 2);
    }

    #[test]
    fn grpc_content_types() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/grpc+proto"),
        );
        assert!(is_grpc(&h));
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/grpc-web"),
        );
        assert!(!is_grpc(&h));
    }
}
