//! Kubernetes `Secret` (core `v1`): opaque key/value data, and the TLS credentials that a
//! Gateway's or DestinationRule's `credentialName` names.

use crate::meta::ObjectMeta;
use crate::validate::Report;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use thiserror::Error;

/// The top-level fields a Secret has instead of a `spec`.
pub const FIELDS: &[&str] = &["type", "data", "stringData", "immutable"];

pub const TYPE_OPAQUE: &str = "Opaque";
pub const TYPE_TLS: &str = "kubernetes.io/tls";
/// Keys of a `kubernetes.io/tls` secret (`ca.crt` is a common, optional addition).
pub const TLS_CERT: &str = "tls.crt";
pub const TLS_KEY: &str = "tls.key";
pub const CA_CERT: &str = "ca.crt";
/// Keys of Istio's "generic" credential format, read before the `tls.*` ones.
pub const GENERIC_CERT: &str = "cert";
pub const GENERIC_KEY: &str = "key";
pub const GENERIC_CA_CERT: &str = "cacert";
/// Istio looks for the CA of credential `X` in a secret `X-cacert` first, then in `X`.
pub const CA_SECRET_SUFFIX: &str = "-cacert";
/// Kubernetes' limit on the total size of a secret's data.
const MAX_SECRET_SIZE: usize = 1024 * 1024;

/// A Secret's content; `data` values are base64, as in the Kubernetes API.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Secret {
    #[serde(default, rename = "type", skip_serializing_if = "String::is_empty")]
    pub secret_type: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub data: BTreeMap<String, String>,
    /// Write-only convenience: folded into `data` on read (see [`normalize`]).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub string_data: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub immutable: Option<bool>,
}

/// Does what the Kubernetes API server does to a Secret it is given: `stringData` entries
/// are base64-encoded into `data` (overriding keys there) and dropped, and an empty `type`
/// becomes `Opaque`. So a stored or listed Secret looks as it would in a cluster. Values of
/// the wrong shape are left alone for the strict parser to report.
pub fn normalize(fields: &mut Map<String, Value>) {
    let plain = match fields.get("stringData") {
        Some(Value::Object(m)) if m.values().all(Value::is_string) => Some(m.clone()),
        Some(Value::Null) => Some(Map::new()),
        _ => None,
    };
    if let Some(plain) = plain {
        fields.remove("stringData");
        if !plain.is_empty() {
            let data = fields
                .entry("data")
                .or_insert_with(|| Value::Object(Map::new()));
            if data.is_null() {
                *data = Value::Object(Map::new());
            }
            if let Value::Object(data) = data {
                for (k, v) in plain {
                    let text = v.as_str().unwrap_or_default();
                    data.insert(k, STANDARD.encode(text).into());
                }
            }
        }
    }
    match fields.get("type") {
        None | Some(Value::Null) => {
            fields.insert("type".into(), TYPE_OPAQUE.into());
        }
        Some(Value::String(t)) if t.is_empty() => {
            fields.insert("type".into(), TYPE_OPAQUE.into());
        }
        _ => {}
    }
}

/// Decodes base64 as Kubernetes (Go's `encoding/json`) does: standard alphabet, padded,
/// line breaks ignored. Errors in Go's words, which Kubernetes users see.
fn decode(text: &str) -> Result<Vec<u8>, String> {
    let joined: String = text.chars().filter(|c| !matches!(c, '\r' | '\n')).collect();
    STANDARD.decode(&joined).map_err(|e| {
        let at = match e {
            base64::DecodeError::InvalidByte(at, _)
            | base64::DecodeError::InvalidLastSymbol(at, _) => at,
            base64::DecodeError::InvalidLength(_) | base64::DecodeError::InvalidPadding => {
                joined.len()
            }
        };
        format!("illegal base64 data at input byte {at}")
    })
}

/// Why a secret cannot serve as a TLS credential; Istio's wording.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum CredentialError {
    #[error("found keys {0:?} and {1:?}, but they were empty")]
    Empty(&'static str, &'static str),
    #[error("found secret, but didn't have expected keys ({GENERIC_CERT} and {GENERIC_KEY}) or ({TLS_CERT} and {TLS_KEY}); found: {0}")]
    MissingKeys(String),
    #[error(
        "found secret, but didn't have expected keys {GENERIC_CA_CERT} or {CA_CERT}; found: {0}"
    )]
    MissingCa(String),
    #[error("data[{0}]: {1}")]
    Base64(String, String),
}

