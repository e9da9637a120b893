//! The proxy's own configuration model: what weft-proxy honours, free of protobuf.
//!
//! Every type here is produced by `crate::xds::convert` from Envoy v3 resources; a
//! resource that cannot be expressed here is NACKed rather than half-applied.

pub mod cluster;
pub mod endpoint;
pub mod listener;
pub mod route;
pub mod tls;

pub use cluster::{Cluster, Discovery, LbPolicy, OutlierDetection, Thresholds, UpstreamProtocol};
pub use endpoint::{Endpoint, LoadAssignment};
pub use listener::{
    Codec, FilterChain, FilterChainMatch, HttpConnectionManager, Listener, NetworkFilter,
    RouteSource,
};
pub use route::{
    Action, Forward, HeaderMatch, HeaderMatcher, PathMatch, QueryMatcher, Redirect, Route,
    RouteConfig, RouteMatch, StringMatch, VirtualHost, WeightedCluster,
};
pub use tls::{CaSource, DownstreamTls, Secret, UpstreamTls, Validation};
