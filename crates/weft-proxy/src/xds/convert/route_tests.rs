//! Conversion tests for route configurations, listeners and clusters.

use super::*;
use crate::xds::convert::{cluster, endpoint, listener, ConvertError};
use envoy_types::pb::envoy::config::cluster::v3::{
    cluster::{ClusterDiscoveryType, DiscoveryType, LbPolicy as LbProto},
    Cluster as ClusterProto,
};
use envoy_types::pb::envoy::config::core::v3::{
    address, socket_address::PortSpecifier, Address, HealthStatus, SocketAddress,
};
use envoy_types::pb::envoy::config::endpoint::v3::{
    lb_endpoint, ClusterLoadAssignment, Endpoint as EndpointProto, LbEndpoint, LocalityLbEndpoints,
};
use envoy_types::pb::envoy::config::listener::v3::{filter, Filter, FilterChain, Listener};
use envoy_types::pb::envoy::config::route::v3::{
    route_action::ClusterSpecifier, weighted_cluster::ClusterWeight, DirectResponseAction,
    RouteAction, WeightedCluster as WcProto,
};
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    http_connection_manager::RouteSpecifier, http_filter, HttpConnectionManager as Hcm, HttpFilter,
};
use envoy_types::pb::google::protobuf::{Any, BoolValue, UInt32Value};
use prost::Message;

pub(super) fn prefix_route(cluster: &str) -> RouteProto {
    RouteProto {
        name: "default".into(),
        r#match: Some(RouteMatchProto {
            path_specifier: Some(PathSpecifier::Prefix("/".into())),
            ..Default::default()
        }),
        action: Some(ActionProto::Route(RouteAction {
            cluster_specifier: Some(ClusterSpecifier::Cluster(cluster.into())),
            ..Default::default()
        })),
        ..Default::default()
    }
}

pub(super) fn config(routes: Vec<RouteProto>) -> RouteConfiguration {
    RouteConfiguration {
        name: "http_proxy".into(),
        virtual_hosts: vec![VhProto {
            name: "ratings".into(),
            domains: vec!["ratings:9080".into(), "*".into()],
            routes,
            ..Default::default()
        }],
        ..Default::default()
    }
}

#[test]
fn weighted_routes_with_timeout_convert() {
    let mut r = prefix_route("x");
    if let Some(ActionProto::Route(a)) = &mut r.action {
        a.cluster_specifier = Some(ClusterSpecifier::WeightedClusters(WcProto {
            clusters: ["a", "b"]
                .map(|n| ClusterWeight {
                    name: n.into(),
                    weight: Some(UInt32Value { value: 50 }),
                    ..Default::default()
                })
                .to_vec(),
            ..Default::default()
        }));
        a.timeout = Some(envoy_types::pb::google::protobuf::Duration {
            seconds: 0,
            nanos: 0,
        });
    }
    let rc = route_configuration(&config(vec![r])).unwrap();
    let Action::Forward(f) = &rc.virtual_hosts[0].routes[0].action else {
        panic!("not a forward");
    };
    assert_eq!(
        f.clusters
            .iter()
            .map(|c| (c.name.as_str(), c.weight))
            .collect::<Vec<_>>(),
        [("a", 50), ("b", 50)]
    );
    assert_eq!(f.timeout, None, "0s means no timeout");
}

#[test]
fn missing_timeout_is_envoys_fifteen_seconds() {
    let rc = route_configuration(&config(vec![prefix_route("c")])).unwrap();
    let Action::Forward(f) = &rc.virtual_hosts[0].routes[0].action else {
        panic!("not a forward");
    };
    assert_eq!(f.timeout, Some(std::time::Duration::from_secs(15)));
}

#[test]
fn direct_response_keeps_status_and_body() {
    let mut r = prefix_route("c");
    r.action = Some(ActionProto::DirectResponse(DirectResponseAction {
        status: 502,
        ..Default::default()
    }));
    let rc = route_configuration(&config(vec![r])).unwrap();
    assert!(matches!(
        rc.virtual_hosts[0].routes[0].action,
        Action::DirectResponse {
            status: 502,
            body: None
        }
    ));
}

#[test]
fn bad_regex_is_invalid() {
    let mut r = prefix_route("c");
    r.r#match.as_mut().unwrap().path_specifier = Some(PathSpecifier::SafeRegex(RegexMatcher {
        regex: "(".into(),
        ..Default::default()
    }));
    let err = route_configuration(&config(vec![r])).unwrap_err();
    assert!(
        matches!(err, ConvertError::Invalid { ref field, .. } if field.ends_with("safe_regex.regex")),
        "{err}"
    );
}

pub(super) fn any<M: Message>(type_name: &str, m: &M) -> Any {
    Any {
        type_url: format!("type.googleapis.com/{type_name}"),
        value: m.encode_to_vec(),
    }
}

