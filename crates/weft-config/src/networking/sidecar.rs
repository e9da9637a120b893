//! Sidecar (networking.istio.io): which ports a sidecar listens on and which services it
//! can reach.

use super::destination_rule::{validate_connection_pool, ConnectionPoolSettings};
use super::gateway::{validate_server_tls, ServerTlsMode, ServerTlsSettings};
use super::shared::{
    cel_error, check, is_http_protocol, is_tls_protocol, validate_destination,
    validate_namespace_slash_host, validate_port_name, validate_protocol, validate_unix_address,
    Port, WorkloadSelector,
};
use super::virtual_service::Destination;
use crate::meta::ObjectMeta;
use crate::validate::common::{validate_fqdn, validate_ip_address, validate_port};
use crate::validate::Report;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// `istio.networking.v1alpha3.Sidecar`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Sidecar {
    /// Workloads this Sidecar applies to; without it, the namespace default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload_selector: Option<WorkloadSelector>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ingress: Vec<IstioIngressListener>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub egress: Vec<IstioEgressListener>,
    /// Default connection pool for inbound traffic on every port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inbound_connection_pool: Option<ConnectionPoolSettings>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outbound_traffic_policy: Option<OutboundTrafficPolicy>,
}

/// A listener for inbound traffic to the workload.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IstioIngressListener {
    pub port: Port,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capture_mode: Option<CaptureMode>,
    /// `127.0.0.1:PORT`, `0.0.0.0:PORT`, `[::1]:PORT`, `[::]:PORT` or `unix:///path`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_endpoint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<ServerTlsSettings>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_pool: Option<ConnectionPoolSettings>,
}

/// A listener for outbound traffic and the hosts it can reach.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IstioEgressListener {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<Port>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capture_mode: Option<CaptureMode>,
    /// `namespace/dnsName` entries; `*` and `.` and `~` are allowed as namespace.
    pub hosts: Vec<String>,
}

/// How traffic reaches a listener.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CaptureMode {
    /// Follow the environment's capture mode.
    #[default]
    Default,
    Iptables,
    /// Traffic addressed to the listener directly.
    None,
}

/// What the sidecar does with traffic to unknown destinations.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OutboundTrafficPolicy {
    #[serde(default)]
    pub mode: OutboundMode,
    /// Where ALLOW_ANY traffic is sent instead of its original destination.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub egress_proxy: Option<Destination>,
}

/// Outbound traffic policy mode.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OutboundMode {
    #[default]
    RegistryOnly,
    AllowAny,
}

/// Checks a Sidecar like Istio's validation webhook.
pub fn validate(spec: &Sidecar, meta: &ObjectMeta, report: &mut Report) {
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
        if sel.labels.is_empty() {
            report.warn(
                "spec.workloadSelector",
                "sidecar: workload selector specified without labels, will be applied to all services in namespace",
            );
        }
    }
    if spec.egress.is_empty()
        && spec.ingress.is_empty()
        && spec.outbound_traffic_policy.is_none()
        && spec.inbound_connection_pool.is_none()
    {
        report.error("spec", "sidecar: empty configuration provided");
        return;
    }
    let mut ports = BTreeSet::new();
    for (i, ingress) in spec.ingress.iter().enumerate() {
        validate_ingress(report, &format!("spec.ingress[{i}]"), ingress, &mut ports);
    }
    if let Some(pool) = &spec.inbound_connection_pool {
        validate_connection_pool(report, "spec.inboundConnectionPool", pool);
    }
    let mut ports = BTreeSet::new();
    let mut sockets = BTreeSet::new();
    let mut catch_all = false;
    for (i, egress) in spec.egress.iter().enumerate() {
        let path = format!("spec.egress[{i}]");
        match &egress.port {
            None => {
                if catch_all {
                    report.error(
                        &path,
                        "sidecar: egress can have only one listener with empty port",
                    );
                    continue;
                }
                if i == spec.egress.len() - 1 {
                    catch_all = true;
                } else {
                    report.error(
                        &path,
                        "sidecar: the egress listener with empty port should be the last listener in the list",
                    );
                }
            }
            Some(port) => {
                let bind = egress.bind.as_deref().unwrap_or_default();
                validate_egress_port(report, &path, port, bind, egress.capture_mode);
                if port.number == 0 {
                    if !sockets.insert(bind.to_string()) {
                        report.error(
                            format!("{path}.bind"),
                            "sidecar: unix domain socket values for listeners must be unique",
                        );
                    }
                } else if !ports.insert(port.number) {
                    report.error(
                        format!("{path}.port.number"),
                        "sidecar: ports on IP bound listeners must be unique",
                    );
                }
            }
        }
        validate_egress_hosts(report, &path, &egress.hosts, &meta.namespace);
    }
    if let Some(tp) = &spec.outbound_traffic_policy {
        if let Some(proxy) = &tp.egress_proxy {
            let at = "spec.outboundTrafficPolicy.egressProxy";
            if tp.mode != OutboundMode::AllowAny {
                report.error(
                    at,
                    "sidecar: egress_proxy must be set only with ALLOW_ANY outbound_traffic_policy mode",
                );
            } else {
                check(report, &format!("{at}.host"), validate_fqdn(&proxy.host));
                if proxy.port.is_none() {
                    report.error(
                        format!("{at}.port"),
                        "sidecar: egress_proxy port must be non-nil",
                    );
                } else {
                    validate_destination(report, at, proxy);
                }
            }
        }
    }
}

