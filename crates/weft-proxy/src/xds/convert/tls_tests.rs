//! Conversion of TLS contexts and SDS secrets.

use super::*;
use envoy_types::pb::envoy::config::core::v3::{AggregatedConfigSource, ConfigSource};
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
    common_tls_context::CombinedCertificateValidationContext, SubjectAltNameMatcher, TlsCertificate,
};
use envoy_types::pb::envoy::r#type::matcher::v3::StringMatcher;
use envoy_types::pb::google::protobuf::{Any, BoolValue};
use prost::Message;

fn ads(name: &str) -> SdsSecretConfig {
    SdsSecretConfig {
        name: name.into(),
        sds_config: Some(ConfigSource {
            config_source_specifier: Some(ConfigSourceSpecifier::Ads(
                AggregatedConfigSource::default(),
            )),
            ..Default::default()
        }),
    }
}

fn socket(type_name: &str, msg: &impl Message) -> TransportSocket {
    TransportSocket {
        name: TLS_SOCKET.into(),
        config_type: Some(transport_socket::ConfigType::TypedConfig(Any {
            type_url: format!("type.googleapis.com/{type_name}"),
            value: msg.encode_to_vec(),
        })),
    }
}

fn dns(san: &str) -> SubjectAltNameMatcher {
    SubjectAltNameMatcher {
        san_type: SanType::Dns as i32,
        matcher: Some(StringMatcher {
            match_pattern: Some(MatchPattern::Exact(san.into())),
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[test]
fn upstream_context_with_combined_validation_and_client_certificate() {
    let ctx = UpstreamTlsContext {
        sni: "egress.example.com".into(),
        common_tls_context: Some(CommonTlsContext {
            tls_certificate_sds_secret_configs: vec![ads("file-cert:c.pem~k.pem")],
            validation_context_type: Some(ValidationContextType::CombinedValidationContext(
                CombinedCertificateValidationContext {
                    default_validation_context: Some(CertificateValidationContext {
                        match_typed_subject_alt_names: vec![dns("egress.example.com")],
                        ..Default::default()
                    }),
                    validation_context_sds_secret_config: Some(ads("file-root:ca.pem")),
                    ..Default::default()
                },
            )),
            alpn_protocols: vec!["h2".into()],
            ..Default::default()
        }),
        ..Default::default()
    };
    let t = upstream("transport_socket", &socket(UPSTREAM_TLS_CONTEXT, &ctx)).unwrap();
    assert_eq!(t.sni, "egress.example.com");
    assert_eq!(t.certificate.as_deref(), Some("file-cert:c.pem~k.pem"));
    let v = t.validation.clone().unwrap();
    assert_eq!(v.trusted_ca, Some(CaSource::Sds("file-root:ca.pem".into())));
    assert_eq!(v.dns_sans, ["egress.example.com"]);
    assert_eq!(t.alpn, ["h2"]);
    let names: Vec<&String> = t.secret_names().collect();
    assert_eq!(names, ["file-cert:c.pem~k.pem", "file-root:ca.pem"]);
}

#[test]
fn upstream_context_reads_an_inline_ca_file() {
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, b"PEM").unwrap();
    let ctx = UpstreamTlsContext {
        common_tls_context: Some(CommonTlsContext {
            validation_context_type: Some(ValidationContextType::ValidationContext(
                CertificateValidationContext {
                    trusted_ca: Some(DataSource {
                        specifier: Some(Specifier::Filename(ca.display().to_string())),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
            )),
            ..Default::default()
        }),
        ..Default::default()
    };
    let t = upstream("ts", &socket(UPSTREAM_TLS_CONTEXT, &ctx)).unwrap();
    assert_eq!(
        t.validation.clone().unwrap().trusted_ca,
        Some(CaSource::Pem(b"PEM".to_vec()))
    );
    assert_eq!(t.secret_names().count(), 0);
}

#[test]
fn what_is_not_honoured_is_named() {
    let mut ctx = UpstreamTlsContext {
        auto_host_sni: true,
        ..Default::default()
    };
    let err = upstream("transport_socket", &socket(UPSTREAM_TLS_CONTEXT, &ctx))
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "transport_socket.typed_config: unsupported: auto_host_sni"
    );
    ctx.auto_host_sni = false;
    let mut not_ads = ads("x");
    not_ads.sds_config = None;
    ctx.common_tls_context = Some(CommonTlsContext {
        tls_certificate_sds_secret_configs: vec![not_ads],
        ..Default::default()
    });
    let err = upstream("ts", &socket(UPSTREAM_TLS_CONTEXT, &ctx))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("tls_certificate_sds_secret_configs[0].sds_config: unsupported"),
        "{err}"
    );
    // A downstream context is not an upstream one.
    let err = upstream(
        "ts",
        &socket(DOWNSTREAM_TLS_CONTEXT, &DownstreamTlsContext::default()),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("unsupported: type"), "{err}");
}

#[test]
fn downstream_mutual_needs_a_ca_and_keeps_alpn() {
    let mut ctx = DownstreamTlsContext {
        common_tls_context: Some(CommonTlsContext {
            tls_certificate_sds_secret_configs: vec![ads("kubernetes://cred")],
            alpn_protocols: vec!["h2".into(), "http/1.1".into()],
            ..Default::default()
        }),
        require_client_certificate: Some(BoolValue { value: true }),
        ..Default::default()
    };
    let err = downstream("ts", &socket(DOWNSTREAM_TLS_CONTEXT, &ctx))
        .unwrap_err()
        .to_string();
    assert!(err.contains("trusted CA"), "{err}");
    ctx.common_tls_context
        .as_mut()
        .unwrap()
        .validation_context_type = Some(ValidationContextType::ValidationContextSdsSecretConfig(
        ads("kubernetes://cred-cacert"),
    ));
    let t = downstream("ts", &socket(DOWNSTREAM_TLS_CONTEXT, &ctx)).unwrap();
    assert!(t.require_client_certificate);
    assert_eq!(t.alpn, ["h2", "http/1.1"]);
    let names: Vec<&String> = t.secret_names().collect();
    assert_eq!(names, ["kubernetes://cred", "kubernetes://cred-cacert"]);
}

#[test]
fn secrets_from_inline_bytes_strings_and_files() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("key.pem");
    std::fs::write(&key, b"KEY").unwrap();
    let s = Secret {
        name: "file-cert:c~k".into(),
        r#type: Some(secret::Type::TlsCertificate(TlsCertificate {
            certificate_chain: Some(DataSource {
                specifier: Some(Specifier::InlineString("CHAIN".into())),
                ..Default::default()
            }),
            private_key: Some(DataSource {
                specifier: Some(Specifier::Filename(key.display().to_string())),
                ..Default::default()
            }),
            ..Default::default()
        })),
    };
    assert_eq!(
        secret(&s).unwrap(),
        model::Secret::TlsCertificate {
            certificate_chain: b"CHAIN".to_vec(),
            private_key: b"KEY".to_vec(),
        }
    );
    let ca = Secret {
        name: "file-root:ca".into(),
        r#type: Some(secret::Type::ValidationContext(
            CertificateValidationContext {
                trusted_ca: Some(DataSource {
                    specifier: Some(Specifier::InlineBytes(b"CA".to_vec())),
                    ..Default::default()
                }),
                ..Default::default()
            },
        )),
    };
    assert_eq!(
        secret(&ca).unwrap(),
        model::Secret::ValidationContext {
            trusted_ca: b"CA".to_vec(),
            dns_sans: Vec::new(),
        }
    );
    let missing = Secret {
        name: "x".into(),
        r#type: Some(secret::Type::TlsCertificate(TlsCertificate::default())),
    };
    let err = secret(&missing).unwrap_err().to_string();
    assert_eq!(err, "tls_certificate.certificate_chain: invalid: missing");
}

