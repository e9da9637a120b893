//! Forwarding routes: destinations (single or weighted), rewrites, timeout, retries,
//! mirrors and consistent-hash keys -> Envoy `RouteAction`.

use super::context::{RouteCtx, ScopedRoute};
use super::header::{header_edits, HeaderEdits};
use super::proto::{duration, integer_percent, percent, regex_matcher, zero_duration};
use super::{hash_policy, retry};
use crate::registry::resolve_short_name;
use crate::translate::names::outbound_cluster;
use envoy_types::pb::envoy::config::core::v3::RuntimeFractionalPercent;
use envoy_types::pb::envoy::config::route::v3::route_action::{
    ClusterSpecifier, HostRewriteSpecifier, RequestMirrorPolicy,
};
use envoy_types::pb::envoy::config::route::v3::weighted_cluster::{cluster_weight, ClusterWeight};
use envoy_types::pb::envoy::config::route::v3::{Route, RouteAction, WeightedCluster};
use envoy_types::pb::envoy::r#type::matcher::v3::RegexMatchAndSubstitute;
use envoy_types::pb::envoy::r#type::v3::FractionalPercent;
use envoy_types::pb::google::protobuf::{BoolValue, UInt32Value};
use weft_config::networking::virtual_service::{Destination, HttpRoute};

/// A destination resolved to its cluster.
#[derive(Clone, Debug, PartialEq)]
pub struct Target {
    pub host: String,
    pub port: u32,
    pub subset: Option<String>,
    pub cluster: String,
}

/// Resolves a destination as Istio does: short hosts in the rule's namespace; the port from
/// the destination, else the service's only port, else the listener port.
pub fn target(ctx: &RouteCtx, d: &Destination, namespace: &str) -> Target {
    let host = resolve_short_name(&d.host, namespace);
    let port = d.port.as_ref().and_then(|p| p.number).unwrap_or_else(|| {
        match ctx
            .snapshot
            .registry
            .service(&host)
            .map(|s| s.ports.as_slice())
        {
            Some([only]) => only.number,
            _ => ctx.listen_port,
        }
    });
    let subset = d.subset.clone().filter(|s| !s.is_empty());
    let cluster = outbound_cluster(port, subset.as_deref().unwrap_or(""), &host);
    Target {
        host,
        port,
        subset,
        cluster,
    }
}

fn mirror_policy(cluster: String, fraction: FractionalPercent) -> RequestMirrorPolicy {
    RequestMirrorPolicy {
        cluster,
        runtime_fraction: Some(RuntimeFractionalPercent {
            default_value: Some(fraction),
            ..Default::default()
        }),
        // Istio does not let mirrored requests decide tracing on their own.
        trace_sampled: Some(BoolValue { value: false }),
        ..Default::default()
    }
}

/// `mirror` (with `mirrorPercentage`/`mirrorPercent`) and `mirrors`; an explicit 0% turns a
/// mirror off, unset means 100%.
fn mirrors(ctx: &RouteCtx, s: &ScopedRoute) -> Vec<RequestMirrorPolicy> {
    let http = &s.http;
    let mut out = Vec::new();
    if let Some(m) = &http.mirror {
        let legacy = http.mirror_percent.or(http.mirror_percent_snake);
        let fraction = match (&http.mirror_percentage, legacy) {
            (Some(p), _) => (p.value > 0.0).then(|| percent(p)),
            (None, Some(p)) => (p > 0).then(|| integer_percent(p)),
            (None, None) => Some(integer_percent(100)),
        };
        if let Some(f) = fraction {
            out.push(mirror_policy(target(ctx, m, &s.namespace).cluster, f));
        }
    }
    for m in &http.mirrors {
        let fraction = match &m.percentage {
            Some(p) => (p.value > 0.0).then(|| percent(p)),
            None => Some(integer_percent(100)),
        };
        if let Some(f) = fraction {
            out.push(mirror_policy(
                target(ctx, &m.destination, &s.namespace).cluster,
                f,
            ));
        }
    }
    out
}

