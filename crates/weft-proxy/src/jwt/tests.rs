//! The filter on requests: what a client sees for valid, missing and invalid tokens, and
//! what the upstream and later filters get.

use super::*;
use envoy_types::pb::envoy::config::core::v3::{data_source, DataSource};
use envoy_types::pb::envoy::config::route::v3::{route_match::PathSpecifier, RouteMatch};
use envoy_types::pb::envoy::extensions::filters::http::jwt_authn::v3 as pb;
use envoy_types::pb::google::protobuf::Empty;
use serde_json::json;
use weft_testkit::jwt::{now, Signer};

const ISS: &str = "https://issuer.example";

fn provider(jwks: &str) -> pb::JwtProvider {
    pb::JwtProvider {
        issuer: ISS.into(),
        payload_in_metadata: "payload".into(),
        jwks_source_specifier: Some(pb::jwt_provider::JwksSourceSpecifier::LocalJwks(
            DataSource {
                specifier: Some(data_source::Specifier::InlineString(jwks.into())),
                ..Default::default()
            },
        )),
        ..Default::default()
    }
}

fn req(name: &str) -> pb::JwtRequirement {
    pb::JwtRequirement {
        requires_type: Some(pb::jwt_requirement::RequiresType::ProviderName(name.into())),
    }
}

fn allow_missing() -> pb::JwtRequirement {
    pb::JwtRequirement {
        requires_type: Some(pb::jwt_requirement::RequiresType::AllowMissing(Empty {})),
    }
}

fn any(list: Vec<pb::JwtRequirement>) -> pb::JwtRequirement {
    pb::JwtRequirement {
        requires_type: Some(pb::jwt_requirement::RequiresType::RequiresAny(
            pb::JwtRequirementOrList { requirements: list },
        )),
    }
}

/// Istio's shape: one rule on `/`, requiring the provider's token or none.
fn istio_config(providers: Vec<(&str, pb::JwtProvider)>) -> pb::JwtAuthentication {
    let names: Vec<String> = providers.iter().map(|(n, _)| n.to_string()).collect();
    let requires = if names.len() == 1 {
        any(vec![req(&names[0]), allow_missing()])
    } else {
        let mut outer: Vec<_> = names.iter().map(|n| req(n)).collect();
        outer.push(pb::JwtRequirement {
            requires_type: Some(pb::jwt_requirement::RequiresType::RequiresAll(
                pb::JwtRequirementAndList {
                    requirements: names
                        .iter()
                        .map(|n| any(vec![req(n), allow_missing()]))
                        .collect(),
                },
            )),
        });
        any(outer)
    };
    pb::JwtAuthentication {
        providers: providers
            .into_iter()
            .map(|(n, p)| (n.to_string(), p))
            .collect(),
        rules: vec![pb::RequirementRule {
            r#match: Some(RouteMatch {
                path_specifier: Some(PathSpecifier::Prefix("/".into())),
                ..Default::default()
            }),
            requirement_type: Some(pb::requirement_rule::RequirementType::Requires(requires)),
        }],
        bypass_cors_preflight: true,
        ..Default::default()
    }
}

fn filter(cfg: &pb::JwtAuthentication) -> JwtAuthn {
    jwt_authn("jwt", cfg).unwrap()
}

fn request(bearer: Option<&str>) -> Request<()> {
    let mut b = Request::builder()
        .uri("/api/items?x=1")
        .header("host", "svc.example:8080");
    if let Some(t) = bearer {
        b = b.header("authorization", format!("Bearer {t}"));
    }
    b.body(()).unwrap()
}

fn claims(extra: serde_json::Value) -> serde_json::Value {
    let mut c = json!({"iss": ISS, "sub": "alice", "exp": now() + 600, "aud": "svc"});
    c.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    c
}

#[test]
fn valid_token_passes_and_lands_in_metadata_then_leaves_the_request() {
    let key = Signer::rsa("k1");
    let f = filter(&istio_config(vec![("origins-0", provider(&key.jwks()))]));
    let token = key.sign(&claims(json!({"scope": "read write"})));
    let mut r = request(Some(&token));
    f.authenticate(&mut r, now()).unwrap();
    let md = crate::http::metadata::DynamicMetadata::of(&r).unwrap();
    assert_eq!(
        md.lookup(FILTER_NAME, &["payload", "sub"]),
        Some(&json!("alice"))
    );
    // Istio asks for no normalization by default in this test: the scope stays a string.
    assert_eq!(
        md.lookup(FILTER_NAME, &["payload", "scope"]),
        Some(&json!("read write"))
    );
    // forward is false: the upstream does not see the token.
    assert!(r.headers().get("authorization").is_none());
}

