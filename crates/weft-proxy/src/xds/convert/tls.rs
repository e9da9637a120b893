//! TLS transport sockets and SDS secrets: `UpstreamTlsContext` (clusters),
//! `DownstreamTlsContext` (filter chains) -> [`model::UpstreamTls`] /
//! [`model::DownstreamTls`], and `Secret` -> [`model::Secret`].
//!
//! Certificates and keys come only by SDS over ADS (`sds_config: {ads: {}}`, the way weftd
//! sends them); a validation context may also carry its CA inline or as a file.

use super::{at, invalid, reject_rest, unpack, unsupported, Result};
use crate::model::{self, CaSource, Validation};
use envoy_types::pb::envoy::config::core::v3::{
    config_source::ConfigSourceSpecifier, data_source::Specifier, transport_socket, DataSource,
    TransportSocket,
};
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
    common_tls_context::ValidationContextType, secret, subject_alt_name_matcher::SanType,
    CertificateValidationContext, CommonTlsContext, DownstreamTlsContext, SdsSecretConfig, Secret,
    UpstreamTlsContext,
};
use envoy_types::pb::envoy::r#type::matcher::v3::string_matcher::MatchPattern;

pub const TLS_SOCKET: &str = "envoy.transport_sockets.tls";
pub const UPSTREAM_TLS_CONTEXT: &str =
    "envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext";
pub const DOWNSTREAM_TLS_CONTEXT: &str =
    "envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext";

const UPSTREAM: &[(u32, &str)] = &[
    (1, "common_tls_context"),
    (2, "sni"),
    (6, "auto_host_sni"),
    (7, "auto_sni_san_validation"),
    (3, "allow_renegotiation"),
    (4, "max_session_keys"),
    (5, "enforce_rsa_key_usage"),
];
const DOWNSTREAM: &[(u32, &str)] = &[
    (1, "common_tls_context"),
    (2, "require_client_certificate"),
    (3, "require_sni"),
    (10, "disable_stateful_session_resumption"),
    (6, "session_timeout"),
    (8, "ocsp_staple_policy"),
    (9, "full_scan_certs_on_sni_mismatch"),
    (11, "prefer_client_ciphers"),
    (4, "session_ticket_keys"),
    (5, "session_ticket_keys_sds_secret_config"),
    (7, "disable_stateless_session_resumption"),
];
const COMMON: &[(u32, &str)] = &[
    (1, "tls_params"),
    (2, "tls_certificates"),
    (6, "tls_certificate_sds_secret_configs"),
    (14, "tls_certificate_provider_instance"),
    (16, "custom_tls_certificate_selector"),
    (9, "tls_certificate_certificate_provider"),
    (11, "tls_certificate_certificate_provider_instance"),
    (4, "alpn_protocols"),
    (13, "custom_handshaker"),
    (15, "key_log"),
    (3, "validation_context"),
    (7, "validation_context_sds_secret_config"),
    (8, "combined_validation_context"),
    (10, "validation_context_certificate_provider"),
    (12, "validation_context_certificate_provider_instance"),
];
const VALIDATION: &[(u32, &str)] = &[
    (1, "trusted_ca"),
    (13, "ca_certificate_provider_instance"),
    (17, "system_root_certs"),
    (11, "watched_directory"),
    (3, "verify_certificate_spki"),
    (2, "verify_certificate_hash"),
    (15, "match_typed_subject_alt_names"),
    (9, "match_subject_alt_names"),
    (6, "require_signed_certificate_timestamp"),
    (7, "crl"),
    (8, "allow_expired_certificate"),
    (10, "trust_chain_verification"),
    (12, "custom_validator_config"),
    (14, "only_verify_leaf_cert_crl"),
    (16, "max_verify_depth"),
    (18, "suppress_client_ca_list"),
];
const TLS_CERTIFICATE: &[(u32, &str)] = &[
    (1, "certificate_chain"),
    (2, "private_key"),
    (8, "pkcs12"),
    (7, "watched_directory"),
    (6, "private_key_provider"),
    (3, "password"),
    (4, "ocsp_staple"),
    (5, "signed_certificate_timestamp"),
    (9, "tls_params"),
];

