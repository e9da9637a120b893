//! `RouteConfiguration` -> [`model::RouteConfig`]: virtual hosts, matches and the
//! forward / direct response / redirect actions.

use super::{at, duration, fields, invalid, reject_rest, unsupported, Result};
use crate::model::{
    Action, Forward, HeaderMatch, HeaderMatcher, PathMatch, QueryMatcher, Redirect, Route,
    RouteConfig, RouteMatch, StringMatch, VirtualHost, WeightedCluster,
};
use envoy_types::pb::envoy::config::core::v3::data_source::Specifier;
use envoy_types::pb::envoy::config::route::v3::{
    header_matcher::HeaderMatchSpecifier, query_parameter_matcher::QueryParameterMatchSpecifier,
    redirect_action, route::Action as ActionProto, route_action::ClusterSpecifier,
    route_match::PathSpecifier, HeaderMatcher as HeaderMatcherProto, Route as RouteProto,
    RouteAction, RouteConfiguration, RouteMatch as RouteMatchProto, VirtualHost as VhProto,
};
use envoy_types::pb::envoy::r#type::matcher::v3::{
    string_matcher::MatchPattern, RegexMatcher, StringMatcher,
};
use regex::Regex;
use std::sync::Arc;

/// Converts one RDS resource (or a connection manager's inline `route_config`).
pub fn route_configuration(rc: &RouteConfiguration) -> Result<RouteConfig> {
    let virtual_hosts = rc
        .virtual_hosts
        .iter()
        .enumerate()
        .map(|(i, vh)| virtual_host(&format!("virtual_hosts[{i}]"), vh))
        .collect::<Result<_>>()?;
    let mut rest = rc.clone();
    rest.name.clear();
    rest.virtual_hosts.clear();
    // Only decides whether unknown clusters reject the config; weft-proxy answers 503 NC
    // for them at request time either way.
    rest.validate_clusters = None;
    // A limit on direct response bodies; inline bodies are served whole either way.
    rest.max_direct_response_body_size_bytes = None;
    reject_rest("", &rest, fields::ROUTE_CONFIGURATION)?;
    Ok(RouteConfig {
        name: rc.name.clone(),
        virtual_hosts,
    })
}

fn virtual_host(field: &str, vh: &VhProto) -> Result<VirtualHost> {
    if vh.domains.is_empty() {
        return Err(invalid(at(field, "domains"), "no domains"));
    }
    let routes = vh
        .routes
        .iter()
        .enumerate()
        .map(|(i, r)| route(&format!("{field}.routes[{i}]"), r))
        .collect::<Result<_>>()?;
    let mut rest = vh.clone();
    rest.name.clear();
    rest.domains.clear();
    rest.routes.clear();
    rest.include_request_attempt_count = false;
    reject_rest(field, &rest, fields::VIRTUAL_HOST)?;
    Ok(VirtualHost {
        name: vh.name.clone(),
        domains: vh.domains.iter().map(|d| d.to_ascii_lowercase()).collect(),
        routes,
        include_request_attempt_count: vh.include_request_attempt_count,
    })
}

