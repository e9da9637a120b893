//! The parts of a `Cluster` that limit and shape traffic to its hosts: circuit breakers,
//! outlier detection, HTTP protocol options and the load balancer's settings.

use super::{at, duration, invalid, reject_rest, unpack, unsupported, Result};
use crate::model::{LbPolicy, OutlierDetection, Thresholds, UpstreamProtocol};
use envoy_types::pb::envoy::config::cluster::v3::cluster::{
    ring_hash_lb_config::HashFunction, CommonLbConfig, LbConfig, LbPolicy as LbProto,
};
use envoy_types::pb::envoy::config::cluster::v3::{
    CircuitBreakers, OutlierDetection as OutlierProto,
};
use envoy_types::pb::envoy::config::core::v3::RoutingPriority;
use envoy_types::pb::envoy::extensions::upstreams::http::v3::{
    http_protocol_options::{explicit_http_config::ProtocolConfig, UpstreamProtocolOptions},
    HttpProtocolOptions,
};
use envoy_types::pb::google::protobuf::Any;
use std::time::Duration;

pub const HTTP_PROTOCOL_OPTIONS: &str = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions";
/// Envoy's ring size bounds.
const MIN_RING: u64 = 1024;
const MAX_RING: u64 = 8 * 1024 * 1024;
/// Envoy's Maglev table size.
const MAGLEV_TABLE: u64 = 65537;

/// `lb_policy` with its `lb_config`.
pub fn lb_policy(policy: i32, config: Option<&LbConfig>, original_dst: bool) -> Result<LbPolicy> {
    let kind = LbProto::try_from(policy).map_err(|_| invalid("lb_policy", policy.to_string()))?;
    let out = match (kind, config) {
        (LbProto::RoundRobin, None | Some(LbConfig::RoundRobinLbConfig(_))) => {
            if let Some(LbConfig::RoundRobinLbConfig(c)) = config {
                reject_rest("round_robin_lb_config", c, &[(1, "slow_start_config")])?;
            }
            LbPolicy::RoundRobin
        }
        (LbProto::LeastRequest, None) => LbPolicy::LeastRequest { choice_count: 2 },
        (LbProto::LeastRequest, Some(LbConfig::LeastRequestLbConfig(c))) => {
            let choice_count = c.choice_count.as_ref().map_or(2, |v| v.value);
            if choice_count < 2 {
                return Err(invalid(
                    "least_request_lb_config.choice_count",
                    "must be at least 2",
                ));
            }
            let mut rest = c.clone();
            rest.choice_count = None;
            reject_rest(
                "least_request_lb_config",
                &rest,
                &[(2, "active_request_bias"), (3, "slow_start_config")],
            )?;
            LbPolicy::LeastRequest { choice_count }
        }
        (LbProto::Random, None) => LbPolicy::Random,
        (LbProto::RingHash, None) => LbPolicy::RingHash {
            minimum_ring_size: MIN_RING,
            maximum_ring_size: MAX_RING,
        },
        (LbProto::RingHash, Some(LbConfig::RingHashLbConfig(c))) => {
            if HashFunction::try_from(c.hash_function) != Ok(HashFunction::XxHash) {
                return Err(unsupported(
                    "ring_hash_lb_config.hash_function",
                    "hash functions other than XX_HASH",
                ));
            }
            let minimum_ring_size = c.minimum_ring_size.as_ref().map_or(MIN_RING, |v| v.value);
            let maximum_ring_size = c.maximum_ring_size.as_ref().map_or(MAX_RING, |v| v.value);
            if minimum_ring_size == 0 || minimum_ring_size > maximum_ring_size {
                return Err(invalid(
                    "ring_hash_lb_config",
                    "minimum_ring_size must be at least 1 and at most maximum_ring_size",
                ));
            }
            LbPolicy::RingHash {
                minimum_ring_size,
                maximum_ring_size: maximum_ring_size.min(MAX_RING),
            }
        }
        (LbProto::Maglev, None) => LbPolicy::Maglev {
            table_size: MAGLEV_TABLE,
        },
        (LbProto::Maglev, Some(LbConfig::MaglevLbConfig(c))) => {
            let table_size = c.table_size.as_ref().map_or(MAGLEV_TABLE, |v| v.value);
            if !is_prime(table_size) || table_size > 5_000_011 {
                return Err(invalid(
                    "maglev_lb_config.table_size",
                    "must be a prime number no larger than 5000011",
                ));
            }
            LbPolicy::Maglev { table_size }
        }
        // ORIGINAL_DST picks its host itself; balancing does not apply.
        (LbProto::ClusterProvided, _) if original_dst => LbPolicy::Random,
        (_, Some(_)) => {
            return Err(unsupported(
                "lb_config",
                format!("this lb_config with lb_policy {}", kind.as_str_name()),
            ))
        }
        (other, None) => return Err(unsupported("lb_policy", other.as_str_name())),
    };
    Ok(out)
}