fn validate_ingress(
    report: &mut Report,
    path: &str,
    ingress: &IstioIngressListener,
    ports: &mut BTreeSet<u32>,
) {
    let port = &ingress.port;
    if port.target_port.is_some_and(|t| t > 0) {
        report.error(
            format!("{path}.port.targetPort"),
            "targetPort has no impact on Sidecars",
        );
    }
    if !port.name.is_empty() {
        check(
            report,
            &format!("{path}.port.name"),
            validate_port_name(&port.name),
        );
    }
    check(
        report,
        &format!("{path}.port.protocol"),
        validate_protocol(&port.protocol),
    );
    check(
        report,
        &format!("{path}.port.number"),
        validate_port(port.number),
    );
    if let Some(bind) = ingress.bind.as_deref().filter(|b| !b.is_empty()) {
        check(report, &format!("{path}.bind"), validate_ip_address(bind));
    }
    if !ports.insert(port.number) {
        report.error(
            format!("{path}.port.number"),
            "sidecar: ports on IP bound listeners must be unique",
        );
    }
    if let Some(ep) = ingress
        .default_endpoint
        .as_deref()
        .filter(|e| !e.is_empty())
    {
        check(
            report,
            &format!("{path}.defaultEndpoint"),
            validate_default_endpoint(ep),
        );
    }
    if let Some(tls) = &ingress.tls {
        let at = format!("{path}.tls");
        for (bad, msg) in [
            (
                !tls.subject_alt_names.is_empty(),
                "sidecar: subjectAltNames is not supported in ingress tls",
            ),
            (
                tls.https_redirect,
                "sidecar: httpsRedirect is not supported",
            ),
            (
                tls.credential_name
                    .as_deref()
                    .is_some_and(|c| !c.is_empty()),
                "sidecar: credentialName is not currently supported",
            ),
            (
                !tls.credential_names.is_empty(),
                "sidecar: credentialNames is not currently supported",
            ),
            (
                !tls.tls_certificates.is_empty(),
                "sidecar: tls_certificates is not currently supported",
            ),
        ] {
            if bad {
                report.error(&at, msg);
            }
        }
        let mode = match tls.mode {
            ServerTlsMode::IstioMutual => "ISTIO_MUTUAL",
            ServerTlsMode::AutoPassthrough => "AUTO_PASSTHROUGH",
            _ => "",
        };
        if !mode.is_empty() {
            report.error(
                format!("{at}.mode"),
                format!(
                    "configuration is invalid: cannot set mode to {mode} in sidecar ingress tls"
                ),
            );
        }
        if !is_tls_protocol(&port.protocol) {
            report.error(
                &at,
                "server cannot have TLS settings for non HTTPS/TLS ports",
            );
        }
        validate_server_tls(report, &at, tls);
    }
    if let Some(pool) = &ingress.connection_pool {
        validate_connection_pool(report, &format!("{path}.connectionPool"), pool);
        if pool.http.is_some() && !is_http_protocol(&port.protocol) {
            report.warn(
                format!("{path}.connectionPool.http"),
                format!(
                    "sidecar: HTTP connection pool settings are configured for port {} ({:?}) but its protocol is not HTTP ({}); only TCP settings will apply",
                    port.number, port.name, port.protocol
                ),
            );
        }
    }
}

