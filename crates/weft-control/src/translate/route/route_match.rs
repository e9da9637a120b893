//! `HTTPMatchRequest` -> Envoy `RouteMatch`, and which matches apply to the proxy at all.

use super::proto::{regex_matcher, string_matcher};
use envoy_types::pb::envoy::config::route::v3::{
    header_matcher::HeaderMatchSpecifier, query_parameter_matcher::QueryParameterMatchSpecifier,
    route_match::PathSpecifier, HeaderMatcher, QueryParameterMatcher, RouteMatch,
};
use envoy_types::pb::google::protobuf::BoolValue;
use std::collections::{BTreeMap, BTreeSet};
use weft_config::networking::virtual_service::{HttpMatchRequest, StringMatch};

/// Whether a match's source conditions (gateways, sourceLabels, sourceNamespace) select
/// the proxy we generate for. `gateways` holds the proxy's gateway names (`mesh` for a
/// sidecar, `ns/name` for a gateway). As in Istio, a match naming gateways ignores its
/// source labels.
pub fn applies_to_source(
    m: &HttpMatchRequest,
    gateways: &BTreeSet<String>,
    labels: &BTreeMap<String, String>,
    namespace: &str,
    vs_namespace: &str,
) -> bool {
    if !m.gateways.is_empty() {
        return m
            .gateways
            .iter()
            .any(|g| gateways.contains(&qualify_gateway(g, vs_namespace)));
    }
    let labels_match = m
        .source_labels
        .iter()
        .all(|(k, v)| labels.get(k) == Some(v));
    labels_match
        && m.source_namespace
            .as_deref()
            .is_none_or(|ns| ns.is_empty() || ns == namespace)
}

/// `bookinfo-gateway` written in namespace `default` is `default/bookinfo-gateway`;
/// `mesh` stays `mesh`.
pub fn qualify_gateway(name: &str, vs_namespace: &str) -> String {
    if name == weft_config::networking::virtual_service::MESH_GATEWAY || name.contains('/') {
        name.to_string()
    } else {
        format!("{vs_namespace}/{name}")
    }
}

/// Istio turns a missing match value, or the glob-looking regex `*` (not valid RE2), into
/// a presence test.
fn is_presence(m: &StringMatch) -> bool {
    m.is_empty() || m.regex.as_deref() == Some("*")
}

fn header_matcher(name: &str, m: &StringMatch) -> HeaderMatcher {
    let specifier = if is_presence(m) {
        Some(HeaderMatchSpecifier::PresentMatch(true))
    } else {
        string_matcher(m).map(HeaderMatchSpecifier::StringMatch)
    };
    HeaderMatcher {
        name: name.to_string(),
        header_match_specifier: specifier,
        ..Default::default()
    }
}

fn query_matcher(name: &str, m: &StringMatch) -> QueryParameterMatcher {
    let specifier = if is_presence(m) {
        Some(QueryParameterMatchSpecifier::PresentMatch(true))
    } else {
        string_matcher(m).map(QueryParameterMatchSpecifier::StringMatch)
    };
    QueryParameterMatcher {
        name: name.to_string(),
        query_parameter_match_specifier: specifier,
    }
}

/// The Envoy match for one Istio match; `None` (a rule without matches) matches every path.
pub fn route_match(m: Option<&HttpMatchRequest>) -> RouteMatch {
    let mut out = RouteMatch {
        path_specifier: Some(PathSpecifier::Prefix("/".into())),
        ..Default::default()
    };
    let Some(m) = m else {
        return out;
    };
    for (name, value) in &m.headers {
        // `@request.auth.claims.*` matches the verified JWT, not a header.
        let claim = if is_presence(value) {
            None
        } else {
            string_matcher(value)
        };
        if let Some(md) = crate::translate::authn::claims::claim_matcher(name, claim) {
            out.dynamic_metadata.push(md);
            continue;
        }
        out.headers.push(header_matcher(name, value));
    }
    for (name, value) in &m.without_headers {
        let claim = if is_presence(value) {
            None
        } else {
            string_matcher(value)
        };
        if let Some(mut md) = crate::translate::authn::claims::claim_matcher(name, claim) {
            md.invert = true;
            out.dynamic_metadata.push(md);
            continue;
        }
        let mut h = header_matcher(name, value);
        h.invert_match = true;
        // A request without the header must match "withoutHeaders: {x: {exact: v}}";
        // Envoy only sees it that way when a missing header reads as empty (this
        // conflicts with present_match, which already inverts cleanly).
        h.treat_missing_header_as_empty = !is_presence(value);
        out.headers.push(h);
    }
    out.headers.sort_by(|a, b| a.name.cmp(&b.name));
    if let Some(uri) = &m.uri {
        if let Some(exact) = &uri.exact {
            out.path_specifier = Some(PathSpecifier::Path(exact.clone()));
        } else if let Some(prefix) = &uri.prefix {
            out.path_specifier = Some(PathSpecifier::Prefix(prefix.clone()));
        } else if let Some(regex) = &uri.regex {
            out.path_specifier = Some(PathSpecifier::SafeRegex(regex_matcher(regex)));
        }
    }
    out.case_sensitive = Some(BoolValue {
        value: !m.ignore_uri_case,
    });
    for (pseudo, value) in [
        (":method", &m.method),
        (":authority", &m.authority),
        (":scheme", &m.scheme),
    ] {
        if let Some(v) = value {
            out.headers.push(header_matcher(pseudo, v));
        }
    }
    for (name, value) in &m.query_params {
        out.query_parameters.push(query_matcher(name, value));
    }
    out
}

