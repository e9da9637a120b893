//! Route selection with Envoy's rules: the virtual host by authority (exact, then the
//! longest `*.suffix`, then the longest `prefix.*`, then `*`), then the first route whose
//! path, headers, query parameters and dynamic metadata all match.

use super::metadata::DynamicMetadata;
use crate::model::{
    HeaderMatch, HeaderMatcher, PathMatch, QueryMatcher, Route, RouteConfig, RouteMatch,
    StringMatch, VirtualHost,
};
use http::HeaderMap;

/// The virtual host serving `authority` (lower-cased `host` or `host:port`).
pub fn virtual_host<'a>(rc: &'a RouteConfig, authority: &str) -> Option<&'a VirtualHost> {
    let authority = authority.to_ascii_lowercase();
    let mut best: Option<(u8, usize, &VirtualHost)> = None;
    for vh in &rc.virtual_hosts {
        for d in &vh.domains {
            // Rank: exact 3, suffix wildcard 2, prefix wildcard 1, `*` 0; longer wins a tie.
            let rank = if *d == authority {
                Some(3)
            } else if d == "*" {
                Some(0)
            } else if let Some(suffix) = d.strip_prefix('*') {
                (authority.len() > suffix.len() && authority.ends_with(suffix)).then_some(2)
            } else if let Some(prefix) = d.strip_suffix('*') {
                (authority.len() > prefix.len() && authority.starts_with(prefix)).then_some(1)
            } else {
                None
            };
            if let Some(rank) = rank {
                if best.is_none_or(|(r, len, _)| (rank, d.len()) > (r, len)) {
                    best = Some((rank, d.len(), vh));
                }
            }
        }
    }
    best.map(|(_, _, vh)| vh)
}

/// What route matching looks at: the request line, authority, headers and the dynamic
/// metadata written before the route is chosen.
#[derive(Clone, Copy, Debug)]
pub struct RequestInfo<'a> {
    pub method: &'a str,
    pub authority: &'a str,
    pub path_and_query: &'a str,
    pub scheme: &'a str,
    pub headers: &'a HeaderMap,
    /// See [`routing_metadata`].
    pub metadata: Option<&'a DynamicMetadata>,
}

/// The dynamic metadata route matching sees for `req`. Envoy picks the route when a
/// filter first asks for it, and `jwt_authn` asks before verifying (for its per-route
/// config): its payload is only seen when it then clears the route cache
/// (`clear_route_cache`, [`crate::jwt::RouteCacheCleared`]). Nothing else writes metadata
/// before routing here.
pub fn routing_metadata<B>(req: &http::Request<B>) -> Option<&DynamicMetadata> {
    req.extensions()
        .get::<crate::jwt::RouteCacheCleared>()
        .and_then(|_| DynamicMetadata::of(req))
}

impl RequestInfo<'_> {
    /// A header's value as Envoy matches it: pseudo-headers from the request line,
    /// repeated headers joined with ",".
    fn value(&self, name: &str) -> Option<String> {
        match name {
            ":method" => Some(self.method.to_string()),
            ":authority" | "host" => Some(self.authority.to_string()),
            ":path" => Some(self.path_and_query.to_string()),
            ":scheme" => Some(self.scheme.to_string()),
            _ => {
                let values: Vec<&str> = self
                    .headers
                    .get_all(name)
                    .iter()
                    .filter_map(|v| v.to_str().ok())
                    .collect();
                (!values.is_empty()).then(|| values.join(","))
            }
        }
    }
}

/// The first route of `vh` matching the request.
pub fn route<'a>(vh: &'a VirtualHost, req: &RequestInfo<'_>) -> Option<&'a Route> {
    let (path, query) = req
        .path_and_query
        .split_once('?')
        .unwrap_or((req.path_and_query, ""));
    vh.routes
        .iter()
        .find(|r| matches(&r.matcher, path, query, req))
}

fn matches(m: &RouteMatch, path: &str, query: &str, req: &RequestInfo<'_>) -> bool {
    let path_ok = match &m.path {
        PathMatch::Prefix(p) if m.case_sensitive => path.starts_with(p.as_str()),
        PathMatch::Prefix(p) => path
            .get(..p.len())
            .is_some_and(|head| head.eq_ignore_ascii_case(p)),
        PathMatch::Path(p) if m.case_sensitive => path == p,
        PathMatch::Path(p) => path.eq_ignore_ascii_case(p),
        PathMatch::SafeRegex(re) => re.is_match(path),
    };
    path_ok
        && m.headers.iter().all(|h| header_matches(h, req))
        && m.query_parameters.iter().all(|q| query_matches(q, query))
        && m.dynamic_metadata.iter().all(|d| {
            crate::rbac::engine::metadata_matches(d, req.metadata.map(DynamicMetadata::as_map))
        })
}

/// One header matcher against the request.
pub fn header_matches(h: &HeaderMatcher, req: &RequestInfo<'_>) -> bool {
    let mut value = req.value(&h.name);
    if value.is_none() && h.treat_missing_as_empty {
        value = Some(String::new());
    }
    let hit = match &h.matcher {
        HeaderMatch::Present(want) => value.is_some() == *want,
        HeaderMatch::Value {
            matcher,
            ignore_case,
        } => value
            .as_deref()
            .is_some_and(|v| string_matches(matcher, v, *ignore_case)),
    };
    hit != h.invert
}

fn query_matches(q: &QueryMatcher, query: &str) -> bool {
    let value = query
        .split('&')
        .filter_map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (k == q.name).then_some(v)
        })
        .next();
    match (&q.matcher, value) {
        (_, None) => false,
        (None, Some(_)) => true,
        (Some(m), Some(v)) => string_matches(m, v, q.ignore_case),
    }
}

pub fn string_matches(m: &StringMatch, value: &str, ignore_case: bool) -> bool {
    let fold = |s: &str| {
        if ignore_case {
            s.to_ascii_lowercase()
        } else {
            s.to_string()
        }
    };
    match m {
        StringMatch::Exact(s) => fold(value) == fold(s),
        StringMatch::Prefix(s) => fold(value).starts_with(&fold(s)),
        StringMatch::Suffix(s) => fold(value).ends_with(&fold(s)),
        StringMatch::Contains(s) => fold(value).contains(&fold(s)),
        StringMatch::SafeRegex(re) => re.is_match(value),
    }
}

#[cfg(test)]
#[path = "routing_tests.rs"]
mod tests;
