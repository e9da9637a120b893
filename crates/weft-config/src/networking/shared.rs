//! Small types several networking kinds share: ports, percentages, workload selectors.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub use crate::common::PortSelector;

/// `skip_serializing_if` helper for plain proto booleans, whose zero value is not written.
pub(crate) fn is_false(b: &bool) -> bool {
    !*b
}

/// A percentage as a double in 0.0..=100.0 (`istio.networking.v1alpha3.Percent`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Percent {
    #[serde(default)]
    pub value: f64,
}

/// A port a Gateway server or Sidecar listener opens (`istio.networking.v1alpha3.Port`,
/// Sidecar's `SidecarPort` has the same shape).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Port {
    /// Port number, 1..=65535.
    #[serde(default)]
    pub number: u32,
    /// HTTP, HTTPS, GRPC, GRPC-WEB, HTTP2, MONGO, TCP or TLS (case-insensitive).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub protocol: String,
    /// A label for the port; unique within the resource.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Deprecated: the workload port traffic is sent to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_port: Option<u32>,
}

/// Selects pods or VMs by labels (`istio.networking.v1alpha3.WorkloadSelector`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WorkloadSelector {
    /// Every label must match; an empty map selects every workload in the namespace.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

// ---- Checks used by several networking kinds.

use crate::validate::common::{is_dns1123_label, validate_port, validate_wildcard_domain};
use crate::validate::Report;

/// Reports `result`'s error, if any, at `path`.
pub(crate) fn check(report: &mut Report, path: &str, result: Result<(), String>) {
    if let Err(e) = result {
        report.error(path, e);
    }
}

/// Istio's `host.Name.Matches`: whether two hosts, wildcards included, overlap.
pub fn hosts_overlap(a: &str, b: &str) -> bool {
    match (a.strip_prefix('*'), b.strip_prefix('*')) {
        (Some(sa), Some(sb)) => {
            if sa.len() < sb.len() {
                sb.ends_with(sa)
            } else {
                sa.ends_with(sb)
            }
        }
        (Some(sa), None) => b.ends_with(sa),
        (None, Some(sb)) => a.ends_with(sb),
        (None, None) => a == b,
    }
}

/// Istio's `host.Name.SubsetOf`: every name `a` matches is matched by `b`.
pub fn host_subset_of(a: &str, b: &str) -> bool {
    match (a.strip_prefix('*'), b.strip_prefix('*')) {
        (Some(sa), Some(sb)) => sa.ends_with(sb),
        (Some(_), None) => false,
        (None, Some(sb)) => a.ends_with(sb),
        (None, None) => a == b,
    }
}

/// `exportTo`: `.`, `*`, namespace names, no duplicates, `*` alone; `~` (nobody) only
/// for ServiceEntries and alone.
pub(crate) fn validate_export_to(
    report: &mut Report,
    namespace: &str,
    export_to: &[String],
    is_service_entry: bool,
    dr_with_selector: bool,
) {
    let path = "spec.exportTo";
    let mut seen: Vec<&str> = Vec::new();
    for e in export_to {
        let key = if e == "." { namespace } else { e.as_str() };
        if seen.contains(&key) {
            if key != e {
                report.error(
                    path,
                    format!("duplicate entries in exportTo: . and current namespace {namespace}"),
                );
            } else {
                report.error(path, format!("duplicate entries in exportTo for entry {e}"));
            }
            continue;
        }
        if e == "~" && !is_service_entry {
            report.error(
                path,
                "exportTo ~ (none) is not allowed for Istio configuration objects",
            );
        } else if e != "~" && e != "." && e != "*" && !is_dns1123_label(key) {
            report.error(
                path,
                "only . or * or a valid DNS 1123 label is allowed as exportTo entry",
            );
        } else {
            seen.push(key);
        }
    }
    if dr_with_selector && !seen.is_empty() {
        if seen.contains(&namespace) {
            if seen.len() > 1 {
                report.error(
                    path,
                    "destination rule with workload selector cannot have multiple entries in exportTo",
                );
            }
        } else {
            report.error(
                path,
                "destination rule with workload selector cannot have exportTo beyond current namespace",
            );
        }
    }
    if seen.contains(&"*") && export_to.len() > 1 {
        report.error(
            path,
            "cannot have both public (*) and non-public exportTo values for a resource",
        );
    }
    if seen.contains(&"~") && export_to.len() > 1 {
        report.error(
            path,
            "cannot export service entry to no one (~) and someone",
        );
    }
}

