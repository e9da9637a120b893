//! VirtualService rule ordering: rules that can never match because an earlier rule
//! already takes all of their traffic.

use super::context::{origin, Context};
use super::messages::{
    go_quote, VIRTUAL_SERVICE_INEFFECTIVE_MATCH, VIRTUAL_SERVICE_UNREACHABLE_RULE,
};
use super::Message;
use crate::networking::virtual_service::{HttpMatchRequest, HttpRoute, StringMatch};
use std::collections::BTreeMap;

/// What a rule check found, before it is tied to a resource.
#[derive(Debug, PartialEq, Eq)]
enum Finding {
    Unreachable {
        rule: String,
        reason: &'static str,
    },
    Ineffective {
        rule: String,
        matchn: String,
        dup: String,
    },
}

/// schema.ValidationAnalyzer.VirtualService, the rule-ordering part: Istio reports these
/// during validation as warnings that analysis turns into IST0130 and IST0131. Plain
/// schema errors are `weft validate`'s job.
pub(super) fn unreachable_rules(ctx: &Context<'_>, out: &mut Vec<Message>) {
    for (r, vs) in ctx.virtual_services() {
        let mut findings = Vec::new();
        let http_names: Vec<String> = vs
            .http
            .iter()
            .enumerate()
            .map(|(i, route)| http_route_name(route, i))
            .collect();
        let http_matches: Vec<Vec<HttpMatchRequest>> = vs
            .http
            .iter()
            .map(|route| {
                route
                    .r#match
                    .iter()
                    .map(|m| HttpMatchRequest {
                        name: None,
                        ..m.clone()
                    })
                    .collect()
            })
            .collect();
        let http_match_names =
            |rule: usize, i: usize| match vs.http[rule].r#match[i].name.as_deref() {
                Some(n) if !n.is_empty() => go_quote(n),
                _ => format!("#{i}"),
            };
        check_order(&http_matches, &http_names, http_match_names, &mut findings);
        findings.extend(overlapping_prefixes(&vs.http));

        let numbered = |n: usize| (0..n).map(|i| format!("#{i}")).collect::<Vec<_>>();
        let tcp: Vec<_> = vs.tcp.iter().map(|t| t.r#match.clone()).collect();
        check_order(
            &tcp,
            &numbered(tcp.len()),
            |_, i| format!("#{i}"),
            &mut findings,
        );
        let tls: Vec<_> = vs.tls.iter().map(|t| t.r#match.clone()).collect();
        check_order(
            &tls,
            &numbered(tls.len()),
            |_, i| format!("#{i}"),
            &mut findings,
        );

        for f in findings {
            out.push(match f {
                Finding::Unreachable { rule, reason } => VIRTUAL_SERVICE_UNREACHABLE_RULE
                    .message(origin(r), &[rule.into(), reason.into()]),
                Finding::Ineffective { rule, matchn, dup } => VIRTUAL_SERVICE_INEFFECTIVE_MATCH
                    .message(origin(r), &[rule.into(), matchn.into(), dup.into()]),
            });
        }
    }
}

/// `"name"` for a named HTTP rule, `#index` otherwise.
fn http_route_name(route: &HttpRoute, index: usize) -> String {
    match route.name.as_deref() {
        Some(n) if !n.is_empty() => go_quote(n),
        _ => format!("#{index}"),
    }
}

/// Rules are tried in order, so a rule after a catch-all (no matches) never runs, and a
/// match equal to an earlier one never wins.
fn check_order<M: PartialEq>(
    rules: &[Vec<M>],
    names: &[String],
    match_name: impl Fn(usize, usize) -> String,
    findings: &mut Vec<Finding>,
) {
    let mut seen: Vec<(&M, usize)> = Vec::new();
    let mut catch_all = false;
    for (rule, matches) in rules.iter().enumerate() {
        let unreachable = |reason| Finding::Unreachable {
            rule: names[rule].clone(),
            reason,
        };
        if matches.is_empty() {
            if catch_all {
                findings.push(unreachable("only the last rule can have no matches"));
            }
            catch_all = true;
            continue;
        }
        let mut duplicates = 0;
        for (i, m) in matches.iter().enumerate() {
            if catch_all {
                findings.push(unreachable("route without matches defined before"));
                continue;
            }
            if let Some((_, earlier)) = seen.iter().find(|(s, _)| *s == m) {
                findings.push(Finding::Ineffective {
                    rule: names[rule].clone(),
                    matchn: match_name(rule, i),
                    dup: names[*earlier].clone(),
                });
                duplicates += 1;
            } else {
                seen.push((m, rule));
            }
        }
        if duplicates == matches.len() {
            findings.push(unreachable("all matches used by prior rules"));
        }
    }
}

/// One URI-prefix match, reduced to the conditions Istio compares for overlap.
struct PrefixMatch {
    rule: String,
    matchn: String,
    prefix: String,
    port: u32,
    method: String,
    authority: String,
    headers: BTreeMap<String, String>,
    query_params: BTreeMap<String, String>,
    without_headers: BTreeMap<String, String>,
}

fn exact_or_prefix(m: Option<&StringMatch>) -> String {
    let Some(m) = m else {
        return String::new();
    };
    match (m.exact.as_deref(), m.prefix.as_deref()) {
        (Some(e), _) if !e.is_empty() => format!("exact:{e}"),
        (_, Some(p)) if !p.is_empty() => format!("prefix:{p}"),
        _ => String::new(),
    }
}

fn condition_map(m: &BTreeMap<String, StringMatch>) -> BTreeMap<String, String> {
    m.iter()
        .map(|(k, v)| (k.clone(), exact_or_prefix(Some(v))))
        .collect()
}

/// A later prefix match that an earlier, shorter prefix with the same (or looser)
/// conditions already covers: `/debug` before `/debugs`.
fn overlapping_prefixes(routes: &[HttpRoute]) -> Vec<Finding> {
    let mut prefixes = Vec::new();
    let mut seen: Vec<HttpMatchRequest> = Vec::new();
    for (rule, route) in routes.iter().enumerate() {
        if route.r#match.is_empty() {
            // Nothing after a catch-all rule is reachable; `check_order` says so.
            break;
        }
        for (i, m) in route.r#match.iter().enumerate() {
            let unnamed = HttpMatchRequest {
                name: None,
                ..m.clone()
            };
            // Exact duplicates are reported by `check_order` already.
            if seen.contains(&unnamed) {
                continue;
            }
            seen.push(unnamed);
            let Some(prefix) = m.uri.as_ref().and_then(|u| u.prefix.clone()) else {
                continue;
            };
            if prefix.is_empty() {
                continue;
            }
            let method = match exact_or_prefix(m.method.as_ref()) {
                // Without a method condition Istio assumes GET for this comparison.
                s if s.is_empty() => "exact:GET".to_string(),
                s => s,
            };
            prefixes.push(PrefixMatch {
                rule: http_route_name(route, rule),
                matchn: match m.name.as_deref() {
                    Some(n) if !n.is_empty() => go_quote(n),
                    _ => format!("#{i}"),
                },
                prefix,
                port: m.port.unwrap_or(0),
                method,
                authority: exact_or_prefix(m.authority.as_ref()),
                headers: condition_map(&m.headers),
                query_params: condition_map(&m.query_params),
                without_headers: condition_map(&m.without_headers),
            });
        }
    }
    let mut findings = Vec::new();
    for (i, a) in prefixes.iter().enumerate() {
        for b in &prefixes[i + 1..] {
            if a.prefix != b.prefix && covers(a, b) {
                findings.push(Finding::Ineffective {
                    rule: b.rule.clone(),
                    matchn: format!("{} of prefix {}", b.matchn, b.prefix),
                    dup: format!("{} of prefix {} on {}", a.matchn, a.prefix, a.rule),
                });
            }
        }
    }
    findings
}

