//! Conversion tests for route features beyond matching: header edits, rewrites, retries,
//! mirrors, hash policies, redirects and the fault / CORS per-filter configs.

use super::super::*;
use super::{any, config, prefix_route};
use crate::model::route::{AbortKind, AppendAction, HashKey, PathRewrite, RedirectPath};
use crate::xds::convert::ConvertError;
use envoy_types::pb::envoy::config::core::v3::{
    header_value_option::HeaderAppendAction, HeaderValue, HeaderValueOption,
    RuntimeFractionalPercent,
};
use envoy_types::pb::envoy::config::route::v3::route_action::ClusterSpecifier;
use envoy_types::pb::envoy::config::route::v3::{
    retry_policy::{retry_host_predicate, RetryHostPredicate},
    route_action::{
        hash_policy::{ConnectionProperties, Cookie, FilterState, Header, PolicySpecifier},
        HashPolicy, HostRewriteSpecifier, RequestMirrorPolicy,
    },
    weighted_cluster::ClusterWeight,
    RedirectAction, RetryPolicy, RouteAction, WeightedCluster,
};
use envoy_types::pb::envoy::extensions::filters::common::fault::v3::{
    fault_delay::FaultDelaySecifier, FaultDelay,
};
use envoy_types::pb::envoy::extensions::filters::http::cors::v3::CorsPolicy;
use envoy_types::pb::envoy::extensions::filters::http::fault::v3::{
    fault_abort::ErrorType, FaultAbort, HttpFault,
};
use envoy_types::pb::envoy::extensions::retry::host::previous_hosts::v3::PreviousHostsPredicate;
use envoy_types::pb::envoy::r#type::matcher::v3::{
    string_matcher::MatchPattern, RegexMatchAndSubstitute, StringMatcher,
};
use envoy_types::pb::envoy::r#type::v3::{fractional_percent::DenominatorType, FractionalPercent};
use envoy_types::pb::google::protobuf::{Any, BoolValue, Duration as PbDuration, UInt32Value};
use std::time::Duration;

fn with_action(f: impl FnOnce(&mut RouteAction)) -> RouteProto {
    let mut r = prefix_route("c");
    if let Some(ActionProto::Route(a)) = &mut r.action {
        f(a);
    }
    r
}

fn forward_of(r: RouteProto) -> crate::model::Forward {
    let rc = route_configuration(&config(vec![r])).unwrap();
    match &rc.virtual_hosts[0].routes[0].action {
        Action::Forward(f) => f.clone(),
        other => panic!("not a forward: {other:?}"),
    }
}

fn opt(key: &str, value: &str, action: HeaderAppendAction) -> HeaderValueOption {
    HeaderValueOption {
        header: Some(HeaderValue {
            key: key.into(),
            value: value.into(),
            ..Default::default()
        }),
        append_action: action as i32,
        ..Default::default()
    }
}

fn percent(n: u32) -> FractionalPercent {
    FractionalPercent {
        numerator: n,
        denominator: DenominatorType::Hundred as i32,
    }
}

fn secs(s: i64, nanos: i32) -> PbDuration {
    PbDuration { seconds: s, nanos }
}

#[test]
fn header_edits_at_every_level() {
    let mut r = with_action(|a| {
        a.cluster_specifier = Some(ClusterSpecifier::WeightedClusters(WeightedCluster {
            clusters: vec![ClusterWeight {
                name: "v1".into(),
                weight: Some(UInt32Value { value: 100 }),
                request_headers_to_add: vec![opt("x-cluster", "v1", HeaderAppendAction::OverwriteIfExistsOrAdd)],
                response_headers_to_remove: vec!["x-secret".into()],
                host_rewrite_specifier: Some(
                    envoy_types::pb::envoy::config::route::v3::weighted_cluster::cluster_weight::HostRewriteSpecifier::HostRewriteLiteral("v1.example".into()),
                ),
                ..Default::default()
            }],
            ..Default::default()
        }));
    });
    r.request_headers_to_add
        .push(opt("x-route", "1", HeaderAppendAction::AppendIfExistsOrAdd));
    r.response_headers_to_remove.push("server".into());
    let mut rc = config(vec![r]);
    rc.virtual_hosts[0].response_headers_to_add.push(opt(
        "x-vh",
        "yes",
        HeaderAppendAction::AddIfAbsent,
    ));
    rc.request_headers_to_remove.push("x-internal".into());
    rc.most_specific_header_mutations_wins = true;
    let m = route_configuration(&rc).unwrap();
    assert!(m.most_specific_header_mutations_wins);
    assert_eq!(m.headers.request.remove, ["x-internal"]);
    let vh = &m.virtual_hosts[0];
    assert_eq!(vh.headers.response.add[0].action, AppendAction::AddIfAbsent);
    let route = &vh.routes[0];
    assert_eq!(route.headers.request.add[0].name, "x-route");
    assert_eq!(route.headers.response.remove, ["server"]);
    let Action::Forward(f) = &route.action else {
        panic!("not a forward");
    };
    assert_eq!(f.clusters[0].headers.request.add[0].name, "x-cluster");
    assert_eq!(f.clusters[0].headers.response.remove, ["x-secret"]);
    assert_eq!(f.clusters[0].host_rewrite.as_deref(), Some("v1.example"));
}

