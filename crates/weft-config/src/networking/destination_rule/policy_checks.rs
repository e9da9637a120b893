//! Checks of the parts of a traffic policy: load balancer, connection pool, outlier
//! detection and client TLS. The connection pool check is shared with Sidecar.

use super::{
    ClientTlsMode, ClientTlsSettings, ConnectionPoolSettings, H2UpgradePolicy,
    LoadBalancerSettings, LocalityLoadBalancerSetting, OutlierDetection,
};
use crate::networking::shared::check;
use crate::validate::common::validate_duration;
use crate::validate::Report;

/// The Kubernetes schema's wording for a number outside `minimum`/`maximum`.
fn schema_bound(report: &mut Report, path: &str, value: f64, min: Option<f64>, max: Option<f64>) {
    if let Some(min) = min.filter(|m| value < *m) {
        report.error(
            path,
            format!(
                "Invalid value: {value}: {path} in body should be greater than or equal to {min}"
            ),
        );
    }
    if let Some(max) = max.filter(|m| value > *m) {
        report.error(
            path,
            format!("Invalid value: {value}: {path} in body should be less than or equal to {max}"),
        );
    }
}

pub(crate) fn validate_outlier_detection(report: &mut Report, path: &str, o: &OutlierDetection) {
    if let Some(d) = o.base_ejection_time {
        check(
            report,
            &format!("{path}.baseEjectionTime"),
            validate_duration(d),
        );
    }
    if o.consecutive_errors.is_some_and(|e| e != 0) {
        report.warn(
            format!("{path}.consecutiveErrors"),
            "outlier detection consecutive errors is deprecated, use consecutiveGatewayErrors or consecutive5xxErrors instead",
        );
    }
    if !o.split_external_local_origin_errors
        && o.consecutive_local_origin_failures.is_some_and(|f| f > 0)
    {
        report.error(
            format!("{path}.consecutiveLocalOriginFailures"),
            "outlier detection consecutive local origin failures is specified, but split external local origin errors is set to false",
        );
    }
    if let Some(d) = o.interval {
        check(report, &format!("{path}.interval"), validate_duration(d));
    }
    for (field, v) in [
        ("maxEjectionPercent", o.max_ejection_percent),
        ("minHealthPercent", o.min_health_percent),
    ] {
        if let Some(v) = v.filter(|v| !(0..=100).contains(v)) {
            report.error(
                format!("{path}.{field}"),
                format!("percentage {v} is not in range 0..100"),
            );
        }
    }
    for (i, code) in o.outlier_detection_http_error_codes.iter().enumerate() {
        schema_bound(
            report,
            &format!("{path}.outlierDetectionHttpErrorCodes[{i}]"),
            f64::from(*code),
            Some(100.0),
            Some(599.0),
        );
    }
}

