//! Value checks shared by AuthorizationPolicy sources, operations and `when` conditions.
//!
//! Each function returns Istio's own error text, so users see what `istioctl` would say.

use std::net::IpAddr;

/// Attribute keys a `when` condition may name exactly; prefixed keys are handled apart.
const REQUEST_HEADERS: &str = "request.headers";
const REQUEST_CLAIMS: &str = "request.auth.claims";
const EXPERIMENTAL: &str = "experimental.envoy.filters.";
const DESTINATION_LABELS: &str = "destination.labels";

/// Path templates in `paths` (`/foo/{*}/bar`, `/foo/{**}`).
const MATCH_ONE: &str = "{*}";
const MATCH_ANY: &str = "{**}";

/// Rejects empty strings, which Envoy would turn into a match on nothing.
pub fn check_empty_values(field: &str, values: &[String]) -> Result<(), String> {
    if values.iter().any(String::is_empty) {
        return Err(format!("empty value not allowed, found in {field}"));
    }
    Ok(())
}

/// A single `*` is allowed only as a prefix, suffix, or the whole value.
pub fn check_wildcard_values(field: &str, values: &[String]) -> Result<(), String> {
    check_empty_values(field, values)?;
    for value in values {
        let count = value.matches('*').count();
        if count > 1 {
            return Err(format!(
                "at most one wildcard is allowed, found in {field}: {value:?}"
            ));
        }
        if count == 1 && value != "*" && !value.starts_with('*') && !value.ends_with('*') {
            return Err(format!(
                "wildcard is only allowed at the start or end, found in {field}: {value:?}"
            ));
        }
    }
    Ok(())
}

/// Trust domains follow the wildcard rules and, being the first part of a SPIFFE id,
/// cannot contain a path separator.
pub fn check_trust_domain_values(field: &str, values: &[String]) -> Result<(), String> {
    check_wildcard_values(field, values)?;
    if let Some(value) = values.iter().find(|v| v.contains('/')) {
        return Err(format!(
            "trust domain must not contain '/', found in {field}: {value:?}"
        ));
    }
    Ok(())
}

/// `serviceAccount` or `namespace/serviceAccount`, no wildcards, at most 16 of them.
pub fn check_service_accounts(field: &str, values: &[String]) -> Result<(), String> {
    if values.len() > 16 {
        return Err("may not have more than 16 values".to_string());
    }
    for value in values {
        if value.is_empty() {
            return Err(format!("empty value not allowed, found in {field}"));
        }
        if value.contains('*') {
            return Err(format!("wildcard not allowed, found in {field}"));
        }
        if value.matches('/').count() > 1 {
            return Err(format!(
                "expected format 'serviceAccount' or 'namespace/serviceAccount', found {value:?} in {field}"
            ));
        }
        if value.len() > 320 {
            return Err(format!(
                "value cannot exceed 320 characters, found {value:?} in {field}"
            ));
        }
        if let Some((ns, sa)) = value.split_once('/') {
            if ns.is_empty() {
                return Err(format!("expected format 'serviceAccount' or 'namespace/serviceAccount', found empty namespace {value:?} in {field}"));
            }
            if sa.is_empty() {
                return Err(format!("expected format 'serviceAccount' or 'namespace/serviceAccount', found empty serviceAccount {value:?} in {field}"));
            }
        }
    }
    Ok(())
}

/// IPs and CIDR ranges, both families. Every bad entry is listed.
pub fn validate_ips(values: &[String]) -> Result<(), String> {
    let bad: Vec<String> = values
        .iter()
        .filter_map(|v| {
            if v.contains('/') {
                v.parse::<ipnet::IpNet>()
                    .err()
                    .map(|e| format!("bad CIDR range ({v}): {e}"))
            } else {
                v.parse::<IpAddr>()
                    .err()
                    .map(|_| format!("bad IP address ({v})"))
            }
        })
        .collect();
    join(bad)
}

