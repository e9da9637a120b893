//! VirtualService semantic validation, after Istio's webhook: hosts, gateways, TLS and TCP
//! routes here; HTTP routes in [`super::http`].

use super::http::validate_http_route;
use super::{RouteDestination, TlsRoute, VirtualService, MESH_GATEWAY};
use crate::meta::ObjectMeta;
use crate::networking::shared::{
    check, host_subset_of, hosts_overlap, validate_destination, validate_export_to,
};
use crate::validate::common::{
    is_dns1123_label, validate_fqdn, validate_ip_address, validate_ip_subnet, validate_labels,
    validate_port, validate_wildcard_domain,
};
use crate::validate::Report;

/// Checks a VirtualService like Istio's validation webhook.
pub fn validate(spec: &VirtualService, meta: &ObjectMeta, report: &mut Report) {
    let delegate = spec.hosts.is_empty();
    if delegate {
        // A rule without hosts can only be the target of a delegate route.
        if !spec.gateways.is_empty() {
            report.error(
                "spec.gateways",
                "delegate virtual service must have no gateways specified",
            );
        }
        if !spec.tls.is_empty() {
            report.error(
                "spec.tls",
                "delegate virtual service must have no tls route specified",
            );
        }
        if !spec.tcp.is_empty() {
            report.error(
                "spec.tcp",
                "delegate virtual service must have no tcp route specified",
            );
        }
    }
    validate_gateway_names(report, "spec.gateways", &spec.gateways);
    let applies_to_gateway =
        !spec.gateways.is_empty() && !spec.gateways.iter().any(|g| g == MESH_GATEWAY);
    let applies_to_mesh = !applies_to_gateway;

    if !applies_to_gateway {
        for (i, http) in spec.http.iter().enumerate() {
            for (j, m) in http.r#match.iter().enumerate() {
                for key in m.headers.keys().chain(m.without_headers.keys()) {
                    if key.starts_with("@request.auth.claims") {
                        report.error(
                            format!("spec.http[{i}].match[{j}].headers"),
                            format!("JWT claim based routing (key: {key}) is only supported for gateway, found no gateways: {:?}", spec.gateways),
                        );
                    }
                }
            }
        }
    }

    let sni = spec
        .tls
        .iter()
        .any(|t| t.r#match.iter().any(|m| !m.sni_hosts.is_empty()));
    let mut all_hosts_valid = true;
    for (i, host) in spec.hosts.iter().enumerate() {
        let path = format!("spec.hosts[{i}]");
        let result = if applies_to_gateway {
            validate_gateway_bound_domain(sni, host)
        } else {
            validate_wildcard_domain(host)
        };
        match result {
            Err(e) if validate_ip_address(host).is_err() => {
                report.error(&path, e);
                all_hosts_valid = false;
            }
            Err(_) => {}
            Ok(()) if applies_to_mesh && host == "*" => {
                report.error(
                    &path,
                    "wildcard host * is not allowed for virtual services bound to the mesh gateway",
                );
                all_hosts_valid = false;
            }
            Ok(()) => {}
        }
    }
    if all_hosts_valid {
        for (i, a) in spec.hosts.iter().enumerate() {
            for b in &spec.hosts[i + 1..] {
                if hosts_overlap(a, b) {
                    report.error(
                        "spec.hosts",
                        format!("duplicate hosts in virtual service: {a} & {b}"),
                    );
                }
            }
        }
    }

    if spec.http.is_empty() && spec.tcp.is_empty() && spec.tls.is_empty() {
        report.error(
            "spec",
            "http, tcp or tls must be provided in virtual service",
        );
    }
    for (i, http) in spec.http.iter().enumerate() {
        validate_http_route(report, &format!("spec.http[{i}]"), http, delegate);
    }
    for (i, tls) in spec.tls.iter().enumerate() {
        validate_tls_route(
            report,
            &format!("spec.tls[{i}]"),
            tls,
            spec,
            applies_to_gateway,
        );
    }
    for (i, tcp) in spec.tcp.iter().enumerate() {
        let path = format!("spec.tcp[{i}]");
        for (j, m) in tcp.r#match.iter().enumerate() {
            let at = format!("{path}.match[{j}]");
            validate_l4_match(
                report,
                &at,
                &m.destination_subnets,
                m.port,
                &m.source_labels,
                &m.gateways,
            );
        }
        if tcp.route.is_empty() {
            report.error(format!("{path}.route"), "TCP route is required");
        }
        validate_route_destinations(report, &format!("{path}.route"), &tcp.route);
    }
    validate_export_to(report, &meta.namespace, &spec.export_to, false, false);
}

