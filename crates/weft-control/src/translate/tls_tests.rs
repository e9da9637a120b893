//! TLS contexts name their certificates by Istio's SDS names; `credentialName`s that
//! cannot be served are refused.

use super::*;
use prost::Message;

const CERT: &str = "-----BEGIN CERTIFICATE-----\nserver\n-----END CERTIFICATE-----\n";
const KEY: &str = "-----BEGIN PRIVATE KEY-----\nkey\n-----END PRIVATE KEY-----\n";
const CA: &str = "-----BEGIN CERTIFICATE-----\nca\n-----END CERTIFICATE-----\n";
const OTHER_CA: &str = "-----BEGIN CERTIFICATE-----\nother ca\n-----END CERTIFICATE-----\n";

/// A Secret document with `stringData` (plain PEM), as `kubectl create secret` would store.
fn secret(ns: &str, name: &str, entries: &[(&str, &str)]) -> String {
    let mut doc = format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: {name}, namespace: {ns}}}\nstringData:\n"
    );
    for (k, v) in entries {
        doc.push_str(&format!("  {k}: {v:?}\n"));
    }
    doc.push_str("---\n");
    doc
}

fn snapshot(docs: &str) -> MeshSnapshot {
    let resources = weft_config::parse_documents(docs)
        .into_iter()
        .map(|r| r.expect("valid test resource"))
        .collect();
    MeshSnapshot::build(1, resources)
}

fn settings(yaml: &str) -> ServerTlsSettings {
    serde_yaml::from_str(yaml).unwrap()
}

fn context(socket: TransportSocket) -> DownstreamTlsContext {
    match socket.config_type {
        Some(transport_socket::ConfigType::TypedConfig(any)) => {
            DownstreamTlsContext::decode(any.value.as_slice()).unwrap()
        }
        _ => panic!("no typed config"),
    }
}

fn cert_names(ctx: &DownstreamTlsContext) -> Vec<String> {
    let common = ctx.common_tls_context.as_ref().unwrap();
    for c in &common.tls_certificate_sds_secret_configs {
        assert_eq!(c.sds_config, Some(super::super::proto::ads()), "over ADS");
    }
    common
        .tls_certificate_sds_secret_configs
        .iter()
        .map(|c| c.name.clone())
        .collect()
}

fn ca_name(ctx: &DownstreamTlsContext) -> String {
    match &ctx
        .common_tls_context
        .as_ref()
        .unwrap()
        .validation_context_type
    {
        Some(ValidationContextType::ValidationContextSdsSecretConfig(c)) => c.name.clone(),
        other => panic!("no SDS validation context: {other:?}"),
    }
}

#[test]
fn simple_credential_references_the_secret_over_sds() {
    let s = snapshot(&secret(
        "istio-system",
        "bookinfo-cred",
        &[("tls.crt", CERT), ("tls.key", KEY)],
    ));
    let secrets = Secrets::new(&s, "istio-system");
    let tls = settings("{mode: SIMPLE, credentialName: bookinfo-cred}");
    let ctx = context(downstream(&tls, &["h2"], &secrets).unwrap().unwrap());
    assert_eq!(cert_names(&ctx), ["kubernetes://bookinfo-cred"]);
    let common = ctx.common_tls_context.as_ref().unwrap();
    assert!(common.tls_certificates.is_empty(), "no inline key in LDS");
    assert!(common.validation_context_type.is_none());
    assert!(ctx.require_client_certificate.is_none());
}

#[test]
fn mutual_names_the_cacert_secret_when_a_ca_can_be_found() {
    let pair = [("tls.crt", CERT), ("tls.key", KEY), ("ca.crt", CA)];
    let tls = settings("{mode: MUTUAL, credentialName: cred}");

    let own_ca = snapshot(&secret("istio-system", "cred", &pair));
    let ctx = context(
        downstream(&tls, &[], &Secrets::new(&own_ca, "istio-system"))
            .unwrap()
            .unwrap(),
    );
    assert_eq!(ca_name(&ctx), "kubernetes://cred-cacert");
    assert_eq!(
        ctx.require_client_certificate,
        Some(BoolValue { value: true })
    );

    let both = snapshot(&format!(
        "{}{}",
        secret("istio-system", "cred", &pair),
        secret("istio-system", "cred-cacert", &[("cacert", OTHER_CA)])
    ));
    let ctx = context(
        downstream(&tls, &[], &Secrets::new(&both, "istio-system"))
            .unwrap()
            .unwrap(),
    );
    assert_eq!(ca_name(&ctx), "kubernetes://cred-cacert");
}

