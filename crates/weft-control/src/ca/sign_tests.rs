//! Signing and CA loading: what a leaf holds, what is refused, plug-in CAs and root
//! rotation (old and new roots trusted together).

use super::*;
use crate::ca::root::{certificates, CaKeys, CA_CERT, CA_KEY, CERT_CHAIN, ROOT_CERT};
use rcgen::{BasicConstraints, DnType, IsCa};
use std::path::Path;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

fn id(ns: &str, sa: &str) -> SpiffeId {
    SpiffeId::new("cluster.local", ns, sa)
}

fn csr(sans: Vec<SanType>) -> String {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::default();
    params.subject_alt_names = sans;
    params.serialize_request(&key).unwrap().pem().unwrap()
}

fn uri(s: &str) -> SanType {
    SanType::URI(s.try_into().unwrap())
}

fn self_signed(dir: &Path) -> Signer {
    let keys = CaKeys::load(None, dir, "cluster.local").unwrap();
    Signer::new(keys, Lifetimes::default()).unwrap()
}

fn der(pem: &str) -> Vec<Vec<u8>> {
    certificates(pem)
        .unwrap()
        .into_iter()
        .map(|(_, d)| d)
        .collect()
}

/// What a TLS peer checks of a chain as CreateCertificate returns it: each certificate
/// signed by the next and the topmost by a root of the bundle (the last entry), all in
/// their validity period.
fn verify(chain: &[String]) -> Result<(), String> {
    let (bundle, presented) = chain.split_last().unwrap();
    let presented: Vec<Vec<u8>> = presented.iter().flat_map(|p| der(p)).collect();
    let roots = der(bundle);
    let certs: Vec<X509Certificate<'_>> = presented.iter().map(|d| parse(d)).collect();
    for c in &certs {
        if !c.validity().is_valid() {
            return Err(format!("{} is not valid now", c.subject()));
        }
    }
    for pair in certs.windows(2) {
        pair[0]
            .verify_signature(Some(pair[1].public_key()))
            .map_err(|_| format!("{} not signed by {}", pair[0].subject(), pair[1].subject()))?;
    }
    let top = certs.last().unwrap();
    let anchored = roots.iter().any(|r| {
        let root = parse(r);
        top.verify_signature(Some(root.public_key())).is_ok()
    });
    anchored
        .then_some(())
        .ok_or_else(|| format!("{} is not signed by a root of the bundle", top.subject()))
}

fn parse(d: &[u8]) -> X509Certificate<'_> {
    X509Certificate::from_der(d).unwrap().1
}

fn leaf_uris(chain: &[String]) -> Vec<String> {
    let leaf = der(&chain[0]).remove(0);
    let cert = X509Certificate::from_der(&leaf).unwrap().1;
    let san = cert.subject_alternative_name().unwrap().unwrap();
    assert!(san.critical, "an empty subject needs a critical SAN");
    san.value
        .general_names
        .iter()
        .map(|n| match n {
            GeneralName::URI(u) => u.to_string(),
            other => format!("non-URI SAN {other:?}"),
        })
        .collect()
}

#[test]
fn signs_the_callers_identity_only() {
    let dir = tempfile::tempdir().unwrap();
    let signer = self_signed(dir.path());
    let identity = id("bookinfo", "reviews");
    let request = csr(vec![
        uri("spiffe://cluster.local/ns/bookinfo/sa/reviews"),
        SanType::DnsName("evil.example.com".try_into().unwrap()),
    ]);
    let signed = signer
        .sign_csr(&request, &identity, Duration::ZERO)
        .unwrap();
    assert_eq!(signed.chain.len(), 2, "leaf and root");
    assert_eq!(
        leaf_uris(&signed.chain),
        vec!["spiffe://cluster.local/ns/bookinfo/sa/reviews"]
    );
    verify(&signed.chain).unwrap();
    let lifetime = signed.not_after - OffsetDateTime::now_utc();
    assert!(
        (lifetime.whole_minutes() - 24 * 60).abs() <= 1,
        "default lifetime is 24h, got {lifetime}"
    );
    // A CSR without SANs gets the caller's identity too.
    let bare = signer.sign_csr(&csr(vec![]), &identity, Duration::from_secs(3600));
    assert_eq!(
        leaf_uris(&bare.unwrap().chain),
        vec!["spiffe://cluster.local/ns/bookinfo/sa/reviews"]
    );
}

