//! The policies that apply to one workload -> Envoy RBAC filters, one per action in the
//! order Envoy must run them: AUDIT (LOG), DENY, ALLOW. Policies annotated
//! `istio.io/dry-run: "true"` go into shadow rules (evaluated and logged, never enforced).
//! CUSTOM policies need an external authorizer weftd does not configure: they are reported
//! and not enforced.

use super::rule::{Effect, RuleModel};
use super::trust_domain::TrustDomains;
use crate::translate::proto::any;
use envoy_types::pb::envoy::config::listener::v3::{filter, Filter};
use envoy_types::pb::envoy::config::rbac::v3::{
    permission::Rule as PermRule, principal::Identifier, rbac::Action, Permission, Policy,
    Principal, Rbac,
};
use envoy_types::pb::envoy::extensions::filters::http::rbac::v3::Rbac as HttpRbac;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    http_filter, HttpFilter,
};
use envoy_types::pb::envoy::extensions::filters::network::rbac::v3::Rbac as NetworkRbac;
use weft_config::security::authorization_policy::{Action as PolicyAction, AuthorizationPolicy};

pub const HTTP_RBAC: &str = "envoy.filters.http.rbac";
pub const NETWORK_RBAC: &str = "envoy.filters.network.rbac";
pub const DRY_RUN_ANNOTATION: &str = "istio.io/dry-run";
const TCP_STAT_PREFIX: &str = "tcp.";

/// One policy as the builder needs it.
#[derive(Clone, Copy, Debug)]
pub struct PolicyRef<'a> {
    pub namespace: &'a str,
    pub name: &'a str,
    pub dry_run: bool,
    pub spec: &'a AuthorizationPolicy,
}

/// The RBAC filters for one workload.
#[derive(Clone, Debug, Default)]
pub struct Filters {
    /// For every HTTP connection manager, before the router.
    pub http: Vec<HttpFilter>,
    /// For every TCP filter chain, before the TCP proxy.
    pub tcp: Vec<Filter>,
    /// `namespace/name` of CUSTOM policies, which are not enforced.
    pub not_enforced: Vec<String>,
}

impl Filters {
    pub fn is_empty(&self) -> bool {
        self.http.is_empty() && self.tcp.is_empty()
    }
}

/// Builds the filters for `policies` (already selected for the workload).
pub fn build(policies: &[PolicyRef<'_>], tds: &TrustDomains) -> Filters {
    let mut out = Filters::default();
    for p in policies
        .iter()
        .filter(|p| p.spec.action == PolicyAction::Custom)
    {
        out.not_enforced.push(format!("{}/{}", p.namespace, p.name));
    }
    for (action, rbac_action) in [
        (PolicyAction::Audit, Action::Log),
        (PolicyAction::Deny, Action::Deny),
        (PolicyAction::Allow, Action::Allow),
    ] {
        let of_action: Vec<&PolicyRef<'_>> = policies
            .iter()
            .filter(|p| p.spec.action == action)
            .collect();
        if of_action.is_empty() {
            continue;
        }
        let (rules, shadow_rules) = rules(&of_action, rbac_action, false, tds);
        out.http.push(HttpFilter {
            name: HTTP_RBAC.to_string(),
            config_type: Some(http_filter::ConfigType::TypedConfig(any(
                "envoy.extensions.filters.http.rbac.v3.RBAC",
                &HttpRbac {
                    shadow_rules_stat_prefix: shadow_prefix(&shadow_rules),
                    rules,
                    shadow_rules,
                    ..Default::default()
                },
            ))),
            ..Default::default()
        });
        let (rules, shadow_rules) = rules_tcp(&of_action, rbac_action, tds);
        out.tcp.push(Filter {
            name: NETWORK_RBAC.to_string(),
            config_type: Some(filter::ConfigType::TypedConfig(any(
                "envoy.extensions.filters.network.rbac.v3.RBAC",
                &NetworkRbac {
                    shadow_rules_stat_prefix: shadow_prefix(&shadow_rules),
                    rules,
                    shadow_rules,
                    stat_prefix: TCP_STAT_PREFIX.to_string(),
                    ..Default::default()
                },
            ))),
        });
    }
    out
}

fn rules_tcp(
    policies: &[&PolicyRef<'_>],
    action: Action,
    tds: &TrustDomains,
) -> (Option<Rbac>, Option<Rbac>) {
    rules(policies, action, true, tds)
}

/// Istio's stat prefix for dry-run results.
fn shadow_prefix(shadow: &Option<Rbac>) -> String {
    match shadow.as_ref().map(|r| r.action) {
        Some(a) if a == Action::Deny as i32 => "istio_dry_run_deny_".into(),
        _ => "istio_dry_run_allow_".into(),
    }
}

/// (enforced, shadow) rules: each present only when some policy of its kind exists.
fn rules(
    policies: &[&PolicyRef<'_>],
    action: Action,
    for_tcp: bool,
    tds: &TrustDomains,
) -> (Option<Rbac>, Option<Rbac>) {
    let effect = if action == Action::Allow {
        Effect::Allow
    } else {
        Effect::DenyOrAudit
    };
    let mut enforced: Option<Rbac> = None;
    let mut shadow: Option<Rbac> = None;
    for p in policies {
        let target = if p.dry_run {
            &mut shadow
        } else {
            &mut enforced
        };
        let rbac = target.get_or_insert_with(|| Rbac {
            action: action as i32,
            ..Default::default()
        });
        if p.spec.rules.is_empty() {
            // An ALLOW policy without rules allows nothing (Istio's "allow-nothing"); for
            // the other actions it matches nothing and adds no policy.
            if action == Action::Allow {
                rbac.policies.insert(policy_name(p, 0), match_nothing());
            }
            continue;
        }
        for (i, rule) in p.spec.rules.iter().enumerate() {
            let name = policy_name(p, i);
            let generated = RuleModel::new(p.namespace, rule).and_then(|mut m| {
                if tds.has_aliases() {
                    m.migrate_trust_domain(tds);
                }
                m.generate(for_tcp, effect)
            });
            match generated {
                Ok(policy) => {
                    rbac.policies.insert(name, policy);
                }
                Err(why) => {
                    tracing::debug!(rule = %name, tcp = for_tcp, %why, "authorization rule left out")
                }
            }
        }
    }
    (enforced, shadow)
}

fn policy_name(p: &PolicyRef<'_>, rule: usize) -> String {
    format!("ns[{}]-policy[{}]-rule[{rule}]", p.namespace, p.name)
}

fn match_nothing() -> Policy {
    Policy {
        permissions: vec![Permission {
            rule: Some(PermRule::NotRule(Box::new(Permission {
                rule: Some(PermRule::Any(true)),
            }))),
        }],
        principals: vec![Principal {
            identifier: Some(Identifier::NotId(Box::new(Principal {
                identifier: Some(Identifier::Any(true)),
            }))),
        }],
        ..Default::default()
    }
}
