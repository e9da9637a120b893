//! What routes are generated for: the proxy, the listener port, the gateways it serves,
//! and an HTTP rule together with the namespace its short names resolve in.

use crate::model::{MeshSnapshot, Proxy};
use std::collections::BTreeSet;
use weft_config::networking::virtual_service::HttpRoute;

/// The proxy-and-listener side of route generation.
pub struct RouteCtx<'a> {
    pub snapshot: &'a MeshSnapshot,
    pub proxy: &'a Proxy,
    /// The port requests arrive on: the service port for sidecars, the server port for
    /// gateways. Destinations without a port on a multi-port service use it.
    pub listen_port: u32,
    /// `mesh` for a sidecar; `namespace/name` of every Gateway for a gateway proxy.
    pub gateways: BTreeSet<String>,
    /// A TLS-terminating gateway server, where redirects default to https.
    pub is_tls: bool,
}

impl RouteCtx<'_> {
    /// Namespace whose DestinationRules and visibility apply (`default` when unset).
    pub fn proxy_namespace(&self) -> &str {
        if self.proxy.namespace.is_empty() {
            "default"
        } else {
            &self.proxy.namespace
        }
    }
}

/// One HTTP rule ready to translate. Delegation merges a root rule with its delegate's
/// rules, whose destinations resolve in the delegate's namespace, hence `namespace`.
#[derive(Clone, Debug)]
pub struct ScopedRoute {
    pub http: HttpRoute,
    /// Namespace short destination hosts resolve in.
    pub namespace: String,
    /// Name of the (root) VirtualService, used for trace operation names.
    pub vs_name: String,
    /// Namespace of the root VirtualService, for `gateways` short names.
    pub vs_namespace: String,
}
