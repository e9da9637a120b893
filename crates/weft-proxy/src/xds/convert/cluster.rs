//! `Cluster` -> [`model::Cluster`]: STATIC, STRICT_DNS, LOGICAL_DNS, EDS and ORIGINAL_DST
//! clusters with their load balancer, circuit breakers, outlier detection and HTTP
//! protocol options.

use super::cluster_policy as policy;
use super::{at, duration, endpoint, fields, reject_rest, unsupported, Result};
use crate::model::{self, Discovery};
use envoy_types::pb::envoy::config::cluster::v3::cluster::{
    ClusterDiscoveryType, DiscoveryType, DnsLookupFamily, LbConfig,
};
use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use std::time::Duration;

pub use policy::HTTP_PROTOCOL_OPTIONS;

/// Converts one CDS resource.
// `dns_refresh_rate` and `respect_dns_ttl` are deprecated in favour of DNS cluster
// extensions, but Envoy still honours them and Istio still sets them.
#[allow(deprecated)]
pub fn cluster(c: &Cluster) -> Result<model::Cluster> {
    let kind = match c.cluster_discovery_type {
        None => DiscoveryType::Static,
        Some(ClusterDiscoveryType::Type(t)) => DiscoveryType::try_from(t)
            .map_err(|_| super::invalid("type", format!("unknown discovery type {t}")))?,
        Some(ClusterDiscoveryType::ClusterType(_)) => {
            return Err(unsupported("cluster_type", "custom cluster types"))
        }
    };
    // Envoy's default DNS refresh rate.
    let refresh = match &c.dns_refresh_rate {
        Some(d) => duration("dns_refresh_rate", d)?.max(Duration::from_millis(1)),
        None => Duration::from_secs(5),
    };
    let ipv4_only = c.dns_lookup_family == DnsLookupFamily::V4Only as i32;
    let mut rest = c.clone();
    let discovery = match kind {
        DiscoveryType::Static => Discovery::Static,
        DiscoveryType::StrictDns => Discovery::StrictDns { refresh, ipv4_only },
        DiscoveryType::LogicalDns => Discovery::LogicalDns { refresh, ipv4_only },
        DiscoveryType::Eds => {
            let name = c
                .eds_cluster_config
                .as_ref()
                .map(|e| e.service_name.clone())
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| c.name.clone());
            Discovery::Eds { service_name: name }
        }
        DiscoveryType::OriginalDst => {
            let use_http_header = match &c.lb_config {
                Some(LbConfig::OriginalDstLbConfig(o)) => {
                    if !o.http_header_name.is_empty() || o.upstream_port_override.is_some() {
                        return Err(unsupported(
                            "original_dst_lb_config",
                            "http_header_name and upstream_port_override",
                        ));
                    }
                    o.use_http_header
                }
                _ => false,
            };
            if matches!(c.lb_config, Some(LbConfig::OriginalDstLbConfig(_))) {
                rest.lb_config = None;
            }
            Discovery::OriginalDst { use_http_header }
        }
    };
    let original_dst = matches!(discovery, Discovery::OriginalDst { .. });
    let lb_policy = policy::lb_policy(c.lb_policy, rest.lb_config.as_ref(), original_dst)?;
    let load_assignment = c
        .load_assignment
        .as_ref()
        .map(|la| endpoint::load_assignment(la).map_err(|e| nested("load_assignment", e)))
        .transpose()?;
    if let (Discovery::LogicalDns { .. }, Some(la)) = (&discovery, &load_assignment) {
        if la.endpoints.len() != 1 {
            return Err(super::invalid(
                "load_assignment",
                "LOGICAL_DNS clusters must have exactly one endpoint",
            ));
        }
    }
    let transport_socket_matches =
        super::tls::transport_socket_matches(&c.transport_socket_matches)?;
    let tls = c
        .transport_socket
        .as_ref()
        .map(|s| super::tls::cluster_socket("transport_socket", s))
        .transpose()?
        .flatten();
    let outlier_detection = c
        .outlier_detection
        .as_ref()
        .map(policy::outlier_detection)
        .transpose()?;
    let http = policy::http_options(&c.typed_extension_protocol_options)?;
    let connect_timeout = match &c.connect_timeout {
        Some(d) => duration("connect_timeout", d)?,
        None => Duration::from_secs(5),
    };
    let circuit_breakers = policy::circuit_breakers(c.circuit_breakers.as_ref())?;
    let healthy_panic_threshold = policy::common_lb_config(c.common_lb_config.as_ref())?;
    rest.name.clear();
    rest.cluster_discovery_type = None;
    rest.eds_cluster_config = None;
    rest.lb_policy = 0;
    rest.lb_config = None;
    rest.load_assignment = None;
    rest.transport_socket = None;
    rest.transport_socket_matches.clear();
    rest.connect_timeout = None;
    rest.typed_extension_protocol_options.clear();
    rest.circuit_breakers = None;
    rest.outlier_detection = None;
    rest.common_lb_config = None;
    rest.dns_refresh_rate = None;
    rest.dns_lookup_family = 0;
    // Accepted, not applied (crate docs): TTLs are not visible through the system
    // resolver; keepalive and the bind address only tune the socket.
    rest.respect_dns_ttl = false;
    rest.upstream_connection_options = None;
    rest.upstream_bind_config = None;
    rest.metadata = None;
    rest.alt_stat_name.clear();
    reject_rest("", &rest, fields::CLUSTER)?;
    Ok(model::Cluster {
        name: c.name.clone(),
        discovery,
        lb_policy,
        connect_timeout,
        load_assignment,
        circuit_breakers,
        outlier_detection,
        healthy_panic_threshold,
        protocol: http.protocol,
        idle_timeout: http.idle_timeout,
        max_requests_per_connection: http.max_requests_per_connection,
        tls,
        transport_socket_matches,
    })
}

fn nested(prefix: &str, e: super::ConvertError) -> super::ConvertError {
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
#[path = "cluster_tests.rs"]
mod tests;