#[test]
fn no_token_passes_without_metadata() {
    let key = Signer::rsa("k1");
    let f = filter(&istio_config(vec![("origins-0", provider(&key.jwks()))]));
    let mut r = request(None);
    f.authenticate(&mut r, now()).unwrap();
    assert!(crate::http::metadata::DynamicMetadata::of(&r).is_none());
}

fn refused(f: &JwtAuthn, token: &str) -> Rejection {
    f.authenticate(&mut request(Some(token)), now())
        .unwrap_err()
}

#[test]
fn invalid_tokens_get_401_with_envoys_texts() {
    let key = Signer::rsa("k1");
    let f = filter(&istio_config(vec![("origins-0", provider(&key.jwks()))]));
    let expired = refused(&f, &key.sign(&claims(json!({"exp": now() - 120}))));
    assert_eq!(expired.status, StatusCode::UNAUTHORIZED);
    assert_eq!(expired.body, "Jwt is expired");
    assert_eq!(
        expired.www_authenticate,
        "Bearer realm=\"http://svc.example:8080/api/items?x=1\", error=\"invalid_token\""
    );
    let issuer = refused(&f, &key.sign(&claims(json!({"iss": "https://other"}))));
    assert_eq!(issuer.body, "Jwt issuer is not configured");
    let other_key = Signer::rsa("k1");
    let good = other_key.sign(&claims(json!({})));
    let mut tampered: Vec<&str> = good.split('.').collect();
    let forged = URL_SAFE_NO_PAD.encode(claims(json!({"sub": "mallory"})).to_string());
    tampered[1] = &forged;
    assert_eq!(
        refused(&f, &tampered.join(".")).body,
        "Jwt verification fails"
    );
    // Same kid, other key type: a candidate that cannot verify.
    let es = Signer::es256("k1");
    assert_eq!(
        refused(&f, &es.sign(&claims(json!({})))).body,
        "Jwt verification fails"
    );
    let stranger = Signer::es256("k2");
    assert_eq!(
        refused(&f, &stranger.sign(&claims(json!({})))).body,
        "Jwks doesn't have key to match kid or alg from Jwt"
    );
    assert_eq!(
        refused(&f, "not-a-jwt").body,
        "Jwt is not in the form of Header.Payload.Signature with two dots and 3 sections"
    );
    let future = refused(&f, &key.sign(&claims(json!({"nbf": now() + 3600}))));
    assert_eq!(future.body, "Jwt not yet valid");
}

#[test]
fn clock_skew_is_sixty_seconds() {
    let key = Signer::rsa("k1");
    let f = filter(&istio_config(vec![("origins-0", provider(&key.jwks()))]));
    let t = now();
    let token = key.sign(&claims(json!({"exp": t - 30, "nbf": t + 30})));
    f.authenticate(&mut request(Some(&token)), t).unwrap();
    assert_eq!(
        refused(&f, &key.sign(&claims(json!({"exp": t - 61})))).body,
        "Jwt is expired"
    );
}

#[test]
fn audiences_are_checked_with_403() {
    let key = Signer::rsa("k1");
    let mut p = provider(&key.jwks());
    p.audiences = vec!["svc".into(), "other".into()];
    let f = filter(&istio_config(vec![("origins-0", p)]));
    let token = key.sign(&claims(json!({"aud": ["x", "other"]})));
    f.authenticate(&mut request(Some(&token)), now()).unwrap();
    let r = refused(&f, &key.sign(&claims(json!({"aud": "nope"}))));
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(r.body, "Audiences in Jwt are not allowed");
}

#[test]
fn every_supported_algorithm_verifies() {
    let rsa = Signer::rsa("r");
    for alg in ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512"] {
        let f = filter(&istio_config(vec![("origins-0", provider(&rsa.jwks()))]));
        let token = rsa.sign_with(alg, &claims(json!({})));
        f.authenticate(&mut request(Some(&token)), now())
            .unwrap_or_else(|e| panic!("{alg}: {e:?}"));
    }
    for key in [Signer::es256("e"), Signer::ed25519("d")] {
        let f = filter(&istio_config(vec![("origins-0", provider(&key.jwks()))]));
        let token = key.sign(&claims(json!({})));
        f.authenticate(&mut request(Some(&token)), now())
            .unwrap_or_else(|e| panic!("{}: {e:?}", key.alg()));
    }
}

