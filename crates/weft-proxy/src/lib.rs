//! weft-proxy: a lean data plane configured over xDS exactly like Envoy.
//!
//! It reads the bootstrap `weft bootstrap envoy` writes (node id and metadata, admin
//! address, the ADS cluster), opens ADS to weftd and serves what it is given. It never reads
//! Istio config: any xDS server speaking Envoy v3 can drive it.
//!
//! # Supported resource subset
//!
//! Anything outside this list is NACKed with a reason naming the resource and field
//! (`Listener x: filter_chains[0].filters[0]: unsupported: network filter ...`); the
//! previous version stays in force. Nothing is silently ignored except the fields listed
//! under "accepted but not applied yet".
//!
//! - **xDS**: ADS, state-of-the-world (`GRPC`). CDS and LDS wildcard, EDS and RDS by the
//!   names clusters and listeners reference. `DELTA_GRPC` in the bootstrap falls back to
//!   state-of-the-world (logged).
//! - **Listener**: TCP `socket_address` with an IP; exactly one filter chain without
//!   `filter_chain_match` or `transport_socket`; exactly one network filter:
//!   - `http_connection_manager` with `rds` (over ADS) or inline `route_config`; HTTP
//!     filters: the router last, before it only `fault` and `cors` with empty config (they
//!     act only through per-route config, which is NACKed); codec AUTO or HTTP1;
//!     `use_remote_address`, `generate_request_id`, `normalize_path` accepted.
//!   - `tcp_proxy` to a `cluster` or `weighted_clusters`.
//!   - Not supported: `listener_filters`, `use_original_dst`, `bind_to_port: false`
//!     (transparent capture), TLS.
//! - **RouteConfiguration**: virtual hosts by domain (exact `host`/`host:port`, `*.suffix`,
//!   `prefix.*`, `*`); routes matching `prefix`, `path`, `safe_regex` (with
//!   `case_sensitive`), headers (`present_match`, `exact`/`prefix`/`suffix`/`contains`/
//!   `safe_regex`, `string_match`, `invert_match`), query parameters (`string_match`,
//!   `present_match`); actions `route` (`cluster`, `weighted_clusters` picked at random by
//!   weight, `timeout` with Envoy's 15s default and `0s` = none), `direct_response`
//!   (inline body), `redirect` (scheme, host, port, path, response code);
//!   `include_request_attempt_count`; `decorator` and `metadata` accepted (tracing only).
//!   NACKed: `hash_policy`, `request_mirror_policies`, rewrites, header edits,
//!   `typed_per_filter_config` (fault, CORS), virtual-host level policies.
//! - **Cluster**: `STATIC`, `STRICT_DNS` (resolved at connect time), `EDS`; `ORIGINAL_DST`
//!   is accepted with no hosts (requests to it get 503 UH) so Istio's passthrough clusters
//!   do not reject every CDS update. `lb_policy` `ROUND_ROBIN` (weighted), `LEAST_REQUEST`
//!   (power of two choices by requests in flight), `RANDOM`. `connect_timeout`.
//!   Upstream HTTP/1.1 only. NACKed: `RING_HASH`, `MAGLEV`, `LOGICAL_DNS`,
//!   `outlier_detection`, TLS `transport_socket`, HTTP/2 protocol options.
//! - **ClusterLoadAssignment**: endpoints with IP or name, `health_status` (UNHEALTHY,
//!   DRAINING, TIMEOUT are never picked), `load_balancing_weight`; localities flattened;
//!   priorities other than 0 NACKed.
//!
//! # Accepted but not applied yet
//!
//! `RouteAction.retry_policy` and `max_stream_duration` (Istio sets a default retry policy
//! on every route), `Cluster.circuit_breakers` (Istio sets unlimited thresholds),
//! `dns_lookup_family`, locality weights.
//!
//! # Data path
//!
//! HTTP/1.1 downstream with keep-alive; absolute-form requests (HTTP proxy clients) are
//! routed by their authority, origin-form ones by `Host`. Local replies carry Envoy's
//! statuses: 404 (NR), 503 `no healthy upstream` (UH), 503 (NC, UF), 504 (UT).
//! `x-request-id` is generated when absent, `x-envoy-upstream-service-time` added to
//! responses. Each request reads one config snapshot (`ArcSwap`); an update never changes
//! a request in flight.

pub mod admin;
pub mod bootstrap;
pub mod cluster;
pub mod http;
pub mod listener;
pub mod model;
pub mod state;
pub mod stats;
pub mod xds;

use std::sync::Arc;

/// Runs the proxy: ADS client, listener manager and admin endpoint.
pub async fn run(settings: bootstrap::Settings) -> std::io::Result<()> {
    let proxy = state::Proxy::new();
    let settings = Arc::new(settings);
    tokio::spawn(xds::client::run(proxy.clone(), settings.clone()));
    tokio::spawn(listener::run(proxy.clone()));
    match settings.admin {
        Some(addr) => admin::serve(proxy, addr).await,
        None => {
            std::future::pending::<()>().await;
            Ok(())
        }
    }
}
