//! Network filters a listener's filter chains are made of: the HTTP connection manager (RDS
//! or inline routes) and the TCP proxy.

use super::proto::{ads, any};
use super::route;
use super::Direction;
use envoy_types::pb::envoy::config::listener::v3::{filter, Filter};
use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    http_connection_manager::{
        ForwardClientCertDetails, RouteSpecifier, SetCurrentClientCertDetails, UpgradeConfig,
    },
    HttpConnectionManager, Rds,
};
use envoy_types::pb::envoy::extensions::filters::network::tcp_proxy::v3::{
    tcp_proxy::{weighted_cluster::ClusterWeight, ClusterSpecifier, WeightedCluster},
    TcpProxy,
};
use envoy_types::pb::google::protobuf::BoolValue;

pub const HCM: &str = "envoy.filters.network.http_connection_manager";
pub const TCP_PROXY: &str = "envoy.filters.network.tcp_proxy";

/// Where an HTTP connection manager gets its routes.
pub enum Routes {
    /// By name over ADS.
    Rds(String),
    Inline(Box<RouteConfiguration>),
}

/// An HTTP connection manager like Istio's: sidecars trust the peer's forwarded headers
/// (`use_remote_address` false) while gateways are the edge and use the client's address.
pub fn http_connection_manager(stat_prefix: &str, routes: Routes, direction: Direction) -> Filter {
    let hcm = HttpConnectionManager {
        stat_prefix: stat_prefix.to_string(),
        route_specifier: Some(match routes {
            Routes::Rds(name) => RouteSpecifier::Rds(Rds {
                config_source: Some(ads()),
                route_config_name: name,
            }),
            Routes::Inline(config) => RouteSpecifier::RouteConfig(*config),
        }),
        http_filters: route::http_filters(direction),
        use_remote_address: Some(BoolValue {
            value: direction == Direction::Gateway,
        }),
        generate_request_id: Some(BoolValue { value: true }),
        forward_client_cert_details: forward_client_cert_details(direction) as i32,
        set_current_client_cert_details: set_current_client_cert_details(direction),
        normalize_path: Some(BoolValue { value: true }),
        // Istio lets WebSocket upgrades through every HTTP listener; without this Envoy
        // answers an upgrade request with 403.
        upgrade_configs: vec![UpgradeConfig {
            upgrade_type: "websocket".to_string(),
            ..Default::default()
        }],
        ..Default::default()
    };
    Filter {
        name: HCM.to_string(),
        config_type: Some(filter::ConfigType::TypedConfig(any(
            "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
            &hcm,
        ))),
    }
}

/// x-forwarded-client-cert as Istio sets it: a sidecar's inbound side appends the caller's
/// identity for the application, a gateway (the edge) replaces whatever the client sent
/// with its own view (Istio's `gatewayTopology.forwardClientCertDetails` default), and a
/// sidecar's outbound side leaves Envoy's default, which strips the header.
fn forward_client_cert_details(direction: Direction) -> ForwardClientCertDetails {
    match direction {
        Direction::Inbound => ForwardClientCertDetails::AppendForward,
        Direction::Gateway => ForwardClientCertDetails::SanitizeSet,
        Direction::Outbound => ForwardClientCertDetails::Sanitize,
    }
}

/// Which details of the peer certificate go into the header: Subject, URI and DNS SANs on
/// a sidecar's inbound side; gateways also the certificate itself (as Istio configures).
fn set_current_client_cert_details(direction: Direction) -> Option<SetCurrentClientCertDetails> {
    let cert = match direction {
        Direction::Inbound => false,
        Direction::Gateway => true,
        Direction::Outbound => return None,
    };
    Some(SetCurrentClientCertDetails {
        subject: Some(BoolValue { value: true }),
        cert,
        uri: true,
        dns: true,
        ..Default::default()
    })
}

/// A TCP proxy to one cluster, or split by weight over several (weights as in Istio's
/// route destinations; a single destination ignores its weight).
pub fn tcp_proxy(stat_prefix: &str, clusters: &[(String, u32)]) -> Filter {
    let cluster_specifier = match clusters {
        [(only, _)] => ClusterSpecifier::Cluster(only.clone()),
        many => ClusterSpecifier::WeightedClusters(WeightedCluster {
            clusters: many
                .iter()
                .map(|(name, weight)| ClusterWeight {
                    name: name.clone(),
                    weight: *weight,
                    ..Default::default()
                })
                .collect(),
        }),
    };
    let proxy = TcpProxy {
        stat_prefix: stat_prefix.to_string(),
        cluster_specifier: Some(cluster_specifier),
        ..Default::default()
    };
    Filter {
        name: TCP_PROXY.to_string(),
        config_type: Some(filter::ConfigType::TypedConfig(any(
            "envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy",
            &proxy,
        ))),
    }
}

/// Puts `http_filter` into every HTTP connection manager of `listener`, ahead of the first
/// filter named in `before` (the router at the latest). Policy filters (JWT, RBAC) are
/// added this way once the listeners are built, since they depend on the proxy rather than
/// the port.
pub fn insert_http_filter(
    listener: &mut envoy_types::pb::envoy::config::listener::v3::Listener,
    http_filter: &envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::HttpFilter,
    before: &[&str],
) {
    use prost::Message;
    for f in listener
        .filter_chains
        .iter_mut()
        .flat_map(|c| c.filters.iter_mut())
        .filter(|f| f.name == HCM)
    {
        let Some(filter::ConfigType::TypedConfig(any)) = &mut f.config_type else {
            continue;
        };
        let Ok(mut hcm) = HttpConnectionManager::decode(any.value.as_slice()) else {
            continue;
        };
        if hcm.http_filters.iter().any(|h| h.name == http_filter.name) {
            continue;
        }
        let at = hcm
            .http_filters
            .iter()
            .position(|h| before.contains(&h.name.as_str()))
            .unwrap_or(hcm.http_filters.len());
        hcm.http_filters.insert(at, http_filter.clone());
        any.value = hcm.encode_to_vec();
    }
}
