//! Evaluates RBAC rules against one request or connection with Envoy's semantics: a policy
//! matches when some permission and some principal match; ALLOW lets through only what a
//! policy matches, DENY refuses it, LOG refuses nothing. What an absent attribute does
//! follows Envoy too (no TLS: `authenticated` never matches; no HTTP request: header and
//! path matchers see nothing).

use super::model::{
    DoubleMatch, MetadataMatcher, Permission, Policy, Principal, RbacAction, Rules, StringMatcher,
    ValueMatcher,
};
use crate::http::routing::string_matches;
use crate::model::{HeaderMatch, HeaderMatcher};
use http::HeaderMap;
use serde_json::Value;
use std::net::{IpAddr, SocketAddr};

/// The HTTP request RBAC looks at (absent for the network filter).
#[derive(Clone, Copy, Debug)]
pub struct RequestAttrs<'a> {
    pub method: &'a str,
    pub authority: &'a str,
    /// Path with query, as `:path`.
    pub path: &'a str,
    pub scheme: &'a str,
    pub headers: &'a HeaderMap,
}

/// Everything a decision may depend on.
#[derive(Clone, Copy, Debug, Default)]
pub struct Subject<'a> {
    pub request: Option<RequestAttrs<'a>>,
    /// The connection's peer.
    pub direct_remote: Option<SocketAddr>,
    /// The client after `x-forwarded-for` processing (the peer for the network filter).
    pub remote: Option<SocketAddr>,
    /// The connection's (original) destination.
    pub destination: Option<SocketAddr>,
    pub server_name: Option<&'a str>,
    /// Whether the connection is TLS (`authenticated` needs it).
    pub tls: bool,
    /// The verified peer certificate's URI SAN.
    pub peer_principal: Option<&'a str>,
    /// Dynamic metadata by filter name (each a JSON object, like `google.protobuf.Struct`).
    pub metadata: Option<&'a serde_json::Map<String, Value>>,
}

/// What a set of rules says about a subject.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    pub allowed: bool,
    /// The policy that decided (the first matching by name), if any matched.
    pub policy: Option<String>,
}

/// Applies `rules` as Envoy's RBAC engine does.
pub fn evaluate(rules: &Rules, s: &Subject<'_>) -> Verdict {
    let matched = rules.policies.iter().find(|p| policy_matches(p, s));
    let policy = matched.map(|p| p.name.clone());
    let allowed = match rules.action {
        RbacAction::Allow => matched.is_some(),
        RbacAction::Deny => matched.is_none(),
        RbacAction::Log => true,
    };
    Verdict { allowed, policy }
}

pub fn policy_matches(p: &Policy, s: &Subject<'_>) -> bool {
    p.permissions.iter().any(|x| permission(x, s)) && p.principals.iter().any(|x| principal(x, s))
}

fn permission(p: &Permission, s: &Subject<'_>) -> bool {
    match p {
        Permission::Any => true,
        Permission::And(all) => all.iter().all(|x| permission(x, s)),
        Permission::Or(any) => any.iter().any(|x| permission(x, s)),
        Permission::Not(x) => !permission(x, s),
        Permission::Header(h) => header(h, s),
        Permission::UrlPath(m) => path(s).is_some_and(|p| string(m, p)),
        Permission::UriTemplate(t) => path(s).is_some_and(|p| t.regex.is_match(p)),
        Permission::DestinationIp(c) => s.destination.is_some_and(|d| c.contains(d.ip())),
        Permission::DestinationPort(p) => s.destination.is_some_and(|d| u32::from(d.port()) == *p),
        Permission::DestinationPortRange { start, end } => s
            .destination
            .is_some_and(|d| (*start..*end).contains(&i64::from(d.port()))),
        Permission::Metadata(m) => metadata(m, s),
        Permission::RequestedServerName(m) => string(m, s.server_name.unwrap_or("")),
    }
}