/// The typed config of a `transport_socket`, which must be Envoy's TLS socket.
fn socket_config<'a>(
    field: &str,
    socket: &'a TransportSocket,
) -> Result<&'a envoy_types::pb::google::protobuf::Any> {
    match &socket.config_type {
        Some(transport_socket::ConfigType::TypedConfig(any)) => Ok(any),
        None => Err(invalid(
            field,
            format!("transport socket {} has no typed_config", socket.name),
        )),
    }
}

/// A cluster's `transport_socket`.
pub fn upstream(field: &str, socket: &TransportSocket) -> Result<model::UpstreamTls> {
    let any = socket_config(field, socket)?;
    let field = at(field, "typed_config");
    let ctx: UpstreamTlsContext = unpack(&field, any, UPSTREAM_TLS_CONTEXT)?;
    let mut rest = ctx.clone();
    rest.common_tls_context = None;
    rest.sni.clear();
    reject_rest(&field, &rest, UPSTREAM)?;
    let common = common(&field, ctx.common_tls_context.as_ref())?;
    if common.certificates.len() > 1 {
        return Err(unsupported(
            at(
                &field,
                "common_tls_context.tls_certificate_sds_secret_configs",
            ),
            "more than one client certificate",
        ));
    }
    Ok(model::UpstreamTls {
        sni: ctx.sni,
        certificate: common.certificates.into_iter().next(),
        validation: common.validation,
        alpn: common.alpn,
    })
}

/// A filter chain's `transport_socket`.
pub fn downstream(field: &str, socket: &TransportSocket) -> Result<model::DownstreamTls> {
    let any = socket_config(field, socket)?;
    let field = at(field, "typed_config");
    let ctx: DownstreamTlsContext = unpack(&field, any, DOWNSTREAM_TLS_CONTEXT)?;
    let mut rest = ctx.clone();
    rest.common_tls_context = None;
    rest.require_client_certificate = None;
    reject_rest(&field, &rest, DOWNSTREAM)?;
    let common = common(&field, ctx.common_tls_context.as_ref())?;
    if common.certificates.is_empty() {
        return Err(invalid(
            at(&field, "common_tls_context"),
            "a DownstreamTlsContext needs a certificate",
        ));
    }
    if common
        .validation
        .as_ref()
        .is_some_and(|v| !v.dns_sans.is_empty() || !v.uri_sans.is_empty())
    {
        return Err(unsupported(
            at(&field, "common_tls_context"),
            "SAN matchers for client certificates",
        ));
    }
    let require = ctx.require_client_certificate.is_some_and(|b| b.value);
    if require
        && common
            .validation
            .as_ref()
            .is_none_or(|v| v.trusted_ca.is_none())
    {
        return Err(invalid(
            field,
            "require_client_certificate needs a validation context with a trusted CA",
        ));
    }
    Ok(model::DownstreamTls {
        certificates: common.certificates,
        validation: common.validation,
        require_client_certificate: require,
        alpn: common.alpn,
    })
}

struct Common {
    certificates: Vec<String>,
    validation: Option<Validation>,
    alpn: Vec<String>,
}

fn common(parent: &str, c: Option<&CommonTlsContext>) -> Result<Common> {
    let field = at(parent, "common_tls_context");
    let c = c.cloned().unwrap_or_default();
    let mut rest = c.clone();
    rest.tls_certificate_sds_secret_configs.clear();
    rest.alpn_protocols.clear();
    rest.validation_context_type = None;
    reject_rest(&field, &rest, COMMON)?;
    let certificates = c
        .tls_certificate_sds_secret_configs
        .iter()
        .enumerate()
        .map(|(i, s)| {
            sds(
                &at(&field, format!("tls_certificate_sds_secret_configs[{i}]")),
                s,
            )
        })
        .collect::<Result<Vec<_>>>()?;
    let validation = match &c.validation_context_type {
        None => None,
        Some(ValidationContextType::ValidationContextSdsSecretConfig(s)) => Some(Validation {
            trusted_ca: Some(CaSource::Sds(sds(
                &at(&field, "validation_context_sds_secret_config"),
                s,
            )?)),
            dns_sans: Vec::new(),
            uri_sans: Vec::new(),
        }),
        Some(ValidationContextType::ValidationContext(v)) => {
            let (ca, sans) = validation_context(&at(&field, "validation_context"), v)?;
            Some(Validation {
                trusted_ca: ca.map(CaSource::Pem),
                dns_sans: sans.dns,
                uri_sans: sans.uri,
            })
        }
        Some(ValidationContextType::CombinedValidationContext(cv)) => {
            let f = at(&field, "combined_validation_context");
            let mut rest = cv.clone();
            rest.default_validation_context = None;
            rest.validation_context_sds_secret_config = None;
            reject_rest(&f, &rest, &[(3, "validation_context_certificate_provider")])?;
            let (ca, sans) = match &cv.default_validation_context {
                Some(v) => validation_context(&at(&f, "default_validation_context"), v)?,
                None => (None, Sans::default()),
            };
            if ca.is_some() {
                return Err(unsupported(
                    at(&f, "default_validation_context.trusted_ca"),
                    "a trusted CA both inline and over SDS",
                ));
            }
            let Some(s) = &cv.validation_context_sds_secret_config else {
                return Err(invalid(
                    &f,
                    "validation_context_sds_secret_config is required",
                ));
            };
            Some(Validation {
                trusted_ca: Some(CaSource::Sds(sds(
                    &at(&f, "validation_context_sds_secret_config"),
                    s,
                )?)),
                dns_sans: sans.dns,
                uri_sans: sans.uri,
            })
        }
        Some(_) => {
            return Err(unsupported(
                field,
                "certificate provider validation contexts",
            ))
        }
    };
    Ok(Common {
        certificates,
        validation,
        alpn: c.alpn_protocols,
    })
}

