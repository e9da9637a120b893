//! `Listener` -> [`model::Listener`]: one socket address, filter chains with their match
//! criteria, each ending in the HTTP connection manager or the TCP proxy; transparent
//! capture's `use_original_dst`, `bind_to_port` and `original_dst` listener filter.

use super::{at, fields, invalid, reject_rest, route, type_name, unpack, unsupported, Result};
use crate::model::{
    self,
    listener::{CidrRange, Forwarding},
    Codec, HttpConnectionManager, NetworkFilter, RouteSource, WeightedCluster,
};
use envoy_types::pb::envoy::config::core::v3::{
    address::Address as AddressKind, config_source::ConfigSourceSpecifier, socket_address, Address,
    CidrRange as CidrRangeProto,
};
use envoy_types::pb::envoy::config::listener::v3::{
    filter, listener_filter, FilterChain, FilterChainMatch as FilterChainMatchProto, Listener,
};
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

const TLS_INSPECTOR_TYPE: &str = "envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector";
const HTTP_INSPECTOR_TYPE: &str =
    "envoy.extensions.filters.listener.http_inspector.v3.HttpInspector";
const ORIGINAL_DST_TYPE: &str = "envoy.extensions.filters.listener.original_dst.v3.OriginalDst";

/// `FilterChainMatch` field numbers, to name what is not honoured.
const FILTER_CHAIN_MATCH: &[(u32, &str)] = &[
    (3, "prefix_ranges"),
    (4, "address_suffix"),
    (5, "suffix_len"),
    (6, "source_prefix_ranges"),
    (7, "source_ports"),
    (8, "destination_port"),
    (9, "transport_protocol"),
    (10, "application_protocols"),
    (11, "server_names"),
    (12, "source_type"),
    (13, "direct_source_prefix_ranges"),
];

/// Converts one LDS resource.
pub fn listener(l: &Listener) -> Result<model::Listener> {
    let address = socket_address("address", l.address.as_ref())?;
    let mut tls_inspector = false;
    let mut http_inspector = false;
    let mut original_dst_filter = false;
    for (i, f) in l.listener_filters.iter().enumerate() {
        let field = format!("listener_filters[{i}]");
        let (type_url, empty) = match &f.config_type {
            Some(listener_filter::ConfigType::TypedConfig(any)) => {
                (type_name(any).to_string(), any.value.is_empty())
            }
            _ => (String::new(), true),
        };
        match type_url.as_str() {
            TLS_INSPECTOR_TYPE => tls_inspector = true,
            HTTP_INSPECTOR_TYPE => http_inspector = true,
            // Its only field, `traffic_direction`, is for Windows.
            ORIGINAL_DST_TYPE if empty => original_dst_filter = true,
            _ => {
                return Err(unsupported(
                    field,
                    format!("listener filter {} ({type_url})", f.name),
                ))
            }
        }
    }
    if l.filter_chains.is_empty() {
        return Err(invalid("filter_chains", "no filter chains"));
    }
    let filter_chains = l
        .filter_chains
        .iter()
        .enumerate()
        .map(|(i, chain)| filter_chain(&format!("filter_chains[{i}]"), chain))
        .collect::<Result<Vec<_>>>()?;
    for (i, a) in filter_chains.iter().enumerate() {
        if filter_chains[..i].iter().any(|b| b.matcher == a.matcher) {
            return Err(invalid(
                format!("filter_chains[{i}]"),
                "multiple filter chains with the same matching rules",
            ));
        }
    }

    let mut rest = l.clone();
    rest.name.clear();
    rest.address = None;
    rest.filter_chains.clear();
    rest.listener_filters.clear();
    // Accepted: they describe, not change, the listener.
    rest.traffic_direction = 0;
    rest.stat_prefix.clear();
    rest.metadata = None;
    rest.use_original_dst = None;
    rest.bind_to_port = None;
    // How long the inspectors may wait for the first bytes; weft-proxy's own bound applies.
    rest.listener_filters_timeout = None;
    rest.continue_on_listener_filters_timeout = false;
    reject_rest("", &rest, fields::LISTENER)?;
    Ok(model::Listener {
        name: l.name.clone(),
        address,
        filter_chains,
        tls_inspector,
        http_inspector,
        bind_to_port: l.bind_to_port.is_none_or(|b| b.value),
        use_original_dst: l.use_original_dst.is_some_and(|b| b.value),
        original_dst_filter,
    })
}

