//! One VirtualService's HTTP rules -> ordered Envoy routes (rule order is precedence: Envoy
//! takes the first route that matches).

use super::context::{RouteCtx, ScopedRoute};
use super::cors::cors_policy;
use super::fault::http_fault;
use super::header::header_edits;
use super::redirect::{direct_response, redirect_action};
use super::route_action::{forward, single_destination_edits};
use super::route_match::{applies_to_source, is_catch_all, route_match};
use super::{CORS_FILTER, FAULT_FILTER};
use envoy_types::pb::envoy::config::route::v3::route::Action;
use envoy_types::pb::envoy::config::route::v3::route_action::ClusterSpecifier;
use envoy_types::pb::envoy::config::route::v3::route_match::PathSpecifier;
use envoy_types::pb::envoy::config::route::v3::{Decorator, Route};
use envoy_types::util::pack_any;
use weft_config::networking::virtual_service::HttpMatchRequest;

/// Routes for a VirtualService's rules, in order, stopping after a catch-all (nothing after
/// it could ever match).
pub fn routes(ctx: &RouteCtx, rules: &[ScopedRoute]) -> Vec<Route> {
    let mut out = Vec::new();
    for rule in rules {
        if rule.http.r#match.is_empty() {
            out.extend(translate(ctx, rule, None));
            break;
        }
        let mut catch_all = false;
        for m in &rule.http.r#match {
            if let Some(r) = translate(ctx, rule, Some(m)) {
                catch_all = is_catch_all(r.r#match.as_ref().expect("always set"));
                out.push(r);
                if catch_all {
                    break;
                }
            }
        }
        if catch_all {
            break;
        }
    }
    out
}

/// Istio's trace operation: `host:port/path` when the route has one cluster, else
/// `<vs name>:<port>/path`.
fn operation(route: &Route, vs_name: &str, port: u32) -> String {
    let path = match route
        .r#match
        .as_ref()
        .and_then(|m| m.path_specifier.as_ref())
    {
        Some(PathSpecifier::Prefix(p)) => format!("{p}*"),
        Some(PathSpecifier::Path(p)) => p.clone(),
        Some(PathSpecifier::SafeRegex(r)) => r.regex.clone(),
        _ => "/*".into(),
    };
    if let Some(Action::Route(a)) = &route.action {
        if let Some(ClusterSpecifier::Cluster(c)) = &a.cluster_specifier {
            let parts: Vec<&str> = c.split('|').collect();
            if let [_, p, _, host] = parts.as_slice() {
                return format!("{host}:{p}{path}");
            }
        }
    }
    format!("{vs_name}:{port}{path}")
}

/// One Envoy route for one match of a rule; `None` when the match does not apply to this
/// proxy or port, or the rule cannot be expressed.
fn translate(ctx: &RouteCtx, rule: &ScopedRoute, m: Option<&HttpMatchRequest>) -> Option<Route> {
    let http = &rule.http;
    if let Some(m) = m {
        if m.port.is_some_and(|p| p != 0 && p != ctx.listen_port) {
            return None;
        }
        if !applies_to_source(
            m,
            &ctx.gateways,
            &ctx.proxy.labels,
            ctx.proxy_namespace(),
            &rule.vs_namespace,
        ) {
            return None;
        }
    }
    let mut name = http.name.clone().unwrap_or_default();
    if let Some(match_name) = m.and_then(|m| m.name.as_deref()).filter(|n| !n.is_empty()) {
        name = format!("{name}.{match_name}");
    }
    let mut out = Route {
        name,
        r#match: Some(route_match(m)),
        stat_prefix: m.and_then(|m| m.stat_prefix.clone()).unwrap_or_default(),
        ..Default::default()
    };
    let mut authority = None;
    if let Some(h) = &http.headers {
        let e = header_edits(h);
        out.request_headers_to_add = e.request_add;
        out.request_headers_to_remove = e.request_remove;
        out.response_headers_to_add = e.response_add;
        out.response_headers_to_remove = e.response_remove;
        authority = e.authority;
    }
    out.action = Some(if let Some(r) = &http.redirect {
        Action::Redirect(redirect_action(r, ctx.listen_port, ctx.is_tls)?)
    } else if let Some(d) = &http.direct_response {
        Action::DirectResponse(direct_response(d))
    } else if !http.route.is_empty() {
        let mut action = forward(ctx, rule, authority);
        single_destination_edits(http, &mut out, &mut action);
        Action::Route(action)
    } else {
        // Neither a destination nor an answer (a bare delegate that found no delegate).
        return None;
    });
    out.decorator = Some(Decorator {
        operation: operation(&out, &rule.vs_name, ctx.listen_port),
        ..Default::default()
    });
    if let Some(fault) = http.fault.as_ref().and_then(http_fault) {
        out.typed_per_filter_config
            .insert(FAULT_FILTER.into(), pack_any(fault));
    }
    if let Some(c) = &http.cors_policy {
        out.typed_per_filter_config
            .insert(CORS_FILTER.into(), pack_any(cors_policy(c)));
    }
    Some(out)
}
