//! RBAC filters built from their protos (as xDS delivers them) and evaluated on requests
//! and connections.

use super::convert::{http_filter, network_filter, HTTP_RBAC_TYPE, NETWORK_RBAC_TYPE};
use super::*;
use envoy_types::pb::envoy::config::core::v3::{CidrRange, TypedExtensionConfig};
use envoy_types::pb::envoy::config::rbac::v3::{
    permission::{self, Rule},
    principal::{self, Authenticated, Identifier},
    rbac::Action,
    Permission, Policy, Principal, Rbac as RulesProto,
};
use envoy_types::pb::envoy::config::route::v3::{
    header_matcher::HeaderMatchSpecifier, HeaderMatcher,
};
use envoy_types::pb::envoy::extensions::filters::http::rbac::v3::Rbac as HttpRbac;
use envoy_types::pb::envoy::extensions::filters::network::rbac::v3::Rbac as NetworkRbac;
use envoy_types::pb::envoy::extensions::path::r#match::uri_template::v3::UriTemplateMatchConfig;
use envoy_types::pb::envoy::r#type::matcher::v3::{
    list_matcher,
    metadata_matcher::{path_segment::Segment, PathSegment},
    path_matcher,
    string_matcher::MatchPattern,
    value_matcher, ListMatcher, MetadataMatcher, PathMatcher, RegexMatcher, StringMatcher,
    ValueMatcher,
};
use envoy_types::pb::google::protobuf::{Any, UInt32Value};
use http::HeaderMap;
use prost::Message;

fn any<M: Message>(type_name: &str, m: &M) -> Any {
    Any {
        type_url: format!("type.googleapis.com/{type_name}"),
        value: m.encode_to_vec(),
    }
}

fn exact(s: &str) -> StringMatcher {
    StringMatcher {
        match_pattern: Some(MatchPattern::Exact(s.into())),
        ignore_case: false,
    }
}

fn prefix(s: &str) -> StringMatcher {
    StringMatcher {
        match_pattern: Some(MatchPattern::Prefix(s.into())),
        ignore_case: false,
    }
}

fn perm(rule: Rule) -> Permission {
    Permission { rule: Some(rule) }
}

fn id(identifier: Identifier) -> Principal {
    Principal {
        identifier: Some(identifier),
    }
}

fn policy(permissions: Vec<Permission>, principals: Vec<Principal>) -> Policy {
    Policy {
        permissions,
        principals,
        ..Default::default()
    }
}

fn http(action: Action, policies: &[(&str, Policy)]) -> RbacFilter {
    let config = HttpRbac {
        rules: Some(RulesProto {
            action: action as i32,
            policies: policies
                .iter()
                .map(|(n, p)| (n.to_string(), p.clone()))
                .collect(),
            ..Default::default()
        }),
        ..Default::default()
    };
    http_filter("", &any(HTTP_RBAC_TYPE, &config)).unwrap()
}

fn path_is(p: &str) -> Permission {
    perm(Rule::UrlPath(PathMatcher {
        rule: Some(path_matcher::Rule::Path(prefix(p))),
    }))
}

fn request<'a>(method: &'a str, path: &'a str, headers: &'a HeaderMap) -> Subject<'a> {
    Subject {
        request: Some(RequestAttrs {
            method,
            authority: "svc.example",
            path,
            scheme: "http",
            headers,
        }),
        direct_remote: Some("10.0.0.7:40000".parse().unwrap()),
        remote: Some("10.0.0.7:40000".parse().unwrap()),
        destination: Some("10.0.0.1:8080".parse().unwrap()),
        ..Default::default()
    }
}

#[test]
fn allow_with_no_policies_denies_everything_and_deny_with_none_allows() {
    let h = HeaderMap::new();
    let s = request("GET", "/", &h);
    assert!(!http(Action::Allow, &[]).check(&s).allowed);
    assert!(http(Action::Deny, &[]).check(&s).allowed);
    assert!(http(Action::Log, &[]).check(&s).allowed);
}

