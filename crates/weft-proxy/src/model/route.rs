//! Route configurations: virtual hosts chosen by authority, routes chosen by match,
//! and what a matched route does.

use regex::Regex;
use serde::{Serialize, Serializer};
use std::sync::Arc;
use std::time::Duration;

/// A route configuration (RDS resource, or inline in a connection manager).
#[derive(Clone, Debug, Default, Serialize)]
pub struct RouteConfig {
    pub name: String,
    pub virtual_hosts: Vec<VirtualHost>,
    /// Header edits of the whole configuration (the least specific level).
    pub headers: HeaderMutations,
    /// Envoy applies header edits from the most specific level (weighted cluster, route,
    /// virtual host, configuration) to the least, so by default the least specific
    /// overwrite wins; true reverses the order.
    pub most_specific_header_mutations_wins: bool,
    /// Per-filter config of the whole configuration.
    pub filters: FilterConfigs,
}

/// Requests whose authority matches one of `domains` are routed by `routes`, first match wins.
#[derive(Clone, Debug, Default, Serialize)]
pub struct VirtualHost {
    pub name: String,
    /// Exact `host` or `host:port`, `*.suffix`, `prefix.*`, or `*`.
    pub domains: Vec<String>,
    pub routes: Vec<Route>,
    /// Add `x-envoy-attempt-count` to upstream requests.
    pub include_request_attempt_count: bool,
    /// Add `x-envoy-attempt-count` to downstream responses.
    pub include_attempt_count_in_response: bool,
    pub headers: HeaderMutations,
    pub filters: FilterConfigs,
    /// Used by routes that have none of their own.
    pub retry_policy: Option<RetryPolicy>,
    /// Copied to every forwarding route of the host, after the route's own.
    pub mirrors: Vec<Mirror>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Route {
    pub name: String,
    #[serde(rename = "match")]
    pub matcher: RouteMatch,
    pub action: Action,
    pub headers: HeaderMutations,
    pub filters: FilterConfigs,
}

/// All of path, headers, query parameters and dynamic metadata must match.
#[derive(Clone, Debug, Serialize)]
pub struct RouteMatch {
    pub path: PathMatch,
    /// Envoy's default is case sensitive; Istio turns it off for `ignoreUriCase`.
    pub case_sensitive: bool,
    pub headers: Vec<HeaderMatcher>,
    pub query_parameters: Vec<QueryMatcher>,
    /// `dynamic_metadata`: values filters wrote before the route was chosen (Istio's
    /// `@request.auth.claims` header matches read the JWT payload this way).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dynamic_metadata: Vec<crate::rbac::model::MetadataMatcher>,
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
    /// Lower-case header name; `:method`, `:authority`, `:path` and `:scheme` name the
    /// request's pseudo-headers.
    pub name: String,
    pub matcher: HeaderMatch,
    pub invert: bool,
    /// An absent header is matched as the empty string (Istio's `withoutHeaders`).
    pub treat_missing_as_empty: bool,
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
    pub clusters: Vec<RouteCluster>,
    /// Whole-request timeout until response headers, over all tries; None = no timeout
    /// (Envoy's `0s`).
    pub timeout: Option<Duration>,
    pub path_rewrite: Option<PathRewrite>,
    /// `host_rewrite_literal`: the upstream `Host`.
    pub host_rewrite: Option<String>,
    pub retry_policy: Option<RetryPolicy>,
    pub mirrors: Vec<Mirror>,
    /// Evaluated in order; the hash goes to the cluster's load balancer.
    pub hash_policy: Vec<HashPolicy>,
}

/// A cluster of a route, with the edits of its `weighted_clusters` entry.
#[derive(Clone, Debug, Serialize)]
pub struct RouteCluster {
    pub name: String,
    pub weight: u32,
    pub headers: HeaderMutations,
    pub host_rewrite: Option<String>,
}

/// How the path sent upstream (or put in a redirect) is rewritten.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PathRewrite {
    /// `prefix_rewrite`: the matched prefix (or whole matched path) is replaced.
    Prefix(String),
    /// `regex_rewrite`: every match in the path (without the query) is substituted;
    /// the substitution is in `regex` crate syntax (`${1}`), converted from RE2's `\1`.
    Regex {
        #[serde(serialize_with = "as_str")]
        pattern: Arc<Regex>,
        substitution: String,
    },
}

/// Header edits for requests and responses at one level of the route configuration.
#[derive(Clone, Debug, Default, Serialize)]
pub struct HeaderMutations {
    pub request: HeaderOps,
    pub response: HeaderOps,
}

impl HeaderMutations {
    pub fn is_empty(&self) -> bool {
        self.request.is_empty() && self.response.is_empty()
    }
}

/// Removals (done first, as Envoy does) then additions.
#[derive(Clone, Debug, Default, Serialize)]
pub struct HeaderOps {
    /// Lower-case names.
    pub remove: Vec<String>,
    pub add: Vec<HeaderAdd>,
}

impl HeaderOps {
    pub fn is_empty(&self) -> bool {
        self.remove.is_empty() && self.add.is_empty()
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct HeaderAdd {
    /// Lower-case name.
    pub name: String,
    pub value: Vec<ValuePart>,
    pub action: AppendAction,
    /// Add the header even when its value comes out empty.
    pub keep_empty_value: bool,
}

/// A piece of a header value: Envoy evaluates `%COMMAND%` in header values.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ValuePart {
    Literal(String),
    /// `%DOWNSTREAM_REMOTE_ADDRESS%`: `ip:port` of the client.
    DownstreamRemoteAddress,
    /// `%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%`.
    DownstreamRemoteAddressWithoutPort,
    /// `%REQ(name)%`: a request header (empty when absent).
    RequestHeader(String),
}

/// `HeaderValueOption.append_action`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AppendAction {
    AppendIfExistsOrAdd,
    AddIfAbsent,
    OverwriteIfExistsOrAdd,
    OverwriteIfExists,
}

