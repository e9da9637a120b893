//! One AuthorizationPolicy rule -> one Envoy RBAC `Policy`, as Istio builds it: every
//! `from` source becomes a principal and every `to` operation a permission (each ANDing
//! its fields, values ORed, `not*` values negated), `when` conditions joining whichever
//! side they describe. For TCP, HTTP-only fields cannot be evaluated: in an ALLOW policy the
//! whole rule is dropped (it can only allow less), in DENY and AUDIT policies just the
//! condition is (the rule can only deny or audit more).

use super::matchers::{self as m, JWT_FILTER};
use super::trust_domain::TrustDomains;
use envoy_types::pb::envoy::config::core::v3::TypedExtensionConfig;
use envoy_types::pb::envoy::config::rbac::v3::{
    permission::{self, Rule as PermRule},
    principal::{self, Authenticated, Identifier},
    Permission, Policy, Principal,
};
use envoy_types::pb::envoy::config::route::v3::HeaderMatcher;
use envoy_types::pb::envoy::extensions::path::r#match::uri_template::v3::UriTemplateMatchConfig;
use envoy_types::pb::envoy::r#type::matcher::v3::{
    path_matcher, MetadataMatcher, PathMatcher, StringMatcher,
};
use weft_config::security::authorization_policy::Rule;

/// Which way a policy's matches go, for how generation errors are handled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Effect {
    Allow,
    /// DENY, and AUDIT (Envoy's LOG): a dropped condition widens the match.
    DenyOrAudit,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Attr {
    DestIp,
    DestPort,
    Sni,
    EnvoyFilter,
    SrcIp,
    RemoteIp,
    SrcNamespace,
    SrcServiceAccount,
    SrcPrincipal,
    RequestPrincipal,
    Audiences,
    Presenter,
    RequestHeader,
    Claims,
    Host,
    Path,
    Method,
}

impl Attr {
    /// Generated from all values at once (one matcher ORing them).
    fn aggregates(self) -> bool {
        matches!(
            self,
            Attr::EnvoyFilter
                | Attr::RequestPrincipal
                | Attr::Audiences
                | Attr::Presenter
                | Attr::Claims
        )
    }
}

#[derive(Clone, Debug)]
struct Cond {
    attr: Attr,
    key: String,
    values: Vec<String>,
    not_values: Vec<String>,
}

/// A rule split into Envoy's two sides.
#[derive(Clone, Debug, Default)]
pub struct RuleModel {
    permissions: Vec<Vec<Cond>>,
    principals: Vec<Vec<Cond>>,
    /// The policy's namespace: service accounts without one are in it.
    namespace: String,
}

fn push(list: &mut Vec<Cond>, attr: Attr, key: &str, values: &[String], not_values: &[String]) {
    if values.is_empty() && not_values.is_empty() {
        return;
    }
    list.push(Cond {
        attr,
        key: key.to_string(),
        values: values.to_vec(),
        not_values: not_values.to_vec(),
    });
}

