//! A DestinationRule's traffic policy applied to a cluster: load balancing, connection
//! pool (circuit breakers, protocol options), outlier detection, upstream TLS.

use super::destination_rule::Policy;
use super::proto::{any, duration, seconds, u32v};
use super::tls;
use crate::registry::Protocol;
use envoy_types::pb::envoy::config::cluster::v3::{
    circuit_breakers::Thresholds,
    cluster::{CommonLbConfig, LbConfig, LbPolicy, MaglevLbConfig, RingHashLbConfig},
    CircuitBreakers, Cluster, OutlierDetection, UpstreamConnectionOptions,
};
use envoy_types::pb::envoy::config::core::v3::{
    Http1ProtocolOptions, Http2ProtocolOptions, HttpProtocolOptions as CommonHttpOptions,
    TcpKeepalive,
};
use envoy_types::pb::envoy::extensions::upstreams::http::v3::{
    http_protocol_options::{
        explicit_http_config::ProtocolConfig, ExplicitHttpConfig, UpstreamProtocolOptions,
        UseDownstreamHttpConfig,
    },
    HttpProtocolOptions,
};
use envoy_types::pb::envoy::r#type::v3::Percent;
use envoy_types::pb::google::protobuf::UInt64Value;
use weft_config::networking::destination_rule::{H2UpgradePolicy, SimpleLb};

/// Istio's default connect timeout when `connectionPool.tcp.connectTimeout` is unset.
pub const DEFAULT_CONNECT_TIMEOUT_SECS: i64 = 10;
/// Istio lifts Envoy's small default circuit-breaker limits to the maximum: a mesh should
/// not shed load unless a DestinationRule asks it to.
const UNLIMITED: u32 = u32::MAX;
pub const HTTP_PROTOCOL_OPTIONS: &str = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions";

/// Applies everything in `policy` to an outbound cluster for a port of `protocol`; `host` is
/// the service host (default SNI for TLS origination).
pub fn apply(cluster: &mut Cluster, policy: &Policy, protocol: Protocol, host: &str) {
    load_balancer(cluster, policy);
    connection_pool(cluster, policy, protocol);
    if let Some(outlier) = &policy.outlier_detection {
        outlier_detection(cluster, outlier);
    }
    if let Some(settings) = &policy.tls {
        cluster.transport_socket = tls::upstream(settings, host);
    }
}

fn load_balancer(cluster: &mut Cluster, policy: &Policy) {
    let lb = policy.load_balancer.as_ref();
    if let Some(hash) = lb.and_then(|l| l.consistent_hash.as_ref()) {
        // The hash key goes on the route; the cluster only chooses the ring.
        if let Some(maglev) = &hash.maglev {
            cluster.lb_policy = LbPolicy::Maglev as i32;
            cluster.lb_config = Some(LbConfig::MaglevLbConfig(MaglevLbConfig {
                table_size: maglev.table_size.map(|value| UInt64Value { value }),
            }));
        } else {
            cluster.lb_policy = LbPolicy::RingHash as i32;
            let size = hash
                .ring_hash
                .as_ref()
                .and_then(|r| r.minimum_ring_size)
                .or(hash.minimum_ring_size);
            cluster.lb_config = Some(LbConfig::RingHashLbConfig(RingHashLbConfig {
                minimum_ring_size: size.map(|value| UInt64Value { value }),
                ..Default::default()
            }));
        }
        return;
    }
    cluster.lb_policy = match lb.and_then(|l| l.simple).unwrap_or_default() {
        SimpleLb::RoundRobin => LbPolicy::RoundRobin,
        SimpleLb::Random => LbPolicy::Random,
        SimpleLb::Passthrough => {
            super::cluster::make_original_dst(cluster);
            return;
        }
        SimpleLb::Unspecified | SimpleLb::LeastConn | SimpleLb::LeastRequest => {
            LbPolicy::LeastRequest
        }
    } as i32;
}

