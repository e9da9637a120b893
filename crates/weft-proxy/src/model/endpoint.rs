//! Endpoints of a cluster (EDS `ClusterLoadAssignment` or a cluster's inline assignment).

use serde::Serialize;

/// The endpoints of one cluster, flattened over localities (locality weights and
/// priorities are not applied yet; see the crate docs).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct LoadAssignment {
    pub cluster_name: String,
    pub endpoints: Vec<Endpoint>,
}

/// One upstream host.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Endpoint {
    /// An IP literal, or a DNS name for STRICT_DNS clusters (resolved at connect time).
    pub host: String,
    pub port: u16,
    /// `load_balancing_weight`, at least 1.
    pub weight: u32,
    /// False for UNHEALTHY, DRAINING and TIMEOUT: never picked.
    pub healthy: bool,
    /// Istio's `filter_metadata.istio.workload` of the endpoint
    /// (`<workload>;<namespace>;<canonical service>;<canonical revision>;<cluster>`): the
    /// destination workload outbound metrics report.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workload: Option<std::sync::Arc<str>>,
    /// `filter_metadata["envoy.transport_socket_match"]` (string values; others in their
    /// JSON form): what the cluster's `transport_socket_matches` select by, e.g. Istio's
    /// `tlsMode: istio` on endpoints with a sidecar.
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub transport_socket_match: std::collections::BTreeMap<String, String>,
}

impl Endpoint {
    /// `host:port`, with brackets around IPv6 literals, as a URI authority needs.
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}
