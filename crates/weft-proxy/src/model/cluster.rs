//! Clusters: how a named group of upstream hosts is discovered and balanced.

use super::endpoint::LoadAssignment;
use serde::Serialize;
use std::time::Duration;

/// A cluster (CDS resource).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Cluster {
    pub name: String,
    pub discovery: Discovery,
    pub lb_policy: LbPolicy,
    /// TCP connect timeout to an endpoint; Envoy's default is 5s.
    pub connect_timeout: Duration,
    /// Endpoints given in the cluster itself (STATIC, STRICT_DNS).
    pub load_assignment: Option<LoadAssignment>,
}

/// `type` of the cluster.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Discovery {
    Static,
    StrictDns,
    /// Endpoints arrive over EDS under this service name.
    Eds {
        service_name: String,
    },
    /// Accepted so that Istio's PassthroughCluster does not reject the whole CDS update,
    /// but has no hosts yet: requests to it get 503 UH.
    OriginalDst,
}

/// `lb_policy` of the cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum LbPolicy {
    /// Weighted round robin.
    RoundRobin,
    /// Power of two choices by active requests (Envoy's LEAST_REQUEST default).
    LeastRequest,
    Random,
}