/// A certificate chain and its private key, PEM.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyAndCert {
    pub certificate_chain: Vec<u8>,
    pub private_key: Vec<u8>,
}

impl Secret {
    /// The decoded value of `key`, if present and valid base64.
    pub fn value(&self, key: &str) -> Option<Vec<u8>> {
        self.data.get(key).and_then(|v| decode(v).ok())
    }

    fn non_empty(&self, keys: [&'static str; 2]) -> Result<Option<[Vec<u8>; 2]>, CredentialError> {
        let mut out = [Vec::new(), Vec::new()];
        for (slot, key) in out.iter_mut().zip(keys) {
            let Some(text) = self.data.get(key) else {
                return Ok(None);
            };
            *slot = decode(text).map_err(|e| CredentialError::Base64(key.to_string(), e))?;
        }
        Ok(Some(out))
    }

    /// The server or client certificate and key, read as Istio reads credentials: the
    /// generic `cert`/`key` pair first, then `tls.crt`/`tls.key`.
    pub fn key_and_cert(&self) -> Result<KeyAndCert, CredentialError> {
        for (cert, key) in [(GENERIC_CERT, GENERIC_KEY), (TLS_CERT, TLS_KEY)] {
            if let Some([chain, private_key]) = self.non_empty([cert, key])? {
                if chain.is_empty() || private_key.is_empty() {
                    return Err(CredentialError::Empty(cert, key));
                }
                return Ok(KeyAndCert {
                    certificate_chain: chain,
                    private_key,
                });
            }
        }
        Err(CredentialError::MissingKeys(self.key_list()))
    }

    /// The CA certificate (PEM) used to verify peers: `cacert`, then `ca.crt`.
    pub fn ca_certificate(&self) -> Result<Vec<u8>, CredentialError> {
        for key in [GENERIC_CA_CERT, CA_CERT] {
            if let Some(text) = self.data.get(key) {
                let ca = decode(text).map_err(|e| CredentialError::Base64(key.to_string(), e))?;
                if !ca.is_empty() {
                    return Ok(ca);
                }
            }
        }
        Err(CredentialError::MissingCa(self.key_list()))
    }

    /// Up to three key names, for messages that must not show values.
    fn key_list(&self) -> String {
        let keys: Vec<&str> = self.data.keys().map(String::as_str).collect();
        match keys.len() {
            0..=3 => keys.join(", "),
            n => format!("{}, and {} more...", keys[..3].join(", "), n - 3),
        }
    }
}

/// A key Kubernetes accepts in `data`: `[-._a-zA-Z0-9]+`, at most 253 characters.
fn is_config_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= 253
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && key != "."
        && key != ".."
}

/// Kubernetes' checks on a Secret, plus a warning where Istio would not find a credential.
pub fn validate(secret: &Secret, meta: &ObjectMeta, report: &mut Report) {
    let mut total = 0;
    for (key, value) in &secret.data {
        let path = format!("data[{key}]");
        if !is_config_key(key) {
            report.error(
                &path,
                format!("Invalid value: {key:?}: a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name', or 'KEY_NAME', or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')"),
            );
        }
        match decode(value) {
            Ok(bytes) => total += bytes.len(),
            Err(e) => report.error(&path, format!("Invalid value: {e}")),
        }
    }
    if total > MAX_SECRET_SIZE {
        report.error(
            "data",
            format!("Too long: must have at most {MAX_SECRET_SIZE} bytes"),
        );
    }
    if secret.secret_type == TYPE_TLS {
        for key in [TLS_CERT, TLS_KEY] {
            if !secret.data.contains_key(key) {
                report.error(format!("data[{key}]"), "Required value");
            }
        }
    }
    if let Some(base) = meta.name.strip_suffix(CA_SECRET_SUFFIX) {
        if !secret.data.contains_key(CA_CERT) && !secret.data.contains_key(GENERIC_CA_CERT) {
            report.warn(
                "data",
                format!("Istio reads the CA certificate of credential {base:?} from this secret, but it has no {CA_CERT} (or {GENERIC_CA_CERT}) key"),
            );
        }
    }
    for key in [TLS_CERT, GENERIC_CERT, CA_CERT, GENERIC_CA_CERT] {
        if let Some(bytes) = secret.value(key) {
            if !bytes.is_empty() && !bytes.windows(11).any(|w| w == b"-----BEGIN ") {
                report.warn(
                    format!("data[{key}]"),
                    "not a PEM certificate (no \"-----BEGIN \" line); proxies will reject it",
                );
            }
        }
    }
}

#[cfg(test)]
#[path = "secret_tests.rs"]
mod tests;
