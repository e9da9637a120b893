//! `RouteConfiguration` -> [`model::RouteConfig`]: virtual hosts, matches and the
//! forward / direct response / redirect actions.

#[path = "route_action.rs"]
mod action;
#[path = "route_filters.rs"]
mod filters;
#[path = "route_headers.rs"]
mod headers;

use super::{at, fields, invalid, reject_rest, unsupported, Result};
use crate::model::route::{PathRewrite, RedirectPath};
use crate::model::{
    Action, HeaderMatch, HeaderMatcher, PathMatch, QueryMatcher, Redirect, Route, RouteConfig,
    RouteMatch, StringMatch, VirtualHost,
};
use envoy_types::pb::envoy::config::core::v3::data_source::Specifier;
use envoy_types::pb::envoy::config::route::v3::virtual_host::TlsRequirementType;
use envoy_types::pb::envoy::config::route::v3::{
    header_matcher::HeaderMatchSpecifier, query_parameter_matcher::QueryParameterMatchSpecifier,
    redirect_action, route::Action as ActionProto, route_match::PathSpecifier,
    HeaderMatcher as HeaderMatcherProto, Route as RouteProto, RouteConfiguration,
    RouteMatch as RouteMatchProto, VirtualHost as VhProto,
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
    let headers = headers::mutations(
        "",
        &rc.request_headers_to_add,
        &rc.request_headers_to_remove,
        &rc.response_headers_to_add,
        &rc.response_headers_to_remove,
    )?;
    let filters = filters::filter_configs("", &rc.typed_per_filter_config)?;
    let mut rest = rc.clone();
    rest.name.clear();
    rest.virtual_hosts.clear();
    rest.request_headers_to_add.clear();
    rest.request_headers_to_remove.clear();
    rest.response_headers_to_add.clear();
    rest.response_headers_to_remove.clear();
    rest.most_specific_header_mutations_wins = false;
    rest.typed_per_filter_config.clear();
    // Only decides whether unknown clusters reject the config; weft-proxy answers 503 NC
    // for them at request time either way.
    rest.validate_clusters = None;
    // A limit on direct response bodies; inline bodies are served whole either way.
    rest.max_direct_response_body_size_bytes = None;
    reject_rest("", &rest, fields::ROUTE_CONFIGURATION)?;
    Ok(RouteConfig {
        name: rc.name.clone(),
        virtual_hosts,
        headers,
        most_specific_header_mutations_wins: rc.most_specific_header_mutations_wins,
        filters,
    })
}

fn virtual_host(field: &str, vh: &VhProto) -> Result<VirtualHost> {
    if vh.domains.is_empty() {
        return Err(invalid(at(field, "domains"), "no domains"));
    }
    let mut routes: Vec<Route> = vh
        .routes
        .iter()
        .enumerate()
        .map(|(i, r)| route(&format!("{field}.routes[{i}]"), r))
        .collect::<Result<_>>()?;
    match TlsRequirementType::try_from(vh.require_tls) {
        Ok(TlsRequirementType::None) => {}
        Ok(TlsRequirementType::All) => routes.insert(0, tls_redirect()),
        _ => return Err(unsupported(at(field, "require_tls"), "EXTERNAL_ONLY")),
    }
    let headers = headers::mutations(
        field,
        &vh.request_headers_to_add,
        &vh.request_headers_to_remove,
        &vh.response_headers_to_add,
        &vh.response_headers_to_remove,
    )?;
    let filters = filters::filter_configs(field, &vh.typed_per_filter_config)?;
    let retry_policy = match &vh.retry_policy {
        None => None,
        Some(r) => Some(action::retry_policy(&at(field, "retry_policy"), r)?),
    };
    let mirrors = action::mirrors(field, &vh.request_mirror_policies)?;
    let mut rest = vh.clone();
    rest.name.clear();
    rest.domains.clear();
    rest.routes.clear();
    rest.include_request_attempt_count = false;
    rest.include_attempt_count_in_response = false;
    rest.request_headers_to_add.clear();
    rest.request_headers_to_remove.clear();
    rest.response_headers_to_add.clear();
    rest.response_headers_to_remove.clear();
    rest.typed_per_filter_config.clear();
    rest.retry_policy = None;
    rest.request_mirror_policies.clear();
    rest.require_tls = 0;
    reject_rest(field, &rest, fields::VIRTUAL_HOST)?;
    Ok(VirtualHost {
        name: vh.name.clone(),
        domains: vh.domains.iter().map(|d| d.to_ascii_lowercase()).collect(),
        routes,
        include_request_attempt_count: vh.include_request_attempt_count,
        include_attempt_count_in_response: vh.include_attempt_count_in_response,
        headers,
        filters,
        retry_policy,
        mirrors,
    })
}

