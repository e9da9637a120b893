//! The HTTP filter chain of a connection manager, and the inbound route table.

use crate::translate::names::inbound_cluster;
use crate::translate::Direction;
use envoy_types::pb::envoy::config::route::v3::route::Action;
use envoy_types::pb::envoy::config::route::v3::route_action::{
    ClusterSpecifier, MaxStreamDuration,
};
use envoy_types::pb::envoy::config::route::v3::route_match::PathSpecifier;
use envoy_types::pb::envoy::config::route::v3::{
    Route, RouteAction, RouteConfiguration, RouteMatch, VirtualHost,
};
use envoy_types::pb::envoy::extensions::filters::http::cors::v3::Cors;
use envoy_types::pb::envoy::extensions::filters::http::fault::v3::HttpFault;
use envoy_types::pb::envoy::extensions::filters::http::router::v3::Router;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    http_filter::ConfigType, HttpFilter,
};
use envoy_types::util::pack_any;

use super::proto::zero_duration;
use super::{CORS_FILTER, FAULT_FILTER, ROUTER_FILTER};

fn filter(name: &str, config: envoy_types::pb::google::protobuf::Any) -> HttpFilter {
    HttpFilter {
        name: name.into(),
        config_type: Some(ConfigType::TypedConfig(config)),
        ..Default::default()
    }
}

/// Fault and CORS only act where a route carries a per-route config, so they are
/// installed empty; the router must come last.
pub fn http_filters(direction: Direction) -> Vec<HttpFilter> {
    let router = filter(ROUTER_FILTER, pack_any(Router::default()));
    match direction {
        Direction::Inbound => vec![router],
        Direction::Outbound | Direction::Gateway => vec![
            filter(FAULT_FILTER, pack_any(HttpFault::default())),
            filter(CORS_FILTER, pack_any(Cors::default())),
            router,
        ],
    }
}

/// Everything arriving on an inbound port goes to the local application; no timeout, as
/// the caller's sidecar already applies the route's.
pub fn inbound_route_config(port: u32) -> RouteConfiguration {
    let cluster = inbound_cluster(port);
    let action = RouteAction {
        cluster_specifier: Some(ClusterSpecifier::Cluster(cluster.clone())),
        timeout: Some(zero_duration()),
        max_stream_duration: Some(MaxStreamDuration {
            max_stream_duration: Some(zero_duration()),
            grpc_timeout_header_max: Some(zero_duration()),
            ..Default::default()
        }),
        ..Default::default()
    };
    RouteConfiguration {
        name: cluster,
        virtual_hosts: vec![VirtualHost {
            name: format!("inbound|http|{port}"),
            domains: vec!["*".into()],
            routes: vec![Route {
                name: "default".into(),
                r#match: Some(RouteMatch {
                    path_specifier: Some(PathSpecifier::Prefix("/".into())),
                    ..Default::default()
                }),
                action: Some(Action::Route(action)),
                ..Default::default()
            }],
            ..Default::default()
        }],
        validate_clusters: Some(envoy_types::pb::google::protobuf::BoolValue { value: false }),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outbound_chain_ends_with_router() {
        let names: Vec<_> = http_filters(Direction::Outbound)
            .into_iter()
            .map(|f| f.name)
            .collect();
        assert_eq!(
            names,
            [
                "envoy.filters.http.fault",
                "envoy.filters.http.cors",
                "envoy.filters.http.router"
            ]
        );
        let inbound = http_filters(Direction::Inbound);
        assert_eq!(inbound.len(), 1);
        match &inbound[0].config_type {
            Some(ConfigType::TypedConfig(any)) => assert_eq!(
                any.type_url,
                "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
            ),
            other => panic!("router without config: {other:?}"),
        }
    }

    #[test]
    fn inbound_routes_everything_to_the_app() {
        let rc = inbound_route_config(9080);
        let route = &rc.virtual_hosts[0].routes[0];
        match &route.action {
            Some(Action::Route(a)) => assert_eq!(
                a.cluster_specifier,
                Some(ClusterSpecifier::Cluster("inbound|9080||".into()))
            ),
            other => panic!("unexpected action {other:?}"),
        }
        assert_eq!(rc.virtual_hosts[0].domains, ["*"]);
    }
}