/// Connection pool limits; used by DestinationRule and Sidecar.
pub(crate) fn validate_connection_pool(
    report: &mut Report,
    path: &str,
    c: &ConnectionPoolSettings,
) {
    if c.http.is_none() && c.tcp.is_none() {
        report.error(path, "connection pool must have at least one field");
        return;
    }
    if let Some(h) = &c.http {
        let at = format!("{path}.http");
        for (v, msg) in [
            (
                h.http1_max_pending_requests,
                "http1 max pending requests must be non-negative",
            ),
            (
                h.http2_max_requests,
                "http2 max requests must be non-negative",
            ),
            (
                h.max_requests_per_connection,
                "max requests per connection must be non-negative",
            ),
            (h.max_retries, "max retries must be non-negative"),
            (
                h.max_concurrent_streams,
                "max concurrent streams must be non-negative",
            ),
        ] {
            if v.is_some_and(|v| v < 0) {
                report.error(&at, msg);
            }
        }
        if let Some(d) = h.idle_timeout {
            check(report, &format!("{at}.idleTimeout"), validate_duration(d));
        }
        if h.h2_upgrade_policy == Some(H2UpgradePolicy::Upgrade) && h.use_client_protocol {
            report.error(
                &at,
                "use client protocol must not be true when H2UpgradePolicy is UPGRADE",
            );
        }
        if let Some(ka) = &h.http2_keep_alive {
            let kp = format!("{at}.http2KeepAlive");
            match ka.interval {
                None => report.error(&kp, "http2 keepalive interval is required"),
                Some(d) => check(report, &format!("{kp}.interval"), validate_duration(d)),
            }
            match ka.timeout {
                None => report.error(&kp, "http2 keepalive timeout is required"),
                Some(d) => check(report, &format!("{kp}.timeout"), validate_duration(d)),
            }
        }
    }
    if let Some(t) = &c.tcp {
        let at = format!("{path}.tcp");
        if t.max_connections.is_some_and(|v| v < 0) {
            report.error(&at, "max connections must be non-negative");
        }
        if let Some(d) = t.connect_timeout {
            check(
                report,
                &format!("{at}.connectTimeout"),
                validate_duration(d),
            );
        }
        if let Some(d) = t.max_connection_duration {
            check(
                report,
                &format!("{at}.maxConnectionDuration"),
                validate_duration(d),
            );
        }
        // 0s turns the idle timeout off, so it is allowed here.
        if let Some(d) = t.idle_timeout.filter(|d| d.nanos / 1_000_000 != 0) {
            check(report, &format!("{at}.idleTimeout"), validate_duration(d));
        }
        if let Some(ka) = &t.tcp_keepalive {
            if let Some(d) = ka.time {
                check(
                    report,
                    &format!("{at}.tcpKeepalive.time"),
                    validate_duration(d),
                );
            }
            if let Some(d) = ka.interval {
                check(
                    report,
                    &format!("{at}.tcpKeepalive.interval"),
                    validate_duration(d),
                );
            }
        }
    }
}

/// Envoy's primality test for Maglev table sizes.
fn is_prime(x: u64) -> bool {
    if x != 0 && x < 4 {
        return true;
    }
    if x & 1 == 0 {
        return false;
    }
    let mut f = 3;
    while f * f <= x {
        if x.is_multiple_of(f) {
            return false;
        }
        f += 2;
    }
    true
}