#[test]
fn refuses_other_identities_bad_csrs_and_long_lifetimes() {
    let dir = tempfile::tempdir().unwrap();
    let signer = self_signed(dir.path());
    let identity = id("bookinfo", "reviews");
    let other = csr(vec![uri("spiffe://cluster.local/ns/bookinfo/sa/ratings")]);
    assert_eq!(
        signer
            .sign_csr(&other, &identity, Duration::ZERO)
            .unwrap_err(),
        SignError::Identity {
            requested: "spiffe://cluster.local/ns/bookinfo/sa/ratings".into(),
            allowed: "spiffe://cluster.local/ns/bookinfo/sa/reviews".into(),
        }
    );
    let err = |text: &str| {
        signer
            .sign_csr(text, &identity, Duration::ZERO)
            .unwrap_err()
    };
    assert_eq!(
        err(""),
        SignError::Malformed("empty; send a PEM PKCS#10 request".into())
    );
    assert!(matches!(err("hello"), SignError::Malformed(m) if m.contains("CERTIFICATE REQUEST")));
    let garbage = "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n";
    assert!(matches!(err(garbage), SignError::Malformed(m) if m.contains("DER PKCS#10")));
    // Tampering with the signed part breaks the CSR's self-signature.
    let good = csr(vec![uri("spiffe://cluster.local/ns/bookinfo/sa/reviews")]);
    let tampered = tamper(&good);
    assert!(
        matches!(err(&tampered), SignError::Malformed(m) if m.contains("signature")),
        "{:?}",
        err(&tampered)
    );
    let too_long = Duration::from_secs(91 * 24 * 3600);
    assert_eq!(
        signer.sign_csr(&good, &identity, too_long).unwrap_err(),
        SignError::Ttl {
            requested: too_long.as_secs(),
            max: 90 * 24 * 3600
        }
    );
}

/// Flips one bit inside the request's subject public key.
fn tamper(pem_text: &str) -> String {
    use base64::Engine;
    let engine = base64::engine::general_purpose::STANDARD;
    let body: String = pem_text
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    let mut bytes = engine.decode(body).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x01;
    format!(
        "-----BEGIN CERTIFICATE REQUEST-----\n{}\n-----END CERTIFICATE REQUEST-----\n",
        engine.encode(bytes)
    )
}

#[test]
fn the_self_signed_root_is_kept_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let first = CaKeys::load(None, dir.path(), "example.org").unwrap();
    let again = CaKeys::load(None, dir.path(), "example.org").unwrap();
    assert_eq!(first.cert_pem, again.cert_pem);
    assert_eq!(first.roots_pem, first.cert_pem);
    assert!(first.chain.is_empty());
    let root = der(&first.cert_pem).remove(0);
    let cert = X509Certificate::from_der(&root).unwrap().1;
    assert!(cert.is_ca());
    assert_eq!(cert.subject().to_string(), "O=example.org");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dir.path().join("ca").join(CA_KEY))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}

/// A CA certificate and key pair generated for tests.
pub(crate) struct TestCa {
    pub pem: String,
    pub key: KeyPair,
    pub params: CertificateParams,
}

pub(crate) fn ca_params(name: &str) -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, name);
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params
}

pub(crate) fn root(name: &str) -> TestCa {
    let key = KeyPair::generate().unwrap();
    let params = ca_params(name);
    let pem = params.self_signed(&key).unwrap().pem();
    TestCa { pem, key, params }
}

pub(crate) fn intermediate(name: &str, parent: &TestCa) -> TestCa {
    let key = KeyPair::generate().unwrap();
    let params = ca_params(name);
    let issuer = Issuer::from_params(&parent.params, &parent.key);
    let pem = params.signed_by(&key, &issuer).unwrap().pem();
    TestCa { pem, key, params }
}

/// Writes Istio's cacerts layout for `ca` under the roots of `bundle`.
pub(crate) fn write_cacerts(dir: &Path, ca: &TestCa, chain: &[&TestCa], bundle: &[&TestCa]) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join(CA_CERT), &ca.pem).unwrap();
    std::fs::write(dir.join(CA_KEY), ca.key.serialize_pem()).unwrap();
    let chain: String = chain.iter().map(|c| c.pem.clone()).collect();
    std::fs::write(dir.join(CERT_CHAIN), chain).unwrap();
    let roots: String = bundle.iter().map(|c| c.pem.clone()).collect();
    std::fs::write(dir.join(ROOT_CERT), roots).unwrap();
}

fn plug_in(dir: &Path) -> Result<Signer, String> {
    let data = tempfile::tempdir().unwrap();
    let keys = CaKeys::load(Some(dir), data.path(), "cluster.local").map_err(|e| e.to_string())?;
    Ok(Signer::new(keys, Lifetimes::default()).unwrap())
}

