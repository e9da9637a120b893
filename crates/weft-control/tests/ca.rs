//! weftd's CA as a user meets it: a real weftd, tokens created with `weft token create`
//! and over HTTP, certificates requested over gRPC with Istio's CreateCertificate, refusals
//! with their gRPC codes, log lines and citadel metrics.

use rcgen::{CertificateParams, KeyPair, SanType};
use std::process::{Command, Stdio};
use weft_ca_api::{client::create_certificate, IstioCertificateRequest, IstioCertificateResponse};
use weft_testkit::Weftd;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

fn csr(uri: Option<&str>) -> String {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::default();
    if let Some(uri) = uri {
        params.subject_alt_names = vec![SanType::URI(uri.try_into().unwrap())];
    }
    params.serialize_request(&key).unwrap().pem().unwrap()
}

fn der_blocks(pem: &str) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for block in pem.split_inclusive("-----END CERTIFICATE-----") {
        if block.contains("-----BEGIN CERTIFICATE-----") {
            let (_, p) = x509_parser::pem::parse_x509_pem(block.trim_start().as_bytes()).unwrap();
            out.push(p.contents);
        }
    }
    out
}

fn leaf_uris(chain: &[String]) -> Vec<String> {
    let der = der_blocks(&chain[0]).remove(0);
    let cert = X509Certificate::from_der(&der).unwrap().1;
    let san = cert.subject_alternative_name().unwrap().unwrap();
    san.value
        .general_names
        .iter()
        .map(|n| match n {
            GeneralName::URI(u) => u.to_string(),
            other => format!("{other:?}"),
        })
        .collect()
}

/// Whether the presented chain (leaf and intermediates) reaches a root of `bundle`.
fn verifies(chain: &[String], bundle: &str) -> bool {
    let presented: Vec<Vec<u8>> = chain[..chain.len() - 1]
        .iter()
        .flat_map(|p| der_blocks(p))
        .collect();
    let certs: Vec<X509Certificate<'_>> = presented
        .iter()
        .map(|d| X509Certificate::from_der(d).unwrap().1)
        .collect();
    let linked = certs
        .windows(2)
        .all(|p| p[0].verify_signature(Some(p[1].public_key())).is_ok());
    let roots = der_blocks(bundle);
    let top = certs.last().unwrap();
    linked
        && roots.iter().any(|r| {
            let root = X509Certificate::from_der(r).unwrap().1;
            top.verify_signature(Some(root.public_key())).is_ok()
        })
}

async fn call(
    weftd_xds: std::net::SocketAddr,
    token: &str,
    csr: String,
) -> Result<IstioCertificateResponse, tonic::Status> {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{weftd_xds}"))
        .unwrap()
        .connect()
        .await
        .expect("connect to weftd's gRPC port");
    create_certificate(
        channel,
        token,
        IstioCertificateRequest {
            csr,
            validity_duration: 0,
            metadata: None,
        },
    )
    .await
}

fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or_else(|| panic!("{name} not in /metrics:\n{text}"))
}

fn http() -> reqwest::Client {
    reqwest::Client::new()
}

