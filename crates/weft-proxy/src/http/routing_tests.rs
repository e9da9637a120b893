//! Route selection tests: which virtual host and which route win.

use super::*;
use crate::http::metadata::DynamicMetadata;
use crate::model::{Action, HeaderMatcher, Route};
use http::HeaderValue;
use regex::Regex;
use std::sync::Arc;

fn reply(status: u16) -> Action {
    Action::DirectResponse { status, body: None }
}

fn mk(path: PathMatch, status: u16) -> Route {
    Route {
        name: status.to_string(),
        matcher: RouteMatch {
            path,
            case_sensitive: true,
            headers: Vec::new(),
            query_parameters: Vec::new(),
            dynamic_metadata: Vec::new(),
        },
        action: reply(status),
        headers: Default::default(),
        filters: Default::default(),
    }
}

fn vhost(name: &str, domains: &[&str]) -> VirtualHost {
    VirtualHost {
        name: name.into(),
        domains: domains.iter().map(|d| d.to_string()).collect(),
        routes: vec![mk(PathMatch::Prefix("/".into()), 200)],
        ..Default::default()
    }
}

fn vh_name<'a>(rc: &'a RouteConfig, authority: &str) -> Option<&'a str> {
    virtual_host(rc, authority).map(|v| v.name.as_str())
}

#[test]
fn exact_beats_suffix_beats_prefix_beats_any() {
    let rc = RouteConfig {
        name: "r".into(),
        virtual_hosts: vec![
            vhost("any", &["*"]),
            vhost("prefix", &["ratings.*"]),
            vhost("suffix", &["*.example.com"]),
            vhost("longer-suffix", &["*.api.example.com"]),
            vhost("exact", &["ratings:9080", "ratings.default:9080"]),
        ],
        ..Default::default()
    };
    assert_eq!(vh_name(&rc, "ratings:9080"), Some("exact"));
    assert_eq!(vh_name(&rc, "Ratings.Default:9080"), Some("exact"));
    assert_eq!(vh_name(&rc, "x.api.example.com"), Some("longer-suffix"));
    assert_eq!(vh_name(&rc, "www.example.com"), Some("suffix"));
    assert_eq!(vh_name(&rc, "ratings.other"), Some("prefix"));
    assert_eq!(vh_name(&rc, "reviews:9080"), Some("any"));
    let no_catch_all = RouteConfig {
        name: "r".into(),
        virtual_hosts: vec![vhost("exact", &["ratings:9080"])],
        ..Default::default()
    };
    assert_eq!(
        vh_name(&no_catch_all, "reviews:9080"),
        None,
        "no virtual host: NR"
    );
}

#[test]
fn first_matching_route_wins() {
    let mut vh = vhost("v", &["*"]);
    let mut with_header = mk(PathMatch::Prefix("/api".into()), 201);
    with_header.matcher.headers.push(HeaderMatcher {
        name: "end-user".into(),
        matcher: HeaderMatch::Value {
            matcher: StringMatch::Exact("jason".into()),
            ignore_case: false,
        },
        invert: false,
        treat_missing_as_empty: false,
    });
    let mut with_query = mk(PathMatch::Path("/api/v1".into()), 202);
    with_query.matcher.query_parameters.push(QueryMatcher {
        name: "debug".into(),
        matcher: Some(StringMatch::Exact("1".into())),
        ignore_case: false,
    });
    let regex = mk(
        PathMatch::SafeRegex(Arc::new(Regex::new("^(?:/static/.*)$").unwrap())),
        203,
    );
    let mut insensitive = mk(PathMatch::Prefix("/UPPER".into()), 204);
    insensitive.matcher.case_sensitive = false;
    vh.routes = vec![
        with_header,
        with_query,
        regex,
        insensitive,
        mk(PathMatch::Prefix("/".into()), 200),
    ];

    let status = |path: &str, headers: &[(&'static str, &'static str)]| {
        let mut map = HeaderMap::new();
        for (k, v) in headers {
            map.append(*k, HeaderValue::from_static(v));
        }
        match route_of(&vh, path, &map) {
            Some(Action::DirectResponse { status, .. }) => *status,
            other => panic!("unexpected {other:?}"),
        }
    };
    assert_eq!(status("/api/v1", &[("end-user", "jason")]), 201);
    assert_eq!(status("/api/v1?debug=1", &[("end-user", "mike")]), 202);
    assert_eq!(status("/api/v1?debug=2", &[]), 200);
    assert_eq!(status("/api/v1/x?debug=1", &[]), 200, "path is exact");
    assert_eq!(status("/static/app.js", &[]), 203);
    assert_eq!(status("/upper/case", &[]), 204);
    assert_eq!(status("/nothing", &[]), 200);
}

