//! Judging responses against a check's expectations. Pure, so it is unit-tested alone.

use crate::client::Response;
use crate::scenario::{Check, Expect};
use std::collections::BTreeMap;

/// Largest distance, in percentage points, between an expected and a seen traffic share.
pub const SPLIT_TOLERANCE: f64 = 5.0;

/// Why one response does not meet `expect`, or None when it does.
pub fn judge(expect: &Expect, resp: &Response) -> Option<String> {
    if expect.refused != (resp.status == 0) {
        return Some(if expect.refused {
            format!(
                "expected the connection refused or closed without an answer, got {}",
                resp.summary()
            )
        } else {
            format!("no HTTP answer: {}", resp.body)
        });
    }
    if let Some(status) = expect.status {
        if resp.status != status {
            return Some(format!("expected status {status}, got {}", resp.summary()));
        }
    }
    let echo = resp.echo();
    if let Some(prefix) = expect.served_by {
        match resp.served_by() {
            Some(name) if name.starts_with(prefix) => {}
            Some(name) => return Some(format!("expected {prefix}* to answer, {name} did")),
            None => return Some(format!("expected {prefix}* to answer: {}", resp.summary())),
        }
    }
    let upstream = |field: &str| {
        echo.as_ref()
            .and_then(|e| e[field].as_str().map(str::to_owned))
    };
    for (field, want) in [
        ("path", expect.upstream_path),
        ("host", expect.upstream_host),
    ] {
        if let Some(want) = want {
            let got = upstream(field);
            if got.as_deref() != Some(want) {
                return Some(format!("expected upstream {field} {want:?}, got {got:?}"));
            }
        }
    }
    for (name, want) in &expect.upstream_headers {
        let got = echo
            .as_ref()
            .and_then(|e| e["headers"][*name].as_str().map(str::to_owned));
        if got.as_deref() != *want {
            return Some(format!(
                "expected upstream header {name}: {want:?}, got {got:?}"
            ));
        }
    }
    for (pointer, want) in &expect.upstream_fields {
        let got = echo
            .as_ref()
            .and_then(|e| e.pointer(pointer))
            .map(|v| match v {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            });
        if got.as_deref() != Some(*want) {
            return Some(format!(
                "expected upstream {pointer} = {want:?}, got {got:?}: {}",
                resp.summary()
            ));
        }
    }
    for (name, text) in &expect.response_header_contains {
        match resp.headers.get(*name) {
            Some(v) if v.contains(text) => {}
            got => {
                return Some(format!(
                    "expected response header {name} containing {text:?}, got {got:?}"
                ))
            }
        }
    }
    for (name, want) in &expect.response_headers {
        let got = resp.headers.get(*name).map(String::as_str);
        if got != *want {
            return Some(format!(
                "expected response header {name}: {want:?}, got {got:?}"
            ));
        }
    }
    if let Some(text) = expect.body_contains {
        if !resp.body.contains(text) {
            return Some(format!(
                "expected body with {text:?}, got {}",
                resp.summary()
            ));
        }
    }
    if let Some(min) = expect.min_elapsed {
        // Envoy's timers tick in milliseconds and may fire a tick early.
        if resp.elapsed + TIMER_SLACK < min {
            return Some(format!(
                "answered in {:?}, expected at least {min:?}",
                resp.elapsed
            ));
        }
    }
    if let Some(max) = expect.max_elapsed {
        if resp.elapsed > max {
            return Some(format!(
                "answered in {:?}, expected at most {max:?}",
                resp.elapsed
            ));
        }
    }
    None
}

/// Why the responses as a whole miss the check's split and status counts, or None.
pub fn judge_all(check: &Check, responses: &[Response]) -> Option<String> {
    let n = responses.len();
    if n == 0 {
        return Some("no responses".into());
    }
    let failures: Vec<String> = responses
        .iter()
        .filter_map(|r| judge(&check.each, r))
        .collect();
    if let Some(first) = failures.first() {
        return Some(format!(
            "{} of {n} responses wrong; first: {first}",
            failures.len()
        ));
    }
    if !check.split.is_empty() {
        let mut seen = BTreeMap::<String, usize>::new();
        for r in responses {
            *seen
                .entry(r.served_by().unwrap_or_else(|| "-".into()))
                .or_default() += 1;
        }
        for (prefix, want) in &check.split {
            let got: usize = seen
                .iter()
                .filter(|(name, _)| name.starts_with(prefix))
                .map(|(_, c)| c)
                .sum();
            let share = got as f64 * 100.0 / n as f64;
            if (share - want).abs() > SPLIT_TOLERANCE {
                return Some(format!(
                    "{prefix} got {share:.1}% of {n}, expected {want}% ±{SPLIT_TOLERANCE}; seen {seen:?}"
                ));
            }
        }
    }
    if check.same_instance {
        let names: std::collections::BTreeSet<String> =
            responses.iter().filter_map(Response::served_by).collect();
        if names.len() != 1 {
            return Some(format!(
                "expected one instance to answer all {n}, saw {names:?}"
            ));
        }
    }
    if let Some(min) = check.min_instances {
        let names: std::collections::BTreeSet<String> =
            responses.iter().filter_map(Response::served_by).collect();
        if names.len() < min {
            return Some(format!(
                "expected at least {min} instances to answer {n} requests, saw {names:?}"
            ));
        }
    }
    if let Some((at_least, min, max)) = check.slow_count {
        let slow = responses
            .iter()
            .filter(|r| r.elapsed + TIMER_SLACK >= at_least)
            .count();
        if slow < min || slow > max {
            return Some(format!(
                "{slow} of {n} responses took {at_least:?} or more, expected {min}..={max}"
            ));
        }
    }
    if let Some(cookie) = check.resend_cookie {
        let first = responses[0].headers.get("set-cookie");
        if !first.is_some_and(|c| c.starts_with(&format!("{cookie}="))) {
            return Some(format!(
                "expected the first response to set cookie {cookie}, got set-cookie {first:?}"
            ));
        }
    }
    for (status, min, max) in &check.status_counts {
        let got = responses.iter().filter(|r| r.status == *status).count();
        if got < *min || got > *max {
            let mut all = BTreeMap::<u16, usize>::new();
            for r in responses {
                *all.entry(r.status).or_default() += 1;
            }
            return Some(format!(
                "{got} responses with status {status}, expected {min}..={max}; statuses {all:?}"
            ));
        }
    }
    None
}

