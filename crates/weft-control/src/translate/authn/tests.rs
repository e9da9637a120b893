//! Which proxies get the JWT filter, where it sits, and the config Istio would give it.

use super::jwks::tests::KeyServer;
use super::*;
use crate::translate::tests::{gateway_proxy, sidecar, MESH};
use crate::translate::{generate, Generated};
use envoy_types::pb::envoy::config::listener::v3::filter::ConfigType as FilterConfig;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::HttpConnectionManager;
use prost::Message;

fn snapshot(extra: &str) -> MeshSnapshot {
    let yaml = format!(
        "{}\n---\n{extra}",
        MESH.replace("CERT", "/none").replace("KEY", "/none")
    );
    let resources = weft_config::parse_documents(&yaml)
        .into_iter()
        .map(|r| r.expect("valid test resource"))
        .collect();
    MeshSnapshot::build(1, resources)
}

const JWKS: &str = r#"{"keys":[{"kty":"oct","kid":"k","k":"c2VjcmV0"}]}"#;

fn policy(name: &str, ns: &str, selector: &str, rules: &str) -> String {
    format!(
        "apiVersion: security.istio.io/v1\nkind: RequestAuthentication\nmetadata: {{name: {name}, namespace: {ns}}}\nspec:\n{selector}  jwtRules:\n{rules}"
    )
}

fn inline_rule(issuer: &str) -> String {
    format!("  - issuer: {issuer}\n    jwks: '{JWKS}'\n")
}

/// Every connection manager of the generated listeners: (listener, HTTP filter names).
fn hcm_filters(g: &Generated) -> Vec<(String, Vec<String>)> {
    g.listeners
        .iter()
        .flat_map(|l| {
            l.filter_chains
                .iter()
                .flat_map(|c| &c.filters)
                .filter_map(|f| match &f.config_type {
                    Some(FilterConfig::TypedConfig(any))
                        if f.name == crate::translate::filter::HCM =>
                    {
                        HttpConnectionManager::decode(any.value.as_slice()).ok()
                    }
                    _ => None,
                })
                .map(|h| {
                    (
                        l.name.clone(),
                        h.http_filters.iter().map(|f| f.name.clone()).collect(),
                    )
                })
        })
        .collect()
}

fn jwt_config(g: &Generated) -> JwtAuthentication {
    g.listeners
        .iter()
        .flat_map(|l| l.filter_chains.iter().flat_map(|c| &c.filters))
        .filter_map(|f| match &f.config_type {
            Some(FilterConfig::TypedConfig(any)) => {
                HttpConnectionManager::decode(any.value.as_slice()).ok()
            }
            _ => None,
        })
        .flat_map(|h| h.http_filters)
        .find(|f| f.name == JWT_AUTHN_FILTER)
        .and_then(|f| match f.config_type {
            Some(ConfigType::TypedConfig(any)) => {
                JwtAuthentication::decode(any.value.as_slice()).ok()
            }
            _ => None,
        })
        .expect("a jwt_authn filter")
}

#[test]
fn sidecar_inbound_gets_the_filter_before_everything_else() {
    let s = snapshot(&policy(
        "jwt",
        "default",
        "",
        &inline_rule("https://a.example"),
    ));
    let g = generate(&s, &sidecar());
    let filters = hcm_filters(&g);
    let mut inbound = 0;
    for (listener, names) in &filters {
        let has = names.iter().position(|n| n == JWT_AUTHN_FILTER);
        let router = names
            .iter()
            .position(|n| n == "envoy.filters.http.router")
            .unwrap();
        let is_inbound = g.listeners.iter().any(|l| {
            &l.name == listener && l.traffic_direction == TrafficDirection::Inbound as i32
        });
        if is_inbound {
            inbound += 1;
            assert!(has.is_some_and(|i| i < router), "{listener}: {names:?}");
        } else {
            assert_eq!(
                has, None,
                "outbound {listener} has no JWT filter: {names:?}"
            );
        }
    }
    assert!(inbound >= 2, "both inbound HTTP ports: {filters:?}");
}

#[test]
fn istio_shape_for_one_rule() {
    let rule = "  - issuer: https://a.example\n    audiences: [svc]\n    jwks: 'JWKS'\n    forwardOriginalToken: true\n    outputPayloadToHeader: x-jwt-payload\n    outputClaimToHeaders: [{header: x-sub, claim: sub}]\n    fromHeaders: [{name: x-token, prefix: 'Bearer '}]\n    fromParams: [tok]\n    fromCookies: [session]\n    spaceDelimitedClaims: [roles]\n".replace("JWKS", JWKS);
    let s = snapshot(&policy("jwt", "default", "", &rule));
    let cfg = jwt_config(&generate(&s, &sidecar()));
    assert!(cfg.bypass_cors_preflight);
    let p = &cfg.providers["origins-0"];
    assert_eq!(p.issuer, "https://a.example");
    assert_eq!(p.audiences, vec!["svc"]);
    assert!(p.forward);
    assert!(!p.clear_route_cache, "sidecars do not route on claims");
    assert_eq!(p.forward_payload_header, "x-jwt-payload");
    assert_eq!(p.payload_in_metadata, "payload");
    assert_eq!(
        p.normalize_payload_in_metadata
            .as_ref()
            .unwrap()
            .space_delimited_claims,
        vec!["permission", "roles", "scope"]
    );
    assert_eq!(p.claim_to_headers[0].header_name, "x-sub");
    assert_eq!(p.claim_to_headers[0].claim_name, "sub");
    assert_eq!(p.from_headers[0].name, "x-token");
    assert_eq!(p.from_headers[0].value_prefix, "Bearer ");
    assert_eq!(p.from_params, vec!["tok"]);
    assert_eq!(p.from_cookies, vec!["session"]);
    match &p.jwks_source_specifier {
        Some(JwksSourceSpecifier::LocalJwks(d)) => assert_eq!(
            d.specifier,
            Some(data_source::Specifier::InlineString(JWKS.into()))
        ),
        other => panic!("not inline: {other:?}"),
    }
    let rule = &cfg.rules[0];
    assert_eq!(
        rule.r#match.as_ref().unwrap().path_specifier,
        Some(PathSpecifier::Prefix("/".into()))
    );
    assert_eq!(
        rule.requirement_type,
        Some(RequirementType::Requires(provider_or_missing("origins-0")))
    );
}

