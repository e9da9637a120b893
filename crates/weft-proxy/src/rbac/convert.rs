//! RBAC protos -> [`RbacFilter`]: the HTTP and network filter configs, with typed errors
//! naming the field. Anything weft-proxy cannot evaluate the way Envoy would (CEL
//! conditions, matcher trees, custom principals, filter-state) is refused, so the resource
//! is NACKed rather than enforced differently.

use super::model::{
    DoubleMatch, MetadataMatcher, PathTemplate, Permission, Policy, Principal, RbacAction,
    RbacFilter, Rules, StringMatcher, ValueMatcher,
};
use super::template;
use crate::model::StringMatch;
use crate::xds::convert::listener::cidr;
use crate::xds::convert::route::header_matcher;
use crate::xds::convert::{at, invalid, unpack, unsupported, Result};
use envoy_types::pb::envoy::config::core::v3::TypedExtensionConfig;
use envoy_types::pb::envoy::config::rbac::v3::{
    permission::Rule, principal::Identifier, rbac::Action, Permission as PermissionProto,
    Policy as PolicyProto, Principal as PrincipalProto, Rbac as RulesProto,
};
use envoy_types::pb::envoy::extensions::filters::http::rbac::v3::Rbac as HttpRbac;
use envoy_types::pb::envoy::extensions::filters::network::rbac::v3::Rbac as NetworkRbac;
use envoy_types::pb::envoy::extensions::path::r#match::uri_template::v3::UriTemplateMatchConfig;
use envoy_types::pb::envoy::r#type::matcher::v3::{
    double_matcher, list_matcher, metadata_matcher::path_segment::Segment, path_matcher,
    string_matcher::MatchPattern, value_matcher, MetadataMatcher as MetadataMatcherProto,
    PathMatcher, StringMatcher as StringMatcherProto, ValueMatcher as ValueMatcherProto,
};
use envoy_types::pb::google::protobuf::Any;
use regex::Regex;
use std::sync::Arc;

pub const HTTP_RBAC_TYPE: &str = "envoy.extensions.filters.http.rbac.v3.RBAC";
pub const NETWORK_RBAC_TYPE: &str = "envoy.extensions.filters.network.rbac.v3.RBAC";
const URI_TEMPLATE_TYPE: &str =
    "envoy.extensions.path.match.uri_template.v3.UriTemplateMatchConfig";

/// `envoy.filters.http.rbac`'s typed_config.
pub fn http_filter(field: &str, any: &Any) -> Result<RbacFilter> {
    let p: HttpRbac = unpack(field, any, HTTP_RBAC_TYPE)?;
    if p.matcher.is_some() || p.shadow_matcher.is_some() {
        return Err(unsupported(at(field, "matcher"), "RBAC matcher trees"));
    }
    Ok(RbacFilter {
        rules: p
            .rules
            .as_ref()
            .map(|r| rules(&at(field, "rules"), r))
            .transpose()?,
        shadow_rules: p
            .shadow_rules
            .as_ref()
            .map(|r| rules(&at(field, "shadow_rules"), r))
            .transpose()?,
        stat_prefix: p.rules_stat_prefix,
        shadow_rules_stat_prefix: p.shadow_rules_stat_prefix,
    })
}

/// `envoy.filters.network.rbac`'s typed_config.
pub fn network_filter(field: &str, any: &Any) -> Result<RbacFilter> {
    let p: NetworkRbac = unpack(field, any, NETWORK_RBAC_TYPE)?;
    if p.matcher.is_some() || p.shadow_matcher.is_some() {
        return Err(unsupported(at(field, "matcher"), "RBAC matcher trees"));
    }
    // ONE_TIME_ON_FIRST_BYTE (0) is what weft-proxy does: one decision per connection.
    if p.enforcement_type != 0 {
        return Err(unsupported(at(field, "enforcement_type"), "CONTINUOUS"));
    }
    if p.delay_deny.is_some() {
        return Err(unsupported(at(field, "delay_deny"), "delayed deny"));
    }
    Ok(RbacFilter {
        rules: p
            .rules
            .as_ref()
            .map(|r| rules(&at(field, "rules"), r))
            .transpose()?,
        shadow_rules: p
            .shadow_rules
            .as_ref()
            .map(|r| rules(&at(field, "shadow_rules"), r))
            .transpose()?,
        stat_prefix: p.stat_prefix,
        shadow_rules_stat_prefix: p.shadow_rules_stat_prefix,
    })
}

