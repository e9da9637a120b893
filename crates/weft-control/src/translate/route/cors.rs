//! VirtualService `corsPolicy` -> the CORS filter's per-route `CorsPolicy`.

use super::proto::string_matcher;
use envoy_types::pb::envoy::config::core::v3::RuntimeFractionalPercent;
use envoy_types::pb::envoy::extensions::filters::http::cors::v3::CorsPolicy;
use envoy_types::pb::envoy::r#type::matcher::v3::{string_matcher::MatchPattern, StringMatcher};
use envoy_types::pb::google::protobuf::BoolValue;
use weft_config::networking::virtual_service::{self as vs, UnmatchedPreflights};

use super::proto::integer_percent;

/// The per-route CORS policy. Preflights from unlisted origins are forwarded to the
/// application unless the user asked to ignore them (Envoy's pre-1.30 behaviour, which
/// Istio keeps as the default).
pub fn cors_policy(c: &vs::CorsPolicy) -> CorsPolicy {
    let origins = if !c.allow_origins.is_empty() {
        c.allow_origins.iter().filter_map(string_matcher).collect()
    } else {
        c.allow_origin
            .iter()
            .map(|o| StringMatcher {
                match_pattern: Some(MatchPattern::Exact(o.clone())),
                ignore_case: false,
            })
            .collect()
    };
    CorsPolicy {
        allow_origin_string_match: origins,
        allow_methods: c.allow_methods.join(","),
        allow_headers: c.allow_headers.join(","),
        expose_headers: c.expose_headers.join(","),
        // Envoy wants whole seconds as a string.
        max_age: c
            .max_age
            .map(|d| (d.nanos.max(0) / 1_000_000_000).to_string())
            .unwrap_or_default(),
        allow_credentials: c.allow_credentials.map(|value| BoolValue { value }),
        filter_enabled: Some(RuntimeFractionalPercent {
            default_value: Some(integer_percent(100)),
            ..Default::default()
        }),
        forward_not_matching_preflights: Some(BoolValue {
            value: c.unmatched_preflights != Some(UnmatchedPreflights::Ignore),
        }),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn translates_every_field() {
        let c: vs::CorsPolicy = serde_yaml::from_str(
            "allowOrigins: [{exact: 'https://example.com'}, {regex: 'https://.*\\.example\\.org'}]\nallowMethods: [GET, POST]\nallowHeaders: [x-a, x-b]\nexposeHeaders: [x-c]\nmaxAge: 24h\nallowCredentials: true\nunmatchedPreflights: IGNORE",
        )
        .unwrap();
        let p = cors_policy(&c);
        assert_eq!(p.allow_origin_string_match.len(), 2);
        assert_eq!(
            p.allow_origin_string_match[0].match_pattern,
            Some(MatchPattern::Exact("https://example.com".into()))
        );
        assert_eq!(p.allow_methods, "GET,POST");
        assert_eq!(p.allow_headers, "x-a,x-b");
        assert_eq!(p.expose_headers, "x-c");
        assert_eq!(p.max_age, "86400");
        assert_eq!(p.allow_credentials, Some(BoolValue { value: true }));
        assert_eq!(
            p.forward_not_matching_preflights,
            Some(BoolValue { value: false })
        );
    }

    #[test]
    fn deprecated_allow_origin_is_exact() {
        let c: vs::CorsPolicy = serde_yaml::from_str("allowOrigin: ['*']").unwrap();
        let p = cors_policy(&c);
        assert_eq!(
            p.allow_origin_string_match[0].match_pattern,
            Some(MatchPattern::Exact("*".into()))
        );
        assert_eq!(
            p.forward_not_matching_preflights,
            Some(BoolValue { value: true })
        );
    }
}