fn principal(p: &Principal, s: &Subject<'_>) -> bool {
    let ip_in = |c: &crate::model::listener::CidrRange, a: Option<SocketAddr>| {
        a.is_some_and(|a| c.contains(canonical(a.ip())))
    };
    match p {
        Principal::Any => true,
        Principal::And(all) => all.iter().all(|x| principal(x, s)),
        Principal::Or(any) => any.iter().any(|x| principal(x, s)),
        Principal::Not(x) => !principal(x, s),
        Principal::Authenticated(m) => authenticated(m.as_ref(), s),
        Principal::SourceIp(c) | Principal::DirectRemoteIp(c) => ip_in(c, s.direct_remote),
        Principal::RemoteIp(c) => ip_in(c, s.remote),
        Principal::Header(h) => header(h, s),
        Principal::UrlPath(m) => path(s).is_some_and(|p| string(m, p)),
        Principal::Metadata(m) => metadata(m, s),
    }
}

/// An IPv4-mapped IPv6 address compares as the IPv4 address it carries.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// Envoy: no TLS never matches; without a matcher any TLS peer does; else the URI SAN,
/// then the subject (weft-proxy knows no subject: the empty string).
fn authenticated(m: Option<&StringMatcher>, s: &Subject<'_>) -> bool {
    if !s.tls {
        return false;
    }
    let Some(m) = m else {
        return true;
    };
    match s.peer_principal {
        Some(uri) if string(m, uri) => true,
        _ => string(m, ""),
    }
}

fn string(m: &StringMatcher, value: &str) -> bool {
    string_matches(&m.matcher, value, m.ignore_case)
}

/// The request path without query and fragment.
fn path<'a>(s: &Subject<'a>) -> Option<&'a str> {
    let full = s.request?.path;
    let end = full.find(['?', '#']).unwrap_or(full.len());
    Some(&full[..end])
}

/// A header as Envoy's matchers see it: pseudo-headers from the request line, repeated
/// headers joined with ","; nothing at all without a request.
fn header_value(name: &str, s: &Subject<'_>) -> Option<String> {
    let r = s.request?;
    match name {
        ":method" => Some(r.method.to_string()),
        ":authority" | "host" => Some(r.authority.to_string()),
        ":path" => Some(r.path.to_string()),
        ":scheme" => Some(r.scheme.to_string()),
        _ => {
            let values: Vec<&str> = r
                .headers
                .get_all(name)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .collect();
            (!values.is_empty()).then(|| values.join(","))
        }
    }
}

fn header(h: &HeaderMatcher, s: &Subject<'_>) -> bool {
    let mut value = header_value(&h.name, s);
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

fn metadata(m: &MetadataMatcher, s: &Subject<'_>) -> bool {
    metadata_matches(m, s.metadata)
}

/// A `MetadataMatcher` against a request's dynamic metadata (filter name -> struct);
/// a path that leads nowhere is a value that matches nothing, inverted or not.
pub fn metadata_matches(m: &MetadataMatcher, md: Option<&serde_json::Map<String, Value>>) -> bool {
    let mut value = md.and_then(|md| md.get(&m.filter));
    for key in &m.path {
        value = value.and_then(|v| v.as_object()).and_then(|o| o.get(key));
    }
    value_matches(&m.value, value) != m.invert
}

/// `ValueMatcher` against a metadata value (`None`: the path leads nowhere).
fn value_matches(m: &ValueMatcher, v: Option<&Value>) -> bool {
    match (m, v) {
        (ValueMatcher::Null, Some(Value::Null)) => true,
        (ValueMatcher::Double(d), Some(Value::Number(n))) => n.as_f64().is_some_and(|x| match d {
            DoubleMatch::Exact(e) => x == *e,
            DoubleMatch::Range { start, end } => *start <= x && x < *end,
        }),
        (ValueMatcher::String(sm), Some(Value::String(x))) => string(sm, x),
        (ValueMatcher::Bool(b), Some(Value::Bool(x))) => b == x,
        (ValueMatcher::Present(want), Some(_)) => *want,
        (ValueMatcher::ListOneOf(one), Some(Value::Array(items))) => {
            items.iter().any(|i| value_matches(one, Some(i)))
        }
        (ValueMatcher::Or(any), v) => any.iter().any(|x| value_matches(x, v)),
        _ => false,
    }
}