fn connection_pool(cluster: &mut Cluster, policy: &Policy, protocol: Protocol) {
    let pool = policy.connection_pool.as_ref();
    let tcp = pool.and_then(|p| p.tcp.as_ref());
    let http = pool.and_then(|p| p.http.as_ref());
    let limit = |v: Option<i32>| {
        u32v(
            v.and_then(|v| u32::try_from(v).ok())
                .filter(|v| *v > 0)
                .unwrap_or(UNLIMITED),
        )
    };

    cluster.connect_timeout = Some(
        tcp.and_then(|t| t.connect_timeout)
            .map(duration)
            .unwrap_or_else(|| seconds(DEFAULT_CONNECT_TIMEOUT_SECS)),
    );
    cluster.circuit_breakers = Some(CircuitBreakers {
        thresholds: vec![Thresholds {
            max_connections: Some(limit(tcp.and_then(|t| t.max_connections))),
            max_pending_requests: Some(limit(http.and_then(|h| h.http1_max_pending_requests))),
            max_requests: Some(limit(http.and_then(|h| h.http2_max_requests))),
            max_retries: Some(limit(http.and_then(|h| h.max_retries))),
            track_remaining: true,
            ..Default::default()
        }],
        ..Default::default()
    });
    if let Some(keepalive) = tcp.and_then(|t| t.tcp_keepalive.as_ref()) {
        cluster.upstream_connection_options = Some(UpstreamConnectionOptions {
            tcp_keepalive: Some(TcpKeepalive {
                keepalive_probes: keepalive.probes.map(u32v),
                keepalive_time: keepalive.time.map(|d| u32v(whole_secs(d))),
                keepalive_interval: keepalive.interval.map(|d| u32v(whole_secs(d))),
            }),
            ..Default::default()
        });
    }
    if !protocol.is_http() && protocol != Protocol::Unknown {
        return;
    }

    let idle = http.and_then(|h| h.idle_timeout).map(duration);
    let per_connection = http
        .and_then(|h| h.max_requests_per_connection)
        .and_then(|v| u32::try_from(v).ok())
        .filter(|v| *v > 0);
    let h2 = protocol.is_http2()
        || (protocol == Protocol::Http
            && http.and_then(|h| h.h2_upgrade_policy) == Some(H2UpgradePolicy::Upgrade));
    let use_client = http.is_some_and(|h| h.use_client_protocol);
    if idle.is_none() && per_connection.is_none() && !h2 && !use_client {
        return;
    }
    let upstream_protocol_options = if use_client {
        Some(UpstreamProtocolOptions::UseDownstreamProtocolConfig(
            UseDownstreamHttpConfig {
                http_protocol_options: Some(Http1ProtocolOptions::default()),
                http2_protocol_options: Some(Http2ProtocolOptions::default()),
                ..Default::default()
            },
        ))
    } else {
        Some(UpstreamProtocolOptions::ExplicitHttpConfig(
            ExplicitHttpConfig {
                protocol_config: Some(if h2 {
                    ProtocolConfig::Http2ProtocolOptions(Http2ProtocolOptions {
                        max_concurrent_streams: http
                            .and_then(|h| h.max_concurrent_streams)
                            .and_then(|v| u32::try_from(v).ok())
                            .map(u32v),
                        ..Default::default()
                    })
                } else {
                    ProtocolConfig::HttpProtocolOptions(Http1ProtocolOptions::default())
                }),
            },
        ))
    };
    let options = HttpProtocolOptions {
        common_http_protocol_options: (idle.is_some() || per_connection.is_some()).then(|| {
            CommonHttpOptions {
                idle_timeout: idle,
                max_requests_per_connection: per_connection.map(u32v),
                ..Default::default()
            }
        }),
        upstream_protocol_options,
        ..Default::default()
    };
    cluster.typed_extension_protocol_options.insert(
        HTTP_PROTOCOL_OPTIONS.to_string(),
        any(HTTP_PROTOCOL_OPTIONS, &options),
    );
}

/// Speaks HTTP/2 to the upstream: inbound clusters of HTTP2/GRPC ports, where the
/// application expects HTTP/2 (h2c) whatever the client sent, as Istio sets them up.
pub fn http2_upstream(cluster: &mut Cluster) {
    let options = HttpProtocolOptions {
        upstream_protocol_options: Some(UpstreamProtocolOptions::ExplicitHttpConfig(
            ExplicitHttpConfig {
                protocol_config: Some(ProtocolConfig::Http2ProtocolOptions(
                    Http2ProtocolOptions::default(),
                )),
            },
        )),
        ..Default::default()
    };
    cluster.typed_extension_protocol_options.insert(
        HTTP_PROTOCOL_OPTIONS.to_string(),
        any(HTTP_PROTOCOL_OPTIONS, &options),
    );
}

fn whole_secs(d: weft_config::common::Duration) -> u32 {
    u32::try_from(d.nanos.max(0) / 1_000_000_000).unwrap_or(u32::MAX)
}

/// Istio enforces every configured detector at 100%, and with outlier detection on, disables
/// Envoy's panic mode unless `minHealthPercent` asks for it.
fn outlier_detection(
    cluster: &mut Cluster,
    o: &weft_config::networking::destination_rule::OutlierDetection,
) {
    let enforce = |v: u32| u32v(if v > 0 { 100 } else { 0 });
    // The deprecated `consecutiveErrors` meant gateway errors (502/503/504).
    let gateway = o
        .consecutive_gateway_errors
        .or(o.consecutive_errors.and_then(|v| u32::try_from(v).ok()));
    let mut out = OutlierDetection {
        interval: o.interval.map(duration),
        base_ejection_time: o.base_ejection_time.map(duration),
        max_ejection_percent: o
            .max_ejection_percent
            .and_then(|v| u32::try_from(v).ok())
            .map(u32v),
        split_external_local_origin_errors: o.split_external_local_origin_errors,
        consecutive_local_origin_failure: o.consecutive_local_origin_failures.map(u32v),
        ..Default::default()
    };
    match o.consecutive5xx_errors {
        Some(v) => {
            out.consecutive_5xx = Some(u32v(v));
            out.enforcing_consecutive_5xx = Some(enforce(v));
        }
        // Without an explicit 5xx threshold only gateway errors eject.
        None if gateway.is_some() => out.enforcing_consecutive_5xx = Some(u32v(0)),
        None => {}
    }
    if let Some(v) = gateway {
        out.consecutive_gateway_failure = Some(u32v(v));
        out.enforcing_consecutive_gateway_failure = Some(enforce(v));
    }
    cluster.outlier_detection = Some(out);
    let min_health = o.min_health_percent.unwrap_or(0).clamp(0, 100);
    cluster.common_lb_config = Some(CommonLbConfig {
        healthy_panic_threshold: Some(Percent {
            value: f64::from(min_health),
        }),
        ..cluster.common_lb_config.take().unwrap_or_default()
    });
}