impl RuleModel {
    /// The rule's conditions; an unknown `when` key is an error (the rule is skipped).
    pub fn new(namespace: &str, rule: &Rule) -> Result<RuleModel, String> {
        let mut base_perm = Vec::new();
        let mut base_princ = Vec::new();
        for w in &rule.when {
            let k = w.key.as_str();
            let (list, attr) = match k {
                "destination.ip" => (&mut base_perm, Attr::DestIp),
                "destination.port" => (&mut base_perm, Attr::DestPort),
                "connection.sni" => (&mut base_perm, Attr::Sni),
                _ if k.starts_with("experimental.envoy.filters.") => {
                    (&mut base_perm, Attr::EnvoyFilter)
                }
                "source.ip" => (&mut base_princ, Attr::SrcIp),
                "remote.ip" => (&mut base_princ, Attr::RemoteIp),
                "source.namespace" => (&mut base_princ, Attr::SrcNamespace),
                "source.serviceAccount" => (&mut base_princ, Attr::SrcServiceAccount),
                "source.principal" => (&mut base_princ, Attr::SrcPrincipal),
                "request.auth.principal" => (&mut base_princ, Attr::RequestPrincipal),
                "request.auth.audiences" => (&mut base_princ, Attr::Audiences),
                "request.auth.presenter" => (&mut base_princ, Attr::Presenter),
                _ if k.starts_with("request.headers")
                    || k.starts_with("request.experimental.inline.headers") =>
                {
                    (&mut base_princ, Attr::RequestHeader)
                }
                _ if k.starts_with("request.auth.claims") => (&mut base_princ, Attr::Claims),
                _ => return Err(format!("unknown attribute {k}")),
            };
            push(list, attr, k, &w.values, &w.not_values);
        }
        let mut model = RuleModel {
            namespace: namespace.to_string(),
            ..Default::default()
        };
        for from in &rule.from {
            // Source fields first, then the `when` conditions, as Istio orders them.
            let mut list = Vec::new();
            if let Some(s) = &from.source {
                push(
                    &mut list,
                    Attr::SrcPrincipal,
                    "source.principal",
                    &s.principals,
                    &s.not_principals,
                );
                push(
                    &mut list,
                    Attr::RequestPrincipal,
                    "request.auth.principal",
                    &s.request_principals,
                    &s.not_request_principals,
                );
                push(
                    &mut list,
                    Attr::SrcServiceAccount,
                    "source.serviceAccount",
                    &s.service_accounts,
                    &s.not_service_accounts,
                );
                push(
                    &mut list,
                    Attr::SrcNamespace,
                    "source.namespace",
                    &s.namespaces,
                    &s.not_namespaces,
                );
                push(
                    &mut list,
                    Attr::RemoteIp,
                    "remote.ip",
                    &s.remote_ip_blocks,
                    &s.not_remote_ip_blocks,
                );
                push(
                    &mut list,
                    Attr::SrcIp,
                    "source.ip",
                    &s.ip_blocks,
                    &s.not_ip_blocks,
                );
            }
            list.extend(base_princ.iter().cloned());
            model.principals.push(list);
        }
        if rule.from.is_empty() {
            model.principals.push(base_princ);
        }
        for to in &rule.to {
            let mut list = Vec::new();
            if let Some(o) = &to.operation {
                push(&mut list, Attr::Host, ":authority", &o.hosts, &o.not_hosts);
                push(
                    &mut list,
                    Attr::Method,
                    ":method",
                    &o.methods,
                    &o.not_methods,
                );
                push(&mut list, Attr::Path, "path", &o.paths, &o.not_paths);
                push(
                    &mut list,
                    Attr::DestPort,
                    "destination.port",
                    &o.ports,
                    &o.not_ports,
                );
            }
            list.extend(base_perm.iter().cloned());
            model.permissions.push(list);
        }
        if rule.to.is_empty() {
            model.permissions.push(base_perm);
        }
        Ok(model)
    }

    /// Expands source principals in the local trust domain (or an alias) to every alias.
    pub fn migrate_trust_domain(&mut self, tds: &TrustDomains) {
        for list in &mut self.principals {
            for c in list.iter_mut().filter(|c| c.attr == Attr::SrcPrincipal) {
                c.values = tds.replace_aliases(&c.values);
                c.not_values = tds.replace_aliases(&c.not_values);
            }
        }
    }

    /// The Envoy policy; `Err` when the rule must be left out.
    pub fn generate(&self, for_tcp: bool, effect: Effect) -> Result<Policy, String> {
        let permissions = self
            .permissions
            .iter()
            .map(|list| {
                let mut and = Vec::new();
                for c in list {
                    and.extend(self.cond_permissions(c, for_tcp, effect)?);
                }
                if and.is_empty() {
                    and.push(perm(PermRule::Any(true)));
                }
                Ok(perm(PermRule::AndRules(permission::Set { rules: and })))
            })
            .collect::<Result<Vec<_>, String>>()?;
        let principals = self
            .principals
            .iter()
            .map(|list| {
                let mut and = Vec::new();
                for c in list {
                    and.extend(self.cond_principals(c, for_tcp, effect)?);
                }
                if and.is_empty() {
                    and.push(id(Identifier::Any(true)));
                }
                Ok(id(Identifier::AndIds(principal::Set { ids: and })))
            })
            .collect::<Result<Vec<_>, String>>()?;
        Ok(Policy {
            permissions,
            principals,
            ..Default::default()
        })
    }

    fn cond_permissions(
        &self,
        c: &Cond,
        tcp: bool,
        effect: Effect,
    ) -> Result<Vec<Permission>, String> {
        let mut out = Vec::new();
        for (values, negate) in [(&c.values, false), (&c.not_values, true)] {
            if values.is_empty() {
                continue;
            }
            let p = if c.attr.aggregates() {
                tolerate(permission_all(c, values, tcp), effect)?
            } else {
                let mut or = Vec::new();
                for v in values {
                    or.extend(tolerate(permission_one(c, v, tcp), effect)?);
                }
                (!or.is_empty()).then(|| perm(PermRule::OrRules(permission::Set { rules: or })))
            };
            if let Some(p) = p {
                out.push(if negate {
                    perm(PermRule::NotRule(Box::new(p)))
                } else {
                    p
                });
            }
        }
        Ok(out)
    }