/// Ports are decimal strings in 0..=65535.
pub fn validate_ports(values: &[String]) -> Result<(), String> {
    let bad: Vec<String> = values
        .iter()
        .filter(|p| {
            !p.bytes().all(|b| b.is_ascii_digit()) || p.parse::<u32>().map_or(true, |n| n > 65535)
        })
        .map(|p| format!("bad port ({p})"))
        .collect();
    join(bad)
}

fn join(errors: Vec<String>) -> Result<(), String> {
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors.join("; "))
    }
}

/// Path templates: `{*}` matches one segment, `{**}` the rest and must be last; other
/// segments must be plain literals once a template is used.
pub fn check_path_templates(field: &str, paths: &[String]) -> Result<(), String> {
    for path in paths {
        let has_template = path.contains(MATCH_ONE) || path.contains(MATCH_ANY);
        let trimmed = path.trim_matches('/');
        let mut seen_any = false;
        for glob in trimmed.split('/') {
            if glob == MATCH_ONE || glob == MATCH_ANY {
                if seen_any {
                    return Err(format!("invalid or unsupported path {trimmed}, found in {field}. {{**}} is not the last operator"));
                }
                seen_any = glob == MATCH_ANY;
                continue;
            }
            if glob.contains(['{', '}']) {
                return Err(format!("invalid or unsupported path {trimmed}, found in {field}. Contains '{{' or '}}' beyond a supported path template"));
            }
            if has_template && !is_valid_literal(glob) {
                return Err(format!("invalid or unsupported path {trimmed}, found in {field}. Contains segment {glob} with invalid string literal"));
            }
        }
    }
    Ok(())
}

/// RFC 3986 pchar minus percent-encoding checks: what Envoy's URI template matcher takes.
fn is_valid_literal(glob: &str) -> bool {
    !glob.is_empty()
        && glob
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~%!$&'()+,;:@=".contains(&b))
}

/// `a[b]`: a name, then a non-empty bracketed key at the end.
fn validate_map_key(key: &str) -> Result<(), String> {
    match key.find('[') {
        Some(open) if key.ends_with(']') && open > 0 && open + 2 < key.len() => Ok(()),
        _ => Err(format!("bad key ({key}): should have format a[b]")),
    }
}

