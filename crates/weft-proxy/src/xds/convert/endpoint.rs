//! `ClusterLoadAssignment` -> [`model::LoadAssignment`]: endpoints with health and weight.

use super::{fields, listener::ip_port, reject_rest, unsupported, Result};
use crate::model::{Endpoint, LoadAssignment};
use envoy_types::pb::envoy::config::core::v3::{HealthStatus, Metadata};
use envoy_types::pb::envoy::config::endpoint::v3::{
    lb_endpoint::HostIdentifier, ClusterLoadAssignment,
};
use envoy_types::pb::google::protobuf::value::Kind;
use std::sync::Arc;

/// `filter_metadata.istio.workload`, the telemetry metadata Istio puts on endpoints; any
/// other shape is left alone, as Istio's proxy ignores it.
fn istio_workload(m: Option<&Metadata>) -> Option<Arc<str>> {
    let value = m?.filter_metadata.get("istio")?.fields.get("workload")?;
    match &value.kind {
        Some(Kind::StringValue(s)) => Some(Arc::from(s.as_str())),
        _ => None,
    }
}

/// Converts one EDS resource (or a cluster's inline `load_assignment`).
pub fn load_assignment(la: &ClusterLoadAssignment) -> Result<LoadAssignment> {
    let mut endpoints = Vec::new();
    for (i, locality) in la.endpoints.iter().enumerate() {
        let lf = format!("endpoints[{i}]");
        if locality.priority != 0 {
            return Err(unsupported(
                format!("{lf}.priority"),
                "priorities other than 0",
            ));
        }
        for (j, e) in locality.lb_endpoints.iter().enumerate() {
            let f = format!("{lf}.lb_endpoints[{j}]");
            let Some(HostIdentifier::Endpoint(ep)) = &e.host_identifier else {
                return Err(unsupported(f, "named endpoints"));
            };
            let (host, port) = ip_port(&format!("{f}.endpoint.address"), ep.address.as_ref())?;
            let healthy = matches!(
                HealthStatus::try_from(e.health_status),
                Ok(HealthStatus::Unknown | HealthStatus::Healthy | HealthStatus::Degraded)
            );
            let mut rest = e.clone();
            rest.host_identifier = None;
            rest.health_status = 0;
            rest.load_balancing_weight = None;
            rest.metadata = None;
            reject_rest(&f, &rest, fields::LB_ENDPOINT)?;
            endpoints.push(Endpoint {
                host,
                port,
                weight: e.load_balancing_weight.map_or(1, |w| w.value.max(1)),
                healthy,
                workload: istio_workload(e.metadata.as_ref()),
                transport_socket_match: super::tls::socket_match_metadata(e.metadata.as_ref()),
            });
        }
        let mut rest = locality.clone();
        rest.lb_endpoints.clear();
        // Localities only group endpoints until locality-aware balancing exists.
        rest.locality = None;
        rest.load_balancing_weight = None;
        rest.metadata = None;
        reject_rest(&lf, &rest, fields::LOCALITY_LB_ENDPOINTS)?;
    }
    let mut rest = la.clone();
    rest.cluster_name.clear();
    rest.endpoints.clear();
    reject_rest("", &rest, fields::CLUSTER_LOAD_ASSIGNMENT)?;
    Ok(LoadAssignment {
        cluster_name: la.cluster_name.clone(),
        endpoints,
    })
}
