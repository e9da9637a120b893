//! Route configurations: virtual hosts chosen by authority, routes chosen by match,
//! and what a matched route does.

use regex::Regex;
use serde::{Serialize, Serializer};
use std::sync::Arc;
use std::time::Duration;

/// A route configuration (RDS resource, or inline in a connection manager).
#[derive(Clone, Debug, Serialize)]
pub struct RouteConfig {
    pub name: String,
    pub virtual_hosts: Vec<VirtualHost>,
}

/// Requests whose authority matches one of `domains` are routed by `routes`, first match wins.
#[derive(Clone, Debug, Serialize)]
pub struct VirtualHost {
    pub name: String,
    /// Exact `host` or `host:port`, `*.suffix`, `prefix.*`, or `*`.
    pub domains: Vec<String>,
    pub routes: Vec<Route>,
    /// Add `x-envoy-attempt-count` to upstream requests.
    pub include_request_attempt_count: bool,
}

#[derive(Clone, Debug, Serialize)]
pub struct Route {
    pub name: String,
    #[serde(rename = "match")]
    pub matcher: RouteMatch,
    pub action: Action,
}

/// All of path, headers and query parameters must match.
#[derive(Clone, Debug, Serialize)]
pub struct RouteMatch {
    pub path: PathMatch,
    /// Envoy's default is case sensitive; Istio turns it off for `ignoreUriCase`.
    pub case_sensitive: bool,
    pub headers: Vec<HeaderMatcher>,
    pub query_parameters: Vec<QueryMatcher>,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PathMatch {
    Prefix(String),
    /// The whole path (without the query) equals this.
    Path(String),
    /// The whole path (without the query) matches this RE2-style regex.
    SafeRegex(#[serde(serialize_with = "as_str")] Arc<Regex>),
}

/// A string comparison shared by header and query parameter matchers.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StringMatch {
    Exact(String),
    Prefix(String),
    Suffix(String),
    Contains(String),
    SafeRegex(#[serde(serialize_with = "as_str")] Arc<Regex>),
}

#[derive(Clone, Debug, Serialize)]
pub struct HeaderMatcher {
    /// Lower-case header name.
    pub name: String,
    pub matcher: HeaderMatch,
    pub invert: bool,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HeaderMatch {
    /// `present_match`: true = the header is there, false = it is absent.
    Present(bool),
    Value {
        matcher: StringMatch,
        ignore_case: bool,
    },
}

#[derive(Clone, Debug, Serialize)]
pub struct QueryMatcher {
    pub name: String,
    /// None: the parameter only has to be present.
    pub matcher: Option<StringMatch>,
    pub ignore_case: bool,
}

/// What a matched route does.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Forward(Forward),
    DirectResponse { status: u16, body: Option<String> },
    Redirect(Redirect),
}

/// `route`: forward upstream to a cluster.
#[derive(Clone, Debug, Serialize)]
pub struct Forward {
    /// One cluster, or several picked at random by weight.
    pub clusters: Vec<WeightedCluster>,
    /// Whole-request timeout until response headers; None = no timeout (Envoy's `0s`).
    pub timeout: Option<Duration>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct WeightedCluster {
    pub name: String,
    pub weight: u32,
}

/// `redirect`: answer with a 3xx and a Location built from the request.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Redirect {
    pub scheme: Option<String>,
    pub host: Option<String>,
    pub port: Option<u16>,
    pub path: Option<String>,
    pub status: u16,
}

fn as_str<S: Serializer>(re: &Arc<Regex>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(re.as_str())
}
