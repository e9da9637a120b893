//! A connected proxy as translation sees it, decoded from its xDS node (docs/xds.md).

use std::collections::BTreeMap;

/// Sidecar next to a workload, or a gateway ("router" in Istio's node ids).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum ProxyKind {
    #[default]
    Sidecar,
    Router,
}

/// How traffic reaches the sidecar (DESIGN.md, "Capture modes").
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum CaptureMode {
    /// iptables REDIRECT; original destination from SO_ORIGINAL_DST.
    #[default]
    Transparent,
    /// No root: the app calls the sidecar as an HTTP proxy; inbound listeners bind the
    /// WorkloadEntry's address and ports.
    Explicit,
}

/// One proxy, as decoded from its node id and metadata.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Proxy {
    /// The node id (`sidecar~127.0.0.1~reviews-v1.default~default.svc.cluster.local`).
    pub id: String,
    pub kind: ProxyKind,
    /// The proxy's address: first of INSTANCE_IPS, else the id's ip part.
    pub ip: String,
    pub namespace: String,
    pub workload_name: String,
    pub labels: BTreeMap<String, String>,
    pub service_account: String,
    /// WorkloadGroup it registered through (AUTO_REGISTER_GROUP), if any.
    pub workload_group: Option<String>,
    pub capture: CaptureMode,
    /// Explicit mode: port name -> where the application listens on 127.0.0.1.
    pub app_ports: BTreeMap<String, u32>,
    /// Explicit mode: port of the outbound HTTP proxy listener on 127.0.0.1.
    pub outbound_port: u32,
}

/// Default port of the explicit-mode outbound HTTP proxy listener, Istio's outbound capture port.
pub const DEFAULT_OUTBOUND_PORT: u32 = 15001;