/// Whether every request `b` matches is also matched by the earlier `a`.
fn covers(a: &PrefixMatch, b: &PrefixMatch) -> bool {
    let looser = |a: &str, b: &str| a == b || a.starts_with(b);
    let maps = |a: &BTreeMap<String, String>, b: &BTreeMap<String, String>| {
        a.len() == b.len()
            && a.iter()
                .all(|(k, v)| b.get(k).is_some_and(|bv| looser(v, bv)))
    };
    b.prefix.starts_with(&a.prefix)
        && a.port == b.port
        && looser(&a.method, &b.method)
        && looser(&a.authority, &b.authority)
        && maps(&a.headers, &b.headers)
        && maps(&a.query_params, &b.query_params)
        && maps(&a.without_headers, &b.without_headers)
}

#[cfg(test)]
mod tests {
    use crate::analyze::{analyze_only, Options};
    use crate::parse_documents;

    fn run(spec: &str) -> Vec<String> {
        let yaml = format!(
            "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: vs, namespace: ns}}\nspec: {spec}\n"
        );
        let resources: Vec<_> = parse_documents(&yaml)
            .into_iter()
            .map(|r| r.expect("test YAML parses"))
            .collect();
        analyze_only(
            &resources,
            &Options::default(),
            "schema.ValidationAnalyzer.VirtualService",
        )
        .expect("analyzer exists")
        .iter()
        .map(|m| m.message.clone())
        .collect()
    }

    const ROUTE: &str = "route: [{destination: {host: a}}]";

    #[test]
    fn duplicate_and_catch_all_rules() {
        let spec = format!(
            "{{hosts: [a], http: [{{name: first, match: [{{uri: {{exact: /a}}}}], {ROUTE}}}, \
             {{match: [{{name: again, uri: {{exact: /a}}}}], {ROUTE}}}, {{{ROUTE}}}, {{{ROUTE}}}]}}"
        );
        assert_eq!(
            run(&spec),
            vec![
                "VirtualService rule #1 not used (all matches used by prior rules).",
                "VirtualService rule #3 not used (only the last rule can have no matches).",
                "VirtualService rule #1 match \"again\" is not used (duplicate/overlapping match in rule \"first\").",
            ]
        );
    }

    #[test]
    fn shorter_prefix_first_shadows_longer() {
        let spec = format!(
            "{{hosts: [a], http: [{{match: [{{uri: {{prefix: /debug}}}}], {ROUTE}}}, \
             {{match: [{{uri: {{prefix: /debugs}}}}], {ROUTE}}}, \
             {{match: [{{uri: {{prefix: /debugz}}, method: {{exact: POST}}}}], {ROUTE}}}]}}"
        );
        assert_eq!(
            run(&spec),
            vec!["VirtualService rule #1 match #0 of prefix /debugs is not used (duplicate/overlapping match in rule #0 of prefix /debug on #0)."]
        );
    }

    #[test]
    fn tcp_rules_after_catch_all() {
        let spec = "{hosts: [a], tcp: [{route: [{destination: {host: a}}]}, {match: [{port: 1}], route: [{destination: {host: a}}]}]}";
        assert_eq!(
            run(spec),
            vec!["VirtualService rule #1 not used (route without matches defined before)."]
        );
    }
}
