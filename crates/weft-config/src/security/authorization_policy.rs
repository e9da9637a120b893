//! AuthorizationPolicy (security.istio.io): spec types and validation.

use crate::common::{PolicyTargetReference, WorkloadSelector};
use crate::meta::ObjectMeta;
use crate::security::authz_attributes as attr;
use crate::security::is_default;
use crate::validate::common::validate_policy_attachment;
use crate::validate::Report;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Access control for the selected workloads: which requests to allow, deny, audit, or
/// hand to an external authorizer.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AuthorizationPolicy {
    /// Workloads the policy applies to; none means every workload in the namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<WorkloadSelector>,
    /// A single Gateway API object or Service the policy attaches to instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_ref: Option<PolicyTargetReference>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub target_refs: Vec<PolicyTargetReference>,
    /// A request matches the policy if it matches any rule; no rules matches nothing.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<Rule>,
    #[serde(default, skip_serializing_if = "is_default")]
    pub action: Action,
    /// The extension provider that decides requests for the CUSTOM action.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<ExtensionProvider>,
}

/// What happens to a request that matches the policy.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Action {
    #[default]
    Allow,
    Deny,
    /// Logs the decision without enforcing it.
    Audit,
    /// Asks the external authorizer named by `provider`.
    Custom,
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Action::Allow => "ALLOW",
            Action::Deny => "DENY",
            Action::Audit => "AUDIT",
            Action::Custom => "CUSTOM",
        })
    }
}

/// A mesh config `extensionProviders` entry, by name.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExtensionProvider {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
}

/// Matches a request when all of `from`, `to` and `when` match (each list is an OR).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Rule {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub from: Vec<RuleFrom>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub to: Vec<RuleTo>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub when: Vec<Condition>,
}

/// `Rule.From`: one source a request may come from.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RuleFrom {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<Source>,
}

/// `Rule.To`: one operation a request may perform.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RuleTo {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation: Option<Operation>,
}

/// Who sent the request. Fields are ANDed; values within a field are ORed. Principals,
/// namespaces and trust domains need mutual TLS; request principals need a JWT.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Source {
    /// Peer identities (`cluster.local/ns/default/sa/productpage`), `*` prefix/suffix.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub principals: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_principals: Vec<String>,
    /// JWT `iss/sub` pairs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub request_principals: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_request_principals: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespaces: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_namespaces: Vec<String>,
    /// `serviceAccount` or `namespace/serviceAccount`; exclusive with principals/namespaces.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub service_accounts: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_service_accounts: Vec<String>,
    /// Peer IPs or CIDRs, as seen on the connection.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ip_blocks: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_ip_blocks: Vec<String>,
    /// Original client IPs (X-Forwarded-For or PROXY protocol).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remote_ip_blocks: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_remote_ip_blocks: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trust_domains: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_trust_domains: Vec<String>,
}

impl Source {
    fn is_empty(&self) -> bool {
        *self == Source::default()
    }

    /// Fields that a TCP (non-HTTP) connection can be matched on.
    fn has_tcp_fields(&self) -> bool {
        [
            &self.principals,
            &self.not_principals,
            &self.namespaces,
            &self.not_namespaces,
            &self.ip_blocks,
            &self.not_ip_blocks,
            &self.remote_ip_blocks,
            &self.not_remote_ip_blocks,
            &self.service_accounts,
            &self.not_service_accounts,
        ]
        .iter()
        .any(|v| !v.is_empty())
    }
}

/// What the request does. Only `ports` applies to TCP traffic; the rest need HTTP.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Operation {
    /// Host header values, `*` prefix/suffix.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_hosts: Vec<String>,
    /// Destination ports, as decimal strings.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_ports: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub methods: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_methods: Vec<String>,
    /// URL paths, `*` prefix/suffix or `{*}`/`{**}` templates.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub paths: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_paths: Vec<String>,
}

/// A condition on one request attribute (`source.ip`, `request.headers[x]`, ...).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Condition {
    pub key: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_values: Vec<String>,
}

const NEVER_TRIGGERED: &str = "without `rules` is meaningless as it will never be triggered, add an empty rule `{}` if you want it be triggered for every request";

/// Istio's webhook and CRD rules for AuthorizationPolicy.
pub fn validate(spec: &AuthorizationPolicy, _meta: &ObjectMeta, report: &mut Report) {
    validate_policy_attachment(
        spec.selector.as_ref(),
        spec.target_ref.as_ref(),
        &spec.target_refs,
        report,
    );
    validate_action(spec, report);
    for (i, rule) in spec.rules.iter().enumerate() {
        validate_rule(spec.action, rule, i, report);
    }
}