fn is_prime(n: u64) -> bool {
    n >= 2
        && (2..)
            .take_while(|d| d * d <= n)
            .all(|d| !n.is_multiple_of(d))
}

/// `common_lb_config`: the healthy panic threshold in percent (Envoy's default 50).
pub fn common_lb_config(c: Option<&CommonLbConfig>) -> Result<f64> {
    let Some(c) = c else { return Ok(50.0) };
    let threshold = c.healthy_panic_threshold.as_ref().map_or(50.0, |p| p.value);
    if !(0.0..=100.0).contains(&threshold) {
        return Err(invalid(
            "common_lb_config.healthy_panic_threshold",
            "must be between 0 and 100",
        ));
    }
    let mut rest = c.clone();
    rest.healthy_panic_threshold = None;
    // Only timing of host set updates; no effect on which host is chosen.
    rest.update_merge_window = None;
    reject_rest(
        "common_lb_config",
        &rest,
        &[
            (2, "zone_aware_lb_config"),
            (3, "locality_weighted_lb_config"),
            (5, "ignore_new_hosts_until_first_hc"),
            (6, "close_connections_on_host_set_change"),
            (7, "consistent_hashing_lb_config"),
            (8, "override_host_status"),
        ],
    )?;
    Ok(threshold)
}

/// The DEFAULT priority's thresholds; those of HIGH are accepted (routes never ask for
/// HIGH priority here).
pub fn circuit_breakers(cb: Option<&CircuitBreakers>) -> Result<Thresholds> {
    let mut out = Thresholds::default();
    let Some(cb) = cb else { return Ok(out) };
    if !cb.per_host_thresholds.is_empty() {
        return Err(unsupported(
            "circuit_breakers.per_host_thresholds",
            "per-host circuit breakers",
        ));
    }
    for (i, t) in cb.thresholds.iter().enumerate() {
        let f = format!("circuit_breakers.thresholds[{i}]");
        let mut rest = *t;
        rest.priority = 0;
        rest.max_connections = None;
        rest.max_pending_requests = None;
        rest.max_requests = None;
        rest.max_retries = None;
        // Only adds remaining_* gauges.
        rest.track_remaining = false;
        reject_rest(
            &f,
            &rest,
            &[(8, "retry_budget"), (7, "max_connection_pools")],
        )?;
        if t.priority != RoutingPriority::Default as i32 {
            continue;
        }
        let v = |o: &Option<envoy_types::pb::google::protobuf::UInt32Value>, d: u32| {
            o.as_ref().map_or(d, |v| v.value)
        };
        out = Thresholds {
            max_connections: v(&t.max_connections, out.max_connections),
            max_pending_requests: v(&t.max_pending_requests, out.max_pending_requests),
            max_requests: v(&t.max_requests, out.max_requests),
            max_retries: v(&t.max_retries, out.max_retries),
        };
    }
    Ok(out)
}

