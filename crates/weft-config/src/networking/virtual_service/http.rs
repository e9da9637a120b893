//! Validation of one HTTP route of a VirtualService, after Istio's webhook.

use super::headers::{
    header_name_or_claim, validate_authority_rewrite, validate_cors, validate_headers,
};
use super::validate::{check_weight, validate_gateway_names};
use super::{
    HttpFaultInjection, HttpRedirect, HttpRetry, HttpRewrite, HttpRoute, HttpRouteDestination,
    StringMatch,
};
use crate::networking::shared::{check, validate_destination, Percent};
use crate::validate::common::{
    is_dns1123_label, validate_duration, validate_labels, validate_port, validate_regex,
};
use crate::validate::Report;

/// Envoy's retry conditions and the gRPC status names Istio accepts in `retryOn`.
const RETRY_ON: &[&str] = &[
    "5xx",
    "gateway-error",
    "reset",
    "reset-before-request",
    "connect-failure",
    "retriable-4xx",
    "refused-stream",
    "retriable-status-codes",
    "retriable-headers",
    "envoy-ratelimited",
    "http3-post-connect-failure",
    "cancelled",
    "deadline-exceeded",
    "internal",
    "resource-exhausted",
    "unavailable",
];

const GRPC_STATUSES: &[&str] = &[
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
];

/// Checks one HTTP route; `delegate` is true inside a VirtualService that has no hosts.
pub(crate) fn validate_http_route(
    report: &mut Report,
    path: &str,
    http: &HttpRoute,
    delegate: bool,
) {
    validate_conflicts(report, path, http, delegate);
    if http.websocket_upgrade.is_some() {
        report.warn(
            format!("{path}.websocketUpgrade"),
            "unknown field, ignored: removed from Istio's API (WebSocket upgrades are always allowed)",
        );
    }
    validate_matches(report, path, http);
    if let Some(h) = &http.headers {
        validate_headers(report, &format!("{path}.headers"), h);
    }
    if let Some(cors) = &http.cors_policy {
        validate_cors(report, &format!("{path}.corsPolicy"), cors);
    }
    if let Some(fault) = &http.fault {
        validate_fault(report, &format!("{path}.fault"), fault);
    }
    for (field, value) in [
        ("mirrorPercent", http.mirror_percent),
        ("mirror_percent", http.mirror_percent_snake),
    ] {
        if let Some(v) = value {
            if v > 100 {
                report.error(
                    format!("{path}.{field}"),
                    format!("mirror_percent must have a max value of 100 (it has {v})"),
                );
            }
            report.warn(
                format!("{path}.{field}"),
                "using deprecated setting \"mirrorPercent\", use \"mirrorPercentage\" instead",
            );
        }
    }
    if let Some(p) = &http.mirror_percentage {
        check_mirror_percentage(
            report,
            &format!("{path}.mirrorPercentage"),
            p,
            "mirror_percentage",
        );
    }
    if let Some(m) = &http.mirror {
        validate_destination(report, &format!("{path}.mirror"), m);
    }
    for (i, m) in http.mirrors.iter().enumerate() {
        let at = format!("{path}.mirrors[{i}]");
        validate_destination(report, &format!("{at}.destination"), &m.destination);
        if let Some(p) = &m.percentage {
            check_mirror_percentage(report, &format!("{at}.percentage"), p, "mirror percentage");
        }
    }
    if let Some(r) = &http.redirect {
        validate_redirect(report, &format!("{path}.redirect"), r, http);
    }
    if let Some(d) = &http.direct_response {
        let at = format!("{path}.directResponse");
        let size = d
            .body
            .as_ref()
            .map(|b| {
                b.string.as_deref().map_or(0, str::len) + b.bytes.as_deref().map_or(0, str::len)
            })
            .unwrap_or(0);
        if size > 1024 * 1024 {
            report.error(
                format!("{at}.body"),
                "large direct_responses may impact control plane performance, must be less than 1MB",
            );
        } else if size > 100 * 1024 {
            report.warn(
                format!("{at}.body"),
                "large direct_responses may impact control plane performance",
            );
        }
        if let Some(b) = &d.body {
            if b.string.is_some() && b.bytes.is_some() {
                report.error(
                    format!("{at}.body"),
                    "only one of string or bytes can be set",
                );
            }
        }
        check_http_status(report, &format!("{at}.status"), i64::from(d.status));
    }
    if let Some(r) = &http.retries {
        validate_retries(report, &format!("{path}.retries"), r);
    }
    if let Some(r) = &http.rewrite {
        validate_rewrite(report, &format!("{path}.rewrite"), r);
    }
    validate_authority_rewrite(report, path, http);
    validate_route_destinations(report, &format!("{path}.route"), &http.route);
    if let Some(t) = http.timeout {
        check(report, &format!("{path}.timeout"), validate_duration(t));
    }
}