    fn cond_principals(
        &self,
        c: &Cond,
        tcp: bool,
        effect: Effect,
    ) -> Result<Vec<Principal>, String> {
        let mut out = Vec::new();
        for (values, negate) in [(&c.values, false), (&c.not_values, true)] {
            if values.is_empty() {
                continue;
            }
            let p = if c.attr.aggregates() {
                tolerate(principal_all(c, values, tcp), effect)?
            } else {
                let mut or = Vec::new();
                for v in values {
                    or.extend(tolerate(self.principal_one(c, v, tcp), effect)?);
                }
                (!or.is_empty()).then(|| id(Identifier::OrIds(principal::Set { ids: or })))
            };
            if let Some(p) = p {
                out.push(if negate {
                    id(Identifier::NotId(Box::new(p)))
                } else {
                    p
                });
            }
        }
        Ok(out)
    }

    fn principal_one(&self, c: &Cond, v: &str, tcp: bool) -> Result<Principal, String> {
        Ok(match c.attr {
            Attr::SrcIp => id(Identifier::DirectRemoteIp(m::cidr(v)?)),
            Attr::RemoteIp => id(Identifier::RemoteIp(m::cidr(v)?)),
            Attr::SrcNamespace => {
                let ns = m::quote_meta(v).replace(r"\*", ".*");
                authenticated(m::regex(&format!(".*/ns/{ns}/.*")))
            }
            Attr::SrcServiceAccount => {
                let (ns, sa) = v.split_once('/').unwrap_or((&self.namespace, v));
                authenticated(m::regex(&format!(
                    "spiffe://.+/ns/{}/(.+/|)sa/{}(/.+)?",
                    ns, sa
                )))
            }
            Attr::SrcPrincipal => authenticated(principal_name(v)),
            Attr::RequestHeader => {
                http_only(c, tcp)?;
                let rest = c
                    .key
                    .strip_prefix("request.experimental.inline.headers")
                    .or_else(|| c.key.strip_prefix("request.headers"))
                    .unwrap_or_default();
                id(Identifier::Header(m::header(
                    m::name_in_brackets(rest)?,
                    v,
                    false,
                )))
            }
            _ => return Err(format!("{} is not a source attribute", c.key)),
        })
    }
}

/// Istio's check: ALLOW fails the rule, DENY/AUDIT drops the condition.
fn tolerate<T>(r: Result<T, String>, effect: Effect) -> Result<Option<T>, String> {
    match (r, effect) {
        (Ok(v), _) => Ok(Some(v)),
        (Err(e), Effect::Allow) => Err(e),
        (Err(e), Effect::DenyOrAudit) => {
            tracing::debug!(error = %e, "authorization condition ignored");
            Ok(None)
        }
    }
}

fn http_only(c: &Cond, tcp: bool) -> Result<(), String> {
    if tcp {
        Err(format!("{:?} is HTTP only", c.key))
    } else {
        Ok(())
    }
}

fn perm(rule: PermRule) -> Permission {
    Permission { rule: Some(rule) }
}

fn id(identifier: Identifier) -> Principal {
    Principal {
        identifier: Some(identifier),
    }
}

fn authenticated(name: StringMatcher) -> Principal {
    id(Identifier::Authenticated(Authenticated {
        principal_name: Some(name),
    }))
}

/// `source.principal` values match the SPIFFE URI; a leading `*` becomes a regex.
fn principal_name(v: &str) -> StringMatcher {
    m::string_with_prefix(v, "spiffe://")
}

fn header_perm(h: HeaderMatcher) -> Permission {
    perm(PermRule::Header(h))
}

#[allow(deprecated)] // `metadata` is what Istio sends; Envoy still honours it.
fn metadata_perm(md: MetadataMatcher) -> Permission {
    perm(PermRule::Metadata(md))
}

#[allow(deprecated)]
fn metadata_id(md: MetadataMatcher) -> Principal {
    id(Identifier::Metadata(md))
}

