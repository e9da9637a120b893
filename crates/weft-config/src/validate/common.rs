//! Checks shared by several kinds: names, hosts, ports, labels, regexes.

use crate::meta::ObjectMeta;
use crate::validate::Report;

/// Kubernetes' rules for object names (RFC 1123 subdomain) and namespaces (RFC 1123 label).
pub fn validate_metadata(meta: &ObjectMeta, report: &mut Report) {
    if meta.name.is_empty() {
        report.error("metadata.name", "Required value: name is required");
    } else if !is_dns1123_subdomain(&meta.name) {
        report.error(
            "metadata.name",
            format!("Invalid value: {:?}: a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character", meta.name),
        );
    }
    if !meta.namespace.is_empty() && !is_dns1123_label(&meta.namespace) {
        report.error(
            "metadata.namespace",
            format!("Invalid value: {:?}: a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character", meta.namespace),
        );
    }
}

/// An RFC 1123 label: 1-63 chars of [a-z0-9-], starting and ending alphanumeric.
pub fn is_dns1123_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// An RFC 1123 subdomain: dot-separated labels, at most 253 chars.
pub fn is_dns1123_subdomain(s: &str) -> bool {
    !s.is_empty() && s.len() <= 253 && s.split('.').all(is_dns1123_label)
}

// ---- Hosts, ports, addresses, regexes and durations as Istio's webhook checks them.
// Each returns Istio's own message so callers can prefix a field path.

/// Istio's DNS-1123 preconditions on a host of any kind.
fn check_dns1123_preconditions(name: &str) -> Result<(), String> {
    if name.len() > 255 {
        return Err(format!("domain name {name:?} too long (max 255)"));
    }
    if name.is_empty() {
        return Err("empty domain name not allowed".into());
    }
    Ok(())
}

/// Labels of a domain; a trailing dot is allowed and the top-level label must not be numeric.
pub fn validate_dns1123_labels(domain: &str) -> Result<(), String> {
    let parts: Vec<&str> = domain.split('.').collect();
    let tld = parts.last().copied().unwrap_or_default();
    if !tld.is_empty() && tld.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "domain name {domain:?} invalid (top level domain {tld:?} cannot be all-numeric)"
        ));
    }
    for (i, label) in parts.iter().enumerate() {
        if i == parts.len() - 1 && label.is_empty() {
            return Ok(());
        }
        if !is_host_label(label) {
            return Err(format!(
                "domain name {domain:?} invalid (label {label:?} invalid)"
            ));
        }
    }
    Ok(())
}

/// A fully qualified (or short) DNS name without wildcards.
pub fn validate_fqdn(fqdn: &str) -> Result<(), String> {
    check_dns1123_preconditions(fqdn)?;
    validate_dns1123_labels(fqdn)
}

/// `*`, `*foo`, `*-foo` or a DNS-1123 label: the only place a wildcard may appear.
pub fn is_wildcard_dns1123_label(label: &str) -> bool {
    if label.len() > 63 {
        return false;
    }
    if label == "*" {
        return true;
    }
    let rest = label
        .strip_prefix("*-")
        .or_else(|| label.strip_prefix('*'))
        .unwrap_or(label);
    is_host_label(rest)
}

/// A DNS label in a host name. Unlike Kubernetes object names, Istio accepts upper case
/// here, because DNS names are case-insensitive.
pub fn is_host_label(s: &str) -> bool {
    is_dns1123_label(&s.to_ascii_lowercase())
}

/// A domain that may have a wildcard in its first label (`*.example.com`, `*`).
pub fn validate_wildcard_domain(domain: &str) -> Result<(), String> {
    check_dns1123_preconditions(domain)?;
    let (first, rest) = match domain.split_once('.') {
        Some((f, r)) => (f, Some(r)),
        None => (domain, None),
    };
    if !is_wildcard_dns1123_label(first) {
        return Err(format!(
            "domain name {domain:?} invalid (label {first:?} invalid)"
        ));
    }
    match rest {
        Some(rest) => validate_dns1123_labels(rest),
        None => Ok(()),
    }
}

/// Rejects `foo*.com` and `f*o`: a wildcard must be the whole host or its `*.` prefix.
pub fn validate_partial_wildcard(host: &str) -> Result<(), String> {
    if host.contains('*') && host.len() != 1 && !host.starts_with("*.") {
        return Err(format!("partial wildcard {host:?} not allowed"));
    }
    Ok(())
}

/// A port number in 1..=65535.
pub fn validate_port(port: u32) -> Result<(), String> {
    if (1..=65535).contains(&port) {
        Ok(())
    } else {
        Err(format!("port number {port} must be in the range 1..65535"))
    }
}