fn info<'a>(path_and_query: &'a str, headers: &'a HeaderMap) -> RequestInfo<'a> {
    RequestInfo {
        method: "GET",
        authority: "reviews:9080",
        path_and_query,
        scheme: "http",
        headers,
        metadata: None,
    }
}

fn route_of<'a>(vh: &'a VirtualHost, path: &str, headers: &HeaderMap) -> Option<&'a Action> {
    route(vh, &info(path, headers)).map(|r| &r.action)
}

#[test]
fn pseudo_headers_and_missing_as_empty() {
    let m = |name: &str, matcher: StringMatch, invert: bool, empty: bool| RouteMatch {
        path: PathMatch::Prefix("/".into()),
        case_sensitive: true,
        headers: vec![HeaderMatcher {
            name: name.into(),
            matcher: HeaderMatch::Value {
                matcher,
                ignore_case: false,
            },
            invert,
            treat_missing_as_empty: empty,
        }],
        query_parameters: Vec::new(),
        dynamic_metadata: Vec::new(),
    };
    let none = HeaderMap::new();
    let mut post = info("/", &none);
    post.method = "POST";
    assert!(matches(
        &m(":method", StringMatch::Exact("POST".into()), false, false),
        "/",
        "",
        &post
    ));
    assert!(!matches(
        &m(":method", StringMatch::Exact("POST".into()), false, false),
        "/",
        "",
        &info("/", &none)
    ));
    assert!(matches(
        &m(
            ":authority",
            StringMatch::Prefix("reviews".into()),
            false,
            false
        ),
        "/",
        "",
        &post
    ));
    // withoutHeaders {x-user: {exact: jason}}: an absent header is "not jason".
    let without = m("x-user", StringMatch::Exact("jason".into()), true, true);
    assert!(matches(&without, "/", "", &info("/", &none)));
    let mut jason = HeaderMap::new();
    jason.insert("x-user", HeaderValue::from_static("jason"));
    assert!(!matches(&without, "/", "", &info("/", &jason)));
}

#[test]
fn present_and_inverted_header_matchers() {
    let m = |matcher, invert| RouteMatch {
        path: PathMatch::Prefix("/".into()),
        case_sensitive: true,
        headers: vec![HeaderMatcher {
            name: "x-canary".into(),
            matcher,
            invert,
            treat_missing_as_empty: false,
        }],
        query_parameters: Vec::new(),
        dynamic_metadata: Vec::new(),
    };
    let mut with = HeaderMap::new();
    with.insert("x-canary", HeaderValue::from_static("yes"));
    let without = HeaderMap::new();
    assert!(matches(
        &m(HeaderMatch::Present(true), false),
        "/",
        "",
        &info("/", &with)
    ));
    assert!(!matches(
        &m(HeaderMatch::Present(true), false),
        "/",
        "",
        &info("/", &without)
    ));
    assert!(matches(
        &m(HeaderMatch::Present(true), true),
        "/",
        "",
        &info("/", &without)
    ));
    let prefix = HeaderMatch::Value {
        matcher: StringMatch::Prefix("Y".into()),
        ignore_case: true,
    };
    assert!(matches(&m(prefix, false), "/", "", &info("/", &with)));
}

/// The route configuration weftd sends for a VirtualService routing on
/// `@request.auth.claims.<path>` = `value` (None: the claim is present): a
/// `dynamic_metadata` matcher on jwt_authn's payload that accepts the value itself or a
/// list holding it; `without` is `withoutHeaders` (inverted).
fn claim_route_config(path: &[&str], value: Option<&str>, without: bool) -> RouteConfig {
    use envoy_types::pb::envoy::config::route::v3 as route;
    use envoy_types::pb::envoy::r#type::matcher::v3::{
        list_matcher, metadata_matcher::path_segment::Segment, metadata_matcher::PathSegment,
        string_matcher::MatchPattern, value_matcher::MatchPattern as V, ListMatcher,
        MetadataMatcher, OrMatcher, StringMatcher, ValueMatcher,
    };
    let single = ValueMatcher {
        match_pattern: Some(match value {
            Some(v) => V::StringMatch(StringMatcher {
                match_pattern: Some(MatchPattern::Exact(v.into())),
                ..Default::default()
            }),
            None => V::PresentMatch(true),
        }),
    };
    let one_of = ValueMatcher {
        match_pattern: Some(V::ListMatch(Box::new(ListMatcher {
            match_pattern: Some(list_matcher::MatchPattern::OneOf(Box::new(single.clone()))),
        }))),
    };
    let claim = MetadataMatcher {
        filter: "envoy.filters.http.jwt_authn".into(),
        path: std::iter::once("payload")
            .chain(path.iter().copied())
            .map(|k| PathSegment {
                segment: Some(Segment::Key(k.into())),
            })
            .collect(),
        value: Some(ValueMatcher {
            match_pattern: Some(V::OrMatch(OrMatcher {
                value_matchers: vec![one_of, single],
            })),
        }),
        invert: without,
    };
    let reply = |status| route::Route {
        action: Some(route::route::Action::DirectResponse(
            route::DirectResponseAction {
                status,
                ..Default::default()
            },
        )),
        ..Default::default()
    };
    let prefix = || route::RouteMatch {
        path_specifier: Some(route::route_match::PathSpecifier::Prefix("/".into())),
        ..Default::default()
    };
    let by_claim = route::Route {
        name: "by-claim".into(),
        r#match: Some(route::RouteMatch {
            dynamic_metadata: vec![claim],
            ..prefix()
        }),
        ..reply(201)
    };
    let rest = route::Route {
        name: "rest".into(),
        r#match: Some(prefix()),
        ..reply(200)
    };
    let proto = route::RouteConfiguration {
        name: "http.8080".into(),
        virtual_hosts: vec![route::VirtualHost {
            name: "gateway".into(),
            domains: vec!["*".into()],
            routes: vec![by_claim, rest],
            ..Default::default()
        }],
        ..Default::default()
    };
    crate::xds::convert::route::route_configuration(&proto).expect("converted, not NACKed")
}

