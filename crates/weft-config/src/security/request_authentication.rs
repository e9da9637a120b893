//! RequestAuthentication (security.istio.io): spec types and validation.

use crate::common::{Duration, PolicyTargetReference, WorkloadSelector};
use crate::meta::ObjectMeta;
use crate::security::is_default;
use crate::validate::common::{check_min_length, check_pattern, validate_policy_attachment};
use crate::validate::Report;
use serde::{Deserialize, Deserializer, Serialize};

/// Which JWTs the selected workloads accept. A request without a token is still
/// accepted; an AuthorizationPolicy decides whether one is required.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RequestAuthentication {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<WorkloadSelector>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_ref: Option<PolicyTargetReference>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub target_refs: Vec<PolicyTargetReference>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub jwt_rules: Vec<JwtRule>,
}

/// How to find, verify and forward one issuer's tokens.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JwtRule {
    /// The `iss` claim a token must carry.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub issuer: String,
    /// Accepted `aud` values; empty accepts any audience.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub audiences: Vec<String>,
    /// Where to fetch the public keys; OpenID discovery on the issuer when unset.
    /// Also accepted under its proto name `jwks_uri`.
    #[serde(default, alias = "jwks_uri", skip_serializing_if = "Option::is_none")]
    pub jwks_uri: Option<String>,
    /// The public keys inline, as a JWKS JSON document.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks: Option<String>,
    /// Headers to read the token from; `Authorization: Bearer` when none are given.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub from_headers: Vec<JwtHeader>,
    /// Query parameters to read the token from; `access_token` by default.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub from_params: Vec<String>,
    /// Header to write the verified payload to, base64url-encoded.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub output_payload_to_header: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub from_cookies: Vec<String>,
    /// Keep the token in the request sent upstream (it is removed by default).
    #[serde(default, skip_serializing_if = "is_default")]
    pub forward_original_token: bool,
    /// Claims to copy into request headers once the token is verified.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub output_claim_to_headers: Vec<ClaimToHeader>,
    /// How long to wait for the JWKS fetch (default 5s).
    #[serde(
        default,
        deserialize_with = "cel_duration",
        skip_serializing_if = "Option::is_none"
    )]
    pub timeout: Option<Duration>,
    /// Claims holding space-separated lists (`scope`), matched per element.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub space_delimited_claims: Vec<String>,
    /// Whether a request must carry a token from this rule. Not yet in the istio/api
    /// protos this crate follows; the values are the ones Istio's test corpus uses.
    #[serde(default, skip_serializing_if = "is_default")]
    pub presence: Presence,
}

/// `JWTRule.presence`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Presence {
    #[default]
    PresenceUnspecified,
    Optional,
    Required,
}

/// A header carrying the token, with a prefix to strip (`Bearer `).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JwtHeader {
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub prefix: String,
}

/// Copy `claim` (dotted for nested claims) into request header `header`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClaimToHeader {
    pub header: String,
    pub claim: String,
}

/// Reads a duration that the CRD checks with CEL's `duration()`: a value CEL cannot
/// parse fails the same rule as one that is too short, so it gets the same message.
pub(crate) fn cel_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    let Some(text) = Option::<String>::deserialize(d)? else {
        return Ok(None);
    };
    Duration::parse(&text).map(Some).map_err(|_| {
        serde::de::Error::custom(format!(
            "Invalid value: {text:?}: must be a valid duration greater than 1ms"
        ))
    })
}

/// Istio's webhook rule for durations: at least 1ms, whole milliseconds.
pub(crate) fn check_duration(report: &mut Report, path: &str, d: Duration) {
    if d < Duration::from_millis(1) {
        report.error(
            path,
            format!("Invalid value: \"{d}\": must be a valid duration greater than 1ms"),
        );
    } else if d.nanos % 1_000_000 != 0 {
        report.error(path, "only durations to ms precision are supported");
    }
}

/// Istio's webhook and CRD rules for RequestAuthentication.
pub fn validate(spec: &RequestAuthentication, _meta: &ObjectMeta, report: &mut Report) {
    validate_policy_attachment(
        spec.selector.as_ref(),
        spec.target_ref.as_ref(),
        &spec.target_refs,
        report,
    );
    if spec.jwt_rules.len() > 4096 {
        report.error("spec.jwtRules", "Too many: must have at most 4096 items");
    }
    for (i, rule) in spec.jwt_rules.iter().enumerate() {
        validate_jwt_rule(rule, &format!("spec.jwtRules[{i}]"), report);
    }
}