#[test]
fn a_plug_in_intermediate_sends_its_chain() {
    let root_ca = root("root");
    let inter = intermediate("intermediate", &root_ca);
    let dir = tempfile::tempdir().unwrap();
    // Istio's cert-chain.pem: the intermediate, then its root.
    write_cacerts(dir.path(), &inter, &[&inter, &root_ca], &[&root_ca]);
    let signer = plug_in(dir.path()).unwrap();
    let identity = id("default", "sleep");
    let signed = signer
        .sign_csr(&csr(vec![]), &identity, Duration::ZERO)
        .unwrap();
    assert_eq!(signed.chain.len(), 3, "leaf, intermediate, root bundle");
    assert_eq!(signed.chain[1], inter.pem);
    assert_eq!(signed.chain[2], root_ca.pem);
    verify(&signed.chain).unwrap();
    // Without the intermediate, the leaf does not verify: the chain is needed.
    let short = vec![signed.chain[0].clone(), signed.chain[2].clone()];
    assert!(verify(&short).is_err());
}

#[test]
fn rotation_overlap_trusts_old_and_new_roots() {
    let old_root = root("old root");
    let new_root = root("new root");
    let old_inter = intermediate("old intermediate", &old_root);
    let new_inter = intermediate("new intermediate", &new_root);
    let identity = id("default", "sleep");

    // Step 1: the new root joins the bundle; the old intermediate still signs.
    let before = tempfile::tempdir().unwrap();
    write_cacerts(
        before.path(),
        &old_inter,
        &[&old_inter, &old_root],
        &[&old_root, &new_root],
    );
    let old_signer = plug_in(before.path()).unwrap();
    // Step 2: the new intermediate signs; the bundle still holds both.
    let after = tempfile::tempdir().unwrap();
    write_cacerts(
        after.path(),
        &new_inter,
        &[&new_inter, &new_root],
        &[&old_root, &new_root],
    );
    let new_signer = plug_in(after.path()).unwrap();

    assert_eq!(old_signer.roots_pem(), new_signer.roots_pem());
    let bundle = new_signer.roots_pem().to_string();
    let old_leaf = old_signer
        .sign_csr(&csr(vec![]), &identity, Duration::ZERO)
        .unwrap();
    let new_leaf = new_signer
        .sign_csr(&csr(vec![]), &identity, Duration::ZERO)
        .unwrap();
    // Either leaf verifies against the bundle either CA serves as ROOTCA.
    for leaf in [&old_leaf, &new_leaf] {
        let mut chain = leaf.chain.clone();
        *chain.last_mut().unwrap() = bundle.clone();
        verify(&chain).unwrap();
    }
    // Step 3: the old root leaves the bundle; old leaves stop verifying.
    let mut chain = old_leaf.chain.clone();
    *chain.last_mut().unwrap() = new_root.pem.clone();
    assert!(verify(&chain).is_err());
    let mut chain = new_leaf.chain.clone();
    *chain.last_mut().unwrap() = new_root.pem.clone();
    verify(&chain).unwrap();
}

#[test]
fn broken_plug_in_cas_are_refused_with_the_file_named() {
    let root_ca = root("root");
    let other_root = root("other");
    let inter = intermediate("intermediate", &root_ca);
    let dir = tempfile::tempdir().unwrap();
    // The bundle does not hold the root the chain ends at.
    write_cacerts(dir.path(), &inter, &[&inter], &[&other_root]);
    let err = plug_in(dir.path()).unwrap_err();
    assert!(
        err.contains("cert-chain.pem") && err.contains("no certificate in root-cert.pem signed"),
        "{err}"
    );
    // A key that is not the certificate's.
    write_cacerts(dir.path(), &inter, &[&inter], &[&root_ca]);
    std::fs::write(dir.path().join(CA_KEY), other_root.key.serialize_pem()).unwrap();
    let err = plug_in(dir.path()).unwrap_err();
    assert!(
        err.contains("ca-key.pem") && err.contains("is not the private key"),
        "{err}"
    );
    // A missing file.
    write_cacerts(dir.path(), &inter, &[&inter], &[&root_ca]);
    assert!(plug_in(dir.path()).is_ok());
    std::fs::remove_file(dir.path().join(ROOT_CERT)).unwrap();
    let err = plug_in(dir.path()).unwrap_err();
    assert!(err.contains("root-cert.pem"), "{err}");
}

#[test]
fn issue_makes_a_key_and_a_leaf_for_it() {
    let dir = tempfile::tempdir().unwrap();
    let signer = self_signed(dir.path());
    let (key_pem, signed) = signer.issue(&id("default", "sleep")).unwrap();
    let key = KeyPair::from_pem(&key_pem).unwrap();
    let leaf = der(&signed.chain[0]).remove(0);
    let cert = X509Certificate::from_der(&leaf).unwrap().1;
    assert_eq!(
        key.public_key_raw(),
        cert.public_key().subject_public_key.data.as_ref()
    );
    assert_eq!(signed.presented_chain(), signed.chain[0]);
    verify(&signed.chain).unwrap();
}
