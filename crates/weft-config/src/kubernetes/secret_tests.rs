//! Secrets as Kubernetes accepts (or refuses) them, and as Istio reads credentials.

use super::*;
use crate::{parse_and_validate, parse_documents, Kind, Spec};

const CERT: &str = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
const KEY: &str = "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n";

fn b64(s: &str) -> String {
    STANDARD.encode(s)
}

/// A Secret document named `name` in `istio-system` with the given top-level YAML.
fn doc(name: &str, body: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: {name}, namespace: istio-system}}\n{body}"
    )
}

fn accepted(text: &str) -> (crate::Resource, Vec<String>) {
    let (res, warnings) = parse_and_validate(text).remove(0).expect("valid secret");
    (res, warnings.iter().map(ToString::to_string).collect())
}

fn refused(text: &str) -> String {
    parse_and_validate(text).remove(0).unwrap_err().to_string()
}

fn secret(res: &crate::Resource) -> &Secret {
    match &res.spec {
        Spec::Secret(s) => s,
        other => panic!("not a secret: {other:?}"),
    }
}

#[test]
fn tls_secret_reads_back_with_fields_at_top_level() {
    let text = doc(
        "bookinfo-credential",
        &format!(
            "type: kubernetes.io/tls\ndata:\n  tls.crt: {}\n  tls.key: {}\n",
            b64(CERT),
            b64(KEY)
        ),
    );
    let (res, warnings) = accepted(&text);
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(res.kind(), Kind::Secret);
    let json = res.to_json();
    assert_eq!(json["apiVersion"], "v1");
    assert_eq!(json["type"], "kubernetes.io/tls");
    assert_eq!(json["data"]["tls.crt"], b64(CERT));
    assert!(json.get("spec").is_none(), "{json}");
    let kc = secret(&res).key_and_cert().unwrap();
    assert_eq!(kc.certificate_chain, CERT.as_bytes());
    assert_eq!(kc.private_key, KEY.as_bytes());
    // Written back and read again, it is the same secret.
    let again = crate::parse_value(0, json).unwrap();
    assert_eq!(secret(&again), secret(&res));
}

#[test]
fn tls_secret_needs_cert_and_key() {
    let err = refused(&doc(
        "c",
        &format!("type: kubernetes.io/tls\ndata:\n  ca.crt: {}\n", b64(CERT)),
    ));
    assert_eq!(
        err,
        "Secret istio-system/c (document 0): data[tls.crt]: Required value; data[tls.key]: Required value"
    );
}

#[test]
fn values_must_be_base64_and_keys_config_keys() {
    let err = refused(&doc(
        "c",
        "type: Opaque\ndata:\n  tls.crt: 'not base64!'\n  'bad/key': YQ==\n",
    ));
    assert!(
        err.contains("data[tls.crt]: Invalid value: illegal base64 data at input byte 3"),
        "{err}"
    );
    assert!(
        err.contains("data[bad/key]: Invalid value: \"bad/key\": a valid config key"),
        "{err}"
    );
}

#[test]
fn string_data_is_folded_into_data_and_type_defaults_to_opaque() {
    let (res, _) = accepted(&doc(
        "generic",
        "data:\n  cert: b2xk\nstringData:\n  cert: new\n  key: k\n",
    ));
    let json = res.to_json();
    assert_eq!(json["type"], "Opaque");
    assert!(json.get("stringData").is_none(), "{json}");
    assert_eq!(json["data"]["cert"], b64("new"));
    assert_eq!(json["data"]["key"], b64("k"));
    // Istio's generic keys work as a credential too.
    let kc = secret(&res).key_and_cert().unwrap();
    assert_eq!(kc.certificate_chain, b"new");
}

#[test]
fn cacert_secret_without_ca_is_a_warning() {
    let (_, warnings) = accepted(&doc("gw-cacert", "data:\n  other: YQ==\n"));
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].contains("credential \"gw\""), "{warnings:?}");
    let (res, warnings) = accepted(&doc(
        "gw-cacert",
        &format!("data:\n  ca.crt: {}\n", b64(CERT)),
    ));
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(secret(&res).ca_certificate().unwrap(), CERT.as_bytes());
}

#[test]
fn unknown_fields_and_wrong_types_are_named_at_top_level() {
    let out = parse_documents(&doc("c", "data: {a: 1}\nspec: {}\n"));
    let err = out[0].as_ref().unwrap_err().to_string();
    assert!(err.contains("spec: unknown field"), "{err}");
    let out = parse_documents(&doc("c", "data: {a: 1}\n"));
    let err = out[0].as_ref().unwrap_err().to_string();
    assert_eq!(
        err,
        "Secret istio-system/c (document 0): data.a: expected string, got integer 1"
    );
}

#[test]
fn credential_errors_say_what_was_found() {
    let s = Secret {
        data: [("ca.crt".to_string(), b64(CERT))].into(),
        ..Default::default()
    };
    assert_eq!(
        s.key_and_cert().unwrap_err().to_string(),
        "found secret, but didn't have expected keys (cert and key) or (tls.crt and tls.key); found: ca.crt"
    );
    let s = Secret {
        data: [
            ("tls.crt".to_string(), String::new()),
            ("tls.key".to_string(), String::new()),
        ]
        .into(),
        ..Default::default()
    };
    assert_eq!(
        s.key_and_cert().unwrap_err().to_string(),
        "found keys \"tls.crt\" and \"tls.key\", but they were empty"
    );
    assert!(s.ca_certificate().is_err());
}
