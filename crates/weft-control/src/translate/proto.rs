//! Small builders for the protobuf plumbing every translator needs: `Any`, durations,
//! wrappers, addresses and the ADS config source.

use envoy_types::pb::envoy::config::core::v3::Address;
use envoy_types::pb::envoy::config::core::v3::{
    address, config_source, socket_address, AggregatedConfigSource, ApiVersion, ConfigSource,
    SocketAddress,
};
use envoy_types::pb::google::protobuf::{Any, Duration, UInt32Value};
use prost::Message;

/// Packs a typed config; `name` is the full protobuf message name.
pub fn any<M: Message>(name: &str, message: &M) -> Any {
    Any {
        type_url: format!("type.googleapis.com/{name}"),
        value: message.encode_to_vec(),
    }
}

pub fn seconds(secs: i64) -> Duration {
    Duration {
        seconds: secs,
        nanos: 0,
    }
}

/// Istio's YAML duration as protobuf; saturates rather than wraps on absurd values.
pub fn duration(d: weft_config::common::Duration) -> Duration {
    let nanos = d.nanos.max(0);
    Duration {
        seconds: i64::try_from(nanos / 1_000_000_000).unwrap_or(i64::MAX),
        nanos: (nanos % 1_000_000_000) as i32,
    }
}

pub fn u32v(value: u32) -> UInt32Value {
    UInt32Value { value }
}

/// Resources come over the same ADS stream as the one asking for them.
pub fn ads() -> ConfigSource {
    ConfigSource {
        resource_api_version: ApiVersion::V3 as i32,
        config_source_specifier: Some(config_source::ConfigSourceSpecifier::Ads(
            AggregatedConfigSource {},
        )),
        ..Default::default()
    }
}

pub fn socket(ip: &str, port: u32) -> Address {
    Address {
        address: Some(address::Address::SocketAddress(SocketAddress {
            address: ip.to_string(),
            port_specifier: Some(socket_address::PortSpecifier::PortValue(port)),
            ..Default::default()
        })),
    }
}