/// A secret reference: its name, fetched over ADS.
fn sds(field: &str, s: &SdsSecretConfig) -> Result<String> {
    if s.name.is_empty() {
        return Err(invalid(field, "secret name is empty"));
    }
    match s
        .sds_config
        .as_ref()
        .and_then(|c| c.config_source_specifier.as_ref())
    {
        Some(ConfigSourceSpecifier::Ads(_)) => Ok(s.name.clone()),
        // Without a config source Envoy looks the name up among static bootstrap
        // secrets, which weft-proxy's bootstrap never has.
        _ => Err(unsupported(
            at(field, "sds_config"),
            "secrets from anything but ADS",
        )),
    }
}

/// Exact SAN matchers by type.
#[derive(Default)]
struct Sans {
    dns: Vec<String>,
    uri: Vec<String>,
}

/// `trusted_ca` (PEM) and exact DNS and URI SAN matchers of a
/// `CertificateValidationContext`.
fn validation_context(
    field: &str,
    v: &CertificateValidationContext,
) -> Result<(Option<Vec<u8>>, Sans)> {
    let mut rest = v.clone();
    rest.trusted_ca = None;
    rest.match_typed_subject_alt_names.clear();
    reject_rest(field, &rest, VALIDATION)?;
    let ca = v
        .trusted_ca
        .as_ref()
        .map(|d| data_source(&at(field, "trusted_ca"), d))
        .transpose()?;
    let mut sans = Sans::default();
    for (i, m) in v.match_typed_subject_alt_names.iter().enumerate() {
        let f = at(field, format!("match_typed_subject_alt_names[{i}]"));
        let exact = match m.matcher.as_ref().and_then(|m| m.match_pattern.as_ref()) {
            Some(MatchPattern::Exact(e)) if !m.matcher.as_ref().is_some_and(|m| m.ignore_case) => e,
            _ => return Err(unsupported(f, "SAN matchers other than exact")),
        };
        match SanType::try_from(m.san_type) {
            Ok(SanType::Dns) => sans.dns.push(exact.clone()),
            Ok(SanType::Uri) => sans.uri.push(exact.clone()),
            _ => return Err(unsupported(f, "SAN types other than DNS and URI")),
        }
    }
    Ok((ca, sans))
}

/// A `DataSource`'s bytes; files are read now, as Envoy reads them when it loads a secret.
fn data_source(field: &str, d: &DataSource) -> Result<Vec<u8>> {
    match &d.specifier {
        Some(Specifier::InlineBytes(b)) => Ok(b.clone()),
        Some(Specifier::InlineString(s)) => Ok(s.clone().into_bytes()),
        Some(Specifier::Filename(path)) => {
            std::fs::read(path).map_err(|e| invalid(field, format!("cannot read {path}: {e}")))
        }
        Some(Specifier::EnvironmentVariable(_)) => {
            Err(unsupported(field, "environment_variable data sources"))
        }
        None => Err(invalid(field, "empty data source")),
    }
}