/// Checks a `when` condition: the key must be an attribute Istio knows and the values
/// must suit it (IPs for `source.ip`, ports for `destination.port`, ...).
pub fn validate_attribute(key: &str, values: &[String]) -> Result<(), String> {
    check_empty_values(key, values)?;
    match key {
        _ if key.starts_with(REQUEST_HEADERS) => validate_map_key(key),
        "source.ip" | "remote.ip" | "destination.ip" => validate_ips(values),
        "source.serviceAccount" => check_service_accounts(key, values),
        "source.trustDomain" => check_wildcard_values(key, values),
        "source.namespace"
        | "source.principal"
        | "request.auth.principal"
        | "request.auth.audiences"
        | "request.auth.presenter"
        | "connection.sni" => Ok(()),
        _ if key.starts_with(REQUEST_CLAIMS) => validate_map_key(key),
        "destination.port" => validate_ports(values),
        _ if key.starts_with(EXPERIMENTAL) => validate_map_key(key),
        "destination.namespace" => Err(format!(
            "attribute {key} is replaced by the metadata.namespace"
        )),
        _ if key.starts_with(DESTINATION_LABELS) => Err(format!(
            "attribute {key} is replaced by the workload selector"
        )),
        "destination.name" | "destination.user" => Err(format!(
            "deprecated attribute {key}: only supported in v1alpha1"
        )),
        _ => Err(format!("unknown attribute: {key}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn when_keys_istio_accepts() {
        let any = v(&["x"]);
        for key in [
            "request.headers[User-Agent]",
            "source.namespace",
            "source.principal",
            "request.auth.principal",
            "request.auth.audiences",
            "request.auth.presenter",
            "request.auth.claims[iss]",
            "request.auth.claims[a][b]",
            "connection.sni",
            "experimental.envoy.filters.a.b[c]",
        ] {
            assert_eq!(validate_attribute(key, &any), Ok(()), "{key}");
        }
        assert!(validate_attribute("source.ip", &v(&["10.0.0.1", "10.1.0.0/16", "::1"])).is_ok());
        assert!(validate_attribute("remote.ip", &v(&["192.168.0.0/24"])).is_ok());
        assert!(validate_attribute("destination.port", &v(&["0", "65535"])).is_ok());
        assert!(validate_attribute("source.serviceAccount", &v(&["ns/sa", "sa"])).is_ok());
    }

    #[test]
    fn when_keys_istio_rejects() {
        let any = v(&["x"]);
        let err = |key: &str, values: &[String]| validate_attribute(key, values).unwrap_err();
        assert_eq!(
            err("request.headers", &any),
            "bad key (request.headers): should have format a[b]"
        );
        assert_eq!(
            err("request.headers[]", &any),
            "bad key (request.headers[]): should have format a[b]"
        );
        assert_eq!(
            err("request.auth.claims[iss", &any),
            "bad key (request.auth.claims[iss): should have format a[b]"
        );
        assert_eq!(
            err("experimental.envoy.filters.a", &any),
            "bad key (experimental.envoy.filters.a): should have format a[b]"
        );
        assert_eq!(
            err("source.ip", &v(&["10.0.0.300"])),
            "bad IP address (10.0.0.300)"
        );
        assert!(
            err("destination.ip", &v(&["10.0.0.0/33"])).starts_with("bad CIDR range (10.0.0.0/33)")
        );
        assert_eq!(err("destination.port", &v(&["65536"])), "bad port (65536)");
        assert_eq!(err("destination.port", &v(&["-1"])), "bad port (-1)");
        assert_eq!(
            err("destination.namespace", &any),
            "attribute destination.namespace is replaced by the metadata.namespace"
        );
        assert_eq!(
            err("destination.labels[app]", &any),
            "attribute destination.labels[app] is replaced by the workload selector"
        );
        assert_eq!(
            err("destination.user", &any),
            "deprecated attribute destination.user: only supported in v1alpha1"
        );
        assert_eq!(
            err("request.method", &any),
            "unknown attribute: request.method"
        );
        assert_eq!(
            err("source.namespace", &v(&[""])),
            "empty value not allowed, found in source.namespace"
        );
        assert_eq!(
            err("source.trustDomain", &v(&["a*b"])),
            "wildcard is only allowed at the start or end, found in source.trustDomain: \"a*b\""
        );
    }

    #[test]
    fn service_accounts_and_trust_domains() {
        assert!(check_service_accounts("ServiceAccounts", &v(&["a/b/c"]))
            .unwrap_err()
            .contains("expected format"));
        assert!(check_service_accounts("ServiceAccounts", &v(&["/sa"]))
            .unwrap_err()
            .contains("empty namespace"));
        assert!(check_service_accounts("ServiceAccounts", &v(&["ns/*"]))
            .unwrap_err()
            .contains("wildcard not allowed"));
        let many: Vec<String> = (0..17).map(|i| format!("sa{i}")).collect();
        assert_eq!(
            check_service_accounts("ServiceAccounts", &many).unwrap_err(),
            "may not have more than 16 values"
        );
        assert!(check_trust_domain_values("TrustDomains", &v(&["a/b"]))
            .unwrap_err()
            .contains("must not contain '/'"));
        assert!(check_trust_domain_values("TrustDomains", &v(&["*a*"]))
            .unwrap_err()
            .contains("at most one wildcard"));
    }

    #[test]
    fn path_templates() {
        let ok = v(&[
            "/exact",
            "/prefix/*",
            "*/suffix",
            "*",
            "/path/template/{*}",
            "/{**}/path/template",
            "/a/{*}/{**}",
        ]);
        assert_eq!(check_path_templates("Paths", &ok), Ok(()));
        assert!(check_path_templates("Paths", &v(&["/{**}/{*}"]))
            .unwrap_err()
            .contains("{**} is not the last operator"));
        assert!(check_path_templates("Paths", &v(&["/a{*}"]))
            .unwrap_err()
            .contains("beyond a supported path template"));
        assert!(check_path_templates("Paths", &v(&["/a b/{*}"]))
            .unwrap_err()
            .contains("with invalid string literal"));
    }
}