#[test]
fn outputs_forward_payload_claims_and_token() {
    let key = Signer::es256("k");
    let mut p = provider(&key.jwks());
    p.forward = true;
    p.forward_payload_header = "x-jwt-payload".into();
    p.claim_to_headers = vec![
        pb::JwtClaimToHeader {
            header_name: "x-sub".into(),
            claim_name: "sub".into(),
            ..Default::default()
        },
        pb::JwtClaimToHeader {
            header_name: "x-team".into(),
            claim_name: "org.team".into(),
            ..Default::default()
        },
        pb::JwtClaimToHeader {
            header_name: "x-url-claim".into(),
            claim_path: vec![pb::jwt_claim_to_header::PathSegment {
                key: "https://example.org/tier".into(),
            }],
            ..Default::default()
        },
    ];
    p.normalize_payload_in_metadata = Some(pb::jwt_provider::NormalizePayload {
        space_delimited_claims: vec!["scope".into()],
    });
    let f = filter(&istio_config(vec![("origins-0", p)]));
    let c = claims(
        json!({"org": {"team": "blue"}, "scope": "a b", "https://example.org/tier": "gold"}),
    );
    let token = key.sign(&c);
    let mut r = request(Some(&token));
    // A client cannot smuggle a claim header in, with or without a token.
    r.headers_mut().insert("x-team", "red".parse().unwrap());
    let mut tokenless = request(None);
    tokenless
        .headers_mut()
        .insert("x-sub", "root".parse().unwrap());
    f.authenticate(&mut tokenless, now()).unwrap();
    assert!(tokenless.headers().get("x-sub").is_none());
    f.authenticate(&mut r, now()).unwrap();
    let h = r.headers();
    assert_eq!(h["authorization"], format!("Bearer {token}").as_str());
    assert_eq!(h["x-sub"], "alice");
    assert_eq!(h["x-team"], "blue");
    assert_eq!(h["x-url-claim"], "gold");
    let payload = URL_SAFE_NO_PAD
        .decode(h["x-jwt-payload"].as_bytes())
        .unwrap();
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&payload).unwrap(),
        c
    );
    let md = crate::http::metadata::DynamicMetadata::of(&r).unwrap();
    assert_eq!(
        md.lookup(FILTER_NAME, &["payload", "scope"]),
        Some(&json!(["a", "b"]))
    );
}

#[test]
fn custom_locations_replace_the_defaults() {
    let key = Signer::rsa("k");
    let mut p = provider(&key.jwks());
    p.from_headers = vec![pb::JwtHeader {
        name: "x-token".into(),
        value_prefix: String::new(),
    }];
    p.from_params = vec!["tok".into()];
    p.from_cookies = vec!["session".into()];
    let f = filter(&istio_config(vec![("origins-0", p)]));
    let bad = key.sign(&claims(json!({"exp": 1})));
    // A bearer token is no longer looked at: the request passes as tokenless.
    f.authenticate(&mut request(Some(&bad)), now()).unwrap();
    let mut r = Request::builder()
        .uri(format!("/p?tok={bad}"))
        .body(())
        .unwrap();
    assert_eq!(
        f.authenticate(&mut r, now()).unwrap_err().body,
        "Jwt is expired"
    );
    let mut r = Request::builder()
        .uri("/p")
        .header("cookie", format!("a=b; session={bad}"))
        .body(())
        .unwrap();
    assert_eq!(
        f.authenticate(&mut r, now()).unwrap_err().body,
        "Jwt is expired"
    );
}

#[test]
fn several_issuers_each_accept_their_own_tokens() {
    let (a, b) = (Signer::rsa("a"), Signer::es256("b"));
    let mut pb_ = provider(&b.jwks());
    pb_.issuer = "issuer-b".into();
    let f = filter(&istio_config(vec![
        ("origins-0", provider(&a.jwks())),
        ("origins-1", pb_),
    ]));
    f.authenticate(&mut request(Some(&a.sign(&claims(json!({}))))), now())
        .unwrap();
    let tb = b.sign(&claims(json!({"iss": "issuer-b"})));
    f.authenticate(&mut request(Some(&tb)), now()).unwrap();
    f.authenticate(&mut request(None), now()).unwrap();
    let unknown = a.sign(&claims(json!({"iss": "issuer-c"})));
    let r = f
        .authenticate(&mut request(Some(&unknown)), now())
        .unwrap_err();
    assert_eq!(r.body, "Jwt issuer is not configured");
}