/// An IPv4 or IPv6 address.
pub fn validate_ip_address(addr: &str) -> Result<(), String> {
    addr.parse::<std::net::IpAddr>()
        .map(|_| ())
        .map_err(|_| format!("{addr} is not a valid IP"))
}

/// An address or a CIDR block (`10.0.0.0/8`, `2001:db8::/32`).
pub fn validate_ip_subnet(subnet: &str) -> Result<(), String> {
    if subnet.matches('/').count() == 1 {
        return subnet
            .parse::<ipnet::IpNet>()
            .map(|_| ())
            .map_err(|_| format!("{subnet} is not a valid CIDR block"));
    }
    validate_ip_address(subnet)
}

/// A regular expression Envoy can compile. Envoy uses RE2 and so does the `regex` crate,
/// so what compiles here compiles there (no look-around, no back-references).
pub fn validate_regex(re: &str) -> Result<(), String> {
    regex::Regex::new(re)
        .map(|_| ())
        .map_err(|e| format!("\"{re}\" is not a valid regex: {e}"))
}

/// A percentage in 0..=100.
pub fn validate_percentage(value: f64) -> Result<(), String> {
    if (0.0..=100.0).contains(&value) {
        Ok(())
    } else {
        Err(format!("percentage {value} is not in range 0..100"))
    }
}

/// Istio's rule for most durations: at least 1ms and whole milliseconds.
pub fn validate_duration(d: crate::common::Duration) -> Result<(), String> {
    if d.nanos < 1_000_000 {
        return Err("duration must be greater than 1ms".into());
    }
    if d.nanos % 1_000_000 != 0 {
        return Err("only durations to ms precision are supported".into());
    }
    Ok(())
}

/// Kubernetes label keys and values, as Istio checks labels on subsets and endpoints.
pub fn validate_labels(labels: &std::collections::BTreeMap<String, String>) -> Result<(), String> {
    fn is_name(s: &str) -> bool {
        !s.is_empty()
            && s.len() <= 63
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
            && s.as_bytes()[0].is_ascii_alphanumeric()
            && s.as_bytes()[s.len() - 1].is_ascii_alphanumeric()
    }
    for (k, v) in labels {
        let key_ok = match k.split_once('/') {
            Some((prefix, name)) => {
                !name.contains('/') && is_dns1123_subdomain(prefix) && is_name(name)
            }
            None => is_name(k),
        };
        if !key_ok {
            return Err(format!("invalid tag key: {k:?}"));
        }
        if !v.is_empty() && !is_name(v) {
            return Err(format!("invalid tag value: {v:?}"));
        }
    }
    Ok(())
}

// ---- Kubernetes schema-style messages, and the policy attachment fields (selector,
// targetRef, targetRefs) shared by security, telemetry and extension kinds.

/// `minLength` from a CRD schema, worded as the API server words it.
pub fn check_min_length(report: &mut Report, path: &str, value: &str, min: usize) {
    if value.chars().count() < min {
        report.error(
            path,
            format!("Invalid value: {value:?}: {path} in body should be at least {min} chars long"),
        );
    }
}

/// `maxLength` from a CRD schema.
pub fn check_max_length(report: &mut Report, path: &str, value: &str, max: usize) {
    if value.chars().count() > max {
        report.error(path, format!("Too long: may not be more than {max} bytes"));
    }
}

/// `pattern` from a CRD schema; `pattern` is shown to the user as the schema writes it.
pub fn check_pattern(
    report: &mut Report,
    path: &str,
    value: &str,
    re: &regex::Regex,
    pattern: &str,
) {
    if !re.is_match(value) {
        report.error(
            path,
            format!("Invalid value: {value:?}: {path} in body should match '{pattern}'"),
        );
    }
}

/// Istio's selector rules: no empty keys, no wildcards; an empty selector only warns.
pub fn validate_workload_selector(
    selector: Option<&crate::common::WorkloadSelector>,
    path: &str,
    report: &mut Report,
) {
    let Some(selector) = selector else { return };
    for (k, v) in &selector.match_labels {
        let at = format!("{path}.matchLabels[{k}]");
        if k.is_empty() {
            report.error(format!("{path}.matchLabels"), "key must not be empty");
        }
        if k.contains('*') {
            report.error(&at, "wildcard not allowed in label key match");
        }
        if v.contains('*') {
            report.error(&at, "wildcard not allowed in label value match");
        }
        check_max_length(report, &at, v, 63);
    }
    if selector.match_labels.is_empty() {
        report.warn(path, "workload selector specified without labels");
    }
}