/// `127.0.0.1:PORT`, `0.0.0.0:PORT`, `[::1]:PORT`, `[::]:PORT` or `unix:///path`.
fn validate_default_endpoint(ep: &str) -> Result<(), String> {
    if let Some(path) = ep.strip_prefix("unix://") {
        return validate_unix_address(path);
    }
    let (host, port) = match ep.rsplit_once(':') {
        Some((h, p)) => (h.trim_start_matches('[').trim_end_matches(']'), p),
        None => return Err(format!("address {ep}: missing port in address")),
    };
    if !host.is_empty() && !matches!(host, "127.0.0.1" | "0.0.0.0" | "::1" | "::") {
        return Err("sidecar: defaultEndpoint must be of form 127.0.0.1:<port>,0.0.0.0:<port>,[::1]:port,[::]:port,unix://filepath or unset".into());
    }
    match port.parse::<u32>() {
        Ok(p) => validate_port(p),
        Err(e) => Err(format!(
            "sidecar: defaultEndpoint port ({port}) is not a number: {e}"
        )),
    }
}

fn validate_egress_port(
    report: &mut Report,
    path: &str,
    port: &Port,
    bind: &str,
    capture: Option<CaptureMode>,
) {
    if !port.name.is_empty() {
        check(
            report,
            &format!("{path}.port.name"),
            validate_port_name(&port.name),
        );
    }
    if port.target_port.is_some_and(|t| t > 0) {
        report.error(
            format!("{path}.port.targetPort"),
            "targetPort has no impact on Sidecars",
        );
    }
    check(
        report,
        &format!("{path}.port.protocol"),
        validate_protocol(&port.protocol),
    );
    if port.number == 0 {
        match bind.strip_prefix("unix://") {
            None => report.error(
                format!("{path}.bind"),
                "sidecar: ports with 0 value must have a unix domain socket bind address",
            ),
            Some(addr) => check(report, &format!("{path}.bind"), validate_unix_address(addr)),
        }
        if !matches!(
            capture,
            None | Some(CaptureMode::Default | CaptureMode::None)
        ) {
            report.error(
                format!("{path}.captureMode"),
                "sidecar: captureMode must be DEFAULT/NONE for unix domain socket listeners",
            );
        }
    } else {
        check(
            report,
            &format!("{path}.port.number"),
            validate_port(port.number),
        );
        if !bind.is_empty() {
            check(report, &format!("{path}.bind"), validate_ip_address(bind));
        }
    }
}

fn validate_egress_hosts(report: &mut Report, path: &str, hosts: &[String], namespace: &str) {
    if hosts.is_empty() {
        report.error(
            format!("{path}.hosts"),
            "sidecar: egress listener must contain at least one host",
        );
        return;
    }
    let mut by_ns: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (i, host) in hosts.iter().enumerate() {
        let at = format!("{path}.hosts[{i}]");
        if let Some((ns, svc)) = host.split_once('/').filter(|(ns, _)| !ns.starts_with('~')) {
            let ns = if ns == "." { namespace } else { ns };
            let svcs = by_ns.entry(ns.to_string()).or_default();
            let duplicate = if svc == "*" {
                !svcs.is_empty()
            } else {
                svcs.contains(svc) || svcs.contains("*")
            };
            if duplicate {
                report.warn(&at, format!("duplicated egress host: {host}"));
            }
            svcs.insert(svc.to_string());
        }
        for e in validate_namespace_slash_host(host, false) {
            report.error(&at, e);
        }
    }
    if by_ns.get("*").is_some_and(|s| s.contains("*")) && by_ns.len() != 1 {
        report.warn(
            format!("{path}.hosts"),
            "`*/*` host select all resources, no other hosts can be added",
        );
    }
}
