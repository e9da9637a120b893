//! Route selection tests: which virtual host and which route win.

use super::*;
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
