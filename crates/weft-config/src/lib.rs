//! Istio's configuration model for Weft: every kind Istio serves, parsed strictly from
//! YAML or JSON, validated like Istio's webhook, and analyzed like `istioctl analyze`.
//!
//! Pure: no I/O and no async, so the control plane, the CLI and fuzzers share it.

pub mod analyze;
pub mod common;
pub mod error;
pub mod extensions;
pub mod kind;
pub mod kubernetes;
pub mod meta;
pub mod networking;
pub mod parse;
pub mod resource;
pub mod security;
pub mod telemetry;
pub mod validate;

pub use error::{ConfigError, FieldError, Origin};
pub use kind::{Kind, KindInfo, KINDS};
pub use meta::ObjectMeta;
pub use parse::{
    parse_and_validate, parse_documents, parse_documents_lenient, parse_value, parse_value_lenient,
    validate_value,
};
pub use resource::{Resource, Spec};
pub use validate::Report;
