//! Which secrets weftd serves for which SDS names, and from where.

use super::*;
use crate::translate::generate;

const CERT: &str = "-----BEGIN CERTIFICATE-----\nserver\n-----END CERTIFICATE-----\n";
const KEY: &str = "-----BEGIN PRIVATE KEY-----\nkey\n-----END PRIVATE KEY-----\n";
const CA: &str = "-----BEGIN CERTIFICATE-----\nca\n-----END CERTIFICATE-----\n";
const OTHER_CA: &str = "-----BEGIN CERTIFICATE-----\nother ca\n-----END CERTIFICATE-----\n";

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

fn router() -> Proxy {
    Proxy {
        kind: ProxyKind::Router,
        namespace: "gateways".into(),
        labels: [("istio".to_string(), "ingressgateway".to_string())].into(),
        ..Default::default()
    }
}

fn gateway(ns: &str, tls: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {{name: gw, namespace: {ns}}}\nspec:\n  selector: {{istio: ingressgateway}}\n  servers:\n  - port: {{number: 443, name: https, protocol: HTTPS}}\n    hosts: [bookinfo.example.com]\n    tls: {tls}\n---\n"
    )
}

fn pem(ds: &Option<DataSource>) -> String {
    match ds.as_ref().and_then(|d| d.specifier.as_ref()) {
        Some(data_source::Specifier::InlineBytes(b)) => String::from_utf8(b.clone()).unwrap(),
        other => panic!("not inline bytes: {other:?}"),
    }
}

fn cert_and_key(s: &Secret) -> (String, String) {
    match &s.r#type {
        Some(secret::Type::TlsCertificate(c)) => (pem(&c.certificate_chain), pem(&c.private_key)),
        other => panic!("{}: not a certificate: {other:?}", s.name),
    }
}

fn ca(s: &Secret) -> String {
    match &s.r#type {
        Some(secret::Type::ValidationContext(v)) => pem(&v.trusted_ca),
        other => panic!("{}: not a validation context: {other:?}", s.name),
    }
}

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

#[test]
fn gateway_credentials_come_from_the_gateway_namespace_with_istio_ca_fallback() {
    let s = snapshot(&format!(
        "{}{}{}",
        gateway("istio-system", "{mode: MUTUAL, credentialName: cred}"),
        secret(
            "istio-system",
            "cred",
            &[("tls.crt", CERT), ("tls.key", KEY), ("ca.crt", CA)]
        ),
        // Same name in the proxy's own namespace: not the one the Gateway means.
        secret(
            "gateways",
            "cred",
            &[("tls.crt", "other"), ("tls.key", "other")]
        ),
    ));
    let got = secrets(
        &s,
        &router(),
        &names(&[
            "kubernetes://cred",
            "kubernetes://cred-cacert",
            "kubernetes://absent",
        ]),
    );
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(got[0].name, "kubernetes://cred");
    assert_eq!(cert_and_key(&got[0]), (CERT.to_string(), KEY.to_string()));
    // No cred-cacert Secret: the CA inside cred itself.
    assert_eq!(got[1].name, "kubernetes://cred-cacert");
    assert_eq!(ca(&got[1]), CA);

    let with_cacert = snapshot(&format!(
        "{}{}{}",
        gateway("istio-system", "{mode: MUTUAL, credentialName: cred}"),
        secret(
            "istio-system",
            "cred",
            &[("tls.crt", CERT), ("tls.key", KEY), ("ca.crt", CA)]
        ),
        secret("istio-system", "cred-cacert", &[("cacert", OTHER_CA)]),
    ));
    let got = secrets(
        &with_cacert,
        &router(),
        &names(&["kubernetes://cred-cacert"]),
    );
    assert_eq!(ca(&got[0]), OTHER_CA);
}

#[test]
fn destination_rule_credentials_come_from_the_proxy_namespace() {
    let s = snapshot(&format!(
        "{}{}",
        secret(
            "shop",
            "client",
            &[("cert", CERT), ("key", KEY), ("cacert", CA)]
        ),
        secret("default", "client", &[("cert", "x"), ("key", "y")]),
    ));
    let sidecar = Proxy {
        namespace: "shop".into(),
        ..Default::default()
    };
    let got = secrets(
        &s,
        &sidecar,
        &names(&["kubernetes://client", "kubernetes://client-cacert"]),
    );
    assert_eq!(cert_and_key(&got[0]), (CERT.to_string(), KEY.to_string()));
    assert_eq!(ca(&got[1]), CA);
}

#[test]
fn file_secrets_are_served_only_when_weftd_can_read_them() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key, root) = (
        dir.path().join("cert.pem"),
        dir.path().join("key.pem"),
        dir.path().join("root.pem"),
    );
    std::fs::write(&cert, CERT).unwrap();
    std::fs::write(&key, KEY).unwrap();
    std::fs::write(&root, CA).unwrap();
    let readable_cert = format!("file-cert:{}~{}", cert.display(), key.display());
    let readable_root = format!("file-root:{}", root.display());
    let got = secrets(
        &snapshot(""),
        &router(),
        &[
            readable_cert.clone(),
            "file-cert:/etc/certs/cert-chain.pem~/etc/certs/key.pem".into(),
            readable_root.clone(),
            format!("file-root:{}", dir.path().join("missing.pem").display()),
        ],
    );
    let served: Vec<&str> = got.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(served, [readable_cert.as_str(), readable_root.as_str()]);
    assert_eq!(cert_and_key(&got[0]), (CERT.to_string(), KEY.to_string()));
    assert_eq!(ca(&got[1]), CA);
}

#[test]
fn generate_serves_the_secrets_its_listeners_reference() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
    std::fs::write(&cert, CERT).unwrap();
    std::fs::write(&key, KEY).unwrap();
    let docs = format!(
        "{}{}",
        gateway(
            "gateways",
            &format!(
                "{{mode: SIMPLE, serverCertificate: {}, privateKey: {}}}",
                cert.display(),
                key.display()
            )
        ),
        gateway("istio-system", "{mode: SIMPLE, credentialName: cred}")
            .replace("name: gw,", "name: gw2,")
            .replace("443", "8443"),
    ) + &secret(
        "istio-system",
        "cred",
        &[("tls.crt", CERT), ("tls.key", KEY)],
    );
    let generated = generate(&snapshot(&docs), &router());
    let served: Vec<&str> = generated.secrets.iter().map(|s| s.name.as_str()).collect();
    let file_name = format!("file-cert:{}~{}", cert.display(), key.display());
    assert_eq!(served, [file_name.as_str(), "kubernetes://cred"]);
    assert_eq!(
        referenced_secrets(&generated.listeners, &generated.clusters),
        [file_name, "kubernetes://cred".to_string()]
    );
}
