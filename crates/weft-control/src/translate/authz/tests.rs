//! Which proxies get RBAC filters, where they sit, and what Istio's rules turn into.

use super::*;
use crate::translate::tests::{gateway_proxy, sidecar, MESH};
use crate::translate::{generate, Generated};
use envoy_types::pb::envoy::config::listener::v3::filter::ConfigType as FilterConfig;
use envoy_types::pb::envoy::config::rbac::v3::Rbac;
use envoy_types::pb::envoy::extensions::filters::http::rbac::v3::Rbac as HttpRbac;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    http_filter, HttpConnectionManager,
};
use envoy_types::pb::envoy::extensions::filters::network::rbac::v3::Rbac as NetworkRbac;
use prost::Message;

const TCP_SERVICE: &str = r#"
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: reviews-db, namespace: default}
spec:
  hosts: [reviews-db.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 5000, name: tcp-db}]
  workloadSelector: {labels: {app: reviews}}
"#;

fn snapshot(extra: &str) -> MeshSnapshot {
    let yaml = format!(
        "{}\n---\n{TCP_SERVICE}\n---\n{extra}",
        MESH.replace("CERT", "/none").replace("KEY", "/none")
    );
    let resources = weft_config::parse_documents(&yaml)
        .into_iter()
        .map(|r| r.expect("valid test resource"))
        .collect();
    MeshSnapshot::build(1, resources)
}

fn policy(name: &str, ns: &str, spec: &str) -> String {
    format!(
        "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {{name: {name}, namespace: {ns}}}\nspec: {spec}\n"
    )
}

/// (listener, HTTP filter names) for every connection manager.
fn hcm_filters(g: &Generated) -> Vec<(String, Vec<String>)> {
    let mut out = Vec::new();
    for l in &g.listeners {
        for f in l.filter_chains.iter().flat_map(|c| &c.filters) {
            if let Some(FilterConfig::TypedConfig(any)) = &f.config_type {
                if f.name == crate::translate::filter::HCM {
                    let h = HttpConnectionManager::decode(any.value.as_slice()).unwrap();
                    out.push((
                        l.name.clone(),
                        h.http_filters.iter().map(|f| f.name.clone()).collect(),
                    ));
                }
            }
        }
    }
    out
}

/// The HTTP RBAC rules of the first inbound connection manager, in filter order.
fn http_rules(g: &Generated) -> Vec<Option<Rbac>> {
    let f = g
        .listeners
        .iter()
        .filter(|l| l.traffic_direction == TrafficDirection::Inbound as i32)
        .flat_map(|l| &l.filter_chains)
        .flat_map(|c| &c.filters)
        .find(|f| f.name == crate::translate::filter::HCM)
        .expect("an inbound connection manager");
    let Some(FilterConfig::TypedConfig(any)) = &f.config_type else {
        panic!("typed config")
    };
    let h = HttpConnectionManager::decode(any.value.as_slice()).unwrap();
    h.http_filters
        .iter()
        .filter(|f| f.name == HTTP_RBAC)
        .map(|f| match &f.config_type {
            Some(http_filter::ConfigType::TypedConfig(a)) => {
                HttpRbac::decode(a.value.as_slice()).unwrap().rules
            }
            _ => panic!("typed config"),
        })
        .collect()
}

/// Network RBAC rules on the TCP inbound chain (port 5000).
fn tcp_rules(g: &Generated) -> Vec<Option<Rbac>> {
    g.listeners
        .iter()
        .filter(|l| l.traffic_direction == TrafficDirection::Inbound as i32)
        .flat_map(|l| &l.filter_chains)
        .flat_map(|c| &c.filters)
        .filter(|f| f.name == NETWORK_RBAC)
        .map(|f| match &f.config_type {
            Some(FilterConfig::TypedConfig(a)) => {
                NetworkRbac::decode(a.value.as_slice()).unwrap().rules
            }
            _ => panic!("typed config"),
        })
        .collect()
}

#[test]
fn no_policy_no_filter() {
    let g = generate(&snapshot(""), &sidecar());
    assert!(hcm_filters(&g)
        .iter()
        .all(|(_, names)| !names.contains(&HTTP_RBAC.to_string())));
    assert!(tcp_rules(&g).is_empty());
}

