//! Responses the proxy makes itself, tagged with Envoy's response flag.

use super::{full, ResponseBody};
use http::{header, HeaderValue, Response, StatusCode};

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
    /// UT: no response headers before the route timeout.
    UpstreamRequestTimeout,
}

impl ResponseFlag {
    pub fn as_str(self) -> &'static str {
        match self {
            ResponseFlag::None => "-",
            ResponseFlag::NoRoute => "NR",
            ResponseFlag::NoClusterFound => "NC",
            ResponseFlag::NoHealthyUpstream => "UH",
            ResponseFlag::UpstreamConnectionFailure => "UF",
            ResponseFlag::UpstreamRequestTimeout => "UT",
        }
    }
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
    resp
}
