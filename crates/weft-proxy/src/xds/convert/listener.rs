//! `Listener` -> [`model::Listener`]: one socket address, one filter chain ending in the
//! HTTP connection manager or the TCP proxy.

use super::{at, fields, invalid, reject_rest, route, type_name, unpack, unsupported, Result};
use crate::model::{self, HttpConnectionManager, NetworkFilter, RouteSource, WeightedCluster};
use envoy_types::pb::envoy::config::core::v3::{
    address::Address as AddressKind, config_source::ConfigSourceSpecifier, socket_address, Address,
};
use envoy_types::pb::envoy::config::listener::v3::{filter, Listener};
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    http_connection_manager::{CodecType, RouteSpecifier},
    http_filter, HttpConnectionManager as HcmProto, HttpFilter,
};
use envoy_types::pb::envoy::extensions::filters::network::tcp_proxy::v3::{
    tcp_proxy::ClusterSpecifier, TcpProxy,
};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

pub const HCM_TYPE: &str =
    "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager";
pub const TCP_PROXY_TYPE: &str = "envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy";
const ROUTER_TYPE: &str = "envoy.extensions.filters.http.router.v3.Router";
/// HTTP filters that do nothing unless a route carries per-route config for them (Istio
/// installs them empty); routes with such config are rejected in `route`.
const INERT_WHEN_EMPTY: &[&str] = &[
    "envoy.extensions.filters.http.fault.v3.HTTPFault",
    "envoy.extensions.filters.http.cors.v3.Cors",
];

/// Converts one LDS resource.
pub fn listener(l: &Listener) -> Result<model::Listener> {
    let address = socket_address("address", l.address.as_ref())?;
    if !l.listener_filters.is_empty() {
        let names: Vec<&str> = l.listener_filters.iter().map(|f| f.name.as_str()).collect();
        return Err(unsupported(
            "listener_filters",
            format!("listener filters {}", names.join(", ")),
        ));
    }
    if l.use_original_dst.is_some_and(|b| b.value) {
        return Err(unsupported(
            "use_original_dst",
            "original destination (transparent capture)",
        ));
    }
    if l.bind_to_port.is_some_and(|b| !b.value) {
        return Err(unsupported("bind_to_port", "listeners that do not bind"));
    }
    let [chain] = l.filter_chains.as_slice() else {
        return Err(unsupported(
            "filter_chains",
            format!(
                "{} filter chains (exactly one is supported)",
                l.filter_chains.len()
            ),
        ));
    };
    let chain_field = "filter_chains[0]";
    let mut chain_rest = chain.clone();
    chain_rest.filters.clear();
    chain_rest.name.clear();
    chain_rest.metadata = None;
    if chain_rest.transport_socket.is_some() {
        return Err(unsupported(
            at(chain_field, "transport_socket"),
            "TLS on listeners",
        ));
    }
    reject_rest(chain_field, &chain_rest, fields::FILTER_CHAIN)?;
    let [f] = chain.filters.as_slice() else {
        return Err(unsupported(
            at(chain_field, "filters"),
            format!(
                "{} network filters (exactly one is supported)",
                chain.filters.len()
            ),
        ));
    };
    let field = at(chain_field, "filters[0]");
    let Some(filter::ConfigType::TypedConfig(any)) = &f.config_type else {
        return Err(invalid(
            field,
            format!("filter {} has no typed_config", f.name),
        ));
    };
    let filter = match type_name(any) {
        HCM_TYPE => NetworkFilter::Http(http_connection_manager(
            &field,
            &unpack::<HcmProto>(&field, any, HCM_TYPE)?,
        )?),
        TCP_PROXY_TYPE => tcp_proxy(&field, &unpack::<TcpProxy>(&field, any, TCP_PROXY_TYPE)?)?,
        other => return Err(unsupported(field, format!("network filter {other}"))),
    };

    let mut rest = l.clone();
    rest.name.clear();
    rest.address = None;
    rest.filter_chains.clear();
    // Accepted: they describe, not change, the listener.
    rest.traffic_direction = 0;
    rest.stat_prefix.clear();
    rest.metadata = None;
    rest.use_original_dst = None;
    rest.bind_to_port = None;
    reject_rest("", &rest, fields::LISTENER)?;
    Ok(model::Listener {
        name: l.name.clone(),
        address,
        filter,
    })
}

/// A TCP `socket_address` with an IP literal (listeners and endpoints alike).
pub fn socket_address(field: &str, a: Option<&Address>) -> Result<SocketAddr> {
    let (ip, port) = ip_port(field, a)?;
    let ip: IpAddr = ip.parse().map_err(|_| {
        invalid(
            at(field, "socket_address.address"),
            format!("{ip:?} is not an IP address"),
        )
    })?;
    Ok(SocketAddr::new(ip, port))
}