/// CEL rule of every policy kind: at most one of `selector`, `targetRef`, `targetRefs`.
pub fn validate_one_of_selector(
    selector: bool,
    target_ref: bool,
    target_refs: bool,
    report: &mut Report,
) {
    if usize::from(selector) + usize::from(target_ref) + usize::from(target_refs) > 1 {
        report.error(
            "spec",
            "Invalid value: \"object\": only one of targetRefs or selector can be set",
        );
    }
}

/// The kinds a policy may attach to, as (group, kind); "" is the core group.
const POLICY_TARGET_KINDS: &[(&str, &str)] = &[
    ("", "Service"),
    ("networking.istio.io", "ServiceEntry"),
    ("gateway.networking.k8s.io", "Gateway"),
    ("gateway.networking.k8s.io", "GatewayClass"),
];

const TARGET_GROUP_PATTERN: &str =
    r"^$|^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$";
const TARGET_KIND_PATTERN: &str = r"^[a-zA-Z]([-a-zA-Z0-9]*[a-zA-Z0-9])?$";

/// One `targetRef`: the CRD's schema (required, lengths, patterns, same namespace) and
/// Istio's webhook (only Services, ServiceEntries, Gateways and GatewayClasses).
pub fn validate_policy_target_ref(
    target: &crate::common::PolicyTargetReference,
    path: &str,
    report: &mut Report,
) {
    use std::sync::OnceLock;
    static GROUP: OnceLock<regex::Regex> = OnceLock::new();
    static KIND: OnceLock<regex::Regex> = OnceLock::new();
    let group_re = GROUP.get_or_init(|| regex::Regex::new(TARGET_GROUP_PATTERN).expect("valid"));
    let kind_re = KIND.get_or_init(|| regex::Regex::new(TARGET_KIND_PATTERN).expect("valid"));

    let group = target.group.as_deref().unwrap_or_default();
    let group_path = format!("{path}.group");
    check_max_length(report, &group_path, group, 253);
    check_pattern(report, &group_path, group, group_re, TARGET_GROUP_PATTERN);
    let kind_path = format!("{path}.kind");
    match target.kind.as_deref() {
        None => report.error(&kind_path, "Required value"),
        Some(kind) => {
            check_min_length(report, &kind_path, kind, 1);
            check_max_length(report, &kind_path, kind, 63);
            if !kind.is_empty() {
                check_pattern(report, &kind_path, kind, kind_re, TARGET_KIND_PATTERN);
            }
        }
    }
    let name_path = format!("{path}.name");
    match target.name.as_deref() {
        None => report.error(&name_path, "Required value"),
        Some(name) => {
            check_min_length(report, &name_path, name, 1);
            check_max_length(report, &name_path, name, 253);
        }
    }
    if target.namespace.as_deref().is_some_and(|ns| !ns.is_empty()) {
        report.error(
            format!("{path}.namespace"),
            "Invalid value: \"string\": cross namespace referencing is not currently supported",
        );
    }
    let kind = target.kind.as_deref().unwrap_or_default();
    if group_re.is_match(group)
        && kind_re.is_match(kind)
        && !POLICY_TARGET_KINDS.contains(&(group, kind))
    {
        let allowed: Vec<String> = POLICY_TARGET_KINDS
            .iter()
            .map(|(g, k)| {
                if g.is_empty() {
                    k.to_string()
                } else {
                    format!("{g}/{k}")
                }
            })
            .collect();
        report.error(
            path,
            format!(
                "targetRef must be to one of [{}] but was {group}/{kind}",
                allowed.join(" ")
            ),
        );
    }
}

/// `targetRefs`: each entry like `targetRef`, at most 16 of them.
pub fn validate_policy_target_refs(
    targets: &[crate::common::PolicyTargetReference],
    path: &str,
    report: &mut Report,
) {
    if targets.len() > 16 {
        report.error(
            path,
            format!("Too many: {}: must have at most 16 items", targets.len()),
        );
    }
    for (i, target) in targets.iter().enumerate() {
        validate_policy_target_ref(target, &format!("{path}[{i}]"), report);
    }
}

/// The attachment fields every policy kind has, checked together.
pub fn validate_policy_attachment(
    selector: Option<&crate::common::WorkloadSelector>,
    target_ref: Option<&crate::common::PolicyTargetReference>,
    target_refs: &[crate::common::PolicyTargetReference],
    report: &mut Report,
) {
    validate_one_of_selector(
        selector.is_some(),
        target_ref.is_some(),
        !target_refs.is_empty(),
        report,
    );
    validate_workload_selector(selector, "spec.selector", report);
    if let Some(target) = target_ref {
        validate_policy_target_ref(target, "spec.targetRef", report);
    }
    validate_policy_target_refs(target_refs, "spec.targetRefs", report);
}