fn admin_token(weftd: &Weftd) -> String {
    std::fs::read_to_string(weftd.data_dir().join("token"))
        .unwrap()
        .trim()
        .to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn certificates_only_for_the_tokens_identity() {
    let weftd = Weftd::start();
    // The CLI prints only the token on stdout.
    let out = weftd.weft(&[
        "token",
        "create",
        "-n",
        "bookinfo",
        "--service-account",
        "reviews",
    ]);
    let token = out.ok().trim().to_string();
    assert!(token.starts_with("weft-bt-"), "{out:?}");
    assert!(
        out.stderr
            .contains("spiffe://cluster.local/ns/bookinfo/sa/reviews"),
        "{out:?}"
    );
    // Stored hashed: the token's text is nowhere in the data dir.
    let stored = std::fs::read_to_string(weftd.data_dir().join("ca/tokens.json")).unwrap();
    assert!(!stored.contains(&token), "{stored}");

    // Over HTTP: the admin token is required.
    let url = format!("{}/api/weft/v1/tokens", weftd.url());
    let body =
        serde_json::json!({"namespace": "bookinfo", "serviceAccount": "ratings", "ttl": "1h"});
    let anonymous = http().post(&url).json(&body).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    let created = http()
        .post(&url)
        .bearer_auth(admin_token(&weftd))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let created: serde_json::Value = created.json().await.unwrap();
    assert_eq!(
        created["identity"],
        "spiffe://cluster.local/ns/bookinfo/sa/ratings"
    );
    assert!(created["expires"].as_str().is_some(), "{created}");
    let bad = http()
        .post(&url)
        .bearer_auth(admin_token(&weftd))
        .json(&serde_json::json!({"namespace": "Bad_Name", "serviceAccount": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    assert!(bad
        .text()
        .await
        .unwrap()
        .contains("namespace: \\\"Bad_Name\\\""));

    // The identity the token binds is signed, and only that one.
    let reviews = "spiffe://cluster.local/ns/bookinfo/sa/reviews";
    let signed = call(weftd.xds_addr(), &token, csr(Some(reviews)))
        .await
        .expect("signed");
    assert_eq!(signed.cert_chain.len(), 2, "leaf then root");
    assert_eq!(leaf_uris(&signed.cert_chain), vec![reviews]);
    let root = std::fs::read_to_string(weftd.data_dir().join("ca/root-cert.pem")).unwrap();
    assert_eq!(signed.cert_chain[1], root);
    assert!(verifies(&signed.cert_chain, &root));

    let wrong = call(weftd.xds_addr(), "weft-bt-0000", csr(Some(reviews)))
        .await
        .unwrap_err();
    assert_eq!(wrong.code(), tonic::Code::Unauthenticated, "{wrong:?}");
    let other = call(
        weftd.xds_addr(),
        &token,
        csr(Some("spiffe://cluster.local/ns/bookinfo/sa/ratings")),
    )
    .await
    .unwrap_err();
    assert_eq!(other.code(), tonic::Code::PermissionDenied, "{other:?}");
    assert!(other.message().contains("sa/ratings"), "{other:?}");
    let malformed = call(weftd.xds_addr(), &token, "not a csr".into())
        .await
        .unwrap_err();
    assert_eq!(
        malformed.code(),
        tonic::Code::InvalidArgument,
        "{malformed:?}"
    );
    assert!(malformed.message().starts_with("csr: "), "{malformed:?}");

    let metrics = http()
        .get(format!("{}/metrics", weftd.url()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(metric(&metrics, "citadel_server_csr_count"), 4);
    assert_eq!(
        metric(&metrics, "citadel_server_success_cert_issuance_count"),
        1
    );
    assert_eq!(
        metric(&metrics, "citadel_server_authentication_failure_count"),
        1
    );
    assert_eq!(
        metric(&metrics, "citadel_server_id_extraction_err_count"),
        1
    );
    assert_eq!(metric(&metrics, "citadel_server_csr_parsing_err_count"), 1);
    // Still one exposition, the xDS metrics included.
    assert!(metrics.contains("pilot_xds"), "{metrics}");
    assert_eq!(metrics.matches("# EOF").count(), 1, "{metrics}");

    let log = weftd.log();
    for line in [
        "CreateCertificate refused: not authenticated",
        "CreateCertificate refused: identity mismatch",
        "CreateCertificate refused: malformed CSR",
        "signed a workload certificate",
    ] {
        assert!(log.contains(line), "{line:?} not logged\n{log}");
    }
}

/// A plug-in CA in the middle of a root rotation: its root-cert.pem holds the old and the
/// new root, the intermediate under the new root signs, and leaves verify against the
/// bundle weftd serves.
#[tokio::test(flavor = "multi_thread")]
async fn plug_in_ca_with_two_roots_during_rotation() {
    use rcgen::{BasicConstraints, DistinguishedName, DnType, IsCa, Issuer, KeyUsagePurpose};
    let ca = |name: &str| {
        let mut p = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, name);
        p.distinguished_name = dn;
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        (p, KeyPair::generate().unwrap())
    };
    let (old_p, old_k) = ca("old root");
    let old_root = old_p.self_signed(&old_k).unwrap().pem();
    let (new_p, new_k) = ca("new root");
    let new_root = new_p.self_signed(&new_k).unwrap().pem();
    let (int_p, int_k) = ca("new intermediate");
    let inter = int_p
        .signed_by(&int_k, &Issuer::from_params(&new_p, &new_k))
        .unwrap()
        .pem();

    let dir = tempfile::tempdir().unwrap();
    let cacerts = dir.path().join("cacerts");
    std::fs::create_dir_all(&cacerts).unwrap();
    std::fs::write(cacerts.join("ca-cert.pem"), &inter).unwrap();
    std::fs::write(cacerts.join("ca-key.pem"), int_k.serialize_pem()).unwrap();
    std::fs::write(cacerts.join("cert-chain.pem"), format!("{inter}{new_root}")).unwrap();
    let bundle = format!("{old_root}{new_root}");
    std::fs::write(cacerts.join("root-cert.pem"), &bundle).unwrap();

    let api = weft_testkit::free_port();
    let xds: std::net::SocketAddr = ([127, 0, 0, 1], weft_testkit::free_port()).into();
    let log_path = dir.path().join("weftd.log");
    let mut child = Command::new(weft_testkit::binary("weftd"))
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .args(["--api-addr", &format!("127.0.0.1:{api}")])
        .args(["--xds-addr", &xds.to_string()])
        .arg("--cacerts")
        .arg(&cacerts)
        .args(["--workload-cert-ttl", "1h"])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .unwrap();
    let server = format!("http://127.0.0.1:{api}");
    let mut ready = false;
    for _ in 0..200 {
        if http().get(&server).send().await.is_ok() {
            ready = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(ready, "{}", std::fs::read_to_string(&log_path).unwrap());
    let admin = std::fs::read_to_string(dir.path().join("data/token")).unwrap();
    let created: serde_json::Value = http()
        .post(format!("{server}/api/weft/v1/tokens"))
        .bearer_auth(admin.trim())
        .json(&serde_json::json!({"namespace": "default", "serviceAccount": "sleep"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = created["token"].as_str().unwrap();
    let signed = call(xds, token, csr(None)).await;
    let _ = child.kill();
    let _ = child.wait();
    let signed = signed.expect("signed");
    assert_eq!(signed.cert_chain.len(), 3, "leaf, intermediate, roots");
    assert_eq!(signed.cert_chain[1], inter);
    assert_eq!(signed.cert_chain[2], bundle, "the whole bundle is served");
    assert!(verifies(&signed.cert_chain, &bundle));
    // Against the old root alone the new chain does not verify: both must be trusted.
    assert!(!verifies(&signed.cert_chain, &old_root));
    let leaf = der_blocks(&signed.cert_chain[0]).remove(0);
    let cert = X509Certificate::from_der(&leaf).unwrap().1;
    let lifetime = cert.validity().not_after.timestamp() - cert.validity().not_before.timestamp();
    assert_eq!(
        lifetime,
        3600 + 60,
        "--workload-cert-ttl 1h, backdated a minute"
    );
}