fn validate_action(spec: &AuthorizationPolicy, report: &mut Report) {
    match spec.action {
        Action::Custom if spec.rules.is_empty() => {
            report.error("spec.rules", format!("CUSTOM action {NEVER_TRIGGERED}"));
        }
        Action::Custom => {
            if spec.provider.as_ref().is_none_or(|p| p.name.is_empty()) {
                report.error("spec.provider.name", "`provider.name` must not be empty");
            }
            for (i, rule) in spec.rules.iter().enumerate() {
                check_custom_rule(rule, i, report);
            }
        }
        Action::Deny if spec.rules.is_empty() => {
            report.error("spec.rules", format!("DENY action {NEVER_TRIGGERED}"));
        }
        _ => {}
    }
    if spec.provider.is_some() && spec.action != Action::Custom {
        report.error(
            "spec.provider",
            format!(
                "`provider` must not be with non CUSTOM action, found {}",
                spec.action
            ),
        );
    }
}

/// The external authorizer sees the request before identities are known to it, so the
/// CUSTOM action cannot match on peer or JWT identities.
fn check_custom_rule(rule: &Rule, i: usize, report: &mut Report) {
    let unsupported = |report: &mut Report, path: String, name: &str| {
        report.error(
            path,
            format!("{name} is currently not supported with CUSTOM action"),
        );
    };
    for (j, from) in rule.from.iter().enumerate() {
        let Some(src) = &from.source else { continue };
        let path = format!("spec.rules[{i}].from[{j}].source");
        for (values, name) in [
            (&src.namespaces, "From.Namespaces"),
            (&src.not_namespaces, "From.NotNamespaces"),
            (&src.service_accounts, "From.ServiceAccounts"),
            (&src.not_service_accounts, "From.NotServiceAccounts"),
            (&src.trust_domains, "From.TrustDomains"),
            (&src.not_trust_domains, "From.NotTrustDomains"),
            (&src.principals, "From.Principals"),
            (&src.not_principals, "From.NotPrincipals"),
            (&src.request_principals, "From.RequestPrincipals"),
            (&src.not_request_principals, "From.NotRequestPrincipals"),
        ] {
            if !values.is_empty() {
                unsupported(report, path.clone(), name);
            }
        }
    }
    for (j, when) in rule.when.iter().enumerate() {
        let key = when.key.as_str();
        if matches!(
            key,
            "source.namespace"
                | "source.serviceAccount"
                | "source.trustDomain"
                | "source.principal"
        ) || key.starts_with("request.auth.")
        {
            unsupported(report, format!("spec.rules[{i}].when[{j}].key"), key);
        }
    }
}

fn validate_rule(action: Action, rule: &Rule, i: usize, report: &mut Report) {
    let at = format!("found at rule {i}");
    let (mut from_exists, mut tcp_in_from) = (false, false);
    for (j, from) in rule.from.iter().enumerate() {
        let path = format!("spec.rules[{i}].from[{j}].source");
        let Some(src) = &from.source else {
            report.error(path, format!("`from.source` must not be nil, {at}"));
            continue;
        };
        from_exists = true;
        validate_source(src, &path, &at, report);
        tcp_in_from |= src.has_tcp_fields();
    }
    let (mut to_exists, mut tcp_in_to) = (false, false);
    for (j, to) in rule.to.iter().enumerate() {
        let path = format!("spec.rules[{i}].to[{j}].operation");
        let Some(op) = &to.operation else {
            report.error(path, format!("`to.operation` must not be nil, {at}"));
            continue;
        };
        to_exists = true;
        validate_operation(op, &path, &at, report);
        tcp_in_to |= !op.ports.is_empty() || !op.not_ports.is_empty();
    }
    for (j, cond) in rule.when.iter().enumerate() {
        validate_condition(cond, &format!("spec.rules[{i}].when[{j}]"), report);
    }
    // A DENY rule that only names HTTP attributes matches every TCP connection, since
    // those attributes cannot be checked there: Istio warns rather than rejects.
    let http_only = (from_exists && !to_exists && !tcp_in_from) || (to_exists && !tcp_in_to);
    if action == Action::Deny && http_only {
        report.warn(
            format!("spec.rules[{i}]"),
            "configured AuthorizationPolicy will deny all traffic to TCP ports under its scope due to the use of only HTTP attributes in a DENY rule; it is recommended to explicitly specify the port",
        );
    }
}

