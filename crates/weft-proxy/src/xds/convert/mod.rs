//! Protobuf -> model conversion with typed errors: one `TryFrom`-style function per
//! resource type. A resource that uses anything weft-proxy cannot honour is an error
//! naming the field, which the xDS client turns into a NACK.

pub mod cluster;
pub mod cluster_policy;
pub mod endpoint;
pub mod fields;
pub mod listener;
pub mod route;
pub mod tls;

use bytes::Buf;
use envoy_types::pb::google::protobuf::{Any, Duration as PbDuration};
use prost::Message;
use std::time::Duration;
use thiserror::Error;

/// Why a field of a resource cannot be honoured. `field` is a path inside the resource,
/// in Envoy's proto field names (`filter_chains[0].filters[0]`).
#[derive(Debug, Error, PartialEq)]
pub enum ConvertError {
    #[error("{}unsupported: {what}", field_prefix(.field))]
    Unsupported { field: String, what: String },
    #[error("{}invalid: {reason}", field_prefix(.field))]
    Invalid { field: String, reason: String },
    #[error("{}cannot decode {type_url}: {reason}", field_prefix(.field))]
    Decode {
        field: String,
        type_url: String,
        reason: String,
    },
}

/// A conversion error together with the resource it came from, as it goes in a NACK.
#[derive(Debug, Error, PartialEq)]
#[error("{kind} {name}: {error}")]
pub struct ResourceError {
    pub kind: &'static str,
    pub name: String,
    #[source]
    pub error: ConvertError,
}

/// `field: ` before a message, nothing for the resource itself.
fn field_prefix(field: &str) -> String {
    if field.is_empty() {
        String::new()
    } else {
        format!("{field}: ")
    }
}

pub type Result<T> = std::result::Result<T, ConvertError>;

pub(crate) fn unsupported(field: impl Into<String>, what: impl Into<String>) -> ConvertError {
    ConvertError::Unsupported {
        field: field.into(),
        what: what.into(),
    }
}

pub(crate) fn invalid(field: impl Into<String>, reason: impl Into<String>) -> ConvertError {
    ConvertError::Invalid {
        field: field.into(),
        reason: reason.into(),
    }
}

/// `type.googleapis.com/<name>` -> `<name>`.
pub(crate) fn type_name(any: &Any) -> &str {
    any.type_url.rsplit('/').next().unwrap_or_default()
}

/// Decodes `any` as `M` after checking its type name.
pub(crate) fn unpack<M: Message + Default>(field: &str, any: &Any, expected: &str) -> Result<M> {
    if type_name(any) != expected {
        return Err(unsupported(field, format!("type {}", any.type_url)));
    }
    M::decode(any.value.as_slice()).map_err(|e| ConvertError::Decode {
        field: field.to_string(),
        type_url: any.type_url.clone(),
        reason: e.to_string(),
    })
}

/// Rejects whatever is left set in `rest`: the caller clears every field it honours (or
/// deliberately accepts), so any field still on the wire is one weft-proxy would silently
/// ignore. Field numbers are named from `names` where the caller knows them.
pub(crate) fn reject_rest<M: Message>(field: &str, rest: &M, names: &[(u32, &str)]) -> Result<()> {
    let bytes = rest.encode_to_vec();
    let mut buf = bytes.as_slice();
    let mut seen = Vec::new();
    while buf.has_remaining() {
        let Ok((tag, wire_type)) = prost::encoding::decode_key(&mut buf) else {
            break;
        };
        if prost::encoding::skip_field(wire_type, tag, &mut buf, Default::default()).is_err() {
            break;
        }
        if !seen.contains(&tag) {
            seen.push(tag);
        }
    }
    if seen.is_empty() {
        return Ok(());
    }
    let what: Vec<String> = seen
        .iter()
        .map(|tag| match names.iter().find(|(n, _)| n == tag) {
            Some((_, name)) => (*name).to_string(),
            None => format!("field #{tag}"),
        })
        .collect();
    Err(unsupported(field, what.join(", ")))
}

/// A protobuf Duration; negative ones are invalid.
pub(crate) fn duration(field: &str, d: &PbDuration) -> Result<Duration> {
    if d.seconds < 0 || d.nanos < 0 {
        return Err(invalid(field, "negative duration"));
    }
    Ok(Duration::new(d.seconds as u64, d.nanos as u32))
}

/// `a.b` joined as a field path.
pub(crate) fn at(parent: &str, child: impl std::fmt::Display) -> String {
    if parent.is_empty() {
        child.to_string()
    } else {
        format!("{parent}.{child}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use envoy_types::pb::envoy::config::route::v3::VirtualHost;

    #[test]
    fn leftover_fields_are_named_or_numbered() {
        let mut vh = VirtualHost::default();
        assert_eq!(reject_rest("vh", &vh, &[]), Ok(()));
        vh.require_tls = 1;
        vh.include_request_attempt_count = true;
        let err = reject_rest("vh", &vh, &[(4, "require_tls")]).unwrap_err();
        assert_eq!(err.to_string(), "vh: unsupported: require_tls, field #14");
    }
}