/// Which of route, redirect, directResponse and delegate may be combined.
fn validate_conflicts(report: &mut Report, path: &str, http: &HttpRoute, delegate: bool) {
    let name = http.name.as_deref().unwrap_or_default();
    if !delegate && http.delegate.is_some() {
        if http.redirect.is_some() {
            report.error(
                format!("{path}.redirect"),
                format!("root HTTP route {name} must not specify redirect"),
            );
        }
        if !http.route.is_empty() {
            report.error(
                format!("{path}.route"),
                format!("root HTTP route {name} must not specify route"),
            );
        }
        return;
    }
    if delegate && http.delegate.is_some() {
        report.error(
            format!("{path}.delegate"),
            "delegate HTTP route cannot contain delegate",
        );
    }
    let mut conflict = |what: &str, field: &str| {
        report.error(format!("{path}.{field}"), what.to_string());
    };
    if http.redirect.is_some() {
        if !http.route.is_empty() {
            conflict("HTTP route cannot contain both route and redirect", "route");
        }
        if http.fault.is_some() {
            conflict("HTTP route cannot contain both fault and redirect", "fault");
        }
        if http.rewrite.is_some() {
            conflict(
                "HTTP route rule cannot contain both rewrite and redirect",
                "rewrite",
            );
        }
        if http.direct_response.is_some() {
            conflict(
                "HTTP route rule cannot contain both direct_response and redirect",
                "directResponse",
            );
        }
    } else if http.direct_response.is_some() {
        if !http.route.is_empty() {
            conflict(
                "HTTP route cannot contain both route and direct_response",
                "route",
            );
        }
        if http.fault.is_some() {
            conflict(
                "HTTP route cannot contain both fault and direct_response",
                "fault",
            );
        }
        if http.rewrite.is_some() {
            conflict(
                "HTTP route rule cannot contain both rewrite and direct_response",
                "rewrite",
            );
        }
    } else if http.route.is_empty() {
        report.error(
            path.to_string(),
            "HTTP route, redirect or direct_response is required",
        );
    }
    if http.mirror.is_some() && !http.mirrors.is_empty() {
        report.error(
            format!("{path}.mirrors"),
            "HTTP route cannot contain both mirror and mirrors",
        );
    }
}

fn validate_matches(report: &mut Report, path: &str, http: &HttpRoute) {
    for (i, m) in http.r#match.iter().enumerate() {
        let at = format!("{path}.match[{i}]");
        for (name, sm) in &m.headers {
            let hp = format!("{at}.headers[{name}]");
            check(report, &hp, header_name_or_claim(name));
            validate_string_match(report, &hp, sm, "headers");
        }
        for (name, sm) in &m.without_headers {
            let hp = format!("{at}.withoutHeaders[{name}]");
            check(report, &hp, header_name_or_claim(name));
            if sm.regex.as_deref() != Some("*") {
                validate_string_match(report, &hp, sm, "withoutHeaders");
            }
        }
        for (field, sm) in [
            ("uri", &m.uri),
            ("scheme", &m.scheme),
            ("method", &m.method),
            ("authority", &m.authority),
        ] {
            if let Some(sm) = sm {
                validate_string_match(report, &format!("{at}.{field}"), sm, field);
            }
        }
        for (name, sm) in &m.query_params {
            validate_string_match(
                report,
                &format!("{at}.queryParams[{name}]"),
                sm,
                "queryParams",
            );
        }
        if let Some(port) = m.port.filter(|p| *p != 0) {
            check(report, &format!("{at}.port"), validate_port(port));
        }
        check(
            report,
            &format!("{at}.sourceLabels"),
            validate_labels(&m.source_labels),
        );
        validate_gateway_names(report, &format!("{at}.gateways"), &m.gateways);
        if let Some(ns) = m.source_namespace.as_deref().filter(|ns| !ns.is_empty()) {
            if !is_dns1123_label(ns) {
                report.error(
                    format!("{at}.sourceNamespace"),
                    format!("sourceNamespace match {ns} is invalid"),
                );
            }
        }
    }
}

/// One StringMatch: at most one variant, non-empty prefix/regex, RE2 regex.
pub(crate) fn validate_string_match(
    report: &mut Report,
    path: &str,
    sm: &StringMatch,
    where_: &str,
) {
    let set = [sm.exact.is_some(), sm.prefix.is_some(), sm.regex.is_some()];
    if set.iter().filter(|s| **s).count() > 1 {
        report.error(path, "only one of exact, prefix or regex can be set");
    }
    if sm.prefix.as_deref() == Some("") {
        report.error(
            path,
            format!("{where_:?}: prefix string match should not be empty"),
        );
    }
    if let Some(re) = &sm.regex {
        check(report, path, string_regexp(re, where_));
    }
}