fn validate_source(src: &Source, path: &str, at: &str, report: &mut Report) {
    let has_sa = !src.service_accounts.is_empty() || !src.not_service_accounts.is_empty();
    let has_identity = !src.principals.is_empty()
        || !src.not_principals.is_empty()
        || !src.namespaces.is_empty()
        || !src.not_namespaces.is_empty();
    if has_sa && has_identity {
        // The CRD's CEL rule and the webhook say the same thing in different words.
        report.error(
            path,
            format!("Invalid value: \"object\": Cannot set serviceAccounts with namespaces or principals; cannot set serviceAccounts with namespaces or principals, {at}"),
        );
    }
    if src.is_empty() {
        report.error(path, format!("`from.source` must not be empty, {at}"));
    }
    let checks: [ListCheck; 14] = [
        ("Principals", &src.principals, attr::check_empty_values),
        (
            "RequestPrincipals",
            &src.request_principals,
            attr::check_empty_values,
        ),
        ("Namespaces", &src.namespaces, attr::check_empty_values),
        (
            "ServiceAccounts",
            &src.service_accounts,
            attr::check_service_accounts,
        ),
        (
            "TrustDomains",
            &src.trust_domains,
            attr::check_trust_domain_values,
        ),
        ("IpBlocks", &src.ip_blocks, ips),
        ("RemoteIpBlocks", &src.remote_ip_blocks, ips),
        (
            "NotPrincipals",
            &src.not_principals,
            attr::check_empty_values,
        ),
        (
            "NotRequestPrincipals",
            &src.not_request_principals,
            attr::check_empty_values,
        ),
        (
            "NotNamespaces",
            &src.not_namespaces,
            attr::check_empty_values,
        ),
        (
            "NotServiceAccounts",
            &src.not_service_accounts,
            attr::check_service_accounts,
        ),
        (
            "NotTrustDomains",
            &src.not_trust_domains,
            attr::check_trust_domain_values,
        ),
        ("NotIpBlocks", &src.not_ip_blocks, ips),
        ("NotRemoteIpBlocks", &src.not_remote_ip_blocks, ips),
    ];
    for (name, values, check) in checks {
        if let Err(e) = check(name, values) {
            report.error(format!("{path}.{}", camel(name)), e);
        }
    }
}

/// A list field's name as Istio's messages spell it, its values, and its check.
type ListCheck<'a> = (
    &'static str,
    &'a [String],
    fn(&str, &[String]) -> Result<(), String>,
);

/// IP lists must be non-empty strings that parse as addresses or CIDR ranges.
fn ips(name: &str, values: &[String]) -> Result<(), String> {
    attr::check_empty_values(name, values)?;
    attr::validate_ips(values)
}

fn ports(name: &str, values: &[String]) -> Result<(), String> {
    attr::check_empty_values(name, values)?;
    attr::validate_ports(values)
}

fn paths(name: &str, values: &[String]) -> Result<(), String> {
    attr::check_empty_values(name, values)?;
    attr::check_path_templates(name, values)
}

/// `NotIpBlocks` -> `notIpBlocks`, so paths use the YAML field names.
fn camel(name: &str) -> String {
    let mut out = name.to_string();
    if let Some(first) = out.get_mut(0..1) {
        first.make_ascii_lowercase();
    }
    out
}

fn validate_operation(op: &Operation, path: &str, at: &str, report: &mut Report) {
    if *op == Operation::default() {
        report.error(path, format!("`to.operation` must not be empty, {at}"));
    }
    let checks: [ListCheck; 8] = [
        ("Ports", &op.ports, ports),
        ("Methods", &op.methods, attr::check_empty_values),
        ("Paths", &op.paths, paths),
        ("Hosts", &op.hosts, attr::check_empty_values),
        ("NotPorts", &op.not_ports, ports),
        ("NotMethods", &op.not_methods, attr::check_empty_values),
        ("NotPaths", &op.not_paths, paths),
        ("NotHosts", &op.not_hosts, attr::check_empty_values),
    ];
    for (name, values, check) in checks {
        if let Err(e) = check(name, values) {
            report.error(format!("{path}.{}", camel(name)), e);
        }
    }
}

fn validate_condition(cond: &Condition, path: &str, report: &mut Report) {
    let key = cond.key.as_str();
    if key.is_empty() {
        report.error(format!("{path}.key"), "`key` must not be empty");
        return;
    }
    if cond.values.is_empty() && cond.not_values.is_empty() {
        report.error(
            path,
            format!("at least one of `values` or `notValues` must be set for key {key}"),
        );
        return;
    }
    if let Err(e) = attr::validate_attribute(key, &cond.values) {
        report.error(
            format!("{path}.values"),
            format!("invalid `value` for `key` {key}: {e}"),
        );
    }
    if let Err(e) = attr::validate_attribute(key, &cond.not_values) {
        report.error(
            format!("{path}.notValues"),
            format!("invalid `notValue` for `key` {key}: {e}"),
        );
    }
}

#[cfg(test)]
#[path = "authorization_policy_tests.rs"]
mod tests;
