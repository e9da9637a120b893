//! The tracing and context headers every service copies from its request to the requests it makes.
//!
//! A mesh can only stitch spans into one trace, and route on who the user is, when the
//! application carries these along; the proxies never see the link between an inbound request
//! and the outbound ones it causes. The list is the one Istio's docs ask applications to forward.

use axum::http::HeaderMap;

/// Header names forwarded unchanged, lower case.
pub const FORWARDED: &[&str] = &[
    "x-request-id",
    "traceparent",
    "tracestate",
    "x-b3-traceid",
    "x-b3-spanid",
    "x-b3-parentspanid",
    "x-b3-sampled",
    "x-b3-flags",
    "b3",
    "x-ot-span-context",
    "x-datadog-trace-id",
    "x-datadog-parent-id",
    "x-datadog-sampling-priority",
    "x-cloud-trace-context",
    "grpc-trace-bin",
    "sw8",
    "end-user",
    "user-agent",
    "cookie",
    "authorization",
];

/// The subset of `incoming` to send upstream: every [`FORWARDED`] header, all values kept.
pub fn forward(incoming: &HeaderMap) -> HeaderMap {
    let mut out = HeaderMap::new();
    for name in FORWARDED {
        for value in incoming.get_all(*name) {
            out.append(*name, value.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn tracing_and_user_headers_are_kept_others_dropped() {
        let mut h = HeaderMap::new();
        h.insert("x-request-id", HeaderValue::from_static("abc"));
        h.insert("x-b3-traceid", HeaderValue::from_static("0af7651916cd43dd"));
        h.insert("end-user", HeaderValue::from_static("jason"));
        h.insert("host", HeaderValue::from_static("productpage:9080"));
        h.insert("content-length", HeaderValue::from_static("3"));
        let out = forward(&h);
        assert_eq!(out.get("x-request-id").unwrap(), "abc");
        assert_eq!(out.get("x-b3-traceid").unwrap(), "0af7651916cd43dd");
        assert_eq!(out.get("end-user").unwrap(), "jason");
        assert!(out.get("host").is_none());
        assert!(out.get("content-length").is_none());
    }
}