pub(crate) fn string_regexp(re: &str, where_: &str) -> Result<(), String> {
    if re.is_empty() {
        return Err(format!(
            "{where_:?}: regex string match should not be empty"
        ));
    }
    if re.len() > 1024 {
        return Err(format!(
            "{where_:?}: regex is too large, max length allowed is 1024"
        ));
    }
    validate_regex(re).map_err(|e| {
        format!("{where_:?}: {e}; Istio uses RE2 style regex-based match (https://github.com/google/re2/wiki/Syntax)")
    })
}

/// Header names in request add/set: pseudo headers other than the authority are refused.
/// Header names removed from requests or edited in responses.
/// Header values: no control characters; `%` must be `%%` or open a closed `%VAR%`.
/// The authority may be rewritten once: by `rewrite.authority` or a Host header edit.
/// Fault percentages are 0, or 0.0001..=100 (Envoy's resolution).
fn check_fault_percentage(report: &mut Report, path: &str, p: &Percent) {
    let v = p.value;
    if !(0.0..=100.0).contains(&v) || (v > 0.0 && v < 0.0001) {
        report.error(
            path,
            format!("percentage {v} is neither 0.0, nor in range [0.0001, 100.0]"),
        );
    }
}

fn check_mirror_percentage(report: &mut Report, path: &str, p: &Percent, what: &str) {
    if p.value > 100.0 {
        report.error(
            path,
            format!(
                "{what} must have a max value of 100 (it has {:.6})",
                p.value
            ),
        );
    }
    if p.value < 0.0 {
        report.error(
            path,
            format!("{what} must have a min value of 0 (it has {:.6})", p.value),
        );
    }
}

fn check_http_status(report: &mut Report, path: &str, status: i64) {
    if !(200..=600).contains(&status) {
        report.error(
            path,
            format!("HTTP status {status} is not in range 200-599"),
        );
    }
}

fn validate_fault(report: &mut Report, path: &str, fault: &HttpFaultInjection) {
    if fault.abort.is_none() && fault.delay.is_none() {
        report.error(
            path,
            "HTTP fault injection must have an abort and/or a delay",
        );
    }
    if let Some(abort) = &fault.abort {
        let at = format!("{path}.abort");
        if let Some(p) = &abort.percentage {
            check_fault_percentage(report, &format!("{at}.percentage"), p);
        }
        let set = [
            abort.http_status.is_some(),
            abort.grpc_status.is_some(),
            abort.http2_error.is_some(),
        ];
        if set.iter().filter(|s| **s).count() > 1 {
            report.error(
                &at,
                "only one of httpStatus, grpcStatus or http2Error can be set",
            );
        }
        if let Some(s) = abort.http_status {
            check_http_status(report, &format!("{at}.httpStatus"), i64::from(s));
        } else if let Some(s) = &abort.grpc_status {
            if !GRPC_STATUSES.contains(&s.as_str()) {
                report.error(
                    format!("{at}.grpcStatus"),
                    format!("gRPC status {s:?} is not supported. See https://github.com/grpc/grpc/blob/master/doc/statuscodes.md for a list of supported codes, for example 'NOT_FOUND'"),
                );
            }
        } else if abort.http2_error.is_some() {
            report.error(
                format!("{at}.http2Error"),
                "HTTP/2 abort fault injection not supported yet",
            );
        } else {
            report.warn(&at, "abort configured, but error type not set");
        }
    }
    if let Some(delay) = &fault.delay {
        let at = format!("{path}.delay");
        if let Some(p) = &delay.percentage {
            check_fault_percentage(report, &format!("{at}.percentage"), p);
        }
        if let Some(p) = delay.percent {
            if !(0..=100).contains(&p) {
                report.error(
                    format!("{at}.percent"),
                    format!("percentage {p} is not in range 0..100"),
                );
            }
        }
        if delay.fixed_delay.is_some() && delay.exponential_delay.is_some() {
            report.error(&at, "only one of fixedDelay or exponentialDelay can be set");
        }
        if let Some(d) = delay.fixed_delay {
            check(report, &format!("{at}.fixedDelay"), validate_duration(d));
        } else if let Some(d) = delay.exponential_delay {
            check(
                report,
                &format!("{at}.exponentialDelay"),
                validate_duration(d),
            );
            report.error(
                format!("{at}.exponentialDelay"),
                "exponentialDelay not supported yet",
            );
        }
    }
}

