//! `RouteAction` -> [`Forward`]: clusters with their header edits, rewrites, timeout,
//! retry policy, mirrors and hash policies.

use super::super::{at, duration, invalid, reject_rest, unsupported, Result};
use super::headers::{mutations, runtime_fraction};
use crate::model::route::{
    Forward, HashKey, HashPolicy, Mirror, PathRewrite, RetryOn, RetryPolicy, RouteCluster,
};
use envoy_types::pb::envoy::config::route::v3::route_action::{
    hash_policy::PolicySpecifier, ClusterSpecifier, HashPolicy as HashProto, HostRewriteSpecifier,
    RequestMirrorPolicy,
};
use envoy_types::pb::envoy::config::route::v3::weighted_cluster::cluster_weight;
use envoy_types::pb::envoy::config::route::v3::{
    retry_policy::RetryHostPredicate, RetryPolicy as RetryProto, RouteAction,
};
use envoy_types::pb::envoy::r#type::matcher::v3::RegexMatchAndSubstitute;
use std::sync::Arc;
use std::time::Duration;

const ROUTE_ACTION: &[(u32, &str)] = &[
    (20, "cluster_not_found_response_code"),
    (4, "metadata_match"),
    (41, "path_rewrite_policy"),
    (45, "path_rewrite"),
    (38, "append_x_forwarded_host"),
    (24, "idle_timeout"),
    (42, "flush_timeout"),
    (40, "early_data_policy"),
    (33, "retry_policy_typed_config"),
    (11, "priority"),
    (13, "rate_limits"),
    (14, "include_vh_rate_limits"),
    (17, "cors"),
    (23, "max_grpc_timeout"),
    (28, "grpc_timeout_offset"),
    (25, "upgrade_configs"),
    (34, "internal_redirect_policy"),
    (26, "internal_redirect_action"),
    (31, "max_internal_redirects"),
    (27, "hedge_policy"),
];

const RETRY_POLICY: &[(u32, &str)] = &[
    (13, "per_try_idle_timeout"),
    (12, "retry_options_predicates"),
    (11, "rate_limited_retry_back_off"),
    (9, "retriable_headers"),
    (10, "retriable_request_headers"),
    (14, "refresh_cluster_on_retry"),
];

const PREVIOUS_HOSTS: &str = "envoy.retry_host_predicates.previous_hosts";
const PREVIOUS_HOSTS_TYPE: &str =
    "envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate";
const PREVIOUS_PRIORITIES: &str = "envoy.retry_priorities.previous_priorities";

pub fn forward(field: &str, a: &RouteAction) -> Result<Forward> {
    let clusters = match &a.cluster_specifier {
        Some(ClusterSpecifier::Cluster(c)) => vec![RouteCluster {
            name: c.clone(),
            weight: 1,
            headers: Default::default(),
            host_rewrite: None,
        }],
        Some(ClusterSpecifier::WeightedClusters(w)) => {
            let mut out = Vec::new();
            for (i, c) in w.clusters.iter().enumerate() {
                let f = format!("{field}.weighted_clusters.clusters[{i}]");
                let headers = mutations(
                    &f,
                    &c.request_headers_to_add,
                    &c.request_headers_to_remove,
                    &c.response_headers_to_add,
                    &c.response_headers_to_remove,
                )?;
                let host_rewrite = c.host_rewrite_specifier.as_ref().map(|h| match h {
                    cluster_weight::HostRewriteSpecifier::HostRewriteLiteral(h) => h.clone(),
                });
                let mut rest = c.clone();
                rest.name.clear();
                rest.weight = None;
                rest.request_headers_to_add.clear();
                rest.request_headers_to_remove.clear();
                rest.response_headers_to_add.clear();
                rest.response_headers_to_remove.clear();
                rest.host_rewrite_specifier = None;
                if rest != Default::default() {
                    return Err(unsupported(
                        f,
                        "cluster_header, metadata_match or per-filter config on weighted clusters",
                    ));
                }
                out.push(RouteCluster {
                    name: c.name.clone(),
                    weight: c.weight.map_or(0, |w| w.value),
                    headers,
                    host_rewrite,
                });
            }
            if out.iter().all(|c| c.weight == 0) {
                return Err(invalid(
                    at(field, "weighted_clusters"),
                    "all weights are zero",
                ));
            }
            out
        }
        _ => {
            return Err(unsupported(
                field,
                "cluster specifiers other than cluster, weighted_clusters",
            ))
        }
    };
    let timeout = match &a.timeout {
        // Envoy's default route timeout.
        None => Some(Duration::from_secs(15)),
        Some(d) => Some(duration(&at(field, "timeout"), d)?).filter(|d| !d.is_zero()),
    };
    let path_rewrite = match (&a.prefix_rewrite, &a.regex_rewrite) {
        (p, None) if p.is_empty() => None,
        (p, None) => Some(PathRewrite::Prefix(p.clone())),
        (p, Some(r)) if p.is_empty() => Some(regex_rewrite(&at(field, "regex_rewrite"), r)?),
        _ => {
            return Err(invalid(
                field,
                "prefix_rewrite and regex_rewrite are exclusive",
            ))
        }
    };
    let host_rewrite = match &a.host_rewrite_specifier {
        None => None,
        Some(HostRewriteSpecifier::HostRewriteLiteral(h)) => Some(h.clone()),
        Some(_) => {
            return Err(unsupported(
                at(field, "host_rewrite_specifier"),
                "host rewrites other than host_rewrite_literal",
            ))
        }
    };
    let retry_policy = match &a.retry_policy {
        None => None,
        Some(r) => Some(retry_policy(&at(field, "retry_policy"), r)?),
    };
    let mirrors = mirrors(field, &a.request_mirror_policies)?;
    let hash_policy = a
        .hash_policy
        .iter()
        .enumerate()
        .map(|(i, h)| hash_policy(&format!("{field}.hash_policy[{i}]"), h))
        .collect::<Result<_>>()?;
    let mut rest = a.clone();
    rest.cluster_specifier = None;
    rest.timeout = None;
    rest.prefix_rewrite.clear();
    rest.regex_rewrite = None;
    rest.host_rewrite_specifier = None;
    rest.retry_policy = None;
    rest.request_mirror_policies.clear();
    rest.hash_policy.clear();
    // Accepted but not applied (crate docs): Istio sets stream durations on every route.
    rest.max_stream_duration = None;
    reject_rest(field, &rest, ROUTE_ACTION)?;
    Ok(Forward {
        clusters,
        timeout,
        path_rewrite,
        host_rewrite,
        retry_policy,
        mirrors,
        hash_policy,
    })
}