/// A match no later route can get past: every path, no header or query condition.
pub fn is_catch_all(m: &RouteMatch) -> bool {
    let all_paths = match &m.path_specifier {
        Some(PathSpecifier::Prefix(p)) => p == "/",
        Some(PathSpecifier::PathSeparatedPrefix(p)) => p == "/",
        Some(PathSpecifier::SafeRegex(r)) => r.regex == ".*",
        _ => false,
    };
    all_paths
        && m.headers.is_empty()
        && m.query_parameters.is_empty()
        && m.dynamic_metadata.is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;
    use envoy_types::pb::envoy::r#type::matcher::v3::string_matcher::MatchPattern;

    fn parse(yaml: &str) -> HttpMatchRequest {
        serde_yaml::from_str(yaml).unwrap()
    }

    fn pattern(h: &HeaderMatcher) -> Option<MatchPattern> {
        match &h.header_match_specifier {
            Some(HeaderMatchSpecifier::StringMatch(s)) => s.match_pattern.clone(),
            _ => None,
        }
    }

    #[test]
    fn uri_variants_become_path_specifiers() {
        let exact = route_match(Some(&parse("uri: {exact: /productpage}")));
        assert_eq!(
            exact.path_specifier,
            Some(PathSpecifier::Path("/productpage".into()))
        );
        let prefix = route_match(Some(&parse("uri: {prefix: /api/v1}")));
        assert_eq!(
            prefix.path_specifier,
            Some(PathSpecifier::Prefix("/api/v1".into()))
        );
        let regex = route_match(Some(&parse("uri: {regex: '/static/.*'}")));
        match regex.path_specifier {
            Some(PathSpecifier::SafeRegex(r)) => assert_eq!(r.regex, "/static/.*"),
            other => panic!("expected a regex, got {other:?}"),
        }
    }

    #[test]
    fn headers_presence_and_negation() {
        let m = route_match(Some(&parse(
            "headers: {end-user: {exact: jason}, x-present: {}}\nwithoutHeaders: {x-debug: {prefix: 'on'}}",
        )));
        let names: Vec<_> = m.headers.iter().map(|h| h.name.as_str()).collect();
        assert_eq!(names, ["end-user", "x-debug", "x-present"]);
        assert_eq!(
            pattern(&m.headers[0]),
            Some(MatchPattern::Exact("jason".into()))
        );
        assert!(m.headers[1].invert_match);
        assert!(m.headers[1].treat_missing_header_as_empty);
        assert_eq!(
            m.headers[2].header_match_specifier,
            Some(HeaderMatchSpecifier::PresentMatch(true))
        );
    }

    #[test]
    fn method_authority_scheme_are_pseudo_headers_and_query_params_kept() {
        let m = route_match(Some(&parse(
            "method: {exact: GET}\nauthority: {prefix: foo}\nscheme: {exact: https}\nqueryParams: {v: {regex: '[0-9]+'}}\nignoreUriCase: true",
        )));
        let names: Vec<_> = m.headers.iter().map(|h| h.name.as_str()).collect();
        assert_eq!(names, [":method", ":authority", ":scheme"]);
        assert_eq!(m.case_sensitive, Some(BoolValue { value: false }));
        assert_eq!(m.query_parameters[0].name, "v");
        assert!(!is_catch_all(&m));
    }

    #[test]
    fn source_conditions_select_the_proxy() {
        let labels: BTreeMap<String, String> = [("app".to_string(), "reviews".to_string())].into();
        let mesh: BTreeSet<String> = ["mesh".to_string()].into();
        let m = parse("sourceLabels: {app: reviews}\nsourceNamespace: default");
        assert!(applies_to_source(&m, &mesh, &labels, "default", "default"));
        assert!(!applies_to_source(&m, &mesh, &labels, "other", "default"));
        assert!(!applies_to_source(
            &m,
            &mesh,
            &BTreeMap::new(),
            "default",
            "default"
        ));
        let gw = parse("gateways: [bookinfo-gateway]");
        let gws: BTreeSet<String> = ["default/bookinfo-gateway".to_string()].into();
        assert!(applies_to_source(&gw, &gws, &labels, "x", "default"));
        assert!(!applies_to_source(&gw, &mesh, &labels, "x", "default"));
    }
}