fn validate_redirect(report: &mut Report, path: &str, r: &HttpRedirect, http: &HttpRoute) {
    let uri = r.uri.as_deref().unwrap_or_default();
    let prefix = r.prefix_rewrite.as_deref().unwrap_or_default();
    if r.port.is_some() && r.derive_port.is_some() {
        report.error(path, "only one of port or derivePort can be set");
    }
    if !uri.is_empty() && !prefix.is_empty() {
        report.error(
            path,
            "redirect may only specify one of uri or prefix_rewrite",
        );
        return;
    }
    if !prefix.is_empty()
        && http
            .r#match
            .iter()
            .any(|m| m.uri.as_ref().is_some_and(|u| u.prefix.is_none()))
    {
        report.error(
            path,
            "redirect prefix_rewrite requires all URI matches to use prefix match type",
        );
        return;
    }
    let scheme = r.scheme.as_deref().unwrap_or_default();
    if uri.is_empty()
        && prefix.is_empty()
        && r.authority.as_deref().unwrap_or_default().is_empty()
        && r.port.is_none()
        && r.derive_port.is_none()
        && scheme.is_empty()
    {
        report.error(
            path,
            "redirect must specify URI, authority, scheme, or port",
        );
        return;
    }
    if let Some(code) = r.redirect_code.filter(|c| *c != 0) {
        if !(300..=399).contains(&code) {
            report.error(
                format!("{path}.redirectCode"),
                format!("{code} is not a valid redirect code, must be 3xx"),
            );
            return;
        }
    }
    if !scheme.is_empty() && scheme != "http" && scheme != "https" {
        report.error(
            format!("{path}.scheme"),
            "invalid redirect scheme, must be \"http\" or \"https\"",
        );
        return;
    }
    if let Some(port) = r.port.filter(|p| *p > 0) {
        check(report, &format!("{path}.port"), validate_port(port));
    }
}

fn validate_retries(report: &mut Report, path: &str, r: &HttpRetry) {
    let attempts = r.attempts.unwrap_or(0);
    if attempts < 0 {
        report.error(format!("{path}.attempts"), "attempts cannot be negative");
    }
    let retry_on = r.retry_on.as_deref().unwrap_or_default();
    if attempts == 0
        && (r.per_try_timeout.is_some()
            || !retry_on.is_empty()
            || r.retry_remote_localities.is_some())
    {
        report.error(
            path,
            "http retry policy configured when attempts are set to 0 (disabled)",
        );
    }
    if let Some(t) = r.per_try_timeout {
        check(
            report,
            &format!("{path}.perTryTimeout"),
            validate_duration(t),
        );
    }
    if !retry_on.is_empty() {
        for policy in retry_on.split(',') {
            let is_status = policy
                .parse::<u16>()
                .is_ok_and(|c| (100..=599).contains(&c));
            if !is_status && !RETRY_ON.contains(&policy) {
                report.error(
                    format!("{path}.retryOn"),
                    format!("{policy:?} is not a valid retryOn policy"),
                );
            }
        }
    }
    if let Some(b) = r.backoff {
        check(report, &format!("{path}.backoff"), validate_duration(b));
    }
}

fn validate_rewrite(report: &mut Report, path: &str, r: &HttpRewrite) {
    let uri = r.uri.as_deref().unwrap_or_default();
    if !uri.is_empty() && r.uri_regex_rewrite.is_some() {
        report.error(
            path,
            "rewrite may only contain one of URI or UriRegexRewrite",
        );
        return;
    }
    if uri.is_empty()
        && r.uri_regex_rewrite.is_none()
        && r.authority.as_deref().unwrap_or_default().is_empty()
    {
        report.error(path, "rewrite must specify at least one of URI, UriRegexRewrite, or authority. Only one of URI or UriRegexRewrite may be specified");
        return;
    }
    if let Some(re) = &r.uri_regex_rewrite {
        let at = format!("{path}.uriRegexRewrite");
        if re.r#match.is_empty() || re.rewrite.is_empty() {
            report.error(&at, "UriRegexRewrite has errors\nUriRegexRewrite requires both Rewrite and Match fields to be specified");
        } else if let Err(e) = string_regexp(&re.r#match, "HTTPRewrite.UriRegexRewrite.Match") {
            report.error(
                format!("{at}.match"),
                format!("UriRegexRewrite has errors\n{e}"),
            );
        }
    }
}

fn validate_route_destinations(report: &mut Report, path: &str, routes: &[HttpRouteDestination]) {
    let mut total: i64 = 0;
    for (i, r) in routes.iter().enumerate() {
        let at = format!("{path}[{i}]");
        if let Some(h) = &r.headers {
            validate_headers(report, &format!("{at}.headers"), h);
        }
        validate_destination(report, &format!("{at}.destination"), &r.destination);
        check_weight(report, &at, r.weight);
        total += i64::from(r.weight.unwrap_or(0));
    }
    if routes.len() > 1 && total == 0 {
        report.error(path, "total destination weight = 0");
    }
}
