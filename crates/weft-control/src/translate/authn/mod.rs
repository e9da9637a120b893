//! RequestAuthentication -> Envoy's `envoy.filters.http.jwt_authn`, as Istio builds it.
//!
//! The policies that apply to a proxy are those of its namespace and of the root namespace,
//! without a selector or with one its labels match (targetRef attachment is Kubernetes
//! Gateway API only and not applied). Their JWT rules, sorted by issuer, become providers
//! `origins-0`, `origins-1`... with the keys inlined (`local_jwks`: the rule's `jwks`, or
//! what [`jwks::JwksResolver`] fetched from `jwksUri`), the token locations, forwarding and
//! header outputs, and the payload in dynamic metadata under `payload`, where Istio's RBAC
//! rules look (`request.auth.principal` is `[payload, iss]` + `[payload, sub]`). One rule on
//! `/` requires a valid token from some provider or no token at all, so an invalid token
//! gets 401 while a missing one passes (AuthorizationPolicy decides about those).
//!
//! The filter goes on every HTTP connection manager of a sidecar's inbound listeners, and of
//! a gateway's listeners, ahead of RBAC (and of fault, CORS and the router).

pub mod claims;
pub mod jwks;
#[cfg(test)]
mod tests;

use crate::model::{MeshSnapshot, Proxy, ProxyKind};
use crate::translate::filter::insert_http_filter;
use envoy_types::pb::envoy::config::core::v3::{data_source, DataSource, TrafficDirection};
use envoy_types::pb::envoy::config::listener::v3::Listener;
use envoy_types::pb::envoy::config::route::v3::{route_match::PathSpecifier, RouteMatch};
use envoy_types::pb::envoy::extensions::filters::http::jwt_authn::v3::{
    jwt_provider::{JwksSourceSpecifier, NormalizePayload},
    jwt_requirement::RequiresType,
    requirement_rule::RequirementType,
    JwtAuthentication, JwtClaimToHeader, JwtHeader, JwtProvider, JwtRequirement,
    JwtRequirementAndList, JwtRequirementOrList, RequirementRule,
};
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    http_filter::ConfigType, HttpFilter,
};
use envoy_types::pb::google::protobuf::Empty;
use envoy_types::util::pack_any;
use jwks::{JwksResolver, Source};
use weft_config::security::request_authentication::{JwtRule, RequestAuthentication};
use weft_config::Spec;

/// The HTTP filter's name, also the dynamic-metadata namespace of the payload.
pub const JWT_AUTHN_FILTER: &str = "envoy.filters.http.jwt_authn";
/// Where the verified payload goes in the filter's dynamic metadata.
pub const PAYLOAD_KEY: &str = "payload";
/// HTTP filters the JWT filter must precede (authorization, then the rest).
const RUNS_AFTER_JWT: &[&str] = &[
    "istio_authn",
    "envoy.filters.http.rbac",
    "envoy.filters.http.ext_authz",
    "envoy.filters.http.fault",
    "envoy.filters.http.cors",
    "envoy.filters.http.router",
];

/// Claims Istio always splits on spaces in the metadata (`scope`, `permission`).
const SPACE_DELIMITED: &[&str] = &["permission", "scope"];

/// Whether a policy applies to the proxy (namespace, root namespace, selector).
fn applies(
    policy_ns: &str,
    spec: &RequestAuthentication,
    proxy: &Proxy,
    root_namespace: &str,
) -> bool {
    if policy_ns != proxy.namespace && policy_ns != root_namespace {
        return false;
    }
    if spec.target_ref.is_some() || !spec.target_refs.is_empty() {
        return false;
    }
    match &spec.selector {
        None => true,
        Some(s) => s
            .match_labels
            .iter()
            .all(|(k, v)| proxy.labels.get(k) == Some(v)),
    }
}

/// The JWT rules of every RequestAuthentication that applies to `proxy`, by issuer.
pub fn rules_for(snapshot: &MeshSnapshot, proxy: &Proxy) -> Vec<JwtRule> {
    let root = &snapshot.mesh.root_namespace;
    let mut rules: Vec<JwtRule> = snapshot
        .of_kind(weft_config::Kind::RequestAuthentication)
        .filter_map(|r| match &r.spec {
            Spec::RequestAuthentication(spec)
                if applies(&r.metadata.namespace, spec, proxy, root) =>
            {
                Some(spec.jwt_rules.clone())
            }
            _ => None,
        })
        .flatten()
        .collect();
    // Stable: rules of one issuer keep their order.
    rules.sort_by(|a, b| a.issuer.cmp(&b.issuer));
    rules
}

fn provider_name(i: usize) -> String {
    format!("origins-{i}")
}

fn requirement(t: RequiresType) -> JwtRequirement {
    JwtRequirement {
        requires_type: Some(t),
    }
}

fn provider_or_missing(name: &str) -> JwtRequirement {
    requirement(RequiresType::RequiresAny(JwtRequirementOrList {
        requirements: vec![
            requirement(RequiresType::ProviderName(name.to_string())),
            requirement(RequiresType::AllowMissing(Empty {})),
        ],
    }))
}