/// Istio's auto mTLS cluster: ISTIO_MUTUAL for `tlsMode: istio` endpoints (SPIFFE ids as
/// URI SAN matchers), plain text (`raw_buffer`) for the rest.
#[test]
fn auto_mtls_transport_socket_matches() {
    use envoy_types::pb::envoy::config::cluster::v3::cluster::TransportSocketMatch;
    use envoy_types::pb::google::protobuf::{value::Kind, Struct, Value};
    let uri = SubjectAltNameMatcher {
        san_type: SanType::Uri as i32,
        ..dns("spiffe://cluster.local/ns/default/sa/reviews")
    };
    let mutual = UpstreamTlsContext {
        sni: "outbound_.9080_._.reviews.default.svc.cluster.local".into(),
        common_tls_context: Some(CommonTlsContext {
            tls_certificate_sds_secret_configs: vec![ads("default")],
            validation_context_type: Some(ValidationContextType::CombinedValidationContext(
                CombinedCertificateValidationContext {
                    default_validation_context: Some(CertificateValidationContext {
                        match_typed_subject_alt_names: vec![uri],
                        ..Default::default()
                    }),
                    validation_context_sds_secret_config: Some(ads("ROOTCA")),
                    ..Default::default()
                },
            )),
            alpn_protocols: vec!["istio-peer-exchange".into(), "istio".into()],
            ..Default::default()
        }),
        ..Default::default()
    };
    let istio = Struct {
        fields: [(
            "tlsMode".to_string(),
            Value {
                kind: Some(Kind::StringValue("istio".into())),
            },
        )]
        .into_iter()
        .collect(),
    };
    let raw = TransportSocket {
        name: RAW_BUFFER_SOCKET.into(),
        config_type: None,
    };
    let matches = transport_socket_matches(&[
        TransportSocketMatch {
            name: "tlsMode-istio".into(),
            r#match: Some(istio.clone()),
            transport_socket: Some(socket(UPSTREAM_TLS_CONTEXT, &mutual)),
        },
        TransportSocketMatch {
            name: "tlsMode-disabled".into(),
            r#match: Some(Struct::default()),
            transport_socket: Some(raw),
        },
    ])
    .unwrap();
    assert_eq!(matches.len(), 2);
    assert_eq!(matches[0].criteria["tlsMode"], "istio");
    let tls = matches[0].tls.as_ref().unwrap();
    let v = tls.validation.as_ref().unwrap();
    assert_eq!(v.uri_sans, ["spiffe://cluster.local/ns/default/sa/reviews"]);
    assert!(v.dns_sans.is_empty());
    assert_eq!(tls.certificate.as_deref(), Some("default"));
    assert!(matches[1].criteria.is_empty() && matches[1].tls.is_none());
    // The endpoint side: its metadata as the matches read it.
    let metadata = envoy_types::pb::envoy::config::core::v3::Metadata {
        filter_metadata: [(TRANSPORT_SOCKET_MATCH.to_string(), istio)]
            .into_iter()
            .collect(),
        ..Default::default()
    };
    assert_eq!(socket_match_metadata(Some(&metadata))["tlsMode"], "istio");
}