#[test]
fn rewrites() {
    let f = forward_of(with_action(|a| {
        a.prefix_rewrite = "/v2/".into();
        a.host_rewrite_specifier =
            Some(HostRewriteSpecifier::HostRewriteLiteral("new.host".into()));
    }));
    assert!(matches!(&f.path_rewrite, Some(PathRewrite::Prefix(p)) if p == "/v2/"));
    assert_eq!(f.host_rewrite.as_deref(), Some("new.host"));
    let f = forward_of(with_action(|a| {
        a.regex_rewrite = Some(RegexMatchAndSubstitute {
            pattern: Some(RegexMatcher {
                regex: "^/svc/([^/]+)".into(),
                ..Default::default()
            }),
            substitution: "/\\1/x$".into(),
        });
    }));
    let Some(PathRewrite::Regex {
        pattern,
        substitution,
    }) = &f.path_rewrite
    else {
        panic!("no regex rewrite");
    };
    assert_eq!(
        pattern.replace_all("/svc/foo/bar", substitution.as_str()),
        "/foo/x$/bar",
        "RE2 back-references and literal $"
    );
    let err = route_configuration(&config(vec![with_action(|a| {
        a.host_rewrite_specifier = Some(HostRewriteSpecifier::AutoHostRewrite(BoolValue {
            value: true,
        }));
    })]))
    .unwrap_err();
    assert!(err.to_string().contains("host_rewrite_literal"), "{err}");
}

fn istio_default_retry() -> RetryPolicy {
    RetryPolicy {
        retry_on: "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes"
            .into(),
        num_retries: Some(UInt32Value { value: 2 }),
        retriable_status_codes: vec![503],
        host_selection_retry_max_attempts: 5,
        retry_host_predicate: vec![RetryHostPredicate {
            name: "envoy.retry_host_predicates.previous_hosts".into(),
            config_type: Some(retry_host_predicate::ConfigType::TypedConfig(any(
                "envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate",
                &PreviousHostsPredicate {},
            ))),
        }],
        ..Default::default()
    }
}

#[test]
fn retry_policies() {
    let f = forward_of(with_action(|a| {
        a.retry_policy = Some(istio_default_retry())
    }));
    let p = f.retry_policy.unwrap();
    assert_eq!(p.num_retries, 2);
    assert!(
        p.retry_on.connect_failure
            && p.retry_on.grpc_unavailable
            && p.retry_on.retriable_status_codes
    );
    assert!(!p.retry_on.status_5xx);
    assert_eq!(p.retriable_status_codes, [503]);
    assert!(p.previous_hosts);
    assert_eq!(p.host_selection_max_attempts, 5);
    assert_eq!(p.backoff_base, Duration::from_millis(25));
    assert_eq!(p.backoff_max, Duration::from_millis(250));

    let mut custom = istio_default_retry();
    custom.retry_on = "5xx,gateway-error".into();
    custom.per_try_timeout = Some(secs(0, 200_000_000));
    custom.num_retries = None;
    let p = forward_of(with_action(|a| a.retry_policy = Some(custom)))
        .retry_policy
        .unwrap();
    assert_eq!(p.per_try_timeout, Some(Duration::from_millis(200)));
    assert_eq!(p.num_retries, 1, "Envoy's default");

    let mut bad = istio_default_retry();
    bad.retry_on = "5xx,sometimes".into();
    let err = route_configuration(&config(vec![with_action(|a| a.retry_policy = Some(bad))]))
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "virtual_hosts[0].routes[0].route.retry_policy.retry_on: unsupported: retry_on \"sometimes\""
    );
}