fn route(field: &str, r: &RouteProto) -> Result<Route> {
    let matcher = route_match(&at(field, "match"), r.r#match.as_ref())?;
    let action = match &r.action {
        Some(ActionProto::Route(a)) => Action::Forward(forward(&at(field, "route"), a)?),
        Some(ActionProto::DirectResponse(d)) => {
            let body = match d.body.as_ref().and_then(|b| b.specifier.as_ref()) {
                None => None,
                Some(Specifier::InlineString(s)) => Some(s.clone()),
                Some(Specifier::InlineBytes(b)) => Some(String::from_utf8_lossy(b).into_owned()),
                Some(_) => {
                    return Err(unsupported(
                        at(field, "direct_response.body"),
                        "bodies from files or env",
                    ))
                }
            };
            let status = u16::try_from(d.status)
                .ok()
                .filter(|s| (200..600).contains(s))
                .ok_or_else(|| {
                    invalid(
                        at(field, "direct_response.status"),
                        format!("{} is not an HTTP status", d.status),
                    )
                })?;
            Action::DirectResponse { status, body }
        }
        Some(ActionProto::Redirect(rd)) => Action::Redirect(redirect(&at(field, "redirect"), rd)?),
        Some(_) => {
            return Err(unsupported(
                field,
                "route actions other than route, redirect, direct_response",
            ))
        }
        None => return Err(invalid(field, "no action")),
    };
    if let Some(name) = r.typed_per_filter_config.keys().next() {
        return Err(unsupported(
            at(field, "typed_per_filter_config"),
            format!("per-route config for {name}"),
        ));
    }
    let mut rest = r.clone();
    rest.name.clear();
    rest.r#match = None;
    rest.action = None;
    // Tracing and metadata only label the request; they do not change how it is served.
    rest.decorator = None;
    rest.metadata = None;
    reject_rest(field, &rest, fields::ROUTE)?;
    Ok(Route {
        name: r.name.clone(),
        matcher,
        action,
    })
}

fn route_match(field: &str, m: Option<&RouteMatchProto>) -> Result<RouteMatch> {
    let Some(m) = m else {
        return Err(invalid(field, "no match"));
    };
    let path = match &m.path_specifier {
        Some(PathSpecifier::Prefix(p)) => PathMatch::Prefix(p.clone()),
        Some(PathSpecifier::Path(p)) => PathMatch::Path(p.clone()),
        Some(PathSpecifier::SafeRegex(r)) => {
            PathMatch::SafeRegex(regex(&at(field, "safe_regex"), r)?)
        }
        _ => {
            return Err(unsupported(
                field,
                "path matchers other than prefix, path, safe_regex",
            ))
        }
    };
    let headers = m
        .headers
        .iter()
        .enumerate()
        .map(|(i, h)| header_matcher(&format!("{field}.headers[{i}]"), h))
        .collect::<Result<_>>()?;
    let mut query_parameters = Vec::new();
    for (i, q) in m.query_parameters.iter().enumerate() {
        let f = format!("{field}.query_parameters[{i}]");
        let (matcher, ignore_case) = match &q.query_parameter_match_specifier {
            Some(QueryParameterMatchSpecifier::PresentMatch(true)) => (None, false),
            Some(QueryParameterMatchSpecifier::StringMatch(s)) => {
                (Some(string_match(&f, s)?), s.ignore_case)
            }
            _ => {
                return Err(unsupported(
                    f,
                    "query parameter matchers other than string_match, present_match",
                ))
            }
        };
        query_parameters.push(QueryMatcher {
            name: q.name.clone(),
            matcher,
            ignore_case,
        });
    }
    let mut rest = m.clone();
    rest.path_specifier = None;
    rest.headers.clear();
    rest.query_parameters.clear();
    rest.case_sensitive = None;
    reject_rest(field, &rest, fields::ROUTE_MATCH)?;
    Ok(RouteMatch {
        path,
        case_sensitive: m.case_sensitive.is_none_or(|b| b.value),
        headers,
        query_parameters,
    })
}

// The deprecated specifiers are still valid xDS that older control planes send.
#[allow(deprecated)]
fn header_matcher(field: &str, h: &HeaderMatcherProto) -> Result<HeaderMatcher> {
    if h.treat_missing_header_as_empty {
        return Err(unsupported(
            at(field, "treat_missing_header_as_empty"),
            "treat_missing_header_as_empty",
        ));
    }
    let matcher = match &h.header_match_specifier {
        Some(HeaderMatchSpecifier::PresentMatch(p)) => HeaderMatch::Present(*p),
        Some(HeaderMatchSpecifier::ExactMatch(s)) => value(StringMatch::Exact(s.clone()), false),
        Some(HeaderMatchSpecifier::PrefixMatch(s)) => value(StringMatch::Prefix(s.clone()), false),
        Some(HeaderMatchSpecifier::SuffixMatch(s)) => value(StringMatch::Suffix(s.clone()), false),
        Some(HeaderMatchSpecifier::ContainsMatch(s)) => {
            value(StringMatch::Contains(s.clone()), false)
        }
        Some(HeaderMatchSpecifier::SafeRegexMatch(r)) => {
            value(StringMatch::SafeRegex(regex(field, r)?), false)
        }
        Some(HeaderMatchSpecifier::StringMatch(s)) => value(string_match(field, s)?, s.ignore_case),
        // Envoy: no specifier means "present".
        None => HeaderMatch::Present(true),
        Some(_) => return Err(unsupported(field, "range_match")),
    };
    Ok(HeaderMatcher {
        name: h.name.to_ascii_lowercase(),
        matcher,
        invert: h.invert_match,
    })
}

fn value(matcher: StringMatch, ignore_case: bool) -> HeaderMatch {
    HeaderMatch::Value {
        matcher,
        ignore_case,
    }
}

fn string_match(field: &str, s: &StringMatcher) -> Result<StringMatch> {
    Ok(match &s.match_pattern {
        Some(MatchPattern::Exact(v)) => StringMatch::Exact(v.clone()),
        Some(MatchPattern::Prefix(v)) => StringMatch::Prefix(v.clone()),
        Some(MatchPattern::Suffix(v)) => StringMatch::Suffix(v.clone()),
        Some(MatchPattern::Contains(v)) => StringMatch::Contains(v.clone()),
        Some(MatchPattern::SafeRegex(r)) => StringMatch::SafeRegex(regex(field, r)?),
        _ => {
            return Err(unsupported(
                field,
                "string matchers other than exact, prefix, suffix, contains, safe_regex",
            ))
        }
    })
}

/// A regex that must match the whole input, as Envoy's `safe_regex` does.
fn regex(field: &str, r: &RegexMatcher) -> Result<Arc<Regex>> {
    Regex::new(&format!("^(?:{})$", r.regex))
        .map(Arc::new)
        .map_err(|e| invalid(at(field, "regex"), e.to_string()))
}

fn forward(field: &str, a: &RouteAction) -> Result<Forward> {
    let clusters = match &a.cluster_specifier {
        Some(ClusterSpecifier::Cluster(c)) => vec![WeightedCluster {
            name: c.clone(),
            weight: 1,
        }],
        Some(ClusterSpecifier::WeightedClusters(w)) => {
            let mut out = Vec::new();
            for (i, c) in w.clusters.iter().enumerate() {
                let f = format!("{field}.weighted_clusters.clusters[{i}]");
                let mut rest = c.clone();
                rest.name.clear();
                rest.weight = None;
                if rest != Default::default() {
                    return Err(unsupported(
                        f,
                        "header edits or host rewrites on weighted clusters",
                    ));
                }
                out.push(WeightedCluster {
                    name: c.name.clone(),
                    weight: c.weight.map_or(0, |w| w.value),
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
        None => Some(std::time::Duration::from_secs(15)),
        Some(d) => Some(duration(&at(field, "timeout"), d)?).filter(|d| !d.is_zero()),
    };
    if !a.hash_policy.is_empty() {
        return Err(unsupported(at(field, "hash_policy"), "consistent hashing"));
    }
    if !a.request_mirror_policies.is_empty() {
        return Err(unsupported(
            at(field, "request_mirror_policies"),
            "mirroring",
        ));
    }
    let mut rest = a.clone();
    rest.cluster_specifier = None;
    rest.timeout = None;
    // Accepted but not applied yet (crate docs): Istio puts a default retry policy and
    // stream durations on every route, so refusing them would refuse every route.
    rest.retry_policy = None;
    rest.max_stream_duration = None;
    reject_rest(field, &rest, fields::ROUTE_ACTION)?;
    Ok(Forward { clusters, timeout })
}

fn redirect(
    field: &str,
    r: &envoy_types::pb::envoy::config::route::v3::RedirectAction,
) -> Result<Redirect> {
    use redirect_action::{PathRewriteSpecifier, RedirectResponseCode, SchemeRewriteSpecifier};
    let scheme = match &r.scheme_rewrite_specifier {
        None => None,
        Some(SchemeRewriteSpecifier::HttpsRedirect(true)) => Some("https".to_string()),
        Some(SchemeRewriteSpecifier::HttpsRedirect(false)) => None,
        Some(SchemeRewriteSpecifier::SchemeRedirect(s)) => Some(s.clone()),
    };
    let path = match &r.path_rewrite_specifier {
        None => None,
        Some(PathRewriteSpecifier::PathRedirect(p)) => Some(p.clone()),
        Some(_) => {
            return Err(unsupported(
                field,
                "prefix_rewrite / regex_rewrite in redirects",
            ))
        }
    };
    if r.strip_query {
        return Err(unsupported(at(field, "strip_query"), "strip_query"));
    }
    let status = match RedirectResponseCode::try_from(r.response_code) {
        Ok(RedirectResponseCode::MovedPermanently) => 301,
        Ok(RedirectResponseCode::Found) => 302,
        Ok(RedirectResponseCode::SeeOther) => 303,
        Ok(RedirectResponseCode::TemporaryRedirect) => 307,
        Ok(RedirectResponseCode::PermanentRedirect) => 308,
        Err(_) => {
            return Err(invalid(
                at(field, "response_code"),
                r.response_code.to_string(),
            ))
        }
    };
    Ok(Redirect {
        scheme,
        host: Some(r.host_redirect.clone()).filter(|h| !h.is_empty()),
        port: u16::try_from(r.port_redirect).ok().filter(|p| *p != 0),
        path,
        status,
    })
}

#[cfg(test)]
#[path = "route_tests.rs"]
mod tests;
