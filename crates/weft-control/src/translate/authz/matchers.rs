//! Istio attribute values -> Envoy matchers, with Istio's wildcard conventions: `*` alone
//! means "any non-empty value" (`present_match` for headers), `*x` a suffix, `x*` a prefix,
//! anything else an exact value.

use envoy_types::pb::envoy::config::core::v3::CidrRange;
use envoy_types::pb::envoy::config::route::v3::{
    header_matcher::HeaderMatchSpecifier, HeaderMatcher,
};
use envoy_types::pb::envoy::r#type::matcher::v3::{
    list_matcher, metadata_matcher::path_segment::Segment, metadata_matcher::PathSegment,
    string_matcher::MatchPattern, value_matcher, ListMatcher, MetadataMatcher, OrMatcher,
    RegexMatcher, StringMatcher, ValueMatcher,
};
use envoy_types::pb::google::protobuf::UInt32Value;
use std::net::IpAddr;

/// Where Envoy's jwt_authn filter leaves a verified token's claims.
pub const JWT_FILTER: &str = "envoy.filters.http.jwt_authn";

fn pattern(p: MatchPattern, ignore_case: bool) -> StringMatcher {
    StringMatcher {
        match_pattern: Some(p),
        ignore_case,
    }
}

pub fn exact(v: &str) -> StringMatcher {
    pattern(MatchPattern::Exact(v.to_string()), false)
}

pub fn regex(r: &str) -> StringMatcher {
    pattern(
        MatchPattern::SafeRegex(RegexMatcher {
            regex: r.to_string(),
            ..Default::default()
        }),
        false,
    )
}

pub fn any_value() -> StringMatcher {
    regex(".+")
}

/// A value with Istio's wildcards; `prefix` is put in front of the value (`spiffe://`).
pub fn string_with_prefix(v: &str, prefix: &str) -> StringMatcher {
    if v == "*" {
        any_value()
    } else if let Some(rest) = v.strip_prefix('*') {
        if prefix.is_empty() {
            pattern(MatchPattern::Suffix(rest.to_string()), false)
        } else {
            regex(&format!("{prefix}.*{}", quote_meta(rest)))
        }
    } else if let Some(head) = v.strip_suffix('*') {
        pattern(MatchPattern::Prefix(format!("{prefix}{head}")), false)
    } else {
        exact(&format!("{prefix}{v}"))
    }
}

/// Escapes RE2 metacharacters (Go's `regexp.QuoteMeta`).
pub fn quote_meta(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if r"\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

pub fn string(v: &str) -> StringMatcher {
    string_with_prefix(v, "")
}

/// A header matcher with Istio's wildcards; `*` means the header is present.
pub fn header(name: &str, v: &str, ignore_case: bool) -> HeaderMatcher {
    let specifier = if v == "*" {
        HeaderMatchSpecifier::PresentMatch(true)
    } else if let Some(rest) = v.strip_prefix('*') {
        HeaderMatchSpecifier::StringMatch(pattern(MatchPattern::Suffix(rest.into()), ignore_case))
    } else if let Some(head) = v.strip_suffix('*') {
        HeaderMatchSpecifier::StringMatch(pattern(MatchPattern::Prefix(head.into()), ignore_case))
    } else {
        HeaderMatchSpecifier::StringMatch(pattern(MatchPattern::Exact(v.into()), ignore_case))
    };
    HeaderMatcher {
        name: name.to_string(),
        header_match_specifier: Some(specifier),
        ..Default::default()
    }
}

/// `1.2.3.4` (a /32 or /128) or a CIDR.
pub fn cidr(v: &str) -> Result<CidrRange, String> {
    let (addr, len) = match v.split_once('/') {
        Some((a, l)) => {
            let ip: IpAddr = a.parse().map_err(|_| format!("invalid IP address {v:?}"))?;
            let len: u32 = l
                .parse()
                .map_err(|_| format!("invalid prefix length in {v:?}"))?;
            let max = if ip.is_ipv4() { 32 } else { 128 };
            if len > max {
                return Err(format!("invalid prefix length in {v:?}"));
            }
            (ip, len)
        }
        None => {
            let ip: IpAddr = v.parse().map_err(|_| format!("invalid IP address {v:?}"))?;
            (ip, if ip.is_ipv4() { 32 } else { 128 })
        }
    };
    Ok(CidrRange {
        address_prefix: addr.to_string(),
        prefix_len: Some(UInt32Value { value: len }),
    })
}

pub fn port(v: &str) -> Result<u32, String> {
    v.parse::<u32>()
        .ok()
        .filter(|p| *p <= 65535)
        .ok_or_else(|| format!("invalid port {v:?}"))
}

/// A metadata matcher on `filter`, following `path` keys.
pub fn metadata(filter: &str, path: &[&str], value: ValueMatcher) -> MetadataMatcher {
    MetadataMatcher {
        filter: filter.to_string(),
        path: path
            .iter()
            .map(|k| PathSegment {
                segment: Some(Segment::Key(k.to_string())),
            })
            .collect(),
        value: Some(value),
        invert: false,
    }
}

pub fn value_string(m: StringMatcher) -> ValueMatcher {
    ValueMatcher {
        match_pattern: Some(value_matcher::MatchPattern::StringMatch(m)),
    }
}

pub fn value_or(matchers: Vec<ValueMatcher>) -> ValueMatcher {
    ValueMatcher {
        match_pattern: Some(value_matcher::MatchPattern::OrMatch(OrMatcher {
            value_matchers: matchers,
        })),
    }
}

pub fn value_list_one_of(m: ValueMatcher) -> ValueMatcher {
    ValueMatcher {
        match_pattern: Some(value_matcher::MatchPattern::ListMatch(Box::new(
            ListMatcher {
                match_pattern: Some(list_matcher::MatchPattern::OneOf(Box::new(m))),
            },
        ))),
    }
}

/// A JWT claim (under `payload`) that is one of `values`, whether the claim is a string or
/// a list of strings.
pub fn jwt_claim(claim_path: &[&str], values: &[String]) -> MetadataMatcher {
    let any_of = || value_or(values.iter().map(|v| value_string(string(v))).collect());
    let mut path = vec!["payload"];
    path.extend_from_slice(claim_path);
    metadata(
        JWT_FILTER,
        &path,
        value_or(vec![value_list_one_of(any_of()), any_of()]),
    )
}

/// `[a]` -> `a`: the name inside one pair of brackets.
pub fn name_in_brackets(s: &str) -> Result<&str, String> {
    s.strip_prefix('[')
        .and_then(|s| s.strip_suffix(']'))
        .filter(|n| !n.is_empty() && !n.contains(['[', ']']))
        .ok_or_else(|| format!("expecting one name in brackets, got {s:?}"))
}

/// `[a][b]` -> `[a, b]`.
pub fn names_in_nested_brackets(s: &str) -> Result<Vec<&str>, String> {
    let inner = s
        .strip_prefix('[')
        .and_then(|s| s.strip_suffix(']'))
        .ok_or_else(|| format!("expecting names in brackets, got {s:?}"))?;
    let names: Vec<&str> = inner.split("][").collect();
    if names.iter().any(|n| n.is_empty() || n.contains(['[', ']'])) {
        return Err(format!("expecting names in brackets, got {s:?}"));
    }
    Ok(names)
}
