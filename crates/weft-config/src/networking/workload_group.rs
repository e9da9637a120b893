//! WorkloadGroup (networking.istio.io): a template for auto-registered workloads (VMs).

use super::shared::cel_error;
use super::workload_entry::{validate_entry_schema, WorkloadEntry};
use crate::meta::ObjectMeta;
use crate::validate::common::{validate_labels, validate_port};
use crate::validate::Report;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// `istio.networking.v1alpha3.WorkloadGroup`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WorkloadGroup {
    /// Labels and annotations copied onto generated WorkloadEntries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<GroupMetadata>,
    /// Template of the WorkloadEntries; `address` and `labels` come from the workload.
    pub template: WorkloadEntry,
    /// Readiness check the agent runs on the workload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probe: Option<ReadinessProbe>,
}

/// Metadata for generated entries.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GroupMetadata {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// A Kubernetes-style readiness probe; the check fields form a oneof.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReadinessProbe {
    /// Seconds after start before the first probe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initial_delay_seconds: Option<i32>,
    /// Seconds before a probe times out (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<i32>,
    /// Seconds between probes (default 10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period_seconds: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub success_threshold: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_threshold: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_get: Option<HttpHealthCheckConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp_socket: Option<TcpHealthCheckConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exec: Option<ExecHealthCheckConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grpc: Option<GrpcHealthCheckConfig>,
}

/// HTTP GET probe.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpHealthCheckConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    pub port: u32,
    /// Defaults to the workload's IP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// HTTP or HTTPS (default HTTP).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheme: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub http_headers: Vec<HttpHeader>,
}

/// A header sent with an HTTP probe.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpHeader {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

/// TCP connect probe.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TcpHealthCheckConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    pub port: u32,
}

/// Command probe: success when the command exits 0.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExecHealthCheckConfig {
    pub command: Vec<String>,
}

/// gRPC health checking protocol probe.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GrpcHealthCheckConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
}

/// Checks a WorkloadGroup like Istio's CRD rules and validation webhook.
pub fn validate(spec: &WorkloadGroup, _meta: &ObjectMeta, report: &mut Report) {
    // The template's address and labels come from each workload, so only its form is checked.
    validate_entry_schema(report, "spec.template", &spec.template);
    if let Some(m) = &spec.metadata {
        if let Err(e) = validate_labels(&m.labels) {
            report.error("spec.metadata.labels", format!("invalid labels: {e}"));
        }
    }
    if let Some(p) = &spec.probe {
        validate_probe(report, "spec.probe", p);
    }
}

fn port_rule(report: &mut Report, path: &str, port: u32) {
    if validate_port(port).is_err() {
        cel_error(report, path, "integer", "port must be between 1-65535");
    }
}

fn validate_probe(report: &mut Report, path: &str, p: &ReadinessProbe) {
    for (field, v) in [
        ("periodSeconds", p.period_seconds),
        ("initialDelaySeconds", p.initial_delay_seconds),
        ("timeoutSeconds", p.timeout_seconds),
        ("successThreshold", p.success_threshold),
        ("failureThreshold", p.failure_threshold),
    ] {
        if let Some(v) = v.filter(|v| *v < 0) {
            let at = format!("{path}.{field}");
            report.error(
                &at,
                format!("Invalid value: {v}: {at} in body should be greater than or equal to 0"),
            );
        }
    }
    let methods = [
        p.http_get.is_some(),
        p.tcp_socket.is_some(),
        p.exec.is_some(),
        p.grpc.is_some(),
    ];
    match methods.iter().filter(|m| **m).count() {
        0 => report.error(path, "unknown health check method <nil>"),
        1 => {}
        _ => report.error(
            path,
            "only one of httpGet, tcpSocket, exec or grpc can be set",
        ),
    }
    if let Some(h) = &p.http_get {
        let at = format!("{path}.httpGet");
        port_rule(report, &format!("{at}.port"), h.port);
        if let Some(s) = h.scheme.as_deref() {
            if !matches!(s, "" | "HTTP" | "HTTPS") {
                cel_error(
                    report,
                    &format!("{at}.scheme"),
                    "string",
                    "scheme must be one of [HTTP, HTTPS]",
                );
            }
        }
        for (i, header) in h.http_headers.iter().enumerate() {
            let hp = format!("{at}.httpHeaders[{i}].name");
            let name = header.name.as_deref().unwrap_or_default();
            if name.is_empty() {
                report.error(&hp, "header name cannot be empty");
            } else if !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                report.error(
                    &hp,
                    format!(
                        "Invalid value: {name:?}: {hp} in body should match '^[-_A-Za-z0-9]+$'"
                    ),
                );
            }
        }
    }
    if let Some(t) = &p.tcp_socket {
        port_rule(report, &format!("{path}.tcpSocket.port"), t.port);
    }
    if let Some(e) = &p.exec {
        if e.command.is_empty() {
            report.error(format!("{path}.exec.command"), "exec.command is required");
        }
        for (i, c) in e.command.iter().enumerate() {
            if c.is_empty() {
                let at = format!("{path}.exec.command[{i}]");
                report.error(
                    &at,
                    format!("Invalid value: \"\": {at} in body should be at least 1 chars long"),
                );
            }
        }
    }
    if let Some(port) = p.grpc.as_ref().and_then(|g| g.port) {
        port_rule(report, &format!("{path}.grpc.port"), port);
    }
}
