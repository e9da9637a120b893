//! WorkloadEntry (networking.istio.io): a VM or other non-Kubernetes workload.

use super::shared::{cel_error, check, validate_port_name};
use crate::meta::ObjectMeta;
use crate::validate::common::{validate_fqdn, validate_ip_address, validate_labels, validate_port};
use crate::validate::Report;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// `istio.networking.v1alpha3.WorkloadEntry`; also the shape of ServiceEntry endpoints
/// and of a WorkloadGroup's template.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WorkloadEntry {
    /// IP, hostname, or Unix domain socket (`unix:///path`, `unix://@abstract`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// Port name to number, overriding the service's target ports.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub ports: BTreeMap<String, u32>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Network the workload is on; an address may be omitted when it is remote.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
    /// `region/zone/subzone`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locality: Option<String>,
    /// Load balancing weight; 1 when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<u32>,
    /// Service account in the entry's namespace, for the workload's identity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account: Option<String>,
}

/// Checks a WorkloadEntry like Istio's CRD rules and validation webhook.
pub fn validate(spec: &WorkloadEntry, _meta: &ObjectMeta, report: &mut Report) {
    validate_entry(report, "spec", spec, None, true);
}

/// The CRD rules shared by WorkloadEntry, ServiceEntry endpoints and WorkloadGroup
/// templates: UDS address form, port names and numbers, length limits.
pub(crate) fn validate_entry_schema(report: &mut Report, path: &str, we: &WorkloadEntry) {
    let address = we.address.as_deref();
    if let Some(addr) = address {
        let at = format!("{path}.address");
        if addr.len() > 256 {
            report.error(&at, "Too long: may not be more than 256 bytes");
        }
        if let Some(rest) = addr.strip_prefix("unix://") {
            if !(rest.starts_with('/') || rest.starts_with('@')) {
                cel_error(
                    report,
                    &at,
                    "string",
                    "UDS must be an absolute path or abstract socket",
                );
            }
            if addr.ends_with('/') {
                cel_error(report, &at, "string", "UDS may not be a dir");
            }
            if !we.ports.is_empty() {
                cel_error(report, path, "object", "UDS may not include ports");
            }
        }
    }
    let port_name_ok = |k: &str| {
        k.len() < 63
            && !k.is_empty()
            && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !k.starts_with('-')
            && !k.ends_with('-')
    };
    if !we.ports.keys().all(|k| port_name_ok(k)) {
        cel_error(
            report,
            &format!("{path}.ports"),
            "object",
            "port name must be valid",
        );
    }
    for (name, port) in &we.ports {
        if validate_port(*port).is_err() {
            cel_error(
                report,
                &format!("{path}.ports.{name}"),
                "integer",
                "port must be between 1-65535",
            );
        }
    }
    for (field, value, max) in [
        ("network", we.network.as_deref(), 2048),
        ("locality", we.locality.as_deref(), 2048),
        ("serviceAccount", we.service_account.as_deref(), 253),
    ] {
        if value.is_some_and(|v| v.len() > max) {
            report.error(
                format!("{path}.{field}"),
                format!("Too long: may not be more than {max} bytes"),
            );
        }
    }
}

/// Istio's `validateWorkloadEntry`: the address is an IP, a hostname (when allowed) or a
/// UDS path; ports named as in the service (when given).
pub(crate) fn validate_entry(
    report: &mut Report,
    path: &str,
    we: &WorkloadEntry,
    service_ports: Option<&[String]>,
    allow_fqdn: bool,
) {
    validate_entry_schema(report, path, we);
    let addr = we.address.as_deref().unwrap_or_default();
    if addr.is_empty() {
        match we.network.as_deref().filter(|n| !n.is_empty()) {
            None => {
                // The CRD's rule and Istio's webhook say the same; keep the CRD's words.
                cel_error(report, path, "object", "Address is required");
                return;
            }
            Some(network) => report.warn(
                format!("{path}.address"),
                format!("address is unset with network {network:?}"),
            ),
        }
    }
    let at = format!("{path}.address");
    let unix = addr.starts_with("unix://");
    if !unix && !addr.is_empty() && validate_ip_address(addr).is_err() {
        if !allow_fqdn {
            report.error(
                &at,
                format!("endpoint address {addr:?} is not a valid IP address"),
            );
        } else if validate_fqdn(addr).is_err() {
            report.error(
                &at,
                format!("endpoint address {addr:?} is not a valid FQDN or an IP address"),
            );
        }
    }
    for (name, port) in &we.ports {
        let pp = format!("{path}.ports.{name}");
        if let Some(known) = service_ports {
            if !known.iter().any(|k| k == name) {
                report.error(
                    &pp,
                    format!("endpoint port {port} is not defined by the service entry"),
                );
            }
        }
        check(report, &pp, validate_port_name(name));
    }
    check(
        report,
        &format!("{path}.labels"),
        validate_labels(&we.labels),
    );
    if unix && service_ports.is_some_and(|p| p.len() != 1) {
        report.error(&at, "exactly 1 service port required for unix endpoints");
    }
}