fn addr(ip: &str, port: u32) -> Address {
    Address {
        address: Some(address::Address::SocketAddress(SocketAddress {
            address: ip.into(),
            port_specifier: Some(PortSpecifier::PortValue(port)),
            ..Default::default()
        })),
    }
}

fn hcm_listener(filters: Vec<HttpFilter>) -> Listener {
    let hcm = Hcm {
        stat_prefix: "outbound".into(),
        route_specifier: Some(RouteSpecifier::RouteConfig(config(vec![prefix_route("c")]))),
        http_filters: filters,
        generate_request_id: Some(BoolValue { value: true }),
        ..Default::default()
    };
    Listener {
        name: "127.0.0.1_15001".into(),
        address: Some(addr("127.0.0.1", 15001)),
        filter_chains: vec![FilterChain {
            filters: vec![Filter {
                name: "envoy.filters.network.http_connection_manager".into(),
                config_type: Some(filter::ConfigType::TypedConfig(any(
                    listener::HCM_TYPE,
                    &hcm,
                ))),
            }],
            ..Default::default()
        }],
        ..Default::default()
    }
}

fn http_filter(name: &str, type_name: &str, value: Vec<u8>) -> HttpFilter {
    HttpFilter {
        name: name.into(),
        config_type: Some(http_filter::ConfigType::TypedConfig(Any {
            type_url: format!("type.googleapis.com/{type_name}"),
            value,
        })),
        ..Default::default()
    }
}

fn router() -> HttpFilter {
    http_filter(
        "envoy.filters.http.router",
        "envoy.extensions.filters.http.router.v3.Router",
        Vec::new(),
    )
}

#[test]
fn http_listener_with_inline_routes_converts() {
    let l = listener::listener(&hcm_listener(vec![router()])).unwrap();
    assert_eq!(l.address, "127.0.0.1:15001".parse().unwrap());
    let crate::model::NetworkFilter::Http(h) = &l.filter_chains[0].filter else {
        panic!("not HTTP");
    };
    assert!(matches!(&h.routes, crate::model::RouteSource::Inline(rc) if rc.name == "http_proxy"));
}

#[test]
fn unknown_http_filters_and_listener_features_are_refused() {
    let ext_authz = http_filter(
        "ext_authz",
        "envoy.extensions.filters.http.ext_authz.v3.ExtAuthz",
        vec![],
    );
    let err = listener::listener(&hcm_listener(vec![ext_authz, router()])).unwrap_err();
    assert_eq!(
        err.to_string(),
        "filter_chains[0].filters[0].typed_config.http_filters[0]: unsupported: HTTP filter ext_authz"
    );
    let mut l = hcm_listener(vec![router()]);
    l.freebind = Some(BoolValue { value: true });
    assert!(
        matches!(listener::listener(&l), Err(ConvertError::Unsupported { what, .. }) if what == "freebind")
    );
}

fn eds_cluster() -> ClusterProto {
    ClusterProto {
        name: "outbound|9080||ratings.default.svc.cluster.local".into(),
        cluster_discovery_type: Some(ClusterDiscoveryType::Type(DiscoveryType::Eds as i32)),
        lb_policy: LbProto::LeastRequest as i32,
        ..Default::default()
    }
}

#[test]
fn eds_cluster_converts() {
    let c = cluster::cluster(&eds_cluster()).unwrap();
    assert_eq!(
        c.lb_policy,
        crate::model::LbPolicy::LeastRequest { choice_count: 2 }
    );
    assert_eq!(
        c.discovery,
        crate::model::Discovery::Eds {
            service_name: "outbound|9080||ratings.default.svc.cluster.local".into()
        }
    );
    // Outlier detection and Maglev are converted now: see convert/cluster_tests.rs.
}

#[test]
fn endpoints_keep_health_and_weight() {
    let ep = |port, health: HealthStatus, weight| LbEndpoint {
        host_identifier: Some(lb_endpoint::HostIdentifier::Endpoint(EndpointProto {
            address: Some(addr("127.0.0.1", port)),
            ..Default::default()
        })),
        health_status: health as i32,
        load_balancing_weight: Some(UInt32Value { value: weight }),
        ..Default::default()
    };
    let la = ClusterLoadAssignment {
        cluster_name: "c".into(),
        endpoints: vec![LocalityLbEndpoints {
            lb_endpoints: vec![
                ep(1, HealthStatus::Healthy, 3),
                ep(2, HealthStatus::Unhealthy, 1),
            ],
            ..Default::default()
        }],
        ..Default::default()
    };
    let m = endpoint::load_assignment(&la).unwrap();
    assert_eq!(
        m.endpoints
            .iter()
            .map(|e| (e.port, e.weight, e.healthy))
            .collect::<Vec<_>>(),
        [(1, 3, true), (2, 1, false)]
    );
    let mut la = la;
    la.endpoints[0].priority = 1;
    assert!(endpoint::load_assignment(&la)
        .unwrap_err()
        .to_string()
        .contains("priority"));
}

#[path = "route_feature_tests.rs"]
mod features;