#[test]
fn a_required_token_that_is_missing_gets_a_challenge_without_error() {
    let key = Signer::rsa("k");
    let mut cfg = istio_config(vec![("origins-0", provider(&key.jwks()))]);
    cfg.rules[0].requirement_type = Some(pb::requirement_rule::RequirementType::Requires(req(
        "origins-0",
    )));
    let r = filter(&cfg)
        .authenticate(&mut request(None), now())
        .unwrap_err();
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.body, "Jwt is missing");
    assert_eq!(
        r.www_authenticate,
        "Bearer realm=\"http://svc.example:8080/api/items?x=1\""
    );
    // A CORS preflight is let through (bypass_cors_preflight).
    let mut pre = Request::builder()
        .method("OPTIONS")
        .uri("/x")
        .header("origin", "https://a")
        .header("access-control-request-method", "GET")
        .body(())
        .unwrap();
    filter(&cfg).authenticate(&mut pre, now()).unwrap();
}

#[test]
fn what_cannot_be_honoured_is_named() {
    let key = Signer::rsa("k");
    let mut p = provider(&key.jwks());
    p.jwks_source_specifier = Some(pb::jwt_provider::JwksSourceSpecifier::RemoteJwks(
        pb::RemoteJwks::default(),
    ));
    let err = jwt_authn("jwt", &istio_config(vec![("origins-0", p)])).unwrap_err();
    assert_eq!(
        err.to_string(),
        "jwt.providers[origins-0].remote_jwks: unsupported: fetching JWKS (weftd inlines them in local_jwks)"
    );
    let mut p = provider(&key.jwks());
    p.require_expiration = true;
    let err = jwt_authn("jwt", &istio_config(vec![("origins-0", p)])).unwrap_err();
    assert_eq!(
        err.to_string(),
        "jwt.providers[origins-0]: unsupported: require_expiration"
    );
    let mut cfg = istio_config(vec![("origins-0", provider(&key.jwks()))]);
    cfg.rules[0].requirement_type = Some(pb::requirement_rule::RequirementType::Requires(req(
        "nobody",
    )));
    let err = jwt_authn("jwt", &cfg).unwrap_err();
    assert_eq!(
        err.to_string(),
        "jwt.rules[0].requires.provider_name: invalid: unknown provider \"nobody\""
    );
}

#[test]
fn the_connection_manager_takes_one_jwt_filter() {
    use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
        http_filter::ConfigType, HttpFilter,
    };
    use envoy_types::util::pack_any;
    let key = Signer::rsa("k");
    let jwt = HttpFilter {
        name: FILTER_NAME.into(),
        config_type: Some(ConfigType::TypedConfig(pack_any(istio_config(vec![(
            "origins-0",
            provider(&key.jwks()),
        )])))),
        ..Default::default()
    };
    let router = HttpFilter {
        name: "envoy.filters.http.router".into(),
        ..Default::default()
    };
    let one = from_http_filters("hf", &[jwt.clone(), router.clone()]).unwrap();
    assert!(one.unwrap().providers.contains_key("origins-0"));
    assert!(from_http_filters("hf", std::slice::from_ref(&router))
        .unwrap()
        .is_none());
    let err = from_http_filters("hf", &[jwt.clone(), jwt, router]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "hf[1].typed_config: unsupported: a second jwt_authn filter"
    );
}

#[test]
fn clear_route_cache_marks_requests_with_a_verified_token() {
    let key = Signer::rsa("k1");
    let token = key.sign(&claims(json!({})));
    let clearing = filter(&istio_config(vec![(
        "origins-0",
        pb::JwtProvider {
            clear_route_cache: true,
            ..provider(&key.jwks())
        },
    )]));
    let mut r = request(Some(&token));
    clearing.authenticate(&mut r, now()).unwrap();
    assert!(r.extensions().get::<super::RouteCacheCleared>().is_some());
    // No token verified: the route Envoy picked before the filter stands.
    let mut r = request(None);
    clearing.authenticate(&mut r, now()).unwrap();
    assert!(r.extensions().get::<super::RouteCacheCleared>().is_none());
    // A provider without clear_route_cache (Istio's sidecars) leaves it too.
    let keeping = filter(&istio_config(vec![("origins-0", provider(&key.jwks()))]));
    let mut r = request(Some(&token));
    keeping.authenticate(&mut r, now()).unwrap();
    assert!(r.extensions().get::<super::RouteCacheCleared>().is_none());
}