fn filter_chain(chain_field: &str, chain: &FilterChain) -> Result<model::FilterChain> {
    let mut chain_rest = chain.clone();
    chain_rest.filters.clear();
    chain_rest.name.clear();
    chain_rest.metadata = None;
    chain_rest.filter_chain_match = None;
    chain_rest.transport_socket = None;
    let tls = chain
        .transport_socket
        .as_ref()
        .map(|s| super::tls::downstream(&at(chain_field, "transport_socket"), s))
        .transpose()?;
    reject_rest(chain_field, &chain_rest, fields::FILTER_CHAIN)?;
    let matcher = match &chain.filter_chain_match {
        Some(m) => filter_chain_match(&at(chain_field, "filter_chain_match"), m)?,
        None => model::FilterChainMatch::default(),
    };
    // Network RBAC filters may come first; the last filter serves the connection.
    let Some((f, leading)) = chain.filters.split_last() else {
        return Err(unsupported(
            at(chain_field, "filters"),
            "0 network filters (exactly one terminal filter is supported)",
        ));
    };
    let rbac = network_rbac(chain_field, leading)?;
    let field = at(chain_field, format!("filters[{}]", leading.len()));
    let Some(filter::ConfigType::TypedConfig(any)) = &f.config_type else {
        return Err(invalid(
            field,
            format!("filter {} has no typed_config", f.name),
        ));
    };
    let filter = match type_name(any) {
        HCM_TYPE if !rbac.is_empty() => {
            return Err(unsupported(
                at(chain_field, "filters[0]"),
                "network RBAC before the HTTP connection manager",
            ))
        }
        HCM_TYPE => NetworkFilter::Http(Arc::new(http_connection_manager(
            &field,
            &unpack::<HcmProto>(&field, any, HCM_TYPE)?,
        )?)),
        TCP_PROXY_TYPE => tcp_proxy(
            &field,
            &unpack::<TcpProxy>(&field, any, TCP_PROXY_TYPE)?,
            rbac,
        )?,
        other => return Err(unsupported(field, format!("network filter {other}"))),
    };
    Ok(model::FilterChain {
        name: chain.name.clone(),
        matcher,
        filter,
        tls,
    })
}

fn filter_chain_match(field: &str, m: &FilterChainMatchProto) -> Result<model::FilterChainMatch> {
    let destination_port = match &m.destination_port {
        Some(p) => Some(u16::try_from(p.value).map_err(|_| {
            invalid(
                at(field, "destination_port"),
                format!("{} is not a port", p.value),
            )
        })?),
        None => None,
    };
    let transport_protocol = match m.transport_protocol.as_str() {
        "" => None,
        p @ ("tls" | "raw_buffer") => Some(p.to_string()),
        other => {
            return Err(unsupported(
                at(field, "transport_protocol"),
                format!("transport protocol {other:?}"),
            ))
        }
    };
    let prefix_ranges = m
        .prefix_ranges
        .iter()
        .enumerate()
        .map(|(i, r)| cidr(&format!("{field}.prefix_ranges[{i}]"), r))
        .collect::<Result<Vec<_>>>()?;
    let mut rest = m.clone();
    rest.prefix_ranges.clear();
    rest.destination_port = None;
    rest.transport_protocol.clear();
    rest.server_names.clear();
    rest.application_protocols.clear();
    reject_rest(field, &rest, FILTER_CHAIN_MATCH)?;
    Ok(model::FilterChainMatch {
        destination_port,
        prefix_ranges,
        server_names: m.server_names.iter().map(|s| s.to_lowercase()).collect(),
        transport_protocol,
        application_protocols: m.application_protocols.clone(),
    })
}