/// Host (IP or name) and port of a TCP `socket_address`.
pub fn ip_port(field: &str, a: Option<&Address>) -> Result<(String, u16)> {
    let Some(AddressKind::SocketAddress(sa)) = a.and_then(|a| a.address.as_ref()) else {
        return Err(unsupported(field, "addresses other than socket_address"));
    };
    if sa.protocol != socket_address::Protocol::Tcp as i32 {
        return Err(unsupported(at(field, "socket_address.protocol"), "UDP"));
    }
    let port = match sa.port_specifier {
        Some(socket_address::PortSpecifier::PortValue(p)) => u16::try_from(p).map_err(|_| {
            invalid(
                at(field, "socket_address.port_value"),
                format!("{p} is not a port"),
            )
        })?,
        _ => {
            return Err(unsupported(
                at(field, "socket_address.named_port"),
                "named ports",
            ))
        }
    };
    Ok((sa.address.clone(), port))
}

fn http_connection_manager(field: &str, h: &HcmProto) -> Result<HttpConnectionManager> {
    let field = at(field, "typed_config");
    let routes = match &h.route_specifier {
        Some(RouteSpecifier::Rds(rds)) => {
            let ads = matches!(
                rds.config_source
                    .as_ref()
                    .and_then(|c| c.config_source_specifier.as_ref()),
                Some(ConfigSourceSpecifier::Ads(_))
            );
            if !ads {
                return Err(unsupported(
                    at(&field, "rds.config_source"),
                    "RDS from anything but ADS",
                ));
            }
            RouteSource::Rds(rds.route_config_name.clone())
        }
        Some(RouteSpecifier::RouteConfig(rc)) => RouteSource::Inline(Arc::new(
            route::route_configuration(rc)
                .map_err(|e| prefix_field(&at(&field, "route_config"), e))?,
        )),
        _ => {
            return Err(unsupported(
                &field,
                "route_specifier other than rds or route_config",
            ))
        }
    };
    http_filters(&at(&field, "http_filters"), &h.http_filters)?;
    if h.codec_type != CodecType::Auto as i32 && h.codec_type != CodecType::Http1 as i32 {
        return Err(unsupported(
            at(&field, "codec_type"),
            "HTTP/2-only or HTTP/3 codecs",
        ));
    }
    let mut rest = h.clone();
    rest.route_specifier = None;
    rest.http_filters.clear();
    rest.stat_prefix.clear();
    rest.codec_type = 0;
    // A sidecar trusts x-forwarded-for either way and weft-proxy always generates a
    // request id when there is none; path normalization is what hyper already enforces
    // for origin-form paths.
    rest.use_remote_address = None;
    rest.generate_request_id = None;
    rest.normalize_path = None;
    reject_rest(&field, &rest, fields::HCM)?;
    Ok(HttpConnectionManager {
        stat_prefix: h.stat_prefix.clone(),
        routes,
    })
}

/// Only the router, optionally after empty fault/CORS filters, is honoured.
fn http_filters(field: &str, filters: &[HttpFilter]) -> Result<()> {
    let Some((last, before)) = filters.split_last() else {
        return Err(invalid(field, "no HTTP filters: the router is required"));
    };
    let config = |f: &HttpFilter| match &f.config_type {
        Some(http_filter::ConfigType::TypedConfig(any)) => Some(any.clone()),
        _ => None,
    };
    if config(last).as_ref().map(type_name) != Some(ROUTER_TYPE) {
        return Err(unsupported(
            format!("{field}[{}]", filters.len() - 1),
            format!("last HTTP filter {} (must be the router)", last.name),
        ));
    }
    for (i, f) in before.iter().enumerate() {
        let inert = config(f)
            .is_some_and(|any| INERT_WHEN_EMPTY.contains(&type_name(&any)) && any.value.is_empty());
        if !inert {
            return Err(unsupported(
                format!("{field}[{i}]"),
                format!("HTTP filter {}", f.name),
            ));
        }
    }
    Ok(())
}

fn tcp_proxy(field: &str, t: &TcpProxy) -> Result<NetworkFilter> {
    let field = at(field, "typed_config");
    let clusters = match &t.cluster_specifier {
        Some(ClusterSpecifier::Cluster(c)) => vec![WeightedCluster {
            name: c.clone(),
            weight: 1,
        }],
        Some(ClusterSpecifier::WeightedClusters(w)) => w
            .clusters
            .iter()
            .map(|c| WeightedCluster {
                name: c.name.clone(),
                weight: c.weight,
            })
            .collect(),
        None => return Err(invalid(at(&field, "cluster"), "no cluster")),
    };
    let mut rest = t.clone();
    rest.cluster_specifier = None;
    rest.stat_prefix.clear();
    reject_rest(&field, &rest, fields::TCP_PROXY)?;
    Ok(NetworkFilter::TcpProxy {
        stat_prefix: t.stat_prefix.clone(),
        clusters,
    })
}

/// Puts `prefix` in front of the field path of an error from a nested message.
fn prefix_field(prefix: &str, e: super::ConvertError) -> super::ConvertError {
    use super::ConvertError as E;
    match e {
        E::Unsupported { field, what } => E::Unsupported {
            field: at(prefix, field),
            what,
        },
        E::Invalid { field, reason } => E::Invalid {
            field: at(prefix, field),
            reason,
        },
        E::Decode {
            field,
            type_url,
            reason,
        } => E::Decode {
            field: at(prefix, field),
            type_url,
            reason,
        },
    }
}