/// Per-filter configuration (`typed_per_filter_config`) weft-proxy's filters read.
#[derive(Clone, Debug, Default, Serialize)]
pub struct FilterConfigs {
    /// `envoy.filters.http.fault`.
    pub fault: Option<Arc<Fault>>,
    /// `envoy.filters.http.cors`.
    pub cors: Option<Arc<CorsPolicy>>,
}

/// A probability as Envoy's `FractionalPercent` states it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Fraction {
    pub numerator: u32,
    /// 100, 10 000 or 1 000 000.
    pub denominator: u32,
}

impl Fraction {
    pub const ALL: Fraction = Fraction {
        numerator: 100,
        denominator: 100,
    };

    /// Draws once: true with this probability.
    pub fn sample(&self) -> bool {
        use rand::Rng;
        if self.numerator >= self.denominator {
            return true;
        }
        self.numerator > 0 && rand::rng().random_range(0..self.denominator) < self.numerator
    }
}

/// The fault filter's per-route config (`HTTPFault`).
#[derive(Clone, Debug, Serialize)]
pub struct Fault {
    pub delay: Option<FaultDelay>,
    pub abort: Option<FaultAbort>,
    /// Faults in flight at once, beyond which no fault is injected.
    pub max_active_faults: Option<u32>,
    /// The fault applies only to requests whose headers all match.
    pub headers: Vec<HeaderMatcher>,
}

#[derive(Clone, Debug, Serialize)]
pub struct FaultDelay {
    /// None: `header_delay`, the delay comes from `x-envoy-fault-delay-request` (ms).
    pub fixed: Option<Duration>,
    pub percentage: Fraction,
}

#[derive(Clone, Debug, Serialize)]
pub struct FaultAbort {
    pub kind: AbortKind,
    pub percentage: Fraction,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AbortKind {
    Http(u16),
    Grpc(u32),
    /// `header_abort`: from `x-envoy-fault-abort-request` / `-grpc-request`.
    FromHeaders,
}

/// `CorsPolicy` (per-route config of the CORS filter). Unset fields fall back to the
/// next less specific policy, field by field, as Envoy's filter does.
#[derive(Clone, Debug, Default, Serialize)]
pub struct CorsPolicy {
    pub allow_origins: Vec<OriginMatcher>,
    pub allow_methods: String,
    pub allow_headers: String,
    pub expose_headers: String,
    pub max_age: String,
    pub allow_credentials: Option<bool>,
    pub allow_private_network_access: Option<bool>,
    pub forward_not_matching_preflights: Option<bool>,
    /// `filter_enabled`; None = always.
    pub enabled: Option<Fraction>,
}

#[derive(Clone, Debug, Serialize)]
pub struct OriginMatcher {
    pub matcher: StringMatch,
    pub ignore_case: bool,
}

/// `RetryPolicy`.
#[derive(Clone, Debug, Serialize)]
pub struct RetryPolicy {
    pub retry_on: RetryOn,
    pub num_retries: u32,
    pub per_try_timeout: Option<Duration>,
    pub retriable_status_codes: Vec<u16>,
    /// `previous_hosts` predicate: a retry avoids hosts already tried.
    pub previous_hosts: bool,
    /// Picks per retry before settling for a previously tried host.
    pub host_selection_max_attempts: u32,
    pub backoff_base: Duration,
    pub backoff_max: Duration,
}

/// The `retry_on` conditions.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct RetryOn {
    pub status_5xx: bool,
    pub gateway_error: bool,
    pub reset: bool,
    pub connect_failure: bool,
    pub retriable_4xx: bool,
    pub refused_stream: bool,
    pub retriable_status_codes: bool,
    pub grpc_cancelled: bool,
    pub grpc_deadline_exceeded: bool,
    pub grpc_resource_exhausted: bool,
    pub grpc_unavailable: bool,
    pub grpc_internal: bool,
}

/// `request_mirror_policies[]`: a copy of the request, answer ignored.
#[derive(Clone, Debug, Serialize)]
pub struct Mirror {
    pub cluster: String,
    pub fraction: Fraction,
    /// `disable_shadow_host_suffix_append`: keep the Host as it is.
    pub keep_host: bool,
}

/// `hash_policy[]`: what a consistent-hash load balancer hashes.
#[derive(Clone, Debug, Serialize)]
pub struct HashPolicy {
    pub key: HashKey,
    /// Stop at this policy when it produced a hash.
    pub terminal: bool,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HashKey {
    /// Lower-case header name.
    Header(String),
    Cookie {
        name: String,
        /// Set: a missing cookie is generated and sent back in `Set-Cookie`.
        ttl: Option<Duration>,
        path: String,
        attributes: Vec<(String, String)>,
    },
    SourceIp,
    QueryParameter(String),
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
    /// `host_redirect`: replaces the whole authority (a request port is dropped).
    pub host: Option<String>,
    pub port: Option<u16>,
    pub path: Option<RedirectPath>,
    /// Drop the request's query (a `path_redirect` with `?` brings its own).
    pub strip_query: bool,
    pub status: u16,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RedirectPath {
    /// `path_redirect`: the path, and the query too when it has one.
    Path(String),
    Rewrite(PathRewrite),
}

fn as_str<S: Serializer>(re: &Arc<Regex>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(re.as_str())
}