pub(crate) fn validate_load_balancer(
    report: &mut Report,
    path: &str,
    lb: &LoadBalancerSettings,
    has_outlier: bool,
) {
    if lb.simple.is_some() && lb.consistent_hash.is_some() {
        report.error(path, "only one of simple or consistentHash can be set");
    }
    if let Some(ch) = &lb.consistent_hash {
        let at = format!("{path}.consistentHash");
        let keys = [
            ch.http_header_name.is_some(),
            ch.http_cookie.is_some(),
            ch.use_source_ip.is_some(),
            ch.http_query_parameter_name.is_some(),
        ];
        if keys.iter().filter(|k| **k).count() > 1 {
            report.error(
                &at,
                "only one of httpHeaderName, httpCookie, useSourceIp or httpQueryParameterName can be set",
            );
        }
        if ch.ring_hash.is_some() && ch.maglev.is_some() {
            report.error(&at, "only one of ringHash or maglev can be set");
        }
        if let Some(cookie) = &ch.http_cookie {
            if cookie.name.is_empty() {
                report.error(
                    format!("{at}.httpCookie.name"),
                    "name required for HttpCookie",
                );
            }
            let mut seen: Vec<&str> = Vec::new();
            for (i, attr) in cookie.attributes.iter().enumerate() {
                let ap = format!("{at}.httpCookie.attributes[{i}].name");
                if attr.name.is_empty() {
                    report.error(&ap, "cookie attribute name cannot be empty");
                } else if seen.contains(&attr.name.as_str()) {
                    report.error(
                        &ap,
                        format!("duplicate cookie attribute name: {}", attr.name),
                    );
                } else {
                    seen.push(&attr.name);
                }
            }
        }
        let min_ring = ch.minimum_ring_size.unwrap_or(0);
        if min_ring != 0 {
            report.warn(
                format!("{at}.minimumRingSize"),
                "consistent hash MinimumRingSize is deprecated, use ConsistentHashLB's RingHash configuration instead",
            );
            if ch.ring_hash.is_some() || ch.maglev.is_some() {
                report.error(
                    &at,
                    "only one of MinimumRingSize or Maglev/Ringhash can be specified",
                );
            }
        }
        if let Some(ml) = &ch.maglev {
            let tp = format!("{at}.maglev.tableSize");
            let size = ml.table_size.unwrap_or(0);
            if size == 0 {
                report.error(&tp, "tableSize must be set for maglev");
            }
            if size >= 5_000_011 {
                report.error(&tp, "tableSize must be less than 5000011 for maglev");
            }
            if !is_prime(size) {
                report.error(&tp, "tableSize must be a prime number for maglev");
            }
        }
    }
    if lb.locality_lb_setting.is_some() && lb.zone_aware_lb_setting.is_some() {
        report.error(
            path,
            "only one of localityLbSetting and zoneAwareLbSetting can be set",
        );
    }
    if let Some(l) = &lb.locality_lb_setting {
        validate_locality(report, &format!("{path}.localityLbSetting"), l, has_outlier);
    }
    if let Some(z) = &lb.zone_aware_lb_setting {
        let at = format!("{path}.zoneAwareLbSetting");
        for label in &z.failover_priority {
            if TOPOLOGY_LABELS.contains(&label.as_str()) {
                report.error(
                    format!("{at}.failoverPriority"),
                    format!("'failover_priority' for zone aware lb must not use topology label '{label}'; region- and zone-level routing are handled automatically"),
                );
            }
        }
        if (!z.failover.is_empty() || !z.failover_priority.is_empty()) && !has_outlier {
            report.warn(
                &at,
                "outlier detection policy must be provided for failover",
            );
        }
        for f in &z.failover {
            if f.from == f.to {
                report.error(
                    format!("{at}.failover"),
                    "zone aware lb failover settings must specify different regions",
                );
            }
        }
        if let Some(n) = z.min_cluster_size {
            schema_bound(
                report,
                &format!("{at}.minClusterSize"),
                n as f64,
                Some(1.0),
                None,
            );
        }
    }
    if let Some(d) = lb.warmup_duration_secs {
        check(
            report,
            &format!("{path}.warmupDurationSecs"),
            validate_duration(d),
        );
    }
    if let Some(w) = &lb.warmup {
        let at = format!("{path}.warmup");
        check(
            report,
            &format!("{at}.duration"),
            validate_duration(w.duration),
        );
        if let Some(p) = w.minimum_percent {
            schema_bound(
                report,
                &format!("{at}.minimumPercent"),
                p,
                Some(0.0),
                Some(100.0),
            );
        }
        if let Some(a) = w.aggression {
            schema_bound(report, &format!("{at}.aggression"), a, Some(0.0), None);
            if a <= 0.0 {
                report.error(
                    format!("{at}.aggression"),
                    "aggression should be greater than 0",
                );
            }
        }
    }
}

const TOPOLOGY_LABELS: &[&str] = &[
    "topology.kubernetes.io/region",
    "topology.kubernetes.io/zone",
    "topology.istio.io/subzone",
];