#[test]
fn deny_by_path_ignores_the_query_and_names_the_first_policy_by_name() {
    let any_id = id(Identifier::Any(true));
    let f = http(
        Action::Deny,
        &[
            (
                "z-admin",
                policy(vec![path_is("/admin")], vec![any_id.clone()]),
            ),
            ("a-admin", policy(vec![path_is("/admin")], vec![any_id])),
        ],
    );
    let h = HeaderMap::new();
    let v = f.check(&request("GET", "/admin/x?y=1", &h));
    assert_eq!(
        v,
        Verdict {
            allowed: false,
            policy: Some("a-admin".into())
        }
    );
    assert!(f.check(&request("GET", "/public?p=/admin", &h)).allowed);
}

#[test]
fn header_and_not_rules() {
    let method = perm(Rule::Header(HeaderMatcher {
        name: ":method".into(),
        header_match_specifier: Some(HeaderMatchSpecifier::StringMatch(exact("GET"))),
        ..Default::default()
    }));
    let not_method = perm(Rule::NotRule(Box::new(method)));
    let f = http(
        Action::Allow,
        &[(
            "p",
            policy(vec![not_method], vec![id(Identifier::Any(true))]),
        )],
    );
    let h = HeaderMap::new();
    assert!(!f.check(&request("GET", "/", &h)).allowed);
    assert!(f.check(&request("POST", "/", &h)).allowed);
}

#[test]
fn authenticated_needs_tls_and_matches_the_uri_san() {
    let who = id(Identifier::Authenticated(Authenticated {
        principal_name: Some(exact("spiffe://cluster.local/ns/a/sa/b")),
    }));
    let f = http(
        Action::Allow,
        &[("p", policy(vec![perm(Rule::Any(true))], vec![who]))],
    );
    let h = HeaderMap::new();
    let mut s = request("GET", "/", &h);
    s.peer_principal = Some("spiffe://cluster.local/ns/a/sa/b");
    assert!(
        !f.check(&s).allowed,
        "a principal without TLS is not authenticated"
    );
    s.tls = true;
    assert!(f.check(&s).allowed);
    s.peer_principal = Some("spiffe://cluster.local/ns/a/sa/c");
    assert!(!f.check(&s).allowed);
}

#[test]
fn remote_ip_and_destination_port() {
    let f = http(
        Action::Allow,
        &[(
            "p",
            policy(
                vec![perm(Rule::DestinationPort(8080))],
                vec![id(Identifier::RemoteIp(CidrRange {
                    address_prefix: "192.168.0.0".into(),
                    prefix_len: Some(UInt32Value { value: 16 }),
                }))],
            ),
        )],
    );
    let h = HeaderMap::new();
    let mut s = request("GET", "/", &h);
    assert!(!f.check(&s).allowed);
    s.remote = Some("192.168.3.4:0".parse().unwrap());
    assert!(f.check(&s).allowed);
    s.destination = Some("10.0.0.1:9090".parse().unwrap());
    assert!(!f.check(&s).allowed);
}

#[test]
#[allow(deprecated)] // `metadata` principals are what Istio sends.
fn jwt_claims_in_dynamic_metadata_match_lists() {
    let claim = id(Identifier::Metadata(MetadataMatcher {
        filter: "envoy.filters.http.jwt_authn".into(),
        path: ["payload", "groups"]
            .iter()
            .map(|k| PathSegment {
                segment: Some(Segment::Key(k.to_string())),
            })
            .collect(),
        value: Some(ValueMatcher {
            match_pattern: Some(value_matcher::MatchPattern::ListMatch(Box::new(
                ListMatcher {
                    match_pattern: Some(list_matcher::MatchPattern::OneOf(Box::new(
                        ValueMatcher {
                            match_pattern: Some(value_matcher::MatchPattern::StringMatch(exact(
                                "admin",
                            ))),
                        },
                    ))),
                },
            ))),
        }),
        invert: false,
    }));
    let f = http(
        Action::Allow,
        &[("p", policy(vec![perm(Rule::Any(true))], vec![claim]))],
    );
    let h = HeaderMap::new();
    let mut s = request("GET", "/", &h);
    assert!(!f.check(&s).allowed);
    let md: serde_json::Map<String, serde_json::Value> = serde_json::from_str(
        r#"{"envoy.filters.http.jwt_authn": {"payload": {"groups": ["dev", "admin"]}}}"#,
    )
    .unwrap();
    s.metadata = Some(&md);
    assert!(f.check(&s).allowed);
}