/// RE2's `\N` back-references become the `regex` crate's `${N}`; a literal `$` is escaped.
pub fn regex_rewrite(field: &str, r: &RegexMatchAndSubstitute) -> Result<PathRewrite> {
    let Some(pattern) = &r.pattern else {
        return Err(invalid(field, "no pattern"));
    };
    let pattern = ::regex::Regex::new(&pattern.regex)
        .map(Arc::new)
        .map_err(|e| invalid(at(field, "pattern.regex"), e.to_string()))?;
    let mut substitution = String::new();
    let mut chars = r.substitution.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.peek().copied() {
                Some(d) if d.is_ascii_digit() => {
                    chars.next();
                    substitution.push_str(&format!("${{{d}}}"));
                }
                Some('\\') => {
                    chars.next();
                    substitution.push('\\');
                }
                _ => substitution.push('\\'),
            },
            '$' => substitution.push_str("$$"),
            c => substitution.push(c),
        }
    }
    Ok(PathRewrite::Regex {
        pattern,
        substitution,
    })
}

/// `retry_on`, as Envoy parses it: unknown conditions are refused.
fn retry_on(field: &str, s: &str) -> Result<RetryOn> {
    let mut on = RetryOn::default();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part {
            "5xx" => on.status_5xx = true,
            "gateway-error" => on.gateway_error = true,
            "reset" | "reset-before-request" => on.reset = true,
            "connect-failure" => on.connect_failure = true,
            "retriable-4xx" => on.retriable_4xx = true,
            "refused-stream" => on.refused_stream = true,
            "retriable-status-codes" => on.retriable_status_codes = true,
            "cancelled" => on.grpc_cancelled = true,
            "deadline-exceeded" => on.grpc_deadline_exceeded = true,
            "resource-exhausted" => on.grpc_resource_exhausted = true,
            "unavailable" => on.grpc_unavailable = true,
            "internal" => on.grpc_internal = true,
            other => return Err(unsupported(field, format!("retry_on {other:?}"))),
        }
    }
    Ok(on)
}