/// Locality weights and failover, after Istio's `ValidateLocalityLbSetting`.
fn validate_locality(
    report: &mut Report,
    path: &str,
    l: &LocalityLoadBalancerSetting,
    has_outlier: bool,
) {
    if !l.distribute.is_empty() && !l.failover.is_empty() {
        report.error(
            path,
            "can not simultaneously specify 'distribute' and 'failover'",
        );
        return;
    }
    if !l.failover.is_empty() {
        if let Some(label) = l
            .failover_priority
            .iter()
            .find(|p| TOPOLOGY_LABELS.contains(&p.as_str()))
        {
            report.error(
                path,
                format!("can not simultaneously set 'failover' and topology label '{label}' in 'failover_priority'"),
            );
            return;
        }
    }
    let mut sources = Vec::new();
    for (i, d) in l.distribute.iter().enumerate() {
        let at = format!("{path}.distribute[{i}]");
        sources.push(d.from.as_str());
        let mut total = 0u64;
        for w in d.to.values() {
            if *w == 0 || *w > 100 {
                report.error(
                    format!("{at}.to"),
                    "locality weight must be in range [1, 100]",
                );
                return;
            }
            total += u64::from(*w);
        }
        if total != 100 {
            report.error(
                format!("{at}.to"),
                format!("total locality weight {total} != 100"),
            );
            return;
        }
        let dests: Vec<&str> = d.to.keys().map(String::as_str).collect();
        check(report, &format!("{at}.to"), validate_localities(&dests));
    }
    check(
        report,
        &format!("{path}.distribute"),
        validate_localities(&sources),
    );
    if (!l.failover.is_empty() || !l.failover_priority.is_empty()) && !has_outlier {
        report.warn(
            path,
            "outlier detection policy must be provided for failover",
        );
    }
    for (i, f) in l.failover.iter().enumerate() {
        let at = format!("{path}.failover[{i}]");
        if f.from == f.to {
            report.error(
                &at,
                "locality lb failover settings must specify different regions",
            );
        }
        if f.from.contains('/') || f.to.contains('/') {
            report.error(&at, "locality lb failover only specify region");
        }
        if f.from.contains('*') || f.to.contains('*') {
            report.error(
                &at,
                "locality lb failover region should not contain '*' wildcard",
            );
        }
    }
}

/// Localities (`region/zone/subzone`, trailing `*` allowed) must not overlap.
fn validate_localities(localities: &[&str]) -> Result<(), String> {
    let mut seen: Vec<Vec<&str>> = Vec::new();
    for loc in localities {
        let stars = loc.matches('*').count();
        if stars > 1 || (stars == 1 && !loc.ends_with('*')) {
            return Err(format!(
                "locality {loc} wildcard '*' number can not exceed 1 and must be in the end"
            ));
        }
        let parts: Vec<&str> = loc.splitn(3, '/').collect();
        if parts.iter().any(|p| p.is_empty()) {
            return Err(format!(
                "locality {loc} must not contain empty region/zone/subzone info"
            ));
        }
        // Two localities overlap when one is a prefix of the other, `*` matching all.
        let covers = |a: &[&str], b: &[&str]| {
            a.iter()
                .zip(b.iter())
                .all(|(x, y)| *x == "*" || *y == "*" || x == y)
        };
        if seen.iter().any(|s| covers(s, &parts)) {
            return Err(format!(
                "locality {loc} overlap with previous specified ones"
            ));
        }
        seen.push(parts);
    }
    Ok(())
}

/// Client TLS by mode, after Istio's `ValidateTLS`.
pub(crate) fn validate_client_tls(report: &mut Report, path: &str, t: &ClientTlsSettings) {
    let set = |o: &Option<String>| o.as_deref().is_some_and(|s| !s.is_empty());
    if t.insecure_skip_verify == Some(true) {
        if t.mode == ClientTlsMode::Simple
            && (set(&t.ca_certificates)
                || set(&t.credential_name)
                || !t.subject_alt_names.is_empty())
        {
            report.error(
                path,
                "cannot specify CaCertificates or CredentialName or SubjectAltNames when InsecureSkipVerify is set true",
            );
        }
        if t.mode == ClientTlsMode::Mutual
            && (set(&t.ca_certificates) || !t.subject_alt_names.is_empty())
        {
            report.error(
                path,
                "cannot specify CaCertificates or SubjectAltNames when InsecureSkipVerify is set true",
            );
        }
    }
    if matches!(t.mode, ClientTlsMode::Simple | ClientTlsMode::Mutual) && set(&t.credential_name) {
        if set(&t.client_certificate)
            || set(&t.ca_certificates)
            || set(&t.private_key)
            || set(&t.ca_crl)
        {
            report.error(
                path,
                "cannot specify client certificates or CA certificate or CA CRL If credentialName is set",
            );
        }
        return;
    }
    if t.mode == ClientTlsMode::Mutual {
        if !set(&t.client_certificate) {
            report.error(
                format!("{path}.clientCertificate"),
                "client certificate required for mutual tls",
            );
        }
        if !set(&t.private_key) {
            report.error(
                format!("{path}.privateKey"),
                "private key required for mutual tls",
            );
        }
    }
}