/// A route or mirror destination: a host (not `*`), a DNS-label subset and a valid port.
pub(crate) fn validate_destination(
    report: &mut Report,
    path: &str,
    d: &super::virtual_service::Destination,
) {
    if d.host == "*" {
        report.error(
            format!("{path}.host"),
            format!("invalid destination host {}", d.host),
        );
    } else {
        check(
            report,
            &format!("{path}.host"),
            validate_wildcard_domain(&d.host),
        );
    }
    if let Some(subset) = &d.subset {
        if !subset.is_empty() {
            check(
                report,
                &format!("{path}.subset"),
                validate_subset_name(subset),
            );
        }
    }
    if let Some(port) = &d.port {
        check(
            report,
            &format!("{path}.port.number"),
            validate_port(port.number.unwrap_or(0)),
        );
    }
}

/// Subset names become part of cluster names, so they must be DNS labels.
pub(crate) fn validate_subset_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("subset name cannot be empty".into());
    }
    if !is_dns1123_label(name) {
        return Err(format!("subset name is invalid: {name}"));
    }
    Ok(())
}

/// A failed CRD CEL rule, worded as the Kubernetes API server words it.
pub(crate) fn cel_error(report: &mut Report, path: &str, kind: &str, message: &str) {
    report.error(path, format!("Invalid value: \"{kind}\": {message}"));
}

/// Istio's `protocol.Parse` accepts these names, in any case.
pub(crate) const PROTOCOLS: &[&str] = &[
    "TCP",
    "UDP",
    "GRPC",
    "GRPC-WEB",
    "HTTP",
    "HTTP_PROXY",
    "HTTP2",
    "HTTPS",
    "TLS",
    "MONGO",
    "REDIS",
    "MYSQL",
];

/// `unsupported protocol: X` unless empty or known.
pub(crate) fn validate_protocol(protocol: &str) -> Result<(), String> {
    if protocol.is_empty() || PROTOCOLS.iter().any(|p| p.eq_ignore_ascii_case(protocol)) {
        Ok(())
    } else {
        Err(format!("unsupported protocol: {protocol}"))
    }
}

/// Port names are DNS labels.
pub(crate) fn validate_port_name(name: &str) -> Result<(), String> {
    if is_dns1123_label(name) {
        Ok(())
    } else {
        Err(format!("invalid port name: {name}"))
    }
}

/// `namespace/dnsName` hosts of Gateway servers and Sidecar egress listeners. Gateways
/// also accept a bare host (old style) and IP addresses.
pub(crate) fn validate_namespace_slash_host(host: &str, is_gateway: bool) -> Vec<String> {
    let mut errs = Vec::new();
    let Some((ns, name)) = host.split_once('/') else {
        if is_gateway {
            return validate_host_part(host, true);
        }
        errs.push("host must be of form namespace/dnsName".to_string());
        return errs;
    };
    if ns.is_empty() || name.is_empty() {
        errs.push("config namespace and dnsName in host entry cannot be empty".to_string());
    }
    let special = if is_gateway {
        ns == "*" || ns == "."
    } else {
        ns == "*" || ns == "." || ns == "~"
    };
    if !special && !is_dns1123_label(ns) {
        let kind = if is_gateway { "gateway" } else { "sidecar" };
        errs.push(format!("invalid namespace value {ns:?} in {kind}"));
    }
    errs.extend(validate_host_part(name, is_gateway));
    errs
}

fn validate_host_part(host: &str, is_gateway: bool) -> Vec<String> {
    let mut errs = Vec::new();
    if host != "*" && !host.contains('.') {
        errs.push("short names (non FQDN) are not allowed".to_string());
    }
    if let Err(e) = validate_wildcard_domain(host) {
        if !is_gateway || crate::validate::common::validate_ip_address(host).is_err() {
            errs.push(e);
        }
    }
    if let Err(e) = crate::validate::common::validate_partial_wildcard(host) {
        errs.push(e);
    }
    errs
}

/// Istio's `ValidateUnixAddress` on the part after `unix://`.
pub(crate) fn validate_unix_address(addr: &str) -> Result<(), String> {
    if addr.is_empty() {
        return Err("unix address must not be empty".into());
    }
    if addr.starts_with('@') {
        return Ok(());
    }
    if !addr.starts_with('/') || addr.ends_with('/') {
        return Err(format!("{addr} is not an absolute path to a file"));
    }
    Ok(())
}

/// Protocols carried over TLS.
pub(crate) fn is_tls_protocol(p: &str) -> bool {
    matches!(p.to_ascii_uppercase().as_str(), "HTTPS" | "TLS")
}

/// Protocols the proxy handles as HTTP.
pub(crate) fn is_http_protocol(p: &str) -> bool {
    matches!(
        p.to_ascii_uppercase().as_str(),
        "HTTP" | "HTTP2" | "GRPC" | "GRPC-WEB" | "HTTP_PROXY"
    )
}