#[test]
fn mirrors_and_hash_policies() {
    let f = forward_of(with_action(|a| {
        a.request_mirror_policies.push(RequestMirrorPolicy {
            cluster: "outbound|9080|v3|reviews.default.svc.cluster.local".into(),
            runtime_fraction: Some(RuntimeFractionalPercent {
                default_value: Some(percent(50)),
                ..Default::default()
            }),
            trace_sampled: Some(BoolValue { value: false }),
            ..Default::default()
        });
        let policy = |s| HashPolicy {
            policy_specifier: Some(s),
            terminal: false,
        };
        a.hash_policy = vec![
            policy(PolicySpecifier::Header(Header {
                header_name: "X-User".into(),
                ..Default::default()
            })),
            policy(PolicySpecifier::Cookie(Cookie {
                name: "session".into(),
                ttl: Some(secs(10, 0)),
                path: "/".into(),
                ..Default::default()
            })),
            policy(PolicySpecifier::ConnectionProperties(
                ConnectionProperties { source_ip: true },
            )),
        ];
    }));
    assert_eq!(f.mirrors.len(), 1);
    assert_eq!(f.mirrors[0].fraction.numerator, 50);
    assert!(!f.mirrors[0].keep_host);
    assert!(matches!(&f.hash_policy[0].key, HashKey::Header(h) if h == "x-user"));
    assert!(
        matches!(&f.hash_policy[1].key, HashKey::Cookie { ttl: Some(t), path, .. } if *t == Duration::from_secs(10) && path == "/")
    );
    assert!(matches!(f.hash_policy[2].key, HashKey::SourceIp));

    let err = route_configuration(&config(vec![with_action(|a| {
        a.hash_policy.push(HashPolicy {
            policy_specifier: Some(PolicySpecifier::FilterState(FilterState {
                key: "k".into(),
            })),
            terminal: false,
        })
    })]))
    .unwrap_err();
    assert!(err.to_string().contains("hash_policy[0]"), "{err}");
}

#[test]
fn per_filter_configs() {
    let mut r = prefix_route("c");
    let fault = HttpFault {
        delay: Some(FaultDelay {
            percentage: Some(percent(100)),
            fault_delay_secifier: Some(FaultDelaySecifier::FixedDelay(secs(7, 0))),
        }),
        abort: Some(FaultAbort {
            percentage: Some(percent(10)),
            error_type: Some(ErrorType::GrpcStatus(14)),
            ..Default::default()
        }),
        ..Default::default()
    };
    r.typed_per_filter_config.insert(
        "envoy.filters.http.fault".into(),
        any("envoy.extensions.filters.http.fault.v3.HTTPFault", &fault),
    );
    let cors = CorsPolicy {
        allow_origin_string_match: vec![StringMatcher {
            match_pattern: Some(MatchPattern::Exact("https://example.com".into())),
            ignore_case: false,
        }],
        allow_methods: "POST,GET".into(),
        max_age: "86400".into(),
        filter_enabled: Some(RuntimeFractionalPercent {
            default_value: Some(percent(100)),
            ..Default::default()
        }),
        forward_not_matching_preflights: Some(BoolValue { value: true }),
        ..Default::default()
    };
    r.typed_per_filter_config.insert(
        "envoy.filters.http.cors".into(),
        any("envoy.extensions.filters.http.cors.v3.CorsPolicy", &cors),
    );
    let rc = route_configuration(&config(vec![r])).unwrap();
    let filters = &rc.virtual_hosts[0].routes[0].filters;
    let f = filters.fault.as_ref().unwrap();
    assert_eq!(
        f.delay.as_ref().unwrap().fixed,
        Some(Duration::from_secs(7))
    );
    assert_eq!(f.abort.as_ref().unwrap().kind, AbortKind::Grpc(14));
    assert_eq!(f.abort.as_ref().unwrap().percentage.numerator, 10);
    let c = filters.cors.as_ref().unwrap();
    assert_eq!(c.allow_methods, "POST,GET");
    assert_eq!(c.max_age, "86400");
    assert_eq!(c.forward_not_matching_preflights, Some(true));

    let mut r = prefix_route("c");
    r.typed_per_filter_config.insert(
        "envoy.filters.http.ext_authz".into(),
        Any {
            type_url:
                "type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthzPerRoute"
                    .into(),
            value: vec![],
        },
    );
    let err = route_configuration(&config(vec![r])).unwrap_err();
    assert!(
        matches!(err, ConvertError::Unsupported { ref what, .. } if what.contains("ExtAuthzPerRoute")),
        "{err}"
    );
}

#[test]
fn redirects_fully() {
    let mut r = prefix_route("c");
    r.action = Some(ActionProto::Redirect(RedirectAction {
        host_redirect: "example.com".into(),
        port_redirect: 8443,
        response_code: redirect_action::RedirectResponseCode::PermanentRedirect as i32,
        strip_query: true,
        scheme_rewrite_specifier: Some(redirect_action::SchemeRewriteSpecifier::SchemeRedirect(
            "https".into(),
        )),
        path_rewrite_specifier: Some(redirect_action::PathRewriteSpecifier::PrefixRewrite(
            "/new".into(),
        )),
    }));
    let rc = route_configuration(&config(vec![r])).unwrap();
    let Action::Redirect(rd) = &rc.virtual_hosts[0].routes[0].action else {
        panic!("not a redirect");
    };
    assert_eq!(rd.status, 308);
    assert_eq!(rd.port, Some(8443));
    assert!(rd.strip_query);
    assert_eq!(rd.scheme.as_deref(), Some("https"));
    assert!(matches!(&rd.path, Some(RedirectPath::Rewrite(PathRewrite::Prefix(p))) if p == "/new"));
}