#[test]
fn inbound_connection_managers_get_deny_then_allow_before_the_router() {
    let s = snapshot(&format!(
        "{}---\n{}",
        policy(
            "allow",
            "default",
            "{rules: [{to: [{operation: {methods: [GET]}}]}]}"
        ),
        policy(
            "deny",
            "default",
            "{action: DENY, rules: [{to: [{operation: {paths: [/admin*]}}]}]}"
        )
    ));
    let g = generate(&s, &sidecar());
    for (listener, names) in hcm_filters(&g) {
        let rbac: Vec<usize> = names
            .iter()
            .enumerate()
            .filter(|(_, n)| *n == HTTP_RBAC)
            .map(|(i, _)| i)
            .collect();
        let router = names.iter().position(|n| n == "envoy.filters.http.router");
        if listener.starts_with("127.0.0.11_") {
            assert_eq!(rbac.len(), 2, "{listener}: {names:?}");
            assert!(rbac.iter().all(|i| Some(*i) < router), "{names:?}");
        } else {
            assert!(
                rbac.is_empty(),
                "outbound {listener} has no RBAC: {names:?}"
            );
        }
    }
    let rules = http_rules(&g);
    let actions: Vec<i32> = rules.iter().map(|r| r.as_ref().unwrap().action).collect();
    assert_eq!(actions, vec![1, 0], "DENY (1) runs before ALLOW (0)");
    assert!(rules[1]
        .as_ref()
        .unwrap()
        .policies
        .contains_key("ns[default]-policy[allow]-rule[0]"));
}

#[test]
fn tcp_chains_drop_http_only_allow_rules_and_widen_deny_rules() {
    let s = snapshot(&format!(
        "{}---\n{}",
        policy(
            "allow",
            "default",
            "{rules: [{to: [{operation: {methods: [GET]}}]}]}"
        ),
        policy(
            "deny",
            "default",
            "{action: DENY, rules: [{to: [{operation: {methods: [POST], ports: ['5000']}}]}]}"
        )
    ));
    let rules = tcp_rules(&generate(&s, &sidecar()));
    assert_eq!(rules.len(), 2);
    let deny = rules[0].as_ref().unwrap();
    assert_eq!(deny.action, 1);
    assert_eq!(
        deny.policies.len(),
        1,
        "the port condition stays, the method goes"
    );
    let allow = rules[1].as_ref().unwrap();
    assert!(
        allow.policies.is_empty(),
        "an HTTP-only ALLOW rule allows no TCP"
    );
}

#[test]
fn scope_namespace_root_namespace_and_selector() {
    let s = snapshot(&format!(
        "{}---\n{}---\n{}---\n{}",
        policy("mine", "default", "{action: DENY, rules: [{}]}"),
        policy("other-ns", "prod", "{action: DENY, rules: [{}]}"),
        policy(
            "mesh-reviews",
            "istio-system",
            "{action: DENY, selector: {matchLabels: {app: reviews}}, rules: [{}]}"
        ),
        policy(
            "mesh-ratings",
            "istio-system",
            "{action: DENY, selector: {matchLabels: {app: ratings}}, rules: [{}]}"
        ),
    ));
    let names: Vec<String> = policies_for(&s, &sidecar())
        .iter()
        .map(|p| format!("{}/{}", p.namespace, p.name))
        .collect();
    assert_eq!(names, vec!["istio-system/mesh-reviews", "default/mine"]);
    let gw: Vec<&str> = policies_for(&s, &gateway_proxy())
        .iter()
        .map(|p| p.name)
        .collect();
    assert!(gw.is_empty(), "{gw:?}");
}

#[test]
fn custom_is_reported_and_not_enforced() {
    let s = snapshot(&policy(
        "ext",
        "default",
        "{action: CUSTOM, provider: {name: my-authz}, rules: [{}]}",
    ));
    let f = filters_for(&s, &sidecar());
    assert_eq!(f.not_enforced, vec!["default/ext".to_string()]);
    assert!(f.is_empty());
}

#[test]
fn dry_run_goes_to_shadow_rules() {
    let s = snapshot(
        "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: try, namespace: default, annotations: {istio.io/dry-run: 'true'}}\nspec: {action: DENY, rules: [{}]}\n",
    );
    let g = generate(&s, &sidecar());
    assert_eq!(http_rules(&g), vec![None], "nothing enforced");
}
