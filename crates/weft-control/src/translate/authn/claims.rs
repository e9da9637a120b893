//! `@request.auth.claims.<name>` in a VirtualService header match: Istio matches the
//! verified JWT's claim instead of a header, through a route `dynamic_metadata` matcher on
//! the payload `jwt_authn` wrote (`[payload, <claim>, <nested>...]`). A claim that is a list
//! matches when one element does, a string when it matches itself.

use super::{JWT_AUTHN_FILTER, PAYLOAD_KEY};
use envoy_types::pb::envoy::r#type::matcher::v3::{
    list_matcher, metadata_matcher::path_segment::Segment, metadata_matcher::PathSegment,
    value_matcher, ListMatcher, MetadataMatcher, OrMatcher, StringMatcher, ValueMatcher,
};

const PREFIX: &str = "@request.auth.claims";

/// The claim path of a routing header name: `@request.auth.claims.a.b` or
/// `@request.auth.claims[a][b]` -> `[a, b]`; `None` for an ordinary header.
pub fn routing_claim(name: &str) -> Option<Vec<String>> {
    let rest = name.strip_prefix(PREFIX)?;
    let claims: Vec<String> = if let Some(dotted) = rest.strip_prefix('.') {
        dotted.split('.').map(str::to_string).collect()
    } else if rest.starts_with('[') && rest.ends_with(']') {
        rest[1..rest.len() - 1]
            .split("][")
            .map(str::to_string)
            .collect()
    } else {
        return None;
    };
    (!claims.iter().any(String::is_empty)).then_some(claims)
}

/// The route's dynamic-metadata matcher for a claim header; `value` is the header's string
/// match (`None`: the claim only has to be present).
pub fn claim_matcher(name: &str, value: Option<StringMatcher>) -> Option<MetadataMatcher> {
    let claims = routing_claim(name)?;
    let path = std::iter::once(PAYLOAD_KEY.to_string())
        .chain(claims)
        .map(|key| PathSegment {
            segment: Some(Segment::Key(key)),
        })
        .collect();
    let single = match value {
        Some(s) => ValueMatcher {
            match_pattern: Some(value_matcher::MatchPattern::StringMatch(s)),
        },
        None => ValueMatcher {
            match_pattern: Some(value_matcher::MatchPattern::PresentMatch(true)),
        },
    };
    let one_of = ValueMatcher {
        match_pattern: Some(value_matcher::MatchPattern::ListMatch(Box::new(
            ListMatcher {
                match_pattern: Some(list_matcher::MatchPattern::OneOf(Box::new(single.clone()))),
            },
        ))),
    };
    Some(MetadataMatcher {
        filter: JWT_AUTHN_FILTER.to_string(),
        path,
        value: Some(ValueMatcher {
            match_pattern: Some(value_matcher::MatchPattern::OrMatch(OrMatcher {
                value_matchers: vec![one_of, single],
            })),
        }),
        invert: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use envoy_types::pb::envoy::r#type::matcher::v3::string_matcher::MatchPattern;

    #[test]
    fn claim_names_dotted_or_bracketed() {
        assert_eq!(
            routing_claim("@request.auth.claims.sub"),
            Some(vec!["sub".into()])
        );
        assert_eq!(
            routing_claim("@request.auth.claims.org.team"),
            Some(vec!["org".into(), "team".into()])
        );
        assert_eq!(
            routing_claim("@request.auth.claims[https://x.io/role][name]"),
            Some(vec!["https://x.io/role".into(), "name".into()])
        );
        assert_eq!(routing_claim("x-user"), None);
        assert_eq!(routing_claim("@request.auth.claims"), None);
        assert_eq!(routing_claim("@request.auth.claims."), None);
    }

    #[test]
    fn matcher_reads_the_payload_as_a_list_or_a_value() {
        let exact = StringMatcher {
            match_pattern: Some(MatchPattern::Exact("admins".into())),
            ignore_case: false,
        };
        let m = claim_matcher("@request.auth.claims.groups", Some(exact.clone())).unwrap();
        assert_eq!(m.filter, "envoy.filters.http.jwt_authn");
        let keys: Vec<_> = m
            .path
            .iter()
            .map(|p| match &p.segment {
                Some(Segment::Key(k)) => k.as_str(),
                None => "",
            })
            .collect();
        assert_eq!(keys, ["payload", "groups"]);
        let Some(value_matcher::MatchPattern::OrMatch(or)) = m.value.unwrap().match_pattern else {
            panic!("or_match expected");
        };
        assert_eq!(
            or.value_matchers[1].match_pattern,
            Some(value_matcher::MatchPattern::StringMatch(exact))
        );
        assert!(matches!(
            or.value_matchers[0].match_pattern,
            Some(value_matcher::MatchPattern::ListMatch(_))
        ));
        assert!(claim_matcher("x-user", None).is_none());
    }
}