#[test]
fn several_rules_are_sorted_by_issuer_and_any_one_or_none_suffices() {
    let rules = format!(
        "{}{}",
        inline_rule("https://z.example"),
        inline_rule("https://b.example")
    );
    let root = policy(
        "mesh",
        "istio-system",
        "",
        &inline_rule("https://root.example"),
    );
    let s = snapshot(&format!(
        "{}\n---\n{root}",
        policy("jwt", "default", "", &rules)
    ));
    let cfg = jwt_config(&generate(&s, &sidecar()));
    let issuers: Vec<_> = (0..3)
        .map(|i| cfg.providers[&format!("origins-{i}")].issuer.clone())
        .collect();
    assert_eq!(
        issuers,
        [
            "https://b.example",
            "https://root.example",
            "https://z.example"
        ]
    );
    let Some(RequirementType::Requires(JwtRequirement {
        requires_type: Some(RequiresType::RequiresAny(any)),
    })) = &cfg.rules[0].requirement_type
    else {
        panic!("requires_any expected");
    };
    assert_eq!(any.requirements.len(), 4);
    assert_eq!(
        any.requirements[3],
        requirement(RequiresType::RequiresAll(JwtRequirementAndList {
            requirements: (0..3)
                .map(|i| provider_or_missing(&format!("origins-{i}")))
                .collect()
        }))
    );
}

#[test]
fn selection_by_namespace_root_namespace_and_labels() {
    let proxy = sidecar();
    let cases = [
        (policy("p", "default", "", &inline_rule("i")), true),
        (policy("p", "istio-system", "", &inline_rule("i")), true),
        (policy("p", "other", "", &inline_rule("i")), false),
        (
            policy(
                "p",
                "default",
                "  selector: {matchLabels: {app: reviews}}\n",
                &inline_rule("i"),
            ),
            true,
        ),
        (
            policy(
                "p",
                "istio-system",
                "  selector: {matchLabels: {app: reviews}}\n",
                &inline_rule("i"),
            ),
            true,
        ),
        (
            policy(
                "p",
                "default",
                "  selector: {matchLabels: {app: ratings}}\n",
                &inline_rule("i"),
            ),
            false,
        ),
    ];
    for (yaml, applies) in cases {
        let s = snapshot(&yaml);
        assert_eq!(!rules_for(&s, &proxy).is_empty(), applies, "{yaml}");
    }
}

#[test]
fn gateways_get_it_on_every_listener_and_reroute_after_it() {
    let s = snapshot(&policy(
        "gw",
        "istio-system",
        "  selector: {matchLabels: {istio: ingressgateway}}\n",
        &inline_rule("https://a.example"),
    ));
    let g = generate(&s, &gateway_proxy());
    let filters = hcm_filters(&g);
    assert!(!filters.is_empty());
    for (listener, names) in &filters {
        assert!(
            names.first().is_some_and(|n| n == JWT_AUTHN_FILTER),
            "{listener}: {names:?}"
        );
    }
    assert!(jwt_config(&g).providers["origins-0"].clear_route_cache);
    // Without a policy: untouched.
    let plain = generate(&snapshot(""), &gateway_proxy());
    assert!(hcm_filters(&plain)
        .iter()
        .all(|(_, n)| !n.iter().any(|n| n == JWT_AUTHN_FILTER)));
}

#[test]
fn jwks_uri_keys_are_fetched_and_inlined() {
    let server = KeyServer::start(JWKS);
    let rule = format!(
        "  - issuer: https://a.example\n    jwksUri: {}\n",
        server.uri()
    );
    let s = snapshot(&policy("jwt", "default", "", &rule));
    let resolver = JwksResolver::default();
    let filter = jwt_filter(&s, &sidecar(), &resolver).unwrap();
    let Some(ConfigType::TypedConfig(any)) = filter.config_type else {
        panic!()
    };
    let cfg = JwtAuthentication::decode(any.value.as_slice()).unwrap();
    let Some(JwksSourceSpecifier::LocalJwks(d)) = &cfg.providers["origins-0"].jwks_source_specifier
    else {
        panic!("not inline")
    };
    assert_eq!(
        d.specifier,
        Some(data_source::Specifier::InlineString(JWKS.into()))
    );
}
