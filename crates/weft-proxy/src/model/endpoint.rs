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
