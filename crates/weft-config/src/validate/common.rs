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
