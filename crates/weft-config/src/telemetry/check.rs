//! Telemetry validation: Istio's webhook rules and the CRD's schema and CEL rules.

use super::{AccessLogging, Metrics, ProviderRef, TagOperation, Telemetry, Tracing};
use crate::meta::ObjectMeta;
use crate::security::request_authentication::check_duration;
use crate::validate::common::{check_min_length, validate_policy_attachment};
use crate::validate::Report;

/// Istio's webhook and CRD rules for Telemetry.
pub fn validate(spec: &Telemetry, _meta: &ObjectMeta, report: &mut Report) {
    validate_policy_attachment(
        spec.selector.as_ref(),
        spec.target_ref.as_ref(),
        &spec.target_refs,
        report,
    );
    for (i, m) in spec.metrics.iter().enumerate() {
        validate_metrics(m, &format!("spec.metrics[{i}]"), report);
    }
    if spec.tracing.len() > 1 {
        report.warn(
            "spec.tracing",
            "multiple tracing is not currently supported",
        );
    }
    for (i, t) in spec.tracing.iter().enumerate() {
        validate_tracing(t, &format!("spec.tracing[{i}]"), report);
    }
    for (i, l) in spec.access_logging.iter().enumerate() {
        validate_access_logging(l, &format!("spec.accessLogging[{i}]"), report);
    }
}

fn validate_providers(providers: &[ProviderRef], path: &str, report: &mut Report) {
    for (i, p) in providers.iter().enumerate() {
        check_min_length(report, &format!("{path}.providers[{i}].name"), &p.name, 1);
    }
}

fn validate_metrics(m: &Metrics, path: &str, report: &mut Report) {
    validate_providers(&m.providers, path, report);
    if let Some(interval) = m.reporting_interval {
        check_duration(report, &format!("{path}.reportingInterval"), interval);
    }
    for (i, o) in m.overrides.iter().enumerate() {
        let at = format!("{path}.overrides[{i}]");
        if let Some(sel) = &o.match_ {
            if sel.metric.is_some() && sel.custom_metric.is_some() {
                report.error(
                    format!("{at}.match"),
                    format!("Invalid value: \"object\": {at}.match in body should match exactly one schema in oneOf: only one of metric or customMetric may be set"),
                );
            }
            if let Some(custom) = &sel.custom_metric {
                check_min_length(report, &format!("{at}.match.customMetric"), custom, 1);
            }
        }
        for (name, tag) in &o.tag_overrides {
            let tag_path = format!("{at}.tagOverrides[{name}]");
            if name.is_empty() {
                report.warn(&tag_path, "tagOverrides.name may not be empty");
            }
            match (tag.operation, tag.value.as_deref()) {
                (TagOperation::Upsert, None | Some("")) => report.error(
                    &tag_path,
                    "Invalid value: \"object\": value must be set when operation is UPSERT",
                ),
                (TagOperation::Remove, Some(_)) => report.error(
                    &tag_path,
                    "Invalid value: \"object\": value must not be set when operation is REMOVE",
                ),
                _ => {}
            }
        }
    }
}

fn validate_tracing(t: &Tracing, path: &str, report: &mut Report) {
    if t.providers.len() > 1 {
        report.warn(
            format!("{path}.providers"),
            "multiple providers is not currently supported",
        );
    }
    validate_providers(&t.providers, path, report);
    if let Some(pct) = t.random_sampling_percentage {
        let at = format!("{path}.randomSamplingPercentage");
        if pct.is_nan() || pct < 0.0 {
            report.error(
                at,
                format!("Invalid value: {pct}: {path}.randomSamplingPercentage in body should be greater than or equal to 0; randomSamplingPercentage must be in range [0.0, 100.0]"),
            );
        } else if pct > 100.0 {
            report.error(
                at,
                format!("Invalid value: {pct}: {path}.randomSamplingPercentage in body should be less than or equal to 100; randomSamplingPercentage must be in range [0.0, 100.0]"),
            );
        }
    }
    for (name, tag) in &t.custom_tags {
        let at = format!("{path}.customTags[{name}]");
        if name.is_empty() {
            report.error(&at, "tag name may not be empty");
        }
        let set = [
            tag.literal.is_some(),
            tag.environment.is_some(),
            tag.header.is_some(),
            tag.formatter.is_some(),
        ]
        .iter()
        .filter(|b| **b)
        .count();
        if set > 1 {
            report.error(
                &at,
                format!("Invalid value: \"object\": {at} in body should match exactly one schema in oneOf: only one of literal, environment, header or formatter may be set"),
            );
        }
        if let Some(l) = &tag.literal {
            check_min_length(report, &format!("{at}.literal.value"), &l.value, 1);
        }
        if let Some(e) = &tag.environment {
            check_min_length(report, &format!("{at}.environment.name"), &e.name, 1);
        }
        if let Some(h) = &tag.header {
            check_min_length(report, &format!("{at}.header.name"), &h.name, 1);
        }
        if let Some(f) = &tag.formatter {
            check_min_length(report, &format!("{at}.formatter.value"), &f.value, 1);
        }
    }
}