/// `outlier_detection`: consecutive 5xx and gateway failures are applied; success-rate
/// and failure-percentage detection are accepted but not applied (see the crate docs).
pub fn outlier_detection(o: &OutlierProto) -> Result<OutlierDetection> {
    let d = OutlierDetection::default();
    let u = |v: &Option<envoy_types::pb::google::protobuf::UInt32Value>, d: u32| {
        v.as_ref().map_or(d, |v| v.value)
    };
    let dur = |name: &str, v: &Option<envoy_types::pb::google::protobuf::Duration>, d| {
        v.as_ref()
            .map_or(Ok(d), |v| duration(&at("outlier_detection", name), v))
    };
    let out = OutlierDetection {
        consecutive_5xx: u(&o.consecutive_5xx, d.consecutive_5xx),
        enforcing_consecutive_5xx: u(&o.enforcing_consecutive_5xx, d.enforcing_consecutive_5xx)
            .min(100),
        consecutive_gateway_failure: u(
            &o.consecutive_gateway_failure,
            d.consecutive_gateway_failure,
        ),
        enforcing_consecutive_gateway_failure: u(
            &o.enforcing_consecutive_gateway_failure,
            d.enforcing_consecutive_gateway_failure,
        )
        .min(100),
        interval: dur("interval", &o.interval, d.interval)?,
        base_ejection_time: dur(
            "base_ejection_time",
            &o.base_ejection_time,
            d.base_ejection_time,
        )?,
        max_ejection_time: dur(
            "max_ejection_time",
            &o.max_ejection_time,
            d.max_ejection_time,
        )?,
        max_ejection_percent: u(&o.max_ejection_percent, d.max_ejection_percent).min(100),
    };
    if out.interval.is_zero() {
        return Err(invalid("outlier_detection.interval", "must be positive"));
    }
    if o.split_external_local_origin_errors {
        return Err(unsupported(
            "outlier_detection.split_external_local_origin_errors",
            "local-origin failures counted apart",
        ));
    }
    if !o.monitors.is_empty() {
        return Err(unsupported(
            "outlier_detection.monitors",
            "outlier monitors",
        ));
    }
    Ok(out)
}

/// What `typed_extension_protocol_options` say about the upstream HTTP connections.
pub struct HttpOptions {
    pub protocol: UpstreamProtocol,
    pub idle_timeout: Option<Duration>,
    pub max_requests_per_connection: Option<u32>,
}

pub fn http_options<'a>(
    options: impl IntoIterator<Item = (&'a String, &'a Any)>,
) -> Result<HttpOptions> {
    let mut out = HttpOptions {
        protocol: UpstreamProtocol::Http1,
        idle_timeout: Some(Duration::from_secs(3600)),
        max_requests_per_connection: None,
    };
    for (name, any) in options {
        let field = format!("typed_extension_protocol_options[{name}]");
        let opts: HttpProtocolOptions = unpack(&field, any, HTTP_PROTOCOL_OPTIONS)?;
        out.protocol = match &opts.upstream_protocol_options {
            None => UpstreamProtocol::Http1,
            Some(UpstreamProtocolOptions::ExplicitHttpConfig(e)) => match &e.protocol_config {
                None | Some(ProtocolConfig::HttpProtocolOptions(_)) => UpstreamProtocol::Http1,
                Some(ProtocolConfig::Http2ProtocolOptions(_)) => UpstreamProtocol::Http2,
                Some(ProtocolConfig::Http3ProtocolOptions(_)) => {
                    return Err(unsupported(field, "upstream HTTP/3"))
                }
            },
            Some(UpstreamProtocolOptions::UseDownstreamProtocolConfig(_)) => {
                UpstreamProtocol::Downstream
            }
            // Without TLS there is no ALPN to negotiate with: HTTP/1.1, as Envoy
            // falls back to for cleartext.
            Some(UpstreamProtocolOptions::AutoConfig(_)) => UpstreamProtocol::Http1,
        };
        if let Some(common) = &opts.common_http_protocol_options {
            let f = at(&field, "common_http_protocol_options");
            if let Some(d) = &common.idle_timeout {
                let d = duration(&at(&f, "idle_timeout"), d)?;
                // 0s disables the idle timeout.
                out.idle_timeout = (!d.is_zero()).then_some(d);
            }
            out.max_requests_per_connection = common
                .max_requests_per_connection
                .as_ref()
                .map(|v| v.value)
                .filter(|v| *v > 0);
            let mut rest = *common;
            rest.idle_timeout = None;
            rest.max_requests_per_connection = None;
            reject_rest(
                &f,
                &rest,
                &[
                    (3, "max_connection_duration"),
                    (2, "max_headers_count"),
                    (4, "max_stream_duration"),
                    (5, "headers_with_underscores_action"),
                ],
            )?;
        }
        let mut rest = opts.clone();
        rest.upstream_protocol_options = None;
        rest.common_http_protocol_options = None;
        reject_rest(
            &field,
            &rest,
            &[
                (2, "upstream_http_protocol_options"),
                (6, "http_filters"),
                (7, "header_validation_config"),
                (8, "outlier_detection"),
                (9, "request_mirror_policies"),
            ],
        )?;
    }
    Ok(out)
}
