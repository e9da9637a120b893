//! Istio's names for generated resources, so dashboards and habits carry over.

/// `outbound|9080|v1|reviews.default.svc.cluster.local`
pub fn outbound_cluster(port: u32, subset: &str, host: &str) -> String {
    format!("outbound|{port}|{subset}|{host}")
}

/// `inbound|9080||`
pub fn inbound_cluster(port: u32) -> String {
    format!("inbound|{port}||")
}

/// `127.0.0.1_15001`, `0.0.0.0_8080`
pub fn listener(ip: &str, port: u32) -> String {
    format!("{ip}_{port}")
}

/// Route configuration of the explicit-mode outbound HTTP proxy listener.
pub const HTTP_PROXY_ROUTE: &str = "http_proxy";
pub const BLACKHOLE_CLUSTER: &str = "BlackHoleCluster";
pub const PASSTHROUGH_CLUSTER: &str = "PassthroughCluster";
pub const INBOUND_PASSTHROUGH_CLUSTER: &str = "InboundPassthroughCluster";
pub const VIRTUAL_OUTBOUND: &str = "virtualOutbound";
pub const VIRTUAL_INBOUND: &str = "virtualInbound";

/// Gateway HTTP route configuration for a port: `http.8080`.
pub fn gateway_http_route(port: u32) -> String {
    format!("http.{port}")
}

/// Gateway HTTPS route configuration: `https.443.https.bookinfo-gateway.default`.
pub fn gateway_https_route(port: u32, port_name: &str, gateway: &str, namespace: &str) -> String {
    format!("https.{port}.{port_name}.{gateway}.{namespace}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn istio_names() {
        assert_eq!(
            outbound_cluster(9080, "v1", "reviews.default.svc.cluster.local"),
            "outbound|9080|v1|reviews.default.svc.cluster.local"
        );
        assert_eq!(inbound_cluster(9080), "inbound|9080||");
        assert_eq!(gateway_http_route(8080), "http.8080");
    }
}