fn rules(field: &str, r: &RulesProto) -> Result<Rules> {
    let action = match Action::try_from(r.action) {
        Ok(Action::Allow) => RbacAction::Allow,
        Ok(Action::Deny) => RbacAction::Deny,
        Ok(Action::Log) => RbacAction::Log,
        Err(_) => {
            return Err(invalid(
                at(field, "action"),
                format!("unknown action {}", r.action),
            ))
        }
    };
    if r.audit_logging_options.is_some() {
        return Err(unsupported(
            at(field, "audit_logging_options"),
            "RBAC audit loggers",
        ));
    }
    // Envoy keeps policies in a map ordered by name; the first match by name is reported.
    let mut names: Vec<&String> = r.policies.keys().collect();
    names.sort();
    let policies = names
        .into_iter()
        .map(|name| {
            policy(
                &format!("{field}.policies[{name}]"),
                name,
                &r.policies[name],
            )
        })
        .collect::<Result<_>>()?;
    Ok(Rules { action, policies })
}

fn policy(field: &str, name: &str, p: &PolicyProto) -> Result<Policy> {
    if p.condition.is_some() || p.checked_condition.is_some() || p.cel_config.is_some() {
        return Err(unsupported(at(field, "condition"), "CEL conditions"));
    }
    Ok(Policy {
        name: name.to_string(),
        permissions: p
            .permissions
            .iter()
            .enumerate()
            .map(|(i, x)| permission(&format!("{field}.permissions[{i}]"), x))
            .collect::<Result<_>>()?,
        principals: p
            .principals
            .iter()
            .enumerate()
            .map(|(i, x)| principal(&format!("{field}.principals[{i}]"), x))
            .collect::<Result<_>>()?,
    })
}

// `metadata` is deprecated in favour of `sourced_metadata`, but it is what Istio sends.
#[allow(deprecated)]
fn permission(field: &str, p: &PermissionProto) -> Result<Permission> {
    let list = |name: &str, rules: &[PermissionProto]| {
        rules
            .iter()
            .enumerate()
            .map(|(i, x)| permission(&format!("{field}.{name}.rules[{i}]"), x))
            .collect::<Result<Vec<_>>>()
    };
    Ok(match &p.rule {
        None => return Err(invalid(field, "no rule")),
        Some(Rule::Any(true)) => Permission::Any,
        Some(Rule::Any(false)) => return Err(invalid(at(field, "any"), "must be true")),
        Some(Rule::AndRules(s)) => Permission::And(list("and_rules", &s.rules)?),
        Some(Rule::OrRules(s)) => Permission::Or(list("or_rules", &s.rules)?),
        Some(Rule::NotRule(n)) => Permission::Not(Box::new(permission(&at(field, "not_rule"), n)?)),
        Some(Rule::Header(h)) => Permission::Header(header_matcher(&at(field, "header"), h)?),
        Some(Rule::UrlPath(m)) => Permission::UrlPath(path(&at(field, "url_path"), m)?),
        Some(Rule::UriTemplate(t)) => {
            Permission::UriTemplate(uri_template(&at(field, "uri_template"), t)?)
        }
        Some(Rule::DestinationIp(c)) => {
            Permission::DestinationIp(cidr(&at(field, "destination_ip"), c)?)
        }
        Some(Rule::DestinationPort(p)) => Permission::DestinationPort(*p),
        Some(Rule::DestinationPortRange(r)) => Permission::DestinationPortRange {
            start: i64::from(r.start),
            end: i64::from(r.end),
        },
        Some(Rule::Metadata(m)) => Permission::Metadata(metadata(&at(field, "metadata"), m)?),
        Some(Rule::RequestedServerName(m)) => {
            Permission::RequestedServerName(string(&at(field, "requested_server_name"), m)?)
        }
        Some(other) => {
            return Err(unsupported(
                field,
                format!("permission {}", rule_name(other)),
            ))
        }
    })
}

