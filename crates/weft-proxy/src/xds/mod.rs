//! The xDS side: an ADS client (state-of-the-world), protobuf -> model conversion and the
//! resource store that builds snapshots from what was accepted.

pub mod client;
pub mod convert;
pub mod delta;
pub mod session;
pub mod store;

pub const CDS: &str = "type.googleapis.com/envoy.config.cluster.v3.Cluster";
pub const LDS: &str = "type.googleapis.com/envoy.config.listener.v3.Listener";
pub const RDS: &str = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration";
pub const EDS: &str = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment";
pub const SDS: &str = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret";
