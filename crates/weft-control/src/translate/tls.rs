//! TLS transport sockets: upstream (DestinationRule `tls`) and downstream (Gateway server
//! `tls`), from certificate files on the proxy's disk.

use super::proto::any;
use envoy_types::pb::envoy::config::core::v3::{
    data_source, transport_socket, DataSource, TransportSocket,
};
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
    common_tls_context::ValidationContextType, subject_alt_name_matcher::SanType,
    CertificateValidationContext, CommonTlsContext, DownstreamTlsContext, SubjectAltNameMatcher,
    TlsCertificate, UpstreamTlsContext,
};
use envoy_types::pb::envoy::r#type::matcher::v3::{string_matcher::MatchPattern, StringMatcher};
use envoy_types::pb::google::protobuf::BoolValue;
use weft_config::networking::destination_rule::{ClientTlsMode, ClientTlsSettings};
use weft_config::networking::gateway::{ServerTlsMode, ServerTlsSettings};

const TLS_SOCKET: &str = "envoy.transport_sockets.tls";
/// The OS trust store, for upstream TLS without `caCertificates`.
pub const SYSTEM_CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

fn file(path: &str) -> DataSource {
    DataSource {
        specifier: Some(data_source::Specifier::Filename(path.to_string())),
        ..Default::default()
    }
}

fn certificate(chain: Option<&String>, key: Option<&String>) -> Vec<TlsCertificate> {
    match (chain, key) {
        (Some(chain), Some(key)) => vec![TlsCertificate {
            certificate_chain: Some(file(chain)),
            private_key: Some(file(key)),
            ..Default::default()
        }],
        _ => Vec::new(),
    }
}

/// SANs that look like URIs (SPIFFE ids) are matched as URI SANs, the rest as DNS names.
/// Without a CA file, an upstream is verified against the OS roots (Istio's
/// VERIFY_CERTIFICATE_AT_CLIENT default) at the bundle path of Debian-family systems, which
/// Istio's proxy image uses too (Envoy refuses SAN checks without a trusted CA file); a
/// downstream without one is not verified.
fn validation(
    ca: Option<&String>,
    sans: &[String],
    system_roots: bool,
) -> Option<ValidationContextType> {
    if ca.is_none() && !system_roots {
        return None;
    }
    let matchers = sans
        .iter()
        .map(|san| SubjectAltNameMatcher {
            san_type: if san.contains("://") {
                SanType::Uri
            } else {
                SanType::Dns
            } as i32,
            matcher: Some(StringMatcher {
                match_pattern: Some(MatchPattern::Exact(san.clone())),
                ..Default::default()
            }),
            ..Default::default()
        })
        .collect();
    Some(ValidationContextType::ValidationContext(
        CertificateValidationContext {
            trusted_ca: Some(file(ca.map_or(SYSTEM_CA_BUNDLE, String::as_str))),
            match_typed_subject_alt_names: matchers,
            ..Default::default()
        },
    ))
}

fn socket(config: envoy_types::pb::google::protobuf::Any) -> TransportSocket {
    TransportSocket {
        name: TLS_SOCKET.to_string(),
        config_type: Some(transport_socket::ConfigType::TypedConfig(config)),
    }
}

/// Origination for SIMPLE and MUTUAL. DISABLE is plaintext; ISTIO_MUTUAL needs the mesh's
/// certificates over SDS, which the security work supplies, so it stays plaintext here.
/// `sni` defaults to the service host, as Istio does for external services.
pub fn upstream(settings: &ClientTlsSettings, default_sni: &str) -> Option<TransportSocket> {
    let mutual = match settings.mode {
        ClientTlsMode::Simple => false,
        ClientTlsMode::Mutual => true,
        _ => return None,
    };
    let certs = if mutual {
        certificate(
            settings.client_certificate.as_ref(),
            settings.private_key.as_ref(),
        )
    } else {
        Vec::new()
    };
    let verify = !settings.insecure_skip_verify.unwrap_or(false);
    let context = UpstreamTlsContext {
        common_tls_context: Some(CommonTlsContext {
            tls_certificates: certs,
            validation_context_type: verify
                .then(|| {
                    validation(
                        settings.ca_certificates.as_ref(),
                        &settings.subject_alt_names,
                        true,
                    )
                })
                .flatten(),
            ..Default::default()
        }),
        sni: settings
            .sni
            .clone()
            .unwrap_or_else(|| default_sni.trim_start_matches("*.").to_string()),
        ..Default::default()
    };
    Some(socket(any(
        "envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
        &context,
    )))
}

/// Termination for SIMPLE, MUTUAL and OPTIONAL_MUTUAL gateway servers; `None` for modes that
/// do not terminate here (PASSTHROUGH, AUTO_PASSTHROUGH) or need the mesh CA (ISTIO_MUTUAL).
pub fn downstream(settings: &ServerTlsSettings, alpn: &[&str]) -> Option<TransportSocket> {
    let require_client = match settings.mode {
        ServerTlsMode::Simple => None,
        ServerTlsMode::Mutual => Some(true),
        ServerTlsMode::OptionalMutual => Some(false),
        _ => return None,
    };
    let mut certs = certificate(
        settings.server_certificate.as_ref(),
        settings.private_key.as_ref(),
    );
    for c in &settings.tls_certificates {
        certs.extend(certificate(
            c.server_certificate.as_ref(),
            c.private_key.as_ref(),
        ));
    }
    let validation_context_type = require_client.and_then(|_| {
        validation(
            settings.ca_certificates.as_ref(),
            &settings.subject_alt_names,
            false,
        )
    });
    let context = DownstreamTlsContext {
        common_tls_context: Some(CommonTlsContext {
            tls_certificates: certs,
            validation_context_type,
            alpn_protocols: alpn.iter().map(|p| p.to_string()).collect(),
            ..Default::default()
        }),
        require_client_certificate: require_client.map(|value| BoolValue { value }),
        ..Default::default()
    };
    Some(socket(any(
        "envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
        &context,
    )))
}