#[test]
fn uri_templates_and_regex_principals() {
    let template = perm(Rule::UriTemplate(TypedExtensionConfig {
        name: "uri-template".into(),
        typed_config: Some(any(
            "envoy.extensions.path.match.uri_template.v3.UriTemplateMatchConfig",
            &UriTemplateMatchConfig {
                path_template: "/books/*/reviews".into(),
            },
        )),
    }));
    let ns = id(Identifier::Authenticated(Authenticated {
        principal_name: Some(StringMatcher {
            match_pattern: Some(MatchPattern::SafeRegex(RegexMatcher {
                regex: ".*/ns/prod/.*".into(),
                ..Default::default()
            })),
            ignore_case: false,
        }),
    }));
    let f = http(Action::Allow, &[("p", policy(vec![template], vec![ns]))]);
    let h = HeaderMap::new();
    let mut s = request("GET", "/books/7/reviews", &h);
    s.tls = true;
    s.peer_principal = Some("spiffe://cluster.local/ns/prod/sa/x");
    assert!(f.check(&s).allowed);
    let s2 = Subject {
        request: Some(RequestAttrs {
            path: "/books/7/8/reviews",
            ..s.request.unwrap()
        }),
        ..s
    };
    assert!(!f.check(&s2).allowed);
}

#[test]
fn network_filter_sees_no_headers() {
    let method = perm(Rule::Header(HeaderMatcher {
        name: ":method".into(),
        header_match_specifier: Some(HeaderMatchSpecifier::PresentMatch(true)),
        ..Default::default()
    }));
    let config = NetworkRbac {
        rules: Some(RulesProto {
            action: Action::Deny as i32,
            policies: [(
                "p".to_string(),
                policy(
                    vec![perm(Rule::AndRules(permission::Set {
                        rules: vec![perm(Rule::DestinationPort(9000)), method],
                    }))],
                    vec![id(Identifier::OrIds(principal::Set {
                        ids: vec![id(Identifier::Any(true))],
                    }))],
                ),
            )]
            .into(),
            ..Default::default()
        }),
        stat_prefix: "tcp.".into(),
        ..Default::default()
    };
    let f = network_filter("", &any(NETWORK_RBAC_TYPE, &config)).unwrap();
    let s = Subject {
        destination: Some("10.0.0.1:9000".parse().unwrap()),
        ..Default::default()
    };
    assert!(f.check(&s).allowed, "no request: :method is absent");
}

#[test]
fn what_cannot_be_honoured_is_refused_with_its_field() {
    let config = HttpRbac {
        rules: Some(RulesProto {
            action: Action::Allow as i32,
            policies: [(
                "p".to_string(),
                policy(
                    vec![perm(Rule::Any(true))],
                    vec![id(Identifier::FilterState(Default::default()))],
                ),
            )]
            .into(),
            ..Default::default()
        }),
        ..Default::default()
    };
    let err = http_filter("f", &any(HTTP_RBAC_TYPE, &config)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "f.rules.policies[p].principals[0].filter_state: unsupported: filter state principals"
    );
}