/// How early a delay may end and still count as the configured delay.
const TIMER_SLACK: std::time::Duration = std::time::Duration::from_millis(20);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::get;
    use std::time::Duration;

    fn echo(name: &str, status: u16) -> Response {
        let body = serde_json::json!({"name": name, "path": "/p", "host": "reviews:9080",
                                      "headers": {"x-a": "1"}});
        Response {
            status,
            headers: [("x-echo-name".to_owned(), name.to_owned())].into(),
            body: body.to_string(),
            elapsed: Duration::from_millis(10),
        }
    }

    #[test]
    fn single_response_expectations() {
        let ok = get("http://reviews:9080/p")
            .status(200)
            .served_by("reviews-v2")
            .upstream_path("/p")
            .upstream_header("x-a", Some("1"))
            .upstream_header("x-b", None)
            .max_ms(100);
        assert_eq!(judge(&ok.each, &echo("reviews-v2", 200)), None);
        assert!(judge(&ok.each, &echo("reviews-v1", 200)).is_some());
        assert!(judge(&ok.each, &echo("reviews-v2", 503)).is_some());
        let slow = get("http://x/").min_ms(50);
        assert!(judge(&slow.each, &echo("a", 200))
            .unwrap()
            .contains("at least"));
        let hdr = get("http://x/").response_header("x-echo-name", None);
        assert!(judge(&hdr.each, &echo("a", 200)).is_some());
    }

    #[test]
    fn refusals_are_expected_or_reported() {
        let refused = Response {
            status: 0,
            headers: BTreeMap::new(),
            body: "connection reset".into(),
            elapsed: Duration::ZERO,
        };
        let want_refusal = get("http://x/").refused();
        assert_eq!(judge(&want_refusal.each, &refused), None);
        assert!(judge(&want_refusal.each, &echo("a", 200))
            .unwrap()
            .contains("refused or closed"));
        assert!(judge(&get("http://x/").each, &refused)
            .unwrap()
            .contains("connection reset"));
    }

    #[test]
    fn splits_are_judged_within_tolerance() {
        let check =
            get("http://reviews:9080/").split(&[("reviews-v1", 80.0), ("reviews-v2", 20.0)]);
        let mut rs: Vec<Response> = (0..77).map(|_| echo("reviews-v1", 200)).collect();
        rs.extend((0..23).map(|_| echo("reviews-v2", 200)));
        assert_eq!(judge_all(&check, &rs), None);
        let rs: Vec<Response> = (0..100).map(|_| echo("reviews-v1", 200)).collect();
        assert!(judge_all(&check, &rs)
            .unwrap()
            .contains("reviews-v1 got 100.0%"));
    }

    #[test]
    fn instances_fields_and_slow_responses() {
        let check = get("http://x/")
            .min_instances(2)
            .slow_count(100, 1, 1)
            .upstream_field("/headers/x-a", "1");
        let mut slow = echo("b", 200);
        slow.elapsed = Duration::from_millis(150);
        assert_eq!(judge_all(&check, &[echo("a", 200), slow.clone()]), None);
        assert!(judge_all(&check, &[echo("a", 200), echo("a", 200)])
            .unwrap()
            .contains("at least 2 instances"));
        assert!(judge_all(&check, &[echo("a", 200), echo("b", 200)])
            .unwrap()
            .contains("0 of 2"));
        let wrong = get("http://x/").upstream_field("/tls/sni", "a.example.com");
        assert!(judge(&wrong.each, &echo("a", 200)).is_some());
    }

    #[test]
    fn resent_cookie_must_be_set_first() {
        let check = get("http://x/").resend_cookie("sticky");
        let mut first = echo("a", 200);
        first
            .headers
            .insert("set-cookie".into(), "sticky=\"abc\"; Max-Age=60".into());
        assert_eq!(judge_all(&check, &[first.clone(), echo("a", 200)]), None);
        assert!(judge_all(&check, &[echo("a", 200), echo("a", 200)]).is_some());
        assert!(judge_all(&check, &[first, echo("b", 200)]).is_some());
    }

    #[test]
    fn status_counts_are_ranges() {
        let check = get("http://x/").status_count(503, 1, 2);
        let rs = vec![echo("a", 200), echo("a", 503)];
        assert_eq!(judge_all(&check, &rs), None);
        let rs = vec![echo("a", 200)];
        assert!(judge_all(&check, &rs).is_some());
    }
}
