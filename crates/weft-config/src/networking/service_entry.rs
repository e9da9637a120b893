//! ServiceEntry (networking.istio.io): services added to the mesh's registry.

use super::shared::{
    cel_error, check, validate_export_to, validate_port_name, validate_protocol, WorkloadSelector,
};
use super::workload_entry::validate_entry;
use crate::meta::ObjectMeta;
use crate::validate::common::{
    validate_fqdn, validate_ip_subnet, validate_partial_wildcard, validate_port,
    validate_wildcard_domain,
};
use crate::validate::Report;
use serde::{Deserialize, Serialize};

/// `istio.networking.v1alpha3.ServiceEntry`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServiceEntry {
    /// Hostnames of the service; wildcard prefixes allowed, but not `*` alone.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<String>,
    /// Virtual IPs or CIDRs of the service.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<ServicePort>,
    #[serde(default)]
    pub location: Location,
    #[serde(default)]
    pub resolution: Resolution,
    /// Static endpoints; exclusive with `workloadSelector`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub endpoints: Vec<WorkloadEntrySpec>,
    /// Selects WorkloadEntries and pods as endpoints (MESH_INTERNAL only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload_selector: Option<WorkloadSelector>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub export_to: Vec<String>,
    /// Identities the service's workloads may present.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subject_alt_names: Vec<String>,
}

/// The endpoint fields of a ServiceEntry are a WorkloadEntry spec.
pub use super::workload_entry::WorkloadEntry as WorkloadEntrySpec;

/// A port of the service.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServicePort {
    pub number: u32,
    /// HTTP, HTTPS, GRPC, HTTP2, MONGO, TCP or TLS; guessed from the name when empty.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub protocol: String,
    pub name: String,
    /// Endpoint port when different from `number`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_port: Option<u32>,
}

/// Whether the service is inside the mesh (mTLS, sidecars) or outside it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Location {
    #[default]
    MeshExternal,
    MeshInternal,
}

/// How the proxy finds the service's endpoints.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Resolution {
    /// Forward to the original destination address.
    #[default]
    None,
    /// Use the endpoints' IP addresses.
    Static,
    /// Resolve endpoints (or hosts) by DNS, asynchronously, all addresses.
    Dns,
    /// Resolve by DNS and use the first address only, like a client would.
    DnsRoundRobin,
    /// Resolve the requested wildcard host by DNS at request time.
    DynamicDns,
}

impl Resolution {
    pub fn as_str(self) -> &'static str {
        match self {
            Resolution::None => "NONE",
            Resolution::Static => "STATIC",
            Resolution::Dns => "DNS",
            Resolution::DnsRoundRobin => "DNS_ROUND_ROBIN",
            Resolution::DynamicDns => "DYNAMIC_DNS",
        }
    }
}

impl ServicePort {
    /// Protocol as Istio parses it (upper case); empty when unset.
    fn protocol_upper(&self) -> String {
        self.protocol.to_ascii_uppercase()
    }
}

fn is_http_or_tls(protocol: &str) -> bool {
    matches!(
        protocol,
        "HTTP" | "HTTP_PROXY" | "HTTP2" | "GRPC" | "GRPC-WEB" | "HTTPS" | "TLS"
    )
}