pub(crate) fn cidr(field: &str, r: &CidrRangeProto) -> Result<CidrRange> {
    let address_prefix: IpAddr = r.address_prefix.parse().map_err(|_| {
        invalid(
            at(field, "address_prefix"),
            format!("{:?} is not an IP address", r.address_prefix),
        )
    })?;
    let width = if address_prefix.is_ipv4() { 32 } else { 128 };
    let prefix_len = r.prefix_len.as_ref().map_or(0, |l| l.value);
    if prefix_len > width {
        return Err(invalid(
            at(field, "prefix_len"),
            format!("{prefix_len} is longer than the address"),
        ));
    }
    Ok(CidrRange {
        address_prefix,
        prefix_len: prefix_len as u8,
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
    let rbac = http_filters(&at(&field, "http_filters"), &h.http_filters)?;
    let jwt = crate::jwt::from_http_filters(&at(&field, "http_filters"), &h.http_filters)?;
    let codec = match CodecType::try_from(h.codec_type) {
        Ok(CodecType::Auto) => Codec::Auto,
        Ok(CodecType::Http1) => Codec::Http1,
        Ok(CodecType::Http2) => Codec::Http2,
        _ => return Err(unsupported(at(&field, "codec_type"), "HTTP/3")),
    };
    let mut upgrades = Vec::new();
    for (i, u) in h.upgrade_configs.iter().enumerate() {
        let f = at(&field, format!("upgrade_configs[{i}]"));
        if !u.filters.is_empty() {
            return Err(unsupported(at(&f, "filters"), "upgrade filter chains"));
        }
        if u.upgrade_type.eq_ignore_ascii_case("connect") {
            return Err(unsupported(at(&f, "upgrade_type"), "CONNECT"));
        }
        // `enabled: false` declares the type and refuses it, as if it were absent.
        if u.enabled.as_ref().is_none_or(|e| e.value) {
            upgrades.push(u.upgrade_type.to_ascii_lowercase());
        }
    }
    let mut rest = h.clone();
    rest.upgrade_configs.clear();
    rest.route_specifier = None;
    rest.http_filters.clear();
    rest.stat_prefix.clear();
    rest.codec_type = 0;
    let forwarding = Forwarding {
        use_remote_address: h.use_remote_address.is_some_and(|b| b.value),
        xff_num_trusted_hops: h.xff_num_trusted_hops,
        skip_xff_append: h.skip_xff_append,
        client_cert: crate::http::xfcc::from_hcm(&field, h)?,
    };
    rest.forward_client_cert_details = 0;
    rest.set_current_client_cert_details = None;
    rest.use_remote_address = None;
    rest.xff_num_trusted_hops = 0;
    rest.skip_xff_append = false;
    // weft-proxy always generates a request id when there is none; path normalization is
    // what hyper already enforces for origin-form paths.
    rest.generate_request_id = None;
    rest.normalize_path = None;
    reject_rest(&field, &rest, fields::HCM)?;
    Ok(HttpConnectionManager {
        stat_prefix: h.stat_prefix.clone(),
        routes,
        codec,
        upgrades,
        rbac,
        jwt,
        forwarding,
    })
}

/// The router last; before it empty fault/CORS filters and RBAC filters (returned in
/// order).
fn http_filters(field: &str, filters: &[HttpFilter]) -> Result<Vec<Arc<crate::rbac::RbacFilter>>> {
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
    let mut rbac = Vec::new();
    for (i, f) in before.iter().enumerate() {
        let any = config(f);
        // Converted by `crate::jwt::from_http_filters`.
        if any.as_ref().map(type_name) == Some(crate::jwt::JWT_AUTHN_TYPE) {
            continue;
        }
        if let Some(any) = any
            .as_ref()
            .filter(|a| type_name(a) == crate::rbac::convert::HTTP_RBAC_TYPE)
        {
            let at_filter = format!("{field}[{i}].typed_config");
            rbac.push(Arc::new(crate::rbac::convert::http_filter(
                &at_filter, any,
            )?));
            continue;
        }
        let inert = any
            .is_some_and(|any| INERT_WHEN_EMPTY.contains(&type_name(&any)) && any.value.is_empty());
        if !inert {
            return Err(unsupported(
                format!("{field}[{i}]"),
                format!("HTTP filter {}", f.name),
            ));
        }
    }
    Ok(rbac)
}

/// `envoy.filters.network.rbac` filters ahead of a chain's terminal filter.
fn network_rbac(
    chain_field: &str,
    filters: &[envoy_types::pb::envoy::config::listener::v3::Filter],
) -> Result<Vec<Arc<crate::rbac::RbacFilter>>> {
    filters
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let field = at(chain_field, format!("filters[{i}]"));
            match &f.config_type {
                Some(filter::ConfigType::TypedConfig(any))
                    if type_name(any) == crate::rbac::convert::NETWORK_RBAC_TYPE =>
                {
                    crate::rbac::convert::network_filter(&at(&field, "typed_config"), any)
                        .map(Arc::new)
                }
                _ => Err(unsupported(
                    field,
                    format!("network filter {} before the terminal filter", f.name),
                )),
            }
        })
        .collect()
}

