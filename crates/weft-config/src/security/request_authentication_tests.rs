//! Unit tests for RequestAuthentication validation: JWT rules as a user writes them.

use super::uri_scheme;
use crate::parse_and_validate;

fn check(rule: &str) -> Result<Vec<String>, String> {
    let doc = format!(
        "apiVersion: security.istio.io/v1\nkind: RequestAuthentication\nmetadata: {{name: r, namespace: ns}}\nspec:\n  jwtRules:\n  - {rule}\n"
    );
    match parse_and_validate(&doc).remove(0) {
        Ok((_, warnings)) => Ok(warnings.iter().map(ToString::to_string).collect()),
        Err(e) => Err(e.to_string()),
    }
}

fn rejected(rule: &str, expected: &str) {
    let err = check(rule).expect_err(expected);
    assert!(err.contains(expected), "expected {expected:?} in {err}");
}

#[test]
fn typical_rules_are_accepted() {
    assert_eq!(check("{issuer: \"https://accounts.example.com\", jwksUri: \"https://example.com/jwks.json\", audiences: [app]}"), Ok(vec![]));
    assert_eq!(
        check("{issuer: a, jwks_uri: \"HTTP://example.com/jwks\"}"),
        Ok(vec![])
    );
    assert_eq!(check("{jwksUri: \"http://example.com/jwks\"}"), Ok(vec![]));
    assert_eq!(
        check("{issuer: a, jwks: '{\"keys\":[{\"kty\":\"RSA\",\"n\":\"x\",\"e\":\"AQAB\"}]}'}"),
        Ok(vec![])
    );
}

#[test]
fn issuer_and_keys() {
    rejected(
        "{audiences: [a]}",
        "spec.jwtRules[0].issuer: issuer or jwksUri must be non-empty string",
    );
    rejected(
        "{issuer: a, jwksUri: \"ftp://example.com/jwks\"}",
        "url must have scheme http:// or https://; URI scheme \"ftp\" is not supported",
    );
    rejected(
        "{issuer: a, jwksUri: \"example.com/jwks\"}",
        "url must have scheme http:// or https://",
    );
    rejected(
        "{issuer: a, jwksUri: \"https://e.com\", jwks: \"{}\"}",
        "only one of jwks or jwksUri can be set",
    );
    rejected(
        "{issuer: a, jwks: \"not json\"}",
        "spec.jwtRules[0].jwks: jwks parse error",
    );
    rejected(
        "{issuer: a, jwks: '{\"keys\":[{}]}'}",
        "jwks parse error: key 0 has no \"kty\"",
    );
}

#[test]
fn token_locations_and_claim_headers() {
    rejected(
        "{issuer: a, fromHeaders: [{prefix: x}]}",
        "spec.jwtRules[0].fromHeaders[0].name: Required value",
    );
    rejected(
        "{issuer: a, fromHeaders: [{name: \"\"}]}",
        "spec.jwtRules[0].fromHeaders[0].name in body should be at least 1 chars long",
    );
    rejected(
        "{issuer: a, fromParams: [\"\"]}",
        "spec.jwtRules[0].fromParams[0] in body should be at least 1 chars long",
    );
    rejected(
        "{issuer: a, outputClaimToHeaders: [{claim: sub}]}",
        "outputClaimToHeaders[0].header: Required value",
    );
    rejected(
        "{issuer: a, outputClaimToHeaders: [{claim: sub, header: \"x user\"}]}",
        "spec.jwtRules[0].outputClaimToHeaders[0].header in body should match '^[-_A-Za-z0-9]+$'",
    );
    assert!(
        check("{issuer: a, outputClaimToHeaders: [{claim: nested.key, header: x-user_id}]}")
            .is_ok()
    );
}

#[test]
fn timeouts_and_presence() {
    assert!(check("{issuer: a, timeout: 2s, presence: OPTIONAL}").is_ok());
    rejected("{issuer: a, timeout: 0s}", "spec.jwtRules[0].timeout: Invalid value: \"0s\": must be a valid duration greater than 1ms");
    rejected(
        "{issuer: a, timeout: soon}",
        "must be a valid duration greater than 1ms",
    );
    rejected(
        "{issuer: a, timeout: 1500us}",
        "only durations to ms precision are supported",
    );
    rejected(
        "{issuer: a, presence: ALWAYS}",
        "Unsupported value: \"ALWAYS\"",
    );
}

#[test]
fn schemes() {
    assert_eq!(uri_scheme("https://x"), Some("https"));
    assert_eq!(uri_scheme("a+b-c.d:x"), Some("a+b-c.d"));
    assert_eq!(uri_scheme("1http://x"), None);
    assert_eq!(uri_scheme("no-scheme"), None);
}
