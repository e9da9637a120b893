//! AuthorizationPolicy -> Envoy RBAC, as Istio translates it. The policies that apply to a
//! proxy (its namespace's and the root namespace's, by selector) become one
//! `envoy.filters.http.rbac` per action (AUDIT as LOG, then DENY, then ALLOW) in every
//! HTTP connection manager a sidecar serves inbound or a gateway serves, and the matching
//! `envoy.filters.network.rbac` filters in front of every TCP proxy there. CUSTOM
//! policies are reported and not enforced (weftd configures no ext_authz).

mod builder;
mod hook;
mod matchers;
mod rule;
mod trust_domain;

#[cfg(test)]
mod tests;

pub use builder::{build, Filters, PolicyRef, DRY_RUN_ANNOTATION, HTTP_RBAC, NETWORK_RBAC};
pub use trust_domain::TrustDomains;

use crate::model::{MeshSnapshot, Proxy, ProxyKind};
use envoy_types::pb::envoy::config::core::v3::TrafficDirection;
use envoy_types::pb::envoy::config::listener::v3::Listener;
use std::collections::HashSet;
use std::sync::{Mutex, OnceLock};
use weft_config::{Resource, Spec};

/// Istio's inbound chain that refuses traffic to the capture port itself: nothing to authorize.
const BLACKHOLE_CHAIN: &str = "virtualInbound-blackhole";

/// Whether `r` is an AuthorizationPolicy that applies to a workload in `namespace` with
/// `labels`: in its namespace or the root namespace, selected by labels (no selector: all).
/// Policies attached by `targetRef(s)` apply to Gateway API gateways and waypoints, which
/// weftd does not run: they never apply here.
pub fn applies(
    r: &Resource,
    namespace: &str,
    labels: &std::collections::BTreeMap<String, String>,
    root_namespace: &str,
) -> bool {
    let Spec::AuthorizationPolicy(p) = &r.spec else {
        return false;
    };
    let ns = r.metadata.namespace.as_str();
    if ns != namespace && ns != root_namespace {
        return false;
    }
    if p.target_ref.is_some() || !p.target_refs.is_empty() {
        return false;
    }
    p.selector
        .as_ref()
        .is_none_or(|s| s.match_labels.iter().all(|(k, v)| labels.get(k) == Some(v)))
}

/// The policies that apply to `proxy`, root namespace first, then by namespace and name.
pub fn policies_for<'a>(snapshot: &'a MeshSnapshot, proxy: &Proxy) -> Vec<PolicyRef<'a>> {
    let root = snapshot.mesh.root_namespace.as_str();
    let mut out: Vec<PolicyRef<'a>> = snapshot
        .resources
        .iter()
        .filter(|r| applies(r, &proxy.namespace, &proxy.labels, root))
        .filter_map(|r| match &r.spec {
            Spec::AuthorizationPolicy(p) => Some(PolicyRef {
                namespace: &r.metadata.namespace,
                name: &r.metadata.name,
                dry_run: r
                    .metadata
                    .annotations
                    .get(DRY_RUN_ANNOTATION)
                    .is_some_and(|v| v.eq_ignore_ascii_case("true")),
                spec: p.as_ref(),
            }),
            _ => None,
        })
        .collect();
    out.sort_by_key(|p| (p.namespace != root, p.namespace, p.name));
    out
}

/// The RBAC filters for `proxy` (empty when no policy applies).
pub fn filters_for(snapshot: &MeshSnapshot, proxy: &Proxy) -> Filters {
    let policies = policies_for(snapshot, proxy);
    let tds = TrustDomains::new(&snapshot.mesh.trust_domain, &[]);
    let filters = build(&policies, &tds);
    warn_not_enforced(&filters.not_enforced);
    filters
}

/// Warns once per CUSTOM policy rather than on every push.
fn warn_not_enforced(names: &[String]) {
    static WARNED: OnceLock<Mutex<HashSet<String>>> = OnceLock::new();
    let mut warned = WARNED
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    for name in names {
        if warned.insert(name.clone()) {
            tracing::warn!(
                policy = %name,
                "AuthorizationPolicy with action CUSTOM needs an external authorizer (ext_authz), which weftd does not configure: stored, not enforced"
            );
        }
    }
}

/// Adds the proxy's RBAC filters to the listeners they belong on: a sidecar's inbound
/// listeners, every listener of a gateway.
pub fn apply(snapshot: &MeshSnapshot, proxy: &Proxy, listeners: &mut [Listener]) {
    let filters = filters_for(snapshot, proxy);
    if filters.is_empty() {
        return;
    }
    for l in listeners {
        let wanted = proxy.kind == ProxyKind::Router
            || l.traffic_direction == TrafficDirection::Inbound as i32;
        if !wanted {
            continue;
        }
        for chain in l
            .filter_chains
            .iter_mut()
            .filter(|c| c.name != BLACKHOLE_CHAIN)
        {
            hook::insert(chain, &filters);
        }
    }
}