/// The status of the route chosen for a request whose verified JWT payload is `payload`
/// (None: no token), after jwt_authn cleared the route cache or not.
fn claim_status(rc: &RouteConfig, payload: Option<serde_json::Value>, cleared: bool) -> u16 {
    let mut req = http::Request::new(());
    if let Some(p) = payload {
        DynamicMetadata::of_mut(&mut req).set("envoy.filters.http.jwt_authn", "payload", p);
    }
    if cleared {
        req.extensions_mut().insert(crate::jwt::RouteCacheCleared);
    }
    let headers = HeaderMap::new();
    let info = RequestInfo {
        metadata: routing_metadata(&req),
        ..info("/", &headers)
    };
    match route(&rc.virtual_hosts[0], &info).map(|r| &r.action) {
        Some(Action::DirectResponse { status, .. }) => *status,
        other => panic!("unexpected route {other:?}"),
    }
}

#[test]
fn routes_on_jwt_claims_in_dynamic_metadata() {
    use serde_json::json;
    let rc = claim_route_config(&["group"], Some("ops"), false);
    let status = |payload| claim_status(&rc, payload, true);
    assert_eq!(status(Some(json!({"group": "ops"}))), 201);
    assert_eq!(status(Some(json!({"group": ["dev", "ops"]}))), 201);
    assert_eq!(status(Some(json!({"group": "dev"}))), 200);
    assert_eq!(status(Some(json!({"group": ["dev"]}))), 200);
    assert_eq!(status(Some(json!({"sub": "carol"}))), 200);
    assert_eq!(status(None), 200);
    // A number is no string: Envoy's string matcher does not match it.
    assert_eq!(status(Some(json!({"group": 7}))), 200);

    // Nested claims (`@request.auth.claims.org.team`) walk the payload's objects.
    let nested = claim_route_config(&["org", "team"], Some("a"), false);
    let status = |payload| claim_status(&nested, payload, true);
    assert_eq!(status(Some(json!({"org": {"team": "a"}}))), 201);
    assert_eq!(status(Some(json!({"org": {"team": "b"}}))), 200);
    assert_eq!(status(Some(json!({"org": "a"}))), 200);

    // Presence only (a header match without a value).
    let present = claim_route_config(&["group"], None, false);
    assert_eq!(
        claim_status(&present, Some(json!({"group": ""})), true),
        201
    );
    assert_eq!(claim_status(&present, Some(json!({"sub": "x"})), true), 200);

    // withoutHeaders: inverted; a request without the claim (or without a token) matches.
    let without = claim_route_config(&["group"], Some("ops"), true);
    let status = |payload| claim_status(&without, payload, true);
    assert_eq!(status(Some(json!({"group": "ops"}))), 200);
    assert_eq!(status(Some(json!({"group": "dev"}))), 201);
    assert_eq!(status(None), 201);
}

#[test]
fn claims_are_only_seen_after_jwt_authn_clears_the_route_cache() {
    use serde_json::json;
    let rc = claim_route_config(&["group"], Some("ops"), false);
    // Envoy chose the route before jwt_authn verified the token (the filter looks up its
    // per-route config first); without clear_route_cache the payload is not seen.
    assert_eq!(claim_status(&rc, Some(json!({"group": "ops"})), false), 200);
    assert_eq!(claim_status(&rc, Some(json!({"group": "ops"})), true), 201);
}