/// One provider per rule, keys inlined.
fn provider(rule: &JwtRule, resolver: &JwksResolver, clear_route_cache: bool) -> JwtProvider {
    let keys = match (&rule.jwks, &rule.jwks_uri) {
        (Some(inline), _) if !inline.is_empty() => inline.clone(),
        (_, uri) => {
            let source = match uri.as_deref() {
                Some(u) if !u.is_empty() => Source::Uri(u.to_string()),
                _ => Source::Issuer(rule.issuer.clone()),
            };
            let timeout = rule
                .timeout
                .and_then(|t| t.to_std())
                .unwrap_or(jwks::DEFAULT_TIMEOUT);
            resolver.resolve(&source, timeout)
        }
    };
    let mut space_delimited: Vec<String> = SPACE_DELIMITED.iter().map(|s| s.to_string()).collect();
    space_delimited.extend(rule.space_delimited_claims.iter().cloned());
    space_delimited.sort();
    space_delimited.dedup();
    JwtProvider {
        issuer: rule.issuer.clone(),
        audiences: rule.audiences.clone(),
        forward: rule.forward_original_token,
        forward_payload_header: rule.output_payload_to_header.clone(),
        payload_in_metadata: PAYLOAD_KEY.to_string(),
        normalize_payload_in_metadata: Some(NormalizePayload {
            space_delimited_claims: space_delimited,
        }),
        claim_to_headers: rule
            .output_claim_to_headers
            .iter()
            .map(|c| JwtClaimToHeader {
                header_name: c.header.clone(),
                claim_name: c.claim.clone(),
                ..Default::default()
            })
            .collect(),
        from_headers: rule
            .from_headers
            .iter()
            .map(|h| JwtHeader {
                name: h.name.clone(),
                value_prefix: h.prefix.clone(),
            })
            .collect(),
        from_params: rule.from_params.clone(),
        from_cookies: rule.from_cookies.clone(),
        clear_route_cache,
        jwks_source_specifier: Some(JwksSourceSpecifier::LocalJwks(DataSource {
            specifier: Some(data_source::Specifier::InlineString(keys)),
            ..Default::default()
        })),
        ..Default::default()
    }
}

/// The filter config for `rules` (empty: none). With one provider the requirement is
/// "its token or none"; with several, "some provider's token, or every location either
/// empty or holding a valid token" (so providers sharing a location still work).
pub fn jwt_authentication(
    rules: &[JwtRule],
    resolver: &JwksResolver,
    clear_route_cache: bool,
) -> Option<JwtAuthentication> {
    if rules.is_empty() {
        return None;
    }
    let names: Vec<String> = (0..rules.len()).map(provider_name).collect();
    let providers = names
        .iter()
        .zip(rules)
        .map(|(n, r)| (n.clone(), provider(r, resolver, clear_route_cache)))
        .collect();
    let requires = if let [only] = names.as_slice() {
        provider_or_missing(only)
    } else {
        let mut any: Vec<JwtRequirement> = names
            .iter()
            .map(|n| requirement(RequiresType::ProviderName(n.clone())))
            .collect();
        any.push(requirement(RequiresType::RequiresAll(
            JwtRequirementAndList {
                requirements: names.iter().map(|n| provider_or_missing(n)).collect(),
            },
        )));
        requirement(RequiresType::RequiresAny(JwtRequirementOrList {
            requirements: any,
        }))
    };
    Some(JwtAuthentication {
        providers,
        rules: vec![RequirementRule {
            r#match: Some(RouteMatch {
                path_specifier: Some(PathSpecifier::Prefix("/".into())),
                ..Default::default()
            }),
            requirement_type: Some(RequirementType::Requires(requires)),
        }],
        bypass_cors_preflight: true,
        ..Default::default()
    })
}

/// The `jwt_authn` HTTP filter for `proxy`, if a RequestAuthentication applies to it.
pub fn jwt_filter(
    snapshot: &MeshSnapshot,
    proxy: &Proxy,
    resolver: &JwksResolver,
) -> Option<HttpFilter> {
    let rules = rules_for(snapshot, proxy);
    // Gateways may route on claims: the route is chosen again once the payload is known.
    let config = jwt_authentication(&rules, resolver, proxy.kind == ProxyKind::Router)?;
    Some(HttpFilter {
        name: JWT_AUTHN_FILTER.to_string(),
        config_type: Some(ConfigType::TypedConfig(pack_any(config))),
        ..Default::default()
    })
}

/// Adds the filter to the connection managers it belongs on: a sidecar's inbound
/// listeners, every listener of a gateway.
pub fn apply(snapshot: &MeshSnapshot, proxy: &Proxy, listeners: &mut [Listener]) {
    apply_with(snapshot, proxy, listeners, JwksResolver::global());
}

/// [`apply`] with a given key resolver.
pub fn apply_with(
    snapshot: &MeshSnapshot,
    proxy: &Proxy,
    listeners: &mut [Listener],
    resolver: &JwksResolver,
) {
    let Some(filter) = jwt_filter(snapshot, proxy, resolver) else {
        return;
    };
    for l in listeners {
        let wanted = proxy.kind == ProxyKind::Router
            || l.traffic_direction == TrafficDirection::Inbound as i32;
        if wanted {
            insert_http_filter(l, &filter, RUNS_AFTER_JWT);
        }
    }
}