/// `envoy.transport_sockets.raw_buffer`: plain text, the default transport.
pub const RAW_BUFFER_SOCKET: &str = "envoy.transport_sockets.raw_buffer";
/// Endpoint metadata namespace `transport_socket_matches` select by.
pub const TRANSPORT_SOCKET_MATCH: &str = "envoy.transport_socket_match";

/// A cluster's transport socket: TLS, or None for `raw_buffer` (plain text).
pub fn cluster_socket(field: &str, socket: &TransportSocket) -> Result<Option<model::UpstreamTls>> {
    let raw = socket.name == RAW_BUFFER_SOCKET
        || matches!(&socket.config_type, Some(transport_socket::ConfigType::TypedConfig(any))
            if any.type_url.ends_with("envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer"));
    if raw {
        return Ok(None);
    }
    upstream(field, socket).map(Some)
}

/// `transport_socket_matches` of a cluster.
pub fn transport_socket_matches(
    matches: &[envoy_types::pb::envoy::config::cluster::v3::cluster::TransportSocketMatch],
) -> Result<Vec<model::cluster::TransportSocketMatch>> {
    matches
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let field = format!("transport_socket_matches[{i}]");
            let Some(socket) = &m.transport_socket else {
                return Err(invalid(at(&field, "transport_socket"), "missing"));
            };
            Ok(model::cluster::TransportSocketMatch {
                name: m.name.clone(),
                criteria: m.r#match.as_ref().map(strings).unwrap_or_default(),
                tls: cluster_socket(&at(&field, "transport_socket"), socket)?,
            })
        })
        .collect()
}

/// An endpoint's `envoy.transport_socket_match` metadata.
pub fn socket_match_metadata(
    m: Option<&envoy_types::pb::envoy::config::core::v3::Metadata>,
) -> std::collections::BTreeMap<String, String> {
    m.and_then(|m| m.filter_metadata.get(TRANSPORT_SOCKET_MATCH))
        .map(strings)
        .unwrap_or_default()
}

/// A struct's fields as strings, so criteria and metadata compare alike: strings as they
/// are, numbers and booleans in their JSON form; nested values are not matched on.
fn strings(
    s: &envoy_types::pb::google::protobuf::Struct,
) -> std::collections::BTreeMap<String, String> {
    use envoy_types::pb::google::protobuf::value::Kind;
    s.fields
        .iter()
        .filter_map(|(k, v)| {
            let v = match v.kind.as_ref()? {
                Kind::StringValue(s) => s.clone(),
                Kind::NumberValue(n) => serde_json::Number::from_f64(*n)?.to_string(),
                Kind::BoolValue(b) => b.to_string(),
                _ => return None,
            };
            Some((k.clone(), v))
        })
        .collect()
}

/// Converts one SDS resource.
pub fn secret(s: &Secret) -> Result<model::Secret> {
    match &s.r#type {
        Some(secret::Type::TlsCertificate(c)) => {
            let mut rest = c.clone();
            rest.certificate_chain = None;
            rest.private_key = None;
            reject_rest("tls_certificate", &rest, TLS_CERTIFICATE)?;
            let get = |name: &str, d: Option<&DataSource>| match d {
                Some(d) => data_source(&at("tls_certificate", name), d),
                None => Err(invalid(at("tls_certificate", name), "missing")),
            };
            Ok(model::Secret::TlsCertificate {
                certificate_chain: get("certificate_chain", c.certificate_chain.as_ref())?,
                private_key: get("private_key", c.private_key.as_ref())?,
            })
        }
        Some(secret::Type::ValidationContext(v)) => {
            let (ca, sans) = validation_context("validation_context", v)?;
            let Some(trusted_ca) = ca else {
                return Err(invalid("validation_context.trusted_ca", "missing"));
            };
            if !sans.uri.is_empty() {
                return Err(unsupported(
                    "validation_context.match_typed_subject_alt_names",
                    "URI SAN matchers in a secret (put them in the cluster's context)",
                ));
            }
            let dns_sans = sans.dns;
            Ok(model::Secret::ValidationContext {
                trusted_ca,
                dns_sans,
            })
        }
        Some(_) => Err(unsupported(
            "type",
            "secrets other than tls_certificate and validation_context",
        )),
        None => Err(invalid("type", "empty secret")),
    }
}

#[cfg(test)]
#[path = "tls_tests.rs"]
mod tests;
