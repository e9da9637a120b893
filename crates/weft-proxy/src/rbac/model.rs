//! Envoy's RBAC configuration (`envoy.config.rbac.v3`) as weft-proxy evaluates it: a filter
//! holds enforced and shadow rules; rules are an action and named policies; a policy is a
//! tree of permissions (what is done) and of principals (who does it).

use crate::model::listener::CidrRange;
use crate::model::{HeaderMatcher, StringMatch};
use regex::Regex;
use serde::{Serialize, Serializer};
use std::sync::Arc;

/// One `envoy.filters.http.rbac` or `envoy.filters.network.rbac` filter.
#[derive(Clone, Debug, Serialize)]
pub struct RbacFilter {
    /// Enforced rules; none: every request passes (shadow rules may still be evaluated).
    pub rules: Option<Rules>,
    /// Evaluated and counted, never enforced (Istio's dry-run policies).
    pub shadow_rules: Option<Rules>,
    /// `rules_stat_prefix` (HTTP) or `stat_prefix` (network).
    pub stat_prefix: String,
    pub shadow_rules_stat_prefix: String,
}

/// `RBAC.Action`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RbacAction {
    /// A request passes only when some policy matches.
    Allow,
    /// A request is refused when some policy matches.
    Deny,
    /// Nothing is refused; a matching policy only marks the request for logging.
    Log,
}

/// `envoy.config.rbac.v3.RBAC`: the action and its policies, ordered by name as Envoy
/// keeps them (the first match by name is the one reported).
#[derive(Clone, Debug, Serialize)]
pub struct Rules {
    pub action: RbacAction,
    pub policies: Vec<Policy>,
}

/// A policy matches when any permission and any principal match.
#[derive(Clone, Debug, Serialize)]
pub struct Policy {
    pub name: String,
    pub permissions: Vec<Permission>,
    pub principals: Vec<Principal>,
}

/// `Permission`: a condition on what the request or connection does.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Permission {
    Any,
    And(Vec<Permission>),
    Or(Vec<Permission>),
    Not(Box<Permission>),
    Header(HeaderMatcher),
    /// The request path without query or fragment.
    UrlPath(StringMatcher),
    /// `uri_template` (`UriTemplateMatchConfig.path_template`) compiled to a whole-path regex.
    UriTemplate(PathTemplate),
    DestinationIp(CidrRange),
    DestinationPort(u32),
    /// `[start, end)` as Envoy's `Int32Range`.
    DestinationPortRange {
        start: i64,
        end: i64,
    },
    Metadata(MetadataMatcher),
    RequestedServerName(StringMatcher),
}

/// `Principal`: a condition on who sent the request or opened the connection.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Principal {
    Any,
    And(Vec<Principal>),
    Or(Vec<Principal>),
    Not(Box<Principal>),
    /// `authenticated`: a TLS peer; with a matcher, its URI SAN (else the subject) matches.
    Authenticated(Option<StringMatcher>),
    /// `source_ip` (honours PROXY protocol, which weft-proxy does not speak: the peer).
    SourceIp(CidrRange),
    /// The connection's peer address.
    DirectRemoteIp(CidrRange),
    /// The client address after `x-forwarded-for` processing.
    RemoteIp(CidrRange),
    Header(HeaderMatcher),
    UrlPath(StringMatcher),
    Metadata(MetadataMatcher),
}

/// `envoy.type.matcher.v3.StringMatcher`.
#[derive(Clone, Debug, Serialize)]
pub struct StringMatcher {
    pub matcher: StringMatch,
    /// Ignored by `safe_regex`, as in Envoy.
    pub ignore_case: bool,
}

/// A URI template (`/a/*/b/**`) as the regex Envoy's uri_template library builds.
#[derive(Clone, Debug, Serialize)]
pub struct PathTemplate {
    pub template: String,
    #[serde(serialize_with = "regex_str")]
    pub regex: Arc<Regex>,
}

/// `MetadataMatcher`: a value in the request's dynamic metadata, under `filter`, at `path`.
#[derive(Clone, Debug, Serialize)]
pub struct MetadataMatcher {
    pub filter: String,
    pub path: Vec<String>,
    pub value: ValueMatcher,
    pub invert: bool,
}

/// `ValueMatcher`.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ValueMatcher {
    Null,
    /// `double_match`: exact, or the range `[start, end)`.
    Double(DoubleMatch),
    String(StringMatcher),
    Bool(bool),
    /// true: the path holds a value; false never matches (as in Envoy).
    Present(bool),
    /// `list_match.one_of`: some element of a list value matches.
    ListOneOf(Box<ValueMatcher>),
    Or(Vec<ValueMatcher>),
}

#[derive(Clone, Copy, Debug, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DoubleMatch {
    Exact(f64),
    Range { start: f64, end: f64 },
}

fn regex_str<S: Serializer>(re: &Arc<Regex>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(re.as_str())
}