#[test]
fn file_paths_become_istio_file_sds_names() {
    let s = snapshot("");
    let tls = settings(
        "{mode: MUTUAL, serverCertificate: /etc/certs/cert.pem, privateKey: /etc/certs/key.pem, caCertificates: certs/root.pem, subjectAltNames: [client.example.com]}",
    );
    let ctx = context(
        downstream(&tls, &[], &Secrets::new(&s, "default"))
            .unwrap()
            .unwrap(),
    );
    assert_eq!(
        cert_names(&ctx),
        ["file-cert:/etc/certs/cert.pem~/etc/certs/key.pem"]
    );
    match ctx.common_tls_context.unwrap().validation_context_type {
        Some(ValidationContextType::CombinedValidationContext(c)) => {
            assert_eq!(
                c.validation_context_sds_secret_config.unwrap().name,
                "file-root:certs/root.pem"
            );
            let sans = c
                .default_validation_context
                .unwrap()
                .match_typed_subject_alt_names;
            assert_eq!(sans.len(), 1);
        }
        other => panic!("SANs and an SDS CA combine: {other:?}"),
    }
}

#[test]
fn destination_rule_origination_references_files_and_credentials() {
    let upstream_ctx = |yaml: &str| {
        let settings: ClientTlsSettings = serde_yaml::from_str(yaml).unwrap();
        match upstream(&settings, "api.example.com").unwrap().config_type {
            Some(transport_socket::ConfigType::TypedConfig(any)) => {
                UpstreamTlsContext::decode(any.value.as_slice()).unwrap()
            }
            _ => panic!("no typed config"),
        }
    };
    let names = |ctx: &UpstreamTlsContext| {
        let common = ctx.common_tls_context.as_ref().unwrap();
        let certs: Vec<String> = common
            .tls_certificate_sds_secret_configs
            .iter()
            .map(|c| c.name.clone())
            .collect();
        let ca = match &common.validation_context_type {
            Some(ValidationContextType::ValidationContextSdsSecretConfig(c)) => c.name.clone(),
            other => format!("{other:?}"),
        };
        (certs, ca)
    };
    let files = upstream_ctx(
        "{mode: MUTUAL, clientCertificate: /c.pem, privateKey: /k.pem, caCertificates: /ca.pem}",
    );
    assert_eq!(
        names(&files),
        (
            vec!["file-cert:/c.pem~/k.pem".to_string()],
            "file-root:/ca.pem".to_string()
        )
    );
    let cred = upstream_ctx("{mode: MUTUAL, credentialName: client-cred}");
    assert_eq!(
        names(&cred),
        (
            vec!["kubernetes://client-cred".to_string()],
            "kubernetes://client-cred-cacert".to_string()
        )
    );
    let simple = upstream_ctx("{mode: SIMPLE, credentialName: client-cred}");
    assert_eq!(
        names(&simple),
        (vec![], "kubernetes://client-cred-cacert".to_string())
    );
    assert_eq!(simple.sni, "api.example.com");
}

#[test]
fn unusable_credentials_are_errors_naming_the_secret() {
    let tls = settings("{mode: SIMPLE, credentialName: cred}");
    // In another namespace: not visible to this Gateway.
    let s = snapshot(&secret(
        "default",
        "cred",
        &[("tls.crt", CERT), ("tls.key", KEY)],
    ));
    let err = downstream(&tls, &[], &Secrets::new(&s, "istio-system")).unwrap_err();
    assert_eq!(err.to_string(), "secret istio-system/cred not found");

    // MUTUAL without any CA: clients could not be verified.
    let mutual = settings("{mode: MUTUAL, credentialName: cred}");
    let err = downstream(&mutual, &[], &Secrets::new(&s, "default")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "secret default/cred: found secret, but didn't have expected keys cacert or ca.crt; found: tls.crt, tls.key"
    );

    let s = snapshot(&secret("default", "cred", &[("ca.crt", CA)]));
    let err = downstream(&tls, &[], &Secrets::new(&s, "default")).unwrap_err();
    assert!(
        err.to_string()
            .contains("didn't have expected keys (cert and key)"),
        "{err}"
    );
}

#[test]
fn ca_cert_credential_name_supplies_only_the_ca() {
    let s = snapshot(&format!(
        "{}{}",
        secret("gw", "cred", &[("cert", CERT), ("key", KEY)]),
        secret("gw", "client-ca", &[("ca.crt", CA)])
    ));
    let tls =
        settings("{mode: OPTIONAL_MUTUAL, credentialName: cred, caCertCredentialName: client-ca}");
    let ctx = context(
        downstream(&tls, &[], &Secrets::new(&s, "gw"))
            .unwrap()
            .unwrap(),
    );
    assert_eq!(ca_name(&ctx), "kubernetes://client-ca-cacert");
    assert_eq!(
        ctx.require_client_certificate,
        Some(BoolValue { value: false })
    );
    assert_eq!(cert_names(&ctx), ["kubernetes://cred"]);
}