pub fn retry_policy(field: &str, r: &RetryProto) -> Result<RetryPolicy> {
    let mut previous_hosts = false;
    for (i, p) in r.retry_host_predicate.iter().enumerate() {
        if !is_previous_hosts(p) {
            return Err(unsupported(
                format!("{field}.retry_host_predicate[{i}]"),
                format!("host predicate {}", p.name),
            ));
        }
        previous_hosts = true;
    }
    if let Some(p) = &r.retry_priority {
        // Every endpoint is in priority 0 (other priorities are NACKed), so "previous
        // priorities" has nothing to skip to.
        if p.name != PREVIOUS_PRIORITIES {
            return Err(unsupported(
                at(field, "retry_priority"),
                format!("retry priority {}", p.name),
            ));
        }
    }
    let retriable_status_codes = r
        .retriable_status_codes
        .iter()
        .map(|c| {
            u16::try_from(*c)
                .ok()
                .filter(|c| (100..600).contains(c))
                .ok_or_else(|| invalid(at(field, "retriable_status_codes"), c.to_string()))
        })
        .collect::<Result<_>>()?;
    let (mut backoff_base, mut backoff_max) = (Duration::from_millis(25), None);
    if let Some(b) = &r.retry_back_off {
        if let Some(base) = &b.base_interval {
            backoff_base = duration(&at(field, "retry_back_off.base_interval"), base)?;
        }
        if let Some(max) = &b.max_interval {
            backoff_max = Some(duration(&at(field, "retry_back_off.max_interval"), max)?);
        }
    }
    let per_try_timeout = match &r.per_try_timeout {
        None => None,
        Some(d) => Some(duration(&at(field, "per_try_timeout"), d)?).filter(|d| !d.is_zero()),
    };
    let mut rest = r.clone();
    rest.retry_on.clear();
    rest.num_retries = None;
    rest.per_try_timeout = None;
    rest.retry_priority = None;
    rest.retry_host_predicate.clear();
    rest.host_selection_retry_max_attempts = 0;
    rest.retriable_status_codes.clear();
    rest.retry_back_off = None;
    reject_rest(field, &rest, RETRY_POLICY)?;
    Ok(RetryPolicy {
        retry_on: retry_on(&at(field, "retry_on"), &r.retry_on)?,
        // Envoy's default is one retry.
        num_retries: r.num_retries.map_or(1, |n| n.value),
        per_try_timeout,
        retriable_status_codes,
        previous_hosts,
        host_selection_max_attempts: u32::try_from(r.host_selection_retry_max_attempts.max(1))
            .unwrap_or(u32::MAX),
        backoff_base,
        // Envoy: ten times the base unless given.
        backoff_max: backoff_max.unwrap_or(backoff_base * 10),
    })
}

fn is_previous_hosts(p: &RetryHostPredicate) -> bool {
    use envoy_types::pb::envoy::config::route::v3::retry_policy::retry_host_predicate::ConfigType;
    match &p.config_type {
        Some(ConfigType::TypedConfig(any)) => super::super::type_name(any) == PREVIOUS_HOSTS_TYPE,
        None => p.name == PREVIOUS_HOSTS,
    }
}

pub fn mirrors(field: &str, policies: &[RequestMirrorPolicy]) -> Result<Vec<Mirror>> {
    let mut out = Vec::new();
    for (i, m) in policies.iter().enumerate() {
        let f = format!("{field}.request_mirror_policies[{i}]");
        if m.cluster.is_empty() {
            return Err(unsupported(f, "mirroring to cluster_header"));
        }
        let fraction = match &m.runtime_fraction {
            // No fraction: every request is mirrored.
            None => crate::model::route::Fraction::ALL,
            Some(r) => runtime_fraction(&at(&f, "runtime_fraction"), Some(r))?,
        };
        let mut rest = m.clone();
        rest.cluster.clear();
        rest.runtime_fraction = None;
        // Tracing only.
        rest.trace_sampled = None;
        rest.disable_shadow_host_suffix_append = false;
        reject_rest(
            &f,
            &rest,
            &[
                (5, "cluster_header"),
                (7, "request_headers_mutations"),
                (8, "host_rewrite_literal"),
            ],
        )?;
        out.push(Mirror {
            cluster: m.cluster.clone(),
            fraction,
            keep_host: m.disable_shadow_host_suffix_append,
        });
    }
    Ok(out)
}

fn hash_policy(field: &str, h: &HashProto) -> Result<HashPolicy> {
    let key = match &h.policy_specifier {
        Some(PolicySpecifier::Header(hd)) => {
            if hd.regex_rewrite.is_some() {
                return Err(unsupported(
                    at(field, "header.regex_rewrite"),
                    "rewriting the hashed header",
                ));
            }
            HashKey::Header(hd.header_name.to_ascii_lowercase())
        }
        Some(PolicySpecifier::Cookie(c)) => HashKey::Cookie {
            name: c.name.clone(),
            ttl: match &c.ttl {
                None => None,
                Some(t) => Some(duration(&at(field, "cookie.ttl"), t)?),
            },
            path: c.path.clone(),
            attributes: c
                .attributes
                .iter()
                .map(|a| (a.name.clone(), a.value.clone()))
                .collect(),
        },
        Some(PolicySpecifier::ConnectionProperties(p)) if p.source_ip => HashKey::SourceIp,
        Some(PolicySpecifier::QueryParameter(q)) => HashKey::QueryParameter(q.name.clone()),
        Some(PolicySpecifier::ConnectionProperties(_)) => {
            return Err(invalid(
                at(field, "connection_properties"),
                "source_ip is false",
            ))
        }
        _ => {
            return Err(unsupported(
                field,
                "hash policies other than header, cookie, source_ip, query_parameter",
            ))
        }
    };
    Ok(HashPolicy {
        key,
        terminal: h.terminal,
    })
}
