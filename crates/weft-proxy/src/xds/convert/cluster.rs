//! `Cluster` -> [`model::Cluster`]: STATIC, STRICT_DNS and EDS clusters balanced by round
//! robin, least request or random.

use super::{at, duration, endpoint, fields, reject_rest, unsupported, Result};
use crate::model::{self, Discovery, LbPolicy};
use envoy_types::pb::envoy::config::cluster::v3::cluster::{
    ClusterDiscoveryType, DiscoveryType, LbPolicy as LbProto,
};
use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::extensions::upstreams::http::v3::{
    http_protocol_options::{explicit_http_config::ProtocolConfig, UpstreamProtocolOptions},
    HttpProtocolOptions,
};
use std::time::Duration;

const HTTP_PROTOCOL_OPTIONS: &str = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions";

/// Converts one CDS resource.
pub fn cluster(c: &Cluster) -> Result<model::Cluster> {
    let kind = match c.cluster_discovery_type {
        None => DiscoveryType::Static,
        Some(ClusterDiscoveryType::Type(t)) => DiscoveryType::try_from(t)
            .map_err(|_| super::invalid("type", format!("unknown discovery type {t}")))?,
        Some(ClusterDiscoveryType::ClusterType(_)) => {
            return Err(unsupported("cluster_type", "custom cluster types"))
        }
    };
    let discovery = match kind {
        DiscoveryType::Static => Discovery::Static,
        DiscoveryType::StrictDns => Discovery::StrictDns,
        DiscoveryType::Eds => {
            let name = c
                .eds_cluster_config
                .as_ref()
                .map(|e| e.service_name.clone())
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| c.name.clone());
            Discovery::Eds { service_name: name }
        }
        DiscoveryType::OriginalDst => Discovery::OriginalDst,
        DiscoveryType::LogicalDns => return Err(unsupported("type", "LOGICAL_DNS")),
    };
    let lb_policy = match LbProto::try_from(c.lb_policy) {
        Ok(LbProto::RoundRobin) => LbPolicy::RoundRobin,
        Ok(LbProto::LeastRequest) => LbPolicy::LeastRequest,
        Ok(LbProto::Random) => LbPolicy::Random,
        Ok(LbProto::ClusterProvided) if discovery == Discovery::OriginalDst => LbPolicy::Random,
        Ok(other) => return Err(unsupported("lb_policy", other.as_str_name())),
        Err(_) => return Err(super::invalid("lb_policy", c.lb_policy.to_string())),
    };
    let load_assignment = c
        .load_assignment
        .as_ref()
        .map(|la| endpoint::load_assignment(la).map_err(|e| nested("load_assignment", e)))
        .transpose()?;
    if c.transport_socket.is_some() || !c.transport_socket_matches.is_empty() {
        return Err(unsupported("transport_socket", "upstream TLS"));
    }
    if c.outlier_detection.is_some() {
        return Err(unsupported("outlier_detection", "outlier detection"));
    }
    for (name, any) in &c.typed_extension_protocol_options {
        let field = format!("typed_extension_protocol_options[{name}]");
        let opts: HttpProtocolOptions = super::unpack(&field, any, HTTP_PROTOCOL_OPTIONS)?;
        let http1_only = match &opts.upstream_protocol_options {
            None => true,
            Some(UpstreamProtocolOptions::ExplicitHttpConfig(e)) => {
                matches!(
                    e.protocol_config,
                    Some(ProtocolConfig::HttpProtocolOptions(_))
                )
            }
            Some(_) => false,
        };
        if !http1_only || opts.common_http_protocol_options.is_some() {
            return Err(unsupported(
                field,
                "upstream HTTP/2 and HTTP protocol options",
            ));
        }
    }
    let connect_timeout = match &c.connect_timeout {
        Some(d) => duration("connect_timeout", d)?,
        None => Duration::from_secs(5),
    };
    let mut rest = c.clone();
    rest.name.clear();
    rest.cluster_discovery_type = None;
    rest.eds_cluster_config = None;
    rest.lb_policy = 0;
    rest.load_assignment = None;
    rest.connect_timeout = None;
    rest.typed_extension_protocol_options.clear();
    // Accepted but not applied yet (crate docs): Istio sets circuit breakers with
    // unlimited thresholds on every cluster.
    rest.circuit_breakers = None;
    rest.dns_lookup_family = 0;
    rest.metadata = None;
    rest.alt_stat_name.clear();
    rest.upstream_bind_config = None;
    reject_rest("", &rest, fields::CLUSTER)?;
    Ok(model::Cluster {
        name: c.name.clone(),
        discovery,
        lb_policy,
        connect_timeout,
        load_assignment,
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
