//! DestinationRule semantic validation, after Istio's webhook and CRD rules.

use super::policy_checks::{
    validate_client_tls, validate_connection_pool, validate_load_balancer,
    validate_outlier_detection,
};
use super::{DestinationRule, TrafficPolicy};
use crate::meta::ObjectMeta;
use crate::networking::shared::{check, validate_export_to, validate_subset_name};
use crate::validate::common::{
    validate_fqdn, validate_ip_address, validate_labels, validate_port, validate_wildcard_domain,
    validate_workload_selector,
};
use crate::validate::Report;

/// Checks a DestinationRule like Istio's validation webhook.
pub fn validate(spec: &DestinationRule, meta: &ObjectMeta, report: &mut Report) {
    check(report, "spec.host", validate_wildcard_domain(&spec.host));
    if let Some(p) = &spec.traffic_policy {
        validate_traffic_policy(report, "spec.trafficPolicy", p);
    }
    let mut names: Vec<&str> = Vec::new();
    for (i, subset) in spec.subsets.iter().enumerate() {
        let path = format!("spec.subsets[{i}]");
        if names.contains(&subset.name.as_str()) {
            report.error(
                format!("{path}.name"),
                format!("duplicate subset names: {}", subset.name),
            );
        }
        names.push(&subset.name);
        check(
            report,
            &format!("{path}.name"),
            validate_subset_name(&subset.name),
        );
        check(
            report,
            &format!("{path}.labels"),
            validate_labels(&subset.labels),
        );
        if let Some(p) = &subset.traffic_policy {
            validate_traffic_policy(report, &format!("{path}.trafficPolicy"), p);
        }
    }
    validate_export_to(
        report,
        &meta.namespace,
        &spec.export_to,
        false,
        spec.workload_selector.is_some(),
    );
    validate_workload_selector(
        spec.workload_selector.as_ref(),
        "spec.workloadSelector",
        report,
    );
}

/// A traffic policy at rule or subset level.
pub(crate) fn validate_traffic_policy(report: &mut Report, path: &str, p: &TrafficPolicy) {
    if p.outlier_detection.is_none()
        && p.connection_pool.is_none()
        && p.load_balancer.is_none()
        && p.tls.is_none()
        && p.port_level_settings.is_empty()
        && p.tunnel.is_none()
        && p.proxy_protocol.is_none()
        && p.retry_budget.is_none()
    {
        report.error(path, "traffic policy must have at least one field");
        return;
    }
    if p.tunnel.is_some() && p.proxy_protocol.is_some() {
        report.error(path, "tunnel and proxyProtocol must not be set together");
        return;
    }
    if let Some(o) = &p.outlier_detection {
        validate_outlier_detection(report, &format!("{path}.outlierDetection"), o);
    }
    if let Some(c) = &p.connection_pool {
        validate_connection_pool(report, &format!("{path}.connectionPool"), c);
    }
    if let Some(lb) = &p.load_balancer {
        validate_load_balancer(
            report,
            &format!("{path}.loadBalancer"),
            lb,
            p.outlier_detection.is_some(),
        );
    }
    if let Some(tls) = &p.tls {
        validate_client_tls(report, &format!("{path}.tls"), tls);
    }
    if p.port_level_settings.len() > 4096 {
        report.error(
            format!("{path}.portLevelSettings"),
            format!(
                "Too many: {}: must have at most 4096 items",
                p.port_level_settings.len()
            ),
        );
    }
    for (i, pl) in p.port_level_settings.iter().enumerate() {
        let at = format!("{path}.portLevelSettings[{i}]");
        if pl.port.is_none() {
            report.error(
                format!("{at}.port"),
                "portTrafficPolicy must have valid port",
            );
        }
        if pl.outlier_detection.is_none()
            && pl.connection_pool.is_none()
            && pl.load_balancer.is_none()
            && pl.tls.is_none()
        {
            report.error(&at, "port traffic policy must have at least one field");
            continue;
        }
        if let Some(o) = &pl.outlier_detection {
            validate_outlier_detection(report, &format!("{at}.outlierDetection"), o);
        }
        if let Some(c) = &pl.connection_pool {
            validate_connection_pool(report, &format!("{at}.connectionPool"), c);
        }
        if let Some(lb) = &pl.load_balancer {
            validate_load_balancer(
                report,
                &format!("{at}.loadBalancer"),
                lb,
                pl.outlier_detection.is_some(),
            );
        }
        if let Some(tls) = &pl.tls {
            validate_client_tls(report, &format!("{at}.tls"), tls);
        }
    }
    if let Some(t) = &p.tunnel {
        let at = format!("{path}.tunnel");
        if let Some(proto) = t.protocol.as_deref() {
            if !proto.is_empty() && proto != "CONNECT" && proto != "POST" {
                report.error(
                    format!("{at}.protocol"),
                    "tunnel protocol must be \"CONNECT\" or \"POST\"",
                );
            }
        }
        if let (Err(fqdn), Err(ip)) = (
            validate_fqdn(&t.target_host),
            validate_ip_address(&t.target_host),
        ) {
            report.error(
                format!("{at}.targetHost"),
                format!("tunnel target host must be valid FQDN or IP address: {fqdn}; {ip}"),
            );
        }
        if let Err(e) = validate_port(t.target_port) {
            report.error(
                format!("{at}.targetPort"),
                format!("tunnel target port is invalid: {e}"),
            );
        }
    }
    if let Some(b) = &p.retry_budget {
        if let Some(pct) = b.percent {
            if !(0.0..=100.0).contains(&pct) {
                let at = format!("{path}.retryBudget.percent");
                let bound = if pct < 0.0 {
                    "greater than or equal to 0"
                } else {
                    "less than or equal to 100"
                };
                report.error(
                    &at,
                    format!("Invalid value: {pct}: {at} in body should be {bound}"),
                );
            }
        }
    }
}