/// `require_tls: ALL` as Envoy applies it, before any route: a request whose
/// `x-forwarded-proto` is not `https` gets a 301 to the same host and path over https.
fn tls_redirect() -> Route {
    Route {
        name: "require_tls".into(),
        matcher: RouteMatch {
            path: PathMatch::Prefix("/".into()),
            case_sensitive: true,
            headers: vec![HeaderMatcher {
                name: ":scheme".into(),
                matcher: HeaderMatch::Value {
                    matcher: StringMatch::Exact("https".into()),
                    ignore_case: false,
                },
                invert: true,
                treat_missing_as_empty: false,
            }],
            query_parameters: Vec::new(),
            dynamic_metadata: Vec::new(),
        },
        action: Action::Redirect(Redirect {
            scheme: Some("https".into()),
            host: None,
            port: None,
            path: None,
            strip_query: false,
            status: 301,
        }),
        headers: Default::default(),
        filters: Default::default(),
    }
}

fn route(field: &str, r: &RouteProto) -> Result<Route> {
    let matcher = route_match(&at(field, "match"), r.r#match.as_ref())?;
    let action = match &r.action {
        Some(ActionProto::Route(a)) => Action::Forward(action::forward(&at(field, "route"), a)?),
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
    let filters = filters::filter_configs(field, &r.typed_per_filter_config)?;
    let headers = headers::mutations(
        field,
        &r.request_headers_to_add,
        &r.request_headers_to_remove,
        &r.response_headers_to_add,
        &r.response_headers_to_remove,
    )?;
    let mut rest = r.clone();
    rest.name.clear();
    rest.r#match = None;
    rest.action = None;
    rest.typed_per_filter_config.clear();
    rest.request_headers_to_add.clear();
    rest.request_headers_to_remove.clear();
    rest.response_headers_to_add.clear();
    rest.response_headers_to_remove.clear();
    // Only names the route's statistics.
    rest.stat_prefix.clear();
    // Tracing and metadata only label the request; they do not change how it is served.
    rest.decorator = None;
    rest.metadata = None;
    reject_rest(field, &rest, fields::ROUTE)?;
    Ok(Route {
        name: r.name.clone(),
        matcher,
        action,
        headers,
        filters,
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
    let dynamic_metadata = m
        .dynamic_metadata
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let f = format!("{field}.dynamic_metadata[{i}]");
            crate::rbac::convert::metadata(&f, d)
        })
        .collect::<Result<_>>()?;
    let mut rest = m.clone();
    rest.path_specifier = None;
    rest.headers.clear();
    rest.query_parameters.clear();
    rest.dynamic_metadata.clear();
    rest.case_sensitive = None;
    reject_rest(field, &rest, fields::ROUTE_MATCH)?;
    Ok(RouteMatch {
        path,
        case_sensitive: m.case_sensitive.is_none_or(|b| b.value),
        headers,
        query_parameters,
        dynamic_metadata,
    })
}

// The deprecated specifiers are still valid xDS that older control planes send.
#[allow(deprecated)]
pub(crate) fn header_matcher(field: &str, h: &HeaderMatcherProto) -> Result<HeaderMatcher> {
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
        treat_missing_as_empty: h.treat_missing_header_as_empty,
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
        Some(PathRewriteSpecifier::PathRedirect(p)) => Some(RedirectPath::Path(p.clone())),
        Some(PathRewriteSpecifier::PrefixRewrite(p)) => {
            Some(RedirectPath::Rewrite(PathRewrite::Prefix(p.clone())))
        }
        Some(PathRewriteSpecifier::RegexRewrite(re)) => Some(RedirectPath::Rewrite(
            action::regex_rewrite(&at(field, "regex_rewrite"), re)?,
        )),
        Some(PathRewriteSpecifier::PathRewrite(_)) => {
            return Err(unsupported(
                at(field, "path_rewrite"),
                "path rewrite extensions",
            ))
        }
    };
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
        strip_query: r.strip_query,
        status,
    })
}

#[cfg(test)]
#[path = "route_tests.rs"]
mod tests;