fn validate_access_logging(l: &AccessLogging, path: &str, report: &mut Report) {
    validate_providers(&l.providers, path, report);
    if let Some(filter) = &l.filter {
        if let Err(e) = check_cel_shape(&filter.expression) {
            report.error(
                format!("{path}.filter.expression"),
                format!("must be a valid CEL expression, {e}"),
            );
        }
    }
}

/// A light syntax check of a CEL expression: brackets balance and string literals end.
/// Weft has no CEL parser; this catches the typos that make Envoy reject the filter.
fn check_cel_shape(expr: &str) -> Result<(), String> {
    if expr.trim().is_empty() {
        return Err("Syntax error: expression is empty".to_string());
    }
    let mut stack = Vec::new();
    let mut chars = expr.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' | '\'' => loop {
                match chars.next() {
                    None => return Err("Syntax error: unterminated string literal".to_string()),
                    Some('\\') => {
                        chars.next();
                    }
                    Some(q) if q == c => break,
                    Some(_) => {}
                }
            },
            '(' | '[' | '{' => stack.push(c),
            ')' | ']' | '}' => {
                let open = match c {
                    ')' => '(',
                    ']' => '[',
                    _ => '{',
                };
                if stack.pop() != Some(open) {
                    return Err(format!("Syntax error: unexpected '{c}'"));
                }
            }
            _ => {}
        }
    }
    match stack.last() {
        Some(c) => Err(format!("Syntax error: unclosed '{c}'")),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {

    fn check(spec: &str) -> Result<Vec<String>, String> {
        crate::validate::testing::check(crate::Kind::Telemetry, spec)
    }

    #[test]
    fn sampling_percentage_is_a_percentage() {
        assert!(check(
            "  tracing:\n  - randomSamplingPercentage: 0\n  - randomSamplingPercentage: 100\n"
        )
        .is_ok());
        let err = check("  tracing:\n  - randomSamplingPercentage: 100.5\n").unwrap_err();
        assert!(
            err.contains("randomSamplingPercentage must be in range [0.0, 100.0]"),
            "{err}"
        );
        let err = check("  tracing:\n  - randomSamplingPercentage: -1\n").unwrap_err();
        assert!(err.contains("spec.tracing[0].randomSamplingPercentage in body should be greater than or equal to 0"), "{err}");
    }

    #[test]
    fn tag_overrides_and_metric_selectors() {
        assert!(check("  metrics:\n  - overrides:\n    - match: {metric: REQUEST_COUNT, mode: SERVER}\n      tagOverrides:\n        x: {value: request.host}\n        y: {operation: REMOVE}\n").is_ok());
        let err = check("  metrics:\n  - overrides:\n    - tagOverrides:\n        x: {operation: UPSERT, value: \"\"}\n").unwrap_err();
        assert!(err.contains("spec.metrics[0].overrides[0].tagOverrides[x]: Invalid value: \"object\": value must be set when operation is UPSERT"), "{err}");
        let err = check(
            "  metrics:\n  - overrides:\n    - match: {metric: REQUEST_COUNT, customMetric: foo}\n",
        )
        .unwrap_err();
        assert!(err.contains("only one of metric or customMetric"), "{err}");
        let err = check("  metrics:\n  - overrides:\n    - match: {metric: REQUEST_TOTAL}\n")
            .unwrap_err();
        assert!(
            err.contains("Unsupported value: \"REQUEST_TOTAL\""),
            "{err}"
        );
    }

    #[test]
    fn durations_providers_and_filters() {
        let err = check("  metrics:\n  - reportingInterval: 100us\n").unwrap_err();
        assert!(
            err.contains("must be a valid duration greater than 1ms"),
            "{err}"
        );
        let err = check("  metrics:\n  - reportingInterval: 1.5ms\n").unwrap_err();
        assert!(
            err.contains("only durations to ms precision are supported"),
            "{err}"
        );
        let err = check("  accessLogging:\n  - providers: [{name: \"\"}]\n").unwrap_err();
        assert!(
            err.contains(
                "spec.accessLogging[0].providers[0].name in body should be at least 1 chars long"
            ),
            "{err}"
        );
        let err =
            check("  accessLogging:\n  - filter: {expression: \"response.code >= 400 && (\"}\n")
                .unwrap_err();
        assert!(err.contains("must be a valid CEL expression"), "{err}");
        assert!(check("  accessLogging:\n  - filter: {expression: \"response.code >= 400 || request.headers['x'] == ')'\"}\n").is_ok());
    }

    #[test]
    fn selector_and_target_refs_are_exclusive() {
        let err = check("  selector: {matchLabels: {app: a}}\n  targetRefs:\n  - {kind: Gateway, group: gateway.networking.k8s.io, name: gw}\n").unwrap_err();
        assert!(
            err.contains("only one of targetRefs or selector can be set"),
            "{err}"
        );
        assert!(check(
            "  targetRefs:\n  - {kind: Gateway, group: gateway.networking.k8s.io, name: gw}\n"
        )
        .is_ok());
        let err = check("  targetRef: {kind: Deployment, group: apps, name: d}\n").unwrap_err();
        assert!(err.contains("targetRef must be to one of"), "{err}");
        let warnings = check("  tracing:\n  - providers: [{name: a}, {name: b}]\n").unwrap();
        assert_eq!(
            warnings,
            vec!["spec.tracing[0].providers: multiple providers is not currently supported"]
        );
    }
}
