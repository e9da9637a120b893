//! Conversion of what weftd generates for DestinationRules: load balancers, circuit
//! breakers, outlier detection, HTTP/2 and connection pool options, DNS and ORIGINAL_DST.

use super::{cluster, HTTP_PROTOCOL_OPTIONS};
use crate::model::{Discovery, LbPolicy, OutlierDetection, Thresholds, UpstreamProtocol};
use envoy_types::pb::envoy::config::cluster::v3::circuit_breakers::Thresholds as ThresholdsProto;
use envoy_types::pb::envoy::config::cluster::v3::cluster::{
    ClusterDiscoveryType, CommonLbConfig, DiscoveryType, LbConfig, LbPolicy as LbProto,
    MaglevLbConfig, OriginalDstLbConfig, RingHashLbConfig,
};
use envoy_types::pb::envoy::config::cluster::v3::{
    CircuitBreakers, Cluster, OutlierDetection as OutlierProto,
};
use envoy_types::pb::envoy::config::core::v3::HttpProtocolOptions as CommonHttp;
use envoy_types::pb::envoy::extensions::upstreams::http::v3::{
    http_protocol_options::{
        explicit_http_config::ProtocolConfig, ExplicitHttpConfig, UpstreamProtocolOptions,
    },
    HttpProtocolOptions,
};
use envoy_types::pb::envoy::r#type::v3::Percent;
use envoy_types::pb::google::protobuf::{Any, Duration, UInt32Value, UInt64Value};
use prost::Message;
use std::time::Duration as StdDuration;

fn eds(policy: LbProto) -> Cluster {
    Cluster {
        name: "outbound|80||stateful.default.svc.cluster.local".into(),
        cluster_discovery_type: Some(ClusterDiscoveryType::Type(DiscoveryType::Eds as i32)),
        lb_policy: policy as i32,
        ..Default::default()
    }
}

fn u32v(value: u32) -> Option<UInt32Value> {
    Some(UInt32Value { value })
}

fn secs(seconds: i64) -> Option<Duration> {
    Some(Duration { seconds, nanos: 0 })
}

#[test]
fn consistent_hash_policies_with_their_sizes() {
    let mut c = eds(LbProto::RingHash);
    c.lb_config = Some(LbConfig::RingHashLbConfig(RingHashLbConfig {
        minimum_ring_size: Some(UInt64Value { value: 4096 }),
        ..Default::default()
    }));
    assert_eq!(
        cluster(&c).unwrap().lb_policy,
        LbPolicy::RingHash {
            minimum_ring_size: 4096,
            maximum_ring_size: 8 << 20
        }
    );
    let mut c = eds(LbProto::Maglev);
    assert_eq!(
        cluster(&c).unwrap().lb_policy,
        LbPolicy::Maglev { table_size: 65537 }
    );
    c.lb_config = Some(LbConfig::MaglevLbConfig(MaglevLbConfig {
        table_size: Some(UInt64Value { value: 1000 }),
    }));
    assert_eq!(
        cluster(&c).unwrap_err().to_string(),
        "maglev_lb_config.table_size: invalid: must be a prime number no larger than 5000011"
    );
}

#[test]
fn istio_connection_pool_and_outlier_detection() {
    let mut c = eds(LbProto::RoundRobin);
    c.circuit_breakers = Some(CircuitBreakers {
        thresholds: vec![ThresholdsProto {
            max_connections: u32v(1),
            max_pending_requests: u32v(1),
            max_requests: u32v(u32::MAX),
            max_retries: u32v(u32::MAX),
            track_remaining: true,
            ..Default::default()
        }],
        ..Default::default()
    });
    c.outlier_detection = Some(OutlierProto {
        consecutive_5xx: u32v(1),
        enforcing_consecutive_5xx: u32v(100),
        interval: secs(1),
        base_ejection_time: secs(60),
        max_ejection_percent: u32v(100),
        ..Default::default()
    });
    c.common_lb_config = Some(CommonLbConfig {
        healthy_panic_threshold: Some(Percent { value: 0.0 }),
        ..Default::default()
    });
    let opts = HttpProtocolOptions {
        common_http_protocol_options: Some(CommonHttp {
            max_requests_per_connection: u32v(1),
            idle_timeout: secs(30),
            ..Default::default()
        }),
        upstream_protocol_options: Some(UpstreamProtocolOptions::ExplicitHttpConfig(
            ExplicitHttpConfig {
                protocol_config: Some(ProtocolConfig::Http2ProtocolOptions(Default::default())),
            },
        )),
        ..Default::default()
    };
    c.typed_extension_protocol_options.insert(
        HTTP_PROTOCOL_OPTIONS.into(),
        Any {
            type_url: format!("type.googleapis.com/{HTTP_PROTOCOL_OPTIONS}"),
            value: opts.encode_to_vec(),
        },
    );
    let m = cluster(&c).unwrap();
    assert_eq!(
        m.circuit_breakers,
        Thresholds {
            max_connections: 1,
            max_pending_requests: 1,
            max_requests: u32::MAX,
            max_retries: u32::MAX
        }
    );
    assert_eq!(
        m.outlier_detection,
        Some(OutlierDetection {
            consecutive_5xx: 1,
            interval: StdDuration::from_secs(1),
            base_ejection_time: StdDuration::from_secs(60),
            max_ejection_percent: 100,
            ..Default::default()
        })
    );
    assert_eq!(m.healthy_panic_threshold, 0.0);
    assert_eq!(m.protocol, UpstreamProtocol::Http2);
    assert_eq!(m.max_requests_per_connection, Some(1));
    assert_eq!(m.idle_timeout, Some(StdDuration::from_secs(30)));
}

#[test]
fn dns_and_original_destination_clusters() {
    let mut c = eds(LbProto::RoundRobin);
    c.cluster_discovery_type = Some(ClusterDiscoveryType::Type(DiscoveryType::LogicalDns as i32));
    assert!(matches!(
        cluster(&c).unwrap().discovery,
        Discovery::LogicalDns { refresh, ipv4_only: false } if refresh == StdDuration::from_secs(5)
    ));
    let mut c = eds(LbProto::ClusterProvided);
    c.cluster_discovery_type = Some(ClusterDiscoveryType::Type(
        DiscoveryType::OriginalDst as i32,
    ));
    assert_eq!(
        cluster(&c).unwrap().discovery,
        Discovery::OriginalDst {
            use_http_header: false
        }
    );
    c.lb_config = Some(LbConfig::OriginalDstLbConfig(OriginalDstLbConfig {
        use_http_header: true,
        ..Default::default()
    }));
    assert_eq!(
        cluster(&c).unwrap().discovery,
        Discovery::OriginalDst {
            use_http_header: true
        }
    );
}

#[test]
fn what_cannot_be_honoured_is_named() {
    let mut c = eds(LbProto::RoundRobin);
    c.circuit_breakers = Some(CircuitBreakers {
        thresholds: vec![ThresholdsProto {
            max_connection_pools: u32v(3),
            ..Default::default()
        }],
        ..Default::default()
    });
    assert_eq!(
        cluster(&c).unwrap_err().to_string(),
        "circuit_breakers.thresholds[0]: unsupported: max_connection_pools"
    );
    let mut c = eds(LbProto::LeastRequest);
    c.outlier_detection = Some(OutlierProto {
        split_external_local_origin_errors: true,
        ..Default::default()
    });
    assert!(cluster(&c)
        .unwrap_err()
        .to_string()
        .starts_with("outlier_detection.split_external_local_origin_errors: unsupported"));
}