fn permission_one(c: &Cond, v: &str, tcp: bool) -> Result<Permission, String> {
    Ok(match c.attr {
        Attr::DestIp => perm(PermRule::DestinationIp(m::cidr(v)?)),
        Attr::DestPort => perm(PermRule::DestinationPort(m::port(v)?)),
        Attr::Sni => perm(PermRule::RequestedServerName(m::string(v))),
        Attr::Host => {
            http_only(c, tcp)?;
            header_perm(m::header(":authority", v, true))
        }
        Attr::Method => {
            http_only(c, tcp)?;
            header_perm(m::header(":method", v, false))
        }
        Attr::Path => {
            http_only(c, tcp)?;
            if v.contains("{*}") || v.contains("{**}") {
                let template = v.replace("{**}", "**").replace("{*}", "*");
                perm(PermRule::UriTemplate(TypedExtensionConfig {
                    name: "uri-template".into(),
                    typed_config: Some(crate::translate::proto::any(
                        "envoy.extensions.path.match.uri_template.v3.UriTemplateMatchConfig",
                        &UriTemplateMatchConfig {
                            path_template: template,
                        },
                    )),
                }))
            } else {
                perm(PermRule::UrlPath(PathMatcher {
                    rule: Some(path_matcher::Rule::Path(m::string(v))),
                }))
            }
        }
        _ => return Err(format!("{} is not an operation attribute", c.key)),
    })
}

/// `experimental.envoy.filters.a.b[c]`: metadata of filter `envoy.filters.a.b` at `c`;
/// `[v]` values match inside a list.
fn permission_all(c: &Cond, values: &[String], _tcp: bool) -> Result<Permission, String> {
    if c.attr != Attr::EnvoyFilter {
        return Err(format!("{} is not an operation attribute", c.key));
    }
    let key = c.key.trim_start_matches("experimental.");
    let (filter, rest) = key
        .split_once('[')
        .ok_or_else(|| format!("invalid key {}", c.key))?;
    let path = rest.strip_suffix(']').unwrap_or(rest);
    let matchers = values
        .iter()
        .map(
            |v| match v.strip_prefix('[').and_then(|v| v.strip_suffix(']')) {
                Some(inner) => m::value_list_one_of(m::value_string(m::string(inner))),
                None => m::value_string(m::string(v)),
            },
        )
        .collect();
    Ok(metadata_perm(m::metadata(
        filter,
        &[path],
        m::value_or(matchers),
    )))
}

fn principal_all(c: &Cond, values: &[String], tcp: bool) -> Result<Principal, String> {
    http_only(c, tcp)?;
    Ok(match c.attr {
        Attr::RequestPrincipal => {
            let mut or: Vec<Principal> = values.iter().map(|v| request_principal(v)).collect();
            if or.len() == 1 {
                or.remove(0)
            } else {
                id(Identifier::OrIds(principal::Set { ids: or }))
            }
        }
        Attr::Audiences => metadata_id(m::jwt_claim(&["aud"], values)),
        Attr::Presenter => metadata_id(m::jwt_claim(&["azp"], values)),
        Attr::Claims => {
            let rest = c
                .key
                .strip_prefix("request.auth.claims")
                .unwrap_or_default();
            metadata_id(m::jwt_claim(&m::names_in_nested_brackets(rest)?, values))
        }
        _ => return Err(format!("{} is not a request attribute", c.key)),
    })
}

/// `iss/sub` (the issuer may hold `/`: split at the last one), with `*` on either end.
fn request_principal(v: &str) -> Principal {
    let (iss, sub, found) = match v.rfind('/') {
        Some(i) => (&v[..i], &v[i + 1..], true),
        None => (v, "", false),
    };
    let (match_iss, match_sub) = if v == "*" {
        (m::any_value(), m::any_value())
    } else if v.starts_with('*') {
        if found {
            let iss_m = if iss == "*" {
                m::any_value()
            } else {
                m::string(iss)
            };
            (iss_m, m::exact(sub))
        } else {
            (m::any_value(), m::string(v))
        }
    } else if v.ends_with('*') {
        if found {
            let sub_m = if sub == "*" {
                m::any_value()
            } else {
                m::string(sub)
            };
            (m::exact(iss), sub_m)
        } else {
            (m::string(v), m::any_value())
        }
    } else {
        (m::exact(iss), m::exact(sub))
    };
    let claim = |name: &str, s: StringMatcher| {
        metadata_id(m::metadata(
            JWT_FILTER,
            &["payload", name],
            m::value_string(s),
        ))
    };
    id(Identifier::AndIds(principal::Set {
        ids: vec![claim("iss", match_iss), claim("sub", match_sub)],
    }))
}