fn rewrites(http: &HttpRoute, action: &mut RouteAction, mut authority: Option<String>) {
    if let Some(rw) = &http.rewrite {
        if let Some(re) = &rw.uri_regex_rewrite {
            action.regex_rewrite = Some(RegexMatchAndSubstitute {
                pattern: Some(regex_matcher(&re.r#match)),
                substitution: re.rewrite.clone(),
            });
        } else if let Some(uri) = rw.uri.as_deref().filter(|u| !u.is_empty()) {
            // Envoy swaps the matched part of the path: the prefix for prefix matches,
            // the whole path for exact and regex matches.
            action.prefix_rewrite = uri.to_string();
        }
        if let Some(a) = rw.authority.as_deref().filter(|a| !a.is_empty()) {
            authority = Some(a.to_string());
        }
    }
    if let Some(a) = authority {
        action.host_rewrite_specifier = Some(HostRewriteSpecifier::HostRewriteLiteral(a));
    }
}

/// Fills `route` with the forwarding action of `s.http`. Destination-level header edits
/// of a single destination go on the route; those of weighted destinations on their
/// cluster weight (see [`single_destination_edits`]).
pub fn forward(ctx: &RouteCtx, s: &ScopedRoute, route_authority: Option<String>) -> RouteAction {
    let http = &s.http;
    let mut action = RouteAction {
        // Istio disables Envoy's 15s default: a zero timeout means none.
        timeout: Some(http.timeout.map_or_else(zero_duration, duration)),
        ..Default::default()
    };
    rewrites(http, &mut action, route_authority);
    action.request_mirror_policies = mirrors(ctx, s);

    let proxy_ns = ctx.proxy_namespace().to_string();
    let mut consistent_hash = false;
    let add_hash = |action: &mut RouteAction, t: &Target| {
        if let Some(h) = hash_policy::for_destination(
            ctx.snapshot,
            &proxy_ns,
            &t.host,
            t.subset.as_deref(),
            t.port,
        ) {
            action.hash_policy.push(h);
            return true;
        }
        false
    };

    let weighted: Vec<_> = if http.route.len() > 1 {
        // A zero weight only takes a destination out of rotation.
        http.route
            .iter()
            .filter(|d| d.weight.unwrap_or(0) > 0)
            .collect()
    } else {
        Vec::new()
    };
    if weighted.is_empty() {
        if let Some(d) = http.route.first() {
            let t = target(ctx, &d.destination, &s.namespace);
            consistent_hash = add_hash(&mut action, &t);
            action.cluster_specifier = Some(ClusterSpecifier::Cluster(t.cluster));
        }
    } else {
        let mut clusters = Vec::new();
        for d in weighted {
            let t = target(ctx, &d.destination, &s.namespace);
            add_hash(&mut action, &t);
            let mut cw = ClusterWeight {
                name: t.cluster,
                weight: Some(UInt32Value {
                    value: d.weight.unwrap_or(0) as u32,
                }),
                ..Default::default()
            };
            if let Some(h) = &d.headers {
                let e = header_edits(h);
                cw.request_headers_to_add = e.request_add;
                cw.request_headers_to_remove = e.request_remove;
                cw.response_headers_to_add = e.response_add;
                cw.response_headers_to_remove = e.response_remove;
                cw.host_rewrite_specifier = e
                    .authority
                    .map(cluster_weight::HostRewriteSpecifier::HostRewriteLiteral);
            }
            clusters.push(cw);
        }
        action.cluster_specifier = Some(ClusterSpecifier::WeightedClusters(WeightedCluster {
            clusters,
            ..Default::default()
        }));
    }
    action.retry_policy = retry::retry_policy(http.retries.as_ref(), consistent_hash);
    action
}

/// Header edits of the single destination, appended to the route's own edits. A
/// destination's authority only applies when the rule did not rewrite it already.
pub fn single_destination_edits(http: &HttpRoute, route: &mut Route, action: &mut RouteAction) {
    if http.route.len() != 1 {
        return;
    }
    let Some(h) = &http.route[0].headers else {
        return;
    };
    let HeaderEdits {
        request_add,
        request_remove,
        response_add,
        response_remove,
        authority,
    } = header_edits(h);
    route.request_headers_to_add.extend(request_add);
    route.request_headers_to_remove.extend(request_remove);
    route.response_headers_to_add.extend(response_add);
    route.response_headers_to_remove.extend(response_remove);
    if let (Some(a), None) = (authority, &action.host_rewrite_specifier) {
        action.host_rewrite_specifier = Some(HostRewriteSpecifier::HostRewriteLiteral(a));
    }
}