/// Gateway references: `namespace/name`, or a legacy FQDN/short name (which warns).
pub(crate) fn validate_gateway_names(report: &mut Report, path: &str, names: &[String]) {
    for (i, name) in names.iter().enumerate() {
        let at = format!("{path}[{i}]");
        let Some((ns, gw)) = name.split_once('/') else {
            if let Some((short, ns)) = name.split_once('.') {
                let ns = ns.split('.').next().unwrap_or_default();
                report.warn(
                    &at,
                    format!("using legacy gatewayName format {name:?}; prefer the <namespace>/<name> format: \"{ns}/{short}\""),
                );
            }
            check(report, &at, validate_fqdn(name));
            continue;
        };
        if ns.is_empty() || gw.is_empty() {
            report.error(&at, "config namespace and gateway name cannot be empty");
        }
        if !is_dns1123_label(ns) {
            report.error(&at, format!("invalid value for namespace: {ns:?}"));
        }
        if !is_dns1123_label(gw) {
            report.error(&at, format!("invalid value for gateway name: {gw:?}"));
        }
    }
}

/// Hosts of a rule bound to gateways; SNI hosts may use Istio's generated
/// `outbound_.<PORT>_._.<HOSTNAME>` form (AUTO_PASSTHROUGH).
fn validate_gateway_bound_domain(sni: bool, domain: &str) -> Result<(), String> {
    if sni && domain.starts_with("outbound_") {
        let parts: Vec<&str> = domain.split('_').collect();
        let format = "outbound_.<PORT>_._.<HOSTNAME>";
        if parts.len() < 4 {
            return Err(format!(
                "domain name {domain} invalid, should follow '{format}' format"
            ));
        }
        let port = parts[1].trim_matches('.');
        let host = parts[3].trim_matches('.');
        if !port.bytes().any(|b| b.is_ascii_digit()) {
            return Err(format!("domain name {domain:?} invalid (label {port:?} invalid). should follow {format} format"));
        }
        if !host.bytes().any(|b| b.is_ascii_alphabetic()) {
            return Err(format!("domain name {domain:?} invalid (label {host:?} invalid). should follow {format} format"));
        }
        return Ok(());
    }
    validate_wildcard_domain(domain)
}

fn validate_tls_route(
    report: &mut Report,
    path: &str,
    tls: &TlsRoute,
    vs: &VirtualService,
    gateway: bool,
) {
    if tls.r#match.is_empty() {
        report.error(
            format!("{path}.match"),
            "TLS route must have at least one match condition",
        );
    }
    for (j, m) in tls.r#match.iter().enumerate() {
        let at = format!("{path}.match[{j}]");
        if m.sni_hosts.is_empty() {
            report.error(
                format!("{at}.sniHosts"),
                "TLS match must have at least one SNI host",
            );
        }
        for (k, sni) in m.sni_hosts.iter().enumerate() {
            let sni_path = format!("{at}.sniHosts[{k}]");
            let result = if gateway {
                validate_gateway_bound_domain(true, sni)
            } else {
                validate_wildcard_domain(sni)
            };
            if let Err(e) = result {
                if validate_ip_address(sni).is_ok() {
                    report.warn(&sni_path, format!("using an IP address ({sni:?}) goes against SNI spec and most clients do not support this"));
                } else {
                    report.error(&sni_path, e);
                }
                continue;
            }
            if !vs.hosts.iter().any(|h| host_subset_of(sni, h)) {
                report.error(
                    &sni_path,
                    format!(
                        "SNI host {sni:?} is not a compatible subset of any of the virtual service hosts: [{}]",
                        vs.hosts.join(", ")
                    ),
                );
            }
        }
        validate_l4_match(
            report,
            &at,
            &m.destination_subnets,
            m.port,
            &m.source_labels,
            &m.gateways,
        );
    }
    if tls.route.is_empty() {
        report.error(format!("{path}.route"), "TLS route is required");
    }
    validate_route_destinations(report, &format!("{path}.route"), &tls.route);
}

fn validate_l4_match(
    report: &mut Report,
    path: &str,
    subnets: &[String],
    port: Option<u32>,
    source_labels: &std::collections::BTreeMap<String, String>,
    gateways: &[String],
) {
    for (i, subnet) in subnets.iter().enumerate() {
        check(
            report,
            &format!("{path}.destinationSubnets[{i}]"),
            validate_ip_subnet(subnet),
        );
    }
    if let Some(port) = port.filter(|p| *p != 0) {
        check(report, &format!("{path}.port"), validate_port(port));
    }
    check(
        report,
        &format!("{path}.sourceLabels"),
        validate_labels(source_labels),
    );
    validate_gateway_names(report, &format!("{path}.gateways"), gateways);
}

fn validate_route_destinations(report: &mut Report, path: &str, routes: &[RouteDestination]) {
    let mut total: i64 = 0;
    for (i, r) in routes.iter().enumerate() {
        let at = format!("{path}[{i}]");
        validate_destination(report, &format!("{at}.destination"), &r.destination);
        check_weight(report, &at, r.weight);
        total += i64::from(r.weight.unwrap_or(0));
    }
    if routes.len() > 1 && total == 0 {
        report.error(path, "total destination weight = 0");
    }
}

/// Weights are relative (Istio normalizes them), but never negative.
pub(crate) fn check_weight(report: &mut Report, path: &str, weight: Option<i32>) {
    if let Some(w) = weight.filter(|w| *w < 0) {
        report.error(format!("{path}.weight"), format!("weight {w} < 0"));
    }
}