fn validate_jwt_rule(rule: &JwtRule, path: &str, report: &mut Report) {
    let list = |report: &mut Report, field: &str, values: &[String]| {
        for (i, v) in values.iter().enumerate() {
            check_min_length(report, &format!("{path}.{field}[{i}]"), v, 1);
        }
    };
    list(report, "audiences", &rule.audiences);
    list(report, "fromParams", &rule.from_params);
    list(report, "fromCookies", &rule.from_cookies);
    list(report, "spaceDelimitedClaims", &rule.space_delimited_claims);
    if rule.space_delimited_claims.len() > 64 {
        report.error(
            format!("{path}.spaceDelimitedClaims"),
            "Too many: must have at most 64 items",
        );
    }

    let jwks_uri = rule.jwks_uri.as_deref();
    if rule.issuer.is_empty() && jwks_uri.is_none_or(str::is_empty) {
        report.error(
            format!("{path}.issuer"),
            "issuer or jwksUri must be non-empty string",
        );
    }
    if let Some(uri) = jwks_uri {
        let at = format!("{path}.jwksUri");
        check_min_length(report, &at, uri, 1);
        if uri.len() > 2048 {
            report.error(&at, "Too long: may not be more than 2048 bytes");
        }
        if !uri.is_empty() {
            let scheme = uri_scheme(uri).map(str::to_ascii_lowercase);
            match scheme.as_deref() {
                Some("http" | "https") => {}
                // The CRD's message, then the webhook's.
                scheme => report.error(
                    &at,
                    format!(
                        "Invalid value: {uri:?}: url must have scheme http:// or https://; URI scheme {:?} is not supported",
                        scheme.unwrap_or_default()
                    ),
                ),
            }
        }
    }
    if rule.jwks.is_some() && jwks_uri.is_some() {
        report.error(
            path,
            "Invalid value: \"object\": only one of jwks or jwksUri can be set",
        );
    }
    if let Some(jwks) = rule.jwks.as_deref().filter(|j| !j.is_empty()) {
        if let Err(e) = check_jwks(jwks) {
            report.error(format!("{path}.jwks"), format!("jwks parse error: {e}"));
        }
    }
    for (i, header) in rule.from_headers.iter().enumerate() {
        check_min_length(
            report,
            &format!("{path}.fromHeaders[{i}].name"),
            &header.name,
            1,
        );
    }
    let header_re = header_name_regex();
    for (i, c) in rule.output_claim_to_headers.iter().enumerate() {
        let at = format!("{path}.outputClaimToHeaders[{i}]");
        check_min_length(report, &format!("{at}.claim"), &c.claim, 1);
        check_min_length(report, &format!("{at}.header"), &c.header, 1);
        if !c.header.is_empty() {
            check_pattern(
                report,
                &format!("{at}.header"),
                &c.header,
                header_re,
                HEADER_NAME_PATTERN,
            );
        }
    }
    if let Some(timeout) = rule.timeout {
        check_duration(report, &format!("{path}.timeout"), timeout);
    }
}

/// Header names Istio lets a JWT claim be written to: no pseudo-headers, no separators.
const HEADER_NAME_PATTERN: &str = "^[-_A-Za-z0-9]+$";

fn header_name_regex() -> &'static regex::Regex {
    static RE: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    RE.get_or_init(|| regex::Regex::new(HEADER_NAME_PATTERN).expect("valid pattern"))
}

/// The scheme of an absolute URI (RFC 3986: a letter, then letters, digits, `+-.`,
/// then `:`), lowercased as URL parsers do. None if the text has no scheme.
pub(crate) fn uri_scheme(uri: &str) -> Option<&str> {
    let (scheme, _) = uri.split_once(':')?;
    let mut chars = scheme.chars();
    let valid = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c));
    valid.then_some(scheme)
}

/// A JWKS must be a JSON object with a `keys` array of objects that each name a `kty`.
fn check_jwks(jwks: &str) -> Result<(), String> {
    let value: serde_json::Value = serde_json::from_str(jwks).map_err(|e| e.to_string())?;
    let keys = value
        .get("keys")
        .and_then(serde_json::Value::as_array)
        .ok_or("a JWKS is an object with a \"keys\" array")?;
    for (i, key) in keys.iter().enumerate() {
        if key.get("kty").and_then(serde_json::Value::as_str).is_none() {
            return Err(format!("key {i} has no \"kty\""));
        }
    }
    Ok(())
}

#[cfg(test)]
#[path = "request_authentication_tests.rs"]
mod tests;