fn tcp_proxy(
    field: &str,
    t: &TcpProxy,
    rbac: Vec<Arc<crate::rbac::RbacFilter>>,
) -> Result<NetworkFilter> {
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
        rbac,
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

#[cfg(test)]
#[path = "listener_tests.rs"]
mod golden_tests;

#[cfg(test)]
mod tests {
    use super::*;
    use envoy_types::pb::envoy::config::core::v3::{SocketAddress, TransportSocket};
    use envoy_types::pb::envoy::config::listener::v3::{Filter, ListenerFilter};
    use envoy_types::pb::google::protobuf::Any;
    use prost::Message;

    fn any<M: Message>(type_name: &str, m: &M) -> Any {
        Any {
            type_url: format!("type.googleapis.com/{type_name}"),
            value: m.encode_to_vec(),
        }
    }

    fn tcp_chain(names: &[&str], cluster: &str) -> FilterChain {
        let proxy = TcpProxy {
            stat_prefix: cluster.into(),
            cluster_specifier: Some(ClusterSpecifier::Cluster(cluster.into())),
            ..Default::default()
        };
        FilterChain {
            filter_chain_match: Some(FilterChainMatchProto {
                server_names: names.iter().map(|s| s.to_string()).collect(),
                ..Default::default()
            }),
            filters: vec![Filter {
                name: "envoy.filters.network.tcp_proxy".into(),
                config_type: Some(filter::ConfigType::TypedConfig(any(TCP_PROXY_TYPE, &proxy))),
            }],
            ..Default::default()
        }
    }

    fn gateway(chains: Vec<FilterChain>) -> Listener {
        Listener {
            name: "0.0.0.0_8443".into(),
            address: Some(Address {
                address: Some(AddressKind::SocketAddress(SocketAddress {
                    address: "0.0.0.0".into(),
                    port_specifier: Some(socket_address::PortSpecifier::PortValue(8443)),
                    ..Default::default()
                })),
            }),
            listener_filters: vec![ListenerFilter {
                name: "envoy.filters.listener.tls_inspector".into(),
                config_type: Some(listener_filter::ConfigType::TypedConfig(Any {
                    type_url: format!("type.googleapis.com/{TLS_INSPECTOR_TYPE}"),
                    value: Vec::new(),
                })),
                ..Default::default()
            }],
            filter_chains: chains,
            ..Default::default()
        }
    }

    #[test]
    fn passthrough_chains_by_sni_behind_the_tls_inspector() {
        let l = gateway(vec![
            tcp_chain(&["A.example.com"], "a"),
            tcp_chain(&["b.example.com"], "b"),
        ]);
        let m = listener(&l).unwrap();
        assert!(m.tls_inspector);
        assert_eq!(m.filter_chains.len(), 2);
        assert_eq!(m.filter_chains[0].matcher.server_names, ["a.example.com"]);
        assert!(matches!(
            &m.filter_chains[1].filter,
            NetworkFilter::TcpProxy { clusters, .. } if clusters[0].name == "b"
        ));
    }

    #[test]
    fn what_is_not_honoured_is_named() {
        let mut chain = tcp_chain(&["a.example.com"], "a");
        chain.transport_socket = Some(TransportSocket {
            name: "envoy.transport_sockets.tls".into(),
            config_type: None,
        });
        let err = listener(&gateway(vec![chain])).unwrap_err().to_string();
        assert!(
            err.starts_with("filter_chains[0].transport_socket: invalid"),
            "{err}"
        );

        let same = gateway(vec![tcp_chain(&["a"], "a"), tcp_chain(&["a"], "b")]);
        let err = listener(&same).unwrap_err().to_string();
        assert!(err.contains("same matching rules"), "{err}");

        let mut ranges = tcp_chain(&[], "a");
        ranges
            .filter_chain_match
            .as_mut()
            .unwrap()
            .source_ports
            .push(1234);
        let err = listener(&gateway(vec![ranges])).unwrap_err().to_string();
        assert!(err.contains("source_ports"), "{err}");

        let mut other = gateway(vec![tcp_chain(&[], "a")]);
        other.listener_filters[0].config_type =
            Some(listener_filter::ConfigType::TypedConfig(Any {
                type_url: "type.googleapis.com/envoy.extensions.filters.listener.proxy_protocol.v3.ProxyProtocol".into(),
                value: Vec::new(),
            }));
        let err = listener(&other).unwrap_err().to_string();
        assert!(err.starts_with("listener_filters[0]: unsupported"), "{err}");
    }
}