fn rule_name(r: &Rule) -> &'static str {
    match r {
        Rule::Matcher(_) => "matcher",
        Rule::SourcedMetadata(_) => "sourced_metadata",
        _ => "rule",
    }
}

// `metadata` and `source_ip` are deprecated, but Istio (and older configs) send them.
#[allow(deprecated)]
fn principal(field: &str, p: &PrincipalProto) -> Result<Principal> {
    let list = |name: &str, ids: &[PrincipalProto]| {
        ids.iter()
            .enumerate()
            .map(|(i, x)| principal(&format!("{field}.{name}.ids[{i}]"), x))
            .collect::<Result<Vec<_>>>()
    };
    Ok(match &p.identifier {
        None => return Err(invalid(field, "no identifier")),
        Some(Identifier::Any(true)) => Principal::Any,
        Some(Identifier::Any(false)) => return Err(invalid(at(field, "any"), "must be true")),
        Some(Identifier::AndIds(s)) => Principal::And(list("and_ids", &s.ids)?),
        Some(Identifier::OrIds(s)) => Principal::Or(list("or_ids", &s.ids)?),
        Some(Identifier::NotId(n)) => Principal::Not(Box::new(principal(&at(field, "not_id"), n)?)),
        Some(Identifier::Authenticated(a)) => Principal::Authenticated(
            a.principal_name
                .as_ref()
                .map(|m| string(&at(field, "authenticated.principal_name"), m))
                .transpose()?,
        ),
        Some(Identifier::SourceIp(c)) => Principal::SourceIp(cidr(&at(field, "source_ip"), c)?),
        Some(Identifier::DirectRemoteIp(c)) => {
            Principal::DirectRemoteIp(cidr(&at(field, "direct_remote_ip"), c)?)
        }
        Some(Identifier::RemoteIp(c)) => Principal::RemoteIp(cidr(&at(field, "remote_ip"), c)?),
        Some(Identifier::Header(h)) => Principal::Header(header_matcher(&at(field, "header"), h)?),
        Some(Identifier::UrlPath(m)) => Principal::UrlPath(path(&at(field, "url_path"), m)?),
        Some(Identifier::Metadata(m)) => Principal::Metadata(metadata(&at(field, "metadata"), m)?),
        Some(Identifier::FilterState(_)) => {
            return Err(unsupported(
                at(field, "filter_state"),
                "filter state principals",
            ))
        }
        Some(Identifier::SourcedMetadata(_)) => {
            return Err(unsupported(
                at(field, "sourced_metadata"),
                "sourced metadata principals",
            ))
        }
        Some(Identifier::Custom(c)) => {
            return Err(unsupported(
                at(field, "custom"),
                format!("principal extension {}", c.name),
            ))
        }
    })
}

/// A whole-input regex, as Envoy's `safe_regex`.
fn regex(field: &str, pattern: &str) -> Result<Arc<Regex>> {
    Regex::new(&format!("^(?:{pattern})$"))
        .map(Arc::new)
        .map_err(|e| invalid(at(field, "safe_regex.regex"), e.to_string()))
}