/// Checks a ServiceEntry like Istio's CRD rules and validation webhook. Where both check
/// the same thing, the API server's (CRD) wording is used, as that is what users see first.
pub fn validate(spec: &ServiceEntry, meta: &ObjectMeta, report: &mut Report) {
    validate_crd_rules(spec, report);
    if let Some(sel) = &spec.workload_selector {
        if sel.labels.is_empty() {
            report.warn(
                "spec.workloadSelector",
                "service entry: workload selector specified without labels, will be applied to all services in namespace",
            );
        }
    }
    for (i, host) in spec.hosts.iter().enumerate() {
        let path = format!("spec.hosts[{i}]");
        if host != "*" {
            check(report, &path, validate_wildcard_domain(host));
            if spec.resolution != Resolution::DynamicDns {
                if let Err(e) = validate_partial_wildcard(host) {
                    report.warn(&path, e);
                }
            }
        }
    }
    for (i, address) in spec.addresses.iter().enumerate() {
        check(
            report,
            &format!("spec.addresses[{i}]"),
            validate_ip_subnet(address),
        );
    }
    let port_names: Vec<String> = spec.ports.iter().map(|p| p.name.clone()).collect();
    for (i, port) in spec.ports.iter().enumerate() {
        let path = format!("spec.ports[{i}]");
        if spec.addresses.is_empty() && matches!(port.protocol_upper().as_str(), "" | "TCP") {
            report.warn(
                &path,
                "addresses are required for ports serving TCP (or unset) protocol when IP Autoallocation is not enabled",
            );
        }
        check(
            report,
            &format!("{path}.name"),
            validate_port_name(&port.name),
        );
        check(
            report,
            &format!("{path}.protocol"),
            validate_protocol(&port.protocol),
        );
    }
    match spec.resolution {
        Resolution::None => {
            if spec.workload_selector.is_some() {
                report.warn(
                    "spec.workloadSelector",
                    "workloadSelector should not be set when resolution mode is NONE",
                );
            }
        }
        Resolution::Static => {
            for (i, e) in spec.endpoints.iter().enumerate() {
                validate_entry(
                    report,
                    &format!("spec.endpoints[{i}]"),
                    e,
                    Some(&port_names),
                    false,
                );
            }
        }
        Resolution::Dns | Resolution::DnsRoundRobin => {
            if spec.endpoints.is_empty() {
                for (i, host) in spec.hosts.iter().enumerate() {
                    if let Err(e) = validate_fqdn(host) {
                        report.error(
                            format!("spec.hosts[{i}]"),
                            format!("hosts must be FQDN or contain only prefix wildcards if no endpoints are provided for resolution mode {}, {e}", spec.resolution.as_str()),
                        );
                        break;
                    }
                }
            }
            for (i, e) in spec.endpoints.iter().enumerate() {
                validate_entry(
                    report,
                    &format!("spec.endpoints[{i}]"),
                    e,
                    Some(&port_names),
                    true,
                );
            }
            if !spec.addresses.is_empty()
                && spec.hosts.len() > 1
                && spec
                    .ports
                    .iter()
                    .any(|p| !is_http_or_tls(&p.protocol_upper()))
            {
                report.warn(
                    "spec.hosts",
                    "service entry can not have more than one host specified simultaneously with address and tcp port",
                );
            }
        }
        Resolution::DynamicDns => {
            let r = spec.resolution.as_str();
            if spec.hosts.iter().any(|h| !h.starts_with('*')) {
                report.error(
                    "spec.hosts",
                    format!("host must be wildcarded for resolution mode {r}"),
                );
            }
            if !spec.addresses.is_empty() {
                report.error(
                    "spec.addresses",
                    format!("addresses cannot be set for resolution type {r}. HTTP route domains will only be generatedfrom the hosts field values"),
                );
            }
            if !spec.endpoints.is_empty() {
                report.error(
                    "spec.endpoints",
                    format!("endpoints cannot be set for resolution type {r}. Destination IP address determined from hostsfield values"),
                );
            }
            for (i, port) in spec.ports.iter().enumerate() {
                if !matches!(
                    port.protocol_upper().as_str(),
                    "HTTP" | "TLS" | "GRPC" | "HTTP2"
                ) {
                    report.error(
                        format!("spec.ports[{i}].protocol"),
                        format!("only HTTP, TLS, GRPC, and HTTP2 protocols are supported for resolution type {r}"),
                    );
                }
            }
            let waypoint = meta
                .labels
                .get("istio.io/use-waypoint")
                .is_some_and(|v| !v.is_empty() && !v.eq_ignore_ascii_case("none"));
            if spec.location == Location::MeshInternal && waypoint {
                report.error(
                    "spec.location",
                    format!("location MESH_INTERNAL with resolution type {r} is not supported when using waypoints"),
                );
            }
        }
    }
    if spec.resolution != Resolution::None && spec.hosts.len() > 1 {
        if let Some(i) = spec
            .ports
            .iter()
            .position(|p| !is_http_or_tls(&p.protocol_upper()))
        {
            report.error(
                format!("spec.ports[{i}]"),
                "multiple hosts provided with non-HTTP, non-TLS ports",
            );
        }
    }
    validate_export_to(report, &meta.namespace, &spec.export_to, true, false);
}

/// The schema and CEL rules of the ServiceEntry CRD.
fn validate_crd_rules(spec: &ServiceEntry, report: &mut Report) {
    if spec.hosts.is_empty() {
        report.error("spec.hosts", "Required value");
    }
    for (i, host) in spec.hosts.iter().enumerate() {
        if host == "*" {
            cel_error(
                report,
                &format!("spec.hosts[{i}]"),
                "string",
                "hostname cannot be wildcard",
            );
        }
    }
    for (field, len, max) in [
        ("hosts", spec.hosts.len(), 256),
        ("addresses", spec.addresses.len(), 256),
        ("ports", spec.ports.len(), 256),
        ("endpoints", spec.endpoints.len(), 4096),
    ] {
        if len > max {
            report.error(
                format!("spec.{field}"),
                format!("Too many: {len}: must have at most {max} items"),
            );
        }
    }
    if let Some(sel) = &spec.workload_selector {
        for (k, v) in &sel.labels {
            if v.contains('*') {
                cel_error(
                    report,
                    &format!("spec.workloadSelector.labels.{k}"),
                    "string",
                    "wildcard is not supported in selector",
                );
            }
        }
        if !spec.endpoints.is_empty() {
            cel_error(
                report,
                "spec",
                "object",
                "only one of WorkloadSelector or Endpoints can be set",
            );
        }
    }
    if spec.addresses.iter().any(|a| a.contains('/'))
        && !matches!(spec.resolution, Resolution::None | Resolution::Static)
    {
        cel_error(
            report,
            "spec",
            "object",
            "CIDR addresses are allowed only for NONE/STATIC resolution types",
        );
    }
    if spec.resolution == Resolution::None && !spec.endpoints.is_empty() {
        cel_error(report, "spec", "object", "NONE mode cannot set endpoints");
    }
    if spec.resolution == Resolution::DnsRoundRobin && spec.endpoints.len() > 1 {
        cel_error(
            report,
            "spec",
            "object",
            "DNS_ROUND_ROBIN mode cannot have multiple endpoints",
        );
    }
    let mut numbers = Vec::new();
    let mut names: Vec<&str> = Vec::new();
    for (i, port) in spec.ports.iter().enumerate() {
        let path = format!("spec.ports[{i}]");
        if names.contains(&port.name.as_str()) {
            report.error(
                &path,
                format!("Duplicate value: {{\"name\":{:?}}}", port.name),
            );
        }
        names.push(&port.name);
        if numbers.contains(&port.number) {
            cel_error(
                report,
                "spec.ports",
                "array",
                "port number cannot be duplicated",
            );
        }
        numbers.push(port.number);
        if validate_port(port.number).is_err() {
            cel_error(
                report,
                &format!("{path}.number"),
                "integer",
                "port must be between 1-65535",
            );
        }
        if let Some(t) = port.target_port {
            if validate_port(t).is_err() {
                cel_error(
                    report,
                    &format!("{path}.targetPort"),
                    "integer",
                    "port must be between 1-65535",
                );
            }
        }
    }
}