#[test]
fn details_name_the_policy() {
    assert_eq!(
        denied_details(Some("ns[foo]-policy[deny]-rule[0]")),
        "rbac_access_denied_matched_policy[ns[foo]-policy[deny]-rule[0]]"
    );
    assert_eq!(
        denied_details(None),
        "rbac_access_denied_matched_policy[none]"
    );
}

#[test]
fn dot_segments_are_removed_before_matching() {
    assert_eq!(
        normalized_path("/public/../admin/x?a=/../b"),
        "/admin/x?a=/../b"
    );
    assert_eq!(normalized_path("/a/./b/."), "/a/b/");
    assert_eq!(normalized_path("/../.."), "/");
    assert_eq!(normalized_path("/a/b/.."), "/a/");
    assert_eq!(normalized_path("/plain"), "/plain");
}

#[test]
fn remote_address_behind_the_edge_is_the_last_forwarded_for() {
    let mut h = HeaderMap::new();
    let peer = Some("127.0.0.1:5000".parse().unwrap());
    assert_eq!(remote_address(&h, peer, false), peer);
    h.insert("x-forwarded-for", "1.1.1.1, 2.2.2.2".parse().unwrap());
    assert_eq!(
        remote_address(&h, peer, false),
        Some("2.2.2.2:0".parse().unwrap())
    );
    assert_eq!(remote_address(&h, peer, true), peer);
}

mod listeners {
    use super::*;
    use crate::model::NetworkFilter;
    use crate::xds::convert::listener::listener;
    use envoy_types::pb::envoy::config::core::v3::{
        address, socket_address, Address, SocketAddress,
    };
    use envoy_types::pb::envoy::config::listener::v3::{filter, Filter, FilterChain, Listener};
    use envoy_types::pb::envoy::extensions::filters::network::tcp_proxy::v3::{
        tcp_proxy::ClusterSpecifier, TcpProxy,
    };

    fn network_rbac() -> Filter {
        let config = NetworkRbac {
            rules: Some(RulesProto {
                action: Action::Deny as i32,
                ..Default::default()
            }),
            stat_prefix: "tcp.".into(),
            ..Default::default()
        };
        Filter {
            name: "envoy.filters.network.rbac".into(),
            config_type: Some(filter::ConfigType::TypedConfig(any(
                NETWORK_RBAC_TYPE,
                &config,
            ))),
        }
    }

    fn with_filters(filters: Vec<Filter>) -> Listener {
        Listener {
            name: "l".into(),
            address: Some(Address {
                address: Some(address::Address::SocketAddress(SocketAddress {
                    address: "127.0.0.1".into(),
                    port_specifier: Some(socket_address::PortSpecifier::PortValue(15000)),
                    ..Default::default()
                })),
            }),
            filter_chains: vec![FilterChain {
                filters,
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    fn tcp_proxy() -> Filter {
        let proxy = TcpProxy {
            stat_prefix: "t".into(),
            cluster_specifier: Some(ClusterSpecifier::Cluster("c".into())),
            ..Default::default()
        };
        Filter {
            name: "envoy.filters.network.tcp_proxy".into(),
            config_type: Some(filter::ConfigType::TypedConfig(any(
                "envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy",
                &proxy,
            ))),
        }
    }

    #[test]
    fn network_rbac_runs_before_the_tcp_proxy() {
        let l = listener(&with_filters(vec![network_rbac(), tcp_proxy()])).unwrap();
        match &l.filter_chains[0].filter {
            NetworkFilter::TcpProxy { rbac, .. } => assert_eq!(rbac.len(), 1),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn other_filters_before_the_terminal_one_are_refused() {
        let mut not_rbac = tcp_proxy();
        not_rbac.name = "envoy.filters.network.tcp_proxy".into();
        let err = listener(&with_filters(vec![not_rbac, tcp_proxy()])).unwrap_err();
        assert!(
            err.to_string()
                .contains("filters[0]: unsupported: network filter envoy.filters.network.tcp_proxy before the terminal filter"),
            "{err}"
        );
    }
}