pub(crate) fn string(field: &str, s: &StringMatcherProto) -> Result<StringMatcher> {
    let matcher = match &s.match_pattern {
        Some(MatchPattern::Exact(v)) => StringMatch::Exact(v.clone()),
        Some(MatchPattern::Prefix(v)) => StringMatch::Prefix(v.clone()),
        Some(MatchPattern::Suffix(v)) => StringMatch::Suffix(v.clone()),
        Some(MatchPattern::Contains(v)) => StringMatch::Contains(v.clone()),
        Some(MatchPattern::SafeRegex(r)) => StringMatch::SafeRegex(regex(field, &r.regex)?),
        Some(MatchPattern::Custom(_)) => {
            return Err(unsupported(
                at(field, "custom"),
                "string matcher extensions",
            ))
        }
        None => return Err(invalid(field, "no match pattern")),
    };
    Ok(StringMatcher {
        matcher,
        ignore_case: s.ignore_case,
    })
}

fn path(field: &str, p: &PathMatcher) -> Result<StringMatcher> {
    match &p.rule {
        Some(path_matcher::Rule::Path(s)) => string(&at(field, "path"), s),
        None => Err(invalid(field, "no path rule")),
    }
}

fn uri_template(field: &str, t: &TypedExtensionConfig) -> Result<PathTemplate> {
    let Some(any) = &t.typed_config else {
        return Err(invalid(field, "no typed_config"));
    };
    let config: UriTemplateMatchConfig =
        unpack(&at(field, "typed_config"), any, URI_TEMPLATE_TYPE)?;
    let pattern = template::to_regex(&config.path_template)
        .map_err(|why| invalid(at(field, "typed_config.path_template"), why))?;
    let regex = Regex::new(&pattern)
        .map_err(|e| invalid(at(field, "typed_config.path_template"), e.to_string()))?;
    Ok(PathTemplate {
        template: config.path_template,
        regex: Arc::new(regex),
    })
}

/// `envoy.type.matcher.v3.MetadataMatcher` (RBAC's and routes' `dynamic_metadata`).
pub(crate) fn metadata(field: &str, m: &MetadataMatcherProto) -> Result<MetadataMatcher> {
    let path = m
        .path
        .iter()
        .enumerate()
        .map(|(i, s)| match &s.segment {
            Some(Segment::Key(k)) => Ok(k.clone()),
            None => Err(invalid(format!("{field}.path[{i}]"), "no key")),
        })
        .collect::<Result<_>>()?;
    let Some(v) = &m.value else {
        return Err(invalid(at(field, "value"), "no value matcher"));
    };
    Ok(MetadataMatcher {
        filter: m.filter.clone(),
        path,
        value: value(&at(field, "value"), v)?,
        invert: m.invert,
    })
}

fn value(field: &str, v: &ValueMatcherProto) -> Result<ValueMatcher> {
    use value_matcher::MatchPattern as P;
    Ok(match &v.match_pattern {
        None => return Err(invalid(field, "no match pattern")),
        Some(P::NullMatch(_)) => ValueMatcher::Null,
        Some(P::DoubleMatch(d)) => ValueMatcher::Double(match &d.match_pattern {
            Some(double_matcher::MatchPattern::Exact(x)) => DoubleMatch::Exact(*x),
            Some(double_matcher::MatchPattern::Range(r)) => DoubleMatch::Range {
                start: r.start,
                end: r.end,
            },
            None => return Err(invalid(at(field, "double_match"), "no match pattern")),
        }),
        Some(P::StringMatch(s)) => ValueMatcher::String(string(&at(field, "string_match"), s)?),
        Some(P::BoolMatch(b)) => ValueMatcher::Bool(*b),
        Some(P::PresentMatch(b)) => ValueMatcher::Present(*b),
        Some(P::ListMatch(l)) => match &l.match_pattern {
            Some(list_matcher::MatchPattern::OneOf(one)) => {
                ValueMatcher::ListOneOf(Box::new(value(&at(field, "list_match.one_of"), one)?))
            }
            None => return Err(invalid(at(field, "list_match"), "no match pattern")),
        },
        Some(P::OrMatch(o)) => ValueMatcher::Or(
            o.value_matchers
                .iter()
                .enumerate()
                .map(|(i, x)| value(&format!("{field}.or_match.value_matchers[{i}]"), x))
                .collect::<Result<_>>()?,
        ),
    })
}
