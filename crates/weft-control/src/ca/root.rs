//! The CA's own keys and certificates, laid out as Istio's `cacerts`: `ca-cert.pem` (the
//! signing certificate), `ca-key.pem`, `root-cert.pem` (the trust bundle: one root, or old
//! and new during a rotation) and `cert-chain.pem` (from `ca-cert.pem` up to its root).
//!
//! A plug-in CA is read from `--cacerts DIR`; without it weftd creates a self-signed root in
//! `<data-dir>/ca/` on first start and reuses it afterwards.

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, KeyPair, KeyUsagePurpose,
};
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use thiserror::Error;
use time::{Duration as TimeDuration, OffsetDateTime};
use x509_parser::prelude::{FromDer, X509Certificate};

pub const CA_CERT: &str = "ca-cert.pem";
pub const CA_KEY: &str = "ca-key.pem";
pub const ROOT_CERT: &str = "root-cert.pem";
pub const CERT_CHAIN: &str = "cert-chain.pem";

/// Lifetime of a self-signed root, as Istio's (10 years).
const SELF_SIGNED_ROOT_DAYS: i64 = 3650;

#[derive(Debug, Error)]
pub enum RootError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: io::Error },
    #[error("{path}: {reason}")]
    Invalid { path: PathBuf, reason: String },
    #[error("cannot create the self-signed root: {0}")]
    Generate(rcgen::Error),
}

/// Where the keys came from, for the start-up line and the docs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    SelfSigned(PathBuf),
    PlugIn(PathBuf),
}

/// The signing key and certificate with what is sent along with every leaf.
pub struct CaKeys {
    pub source: Source,
    /// `ca-cert.pem`: the certificate leaves are signed under.
    pub cert_pem: String,
    pub key: KeyPair,
    /// Certificates between a leaf and the roots, `ca-cert.pem` first; empty when the
    /// signing certificate is itself a root.
    pub chain: Vec<String>,
    /// `root-cert.pem` as read: the trust bundle served as `ROOTCA`.
    pub roots_pem: String,
    /// When the signing certificate expires (seconds since the epoch).
    pub not_after: i64,
}

impl std::fmt::Debug for CaKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaKeys")
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

impl CaKeys {
    /// A plug-in CA from `dir` when given, else the self-signed root in `data_dir/ca`,
    /// created for `trust_domain` when absent.
    pub fn load(
        plug_in: Option<&Path>,
        data_dir: &Path,
        trust_domain: &str,
    ) -> Result<CaKeys, RootError> {
        if let Some(dir) = plug_in {
            return load_dir(dir, Source::PlugIn(dir.to_path_buf()));
        }
        let dir = data_dir.join("ca");
        if !dir.join(CA_KEY).exists() {
            create_self_signed(&dir, trust_domain)?;
            tracing::info!(dir = %dir.display(), "created a self-signed root CA");
        }
        load_dir(&dir, Source::SelfSigned(dir.clone()))
    }
}

fn read(path: &Path) -> Result<String, RootError> {
    fs::read_to_string(path).map_err(|source| RootError::Read {
        path: path.to_path_buf(),
        source,
    })
}

fn invalid(path: &Path, reason: impl Into<String>) -> RootError {
    RootError::Invalid {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// Splits PEM text into its `CERTIFICATE` blocks, each re-encoded, and their DER.
pub fn certificates(text: &str) -> Result<Vec<(String, Vec<u8>)>, String> {
    let mut out = Vec::new();
    for (i, block) in pem_blocks(text).into_iter().enumerate() {
        let der = x509_parser::pem::parse_x509_pem(block.as_bytes())
            .map_err(|e| format!("PEM block {} is not readable: {e}", i + 1))?
            .1;
        if der.label != "CERTIFICATE" {
            return Err(format!(
                "PEM block {} is a {:?}, not a CERTIFICATE",
                i + 1,
                der.label
            ));
        }
        out.push((block, der.contents));
    }
    Ok(out)
}

/// The `-----BEGIN ...-----` .. `-----END ...-----` blocks of a PEM file, in order.
fn pem_blocks(text: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with("-----BEGIN ") {
            current = Some(String::new());
        }
        if let Some(block) = current.as_mut() {
            block.push_str(line);
            block.push('\n');
            if line.starts_with("-----END ") {
                blocks.extend(current.take());
            }
        }
    }
    blocks
}

fn parse<'a>(path: &Path, der: &'a [u8]) -> Result<X509Certificate<'a>, RootError> {
    X509Certificate::from_der(der)
        .map(|(_, c)| c)
        .map_err(|e| invalid(path, format!("not an X.509 certificate: {e}")))
}

fn load_dir(dir: &Path, source: Source) -> Result<CaKeys, RootError> {
    let cert_path = dir.join(CA_CERT);
    let key_path = dir.join(CA_KEY);
    let root_path = dir.join(ROOT_CERT);
    let chain_path = dir.join(CERT_CHAIN);

    let cert_text = read(&cert_path)?;
    let mut certs = certificates(&cert_text).map_err(|e| invalid(&cert_path, e))?;
    if certs.is_empty() {
        return Err(invalid(&cert_path, "holds no CERTIFICATE"));
    }
    let (cert_pem, cert_der) = certs.swap_remove(0);
    let cert = parse(&cert_path, &cert_der)?;
    if !cert.is_ca() {
        return Err(invalid(
            &cert_path,
            "is not a CA certificate (basicConstraints CA:TRUE is required to sign workloads)",
        ));
    }
    let now = OffsetDateTime::now_utc().unix_timestamp();
    let not_after = cert.validity().not_after.timestamp();
    if not_after <= now {
        return Err(invalid(&cert_path, "has expired"));
    }

    let key_text = read(&key_path)?;
    let key = KeyPair::from_pem(&key_text).map_err(|e| {
        invalid(
            &key_path,
            format!(
                "not a usable private key ({e}); weftd reads PKCS#8 PEM (`openssl pkcs8 -topk8 -nocrypt`)"
            ),
        )
    })?;
    if key.public_key_raw() != cert.public_key().subject_public_key.data.as_ref() {
        return Err(invalid(
            &key_path,
            format!("is not the private key of {}", cert_path.display()),
        ));
    }

    let roots_pem = read(&root_path)?;
    let roots = certificates(&roots_pem).map_err(|e| invalid(&root_path, e))?;
    if roots.is_empty() {
        return Err(invalid(&root_path, "holds no CERTIFICATE"));
    }
    let root_certs = roots
        .iter()
        .map(|(_, der)| parse(&root_path, der))
        .collect::<Result<Vec<_>, _>>()?;

    // cert-chain.pem is optional for a root that signs directly.
    let chain_text = match fs::read_to_string(&chain_path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => String::new(),
        Err(source) => {
            return Err(RootError::Read {
                path: chain_path,
                source,
            })
        }
    };
    let chain_certs = certificates(&chain_text).map_err(|e| invalid(&chain_path, e))?;
    // The chain sent with leaves: ca-cert first, then the intermediates above it, never
    // a root (the peer has those in its bundle).
    let is_root = |der: &[u8]| roots.iter().any(|(_, r)| r.as_slice() == der);
    let mut chain: Vec<(String, Vec<u8>)> = Vec::new();
    if !is_root(&cert_der) {
        chain.push((cert_pem.clone(), cert_der.clone()));
        for (pem, der) in chain_certs {
            if der != cert_der && !is_root(&der) {
                chain.push((pem, der));
            }
        }
    }
    verify_chain(&chain_path, &cert_der, &chain, &root_certs)?;
    Ok(CaKeys {
        source,
        cert_pem,
        key,
        chain: chain.into_iter().map(|(pem, _)| pem).collect(),
        roots_pem,
        not_after,
    })
}

/// Each certificate of the chain must be signed by the next, the last by a root of the
/// bundle: otherwise peers could never verify the leaves this CA signs.
fn verify_chain(
    chain_path: &Path,
    cert_der: &[u8],
    chain: &[(String, Vec<u8>)],
    roots: &[X509Certificate<'_>],
) -> Result<(), RootError> {
    let parsed = chain
        .iter()
        .map(|(_, der)| parse(chain_path, der))
        .collect::<Result<Vec<_>, _>>()?;
    for pair in parsed.windows(2) {
        pair[0]
            .verify_signature(Some(pair[1].public_key()))
            .map_err(|_| {
                invalid(
                    chain_path,
                    format!(
                        "{} is not signed by the next certificate {}",
                        pair[0].subject(),
                        pair[1].subject()
                    ),
                )
            })?;
    }
    let top_der = chain
        .last()
        .map(|(_, der)| der.as_slice())
        .unwrap_or(cert_der);
    let top = parse(chain_path, top_der)?;
    let anchored = roots
        .iter()
        .any(|root| top.verify_signature(Some(root.public_key())).is_ok());
    if !anchored {
        return Err(invalid(
            chain_path,
            format!(
                "the chain ends at {}, which no certificate in {ROOT_CERT} signed",
                top.subject()
            ),
        ));
    }
    Ok(())
}

/// Writes a new ECDSA P-256 root valid for ten years, its key readable by the owner only.
fn create_self_signed(dir: &Path, trust_domain: &str) -> Result<(), RootError> {
    fs::create_dir_all(dir).map_err(|source| RootError::Write {
        path: dir.to_path_buf(),
        source,
    })?;
    let key = KeyPair::generate().map_err(RootError::Generate)?;
    let mut params = CertificateParams::default();
    let mut name = DistinguishedName::new();
    // Istio's self-signed root names the trust domain as its organization.
    name.push(DnType::OrganizationName, trust_domain);
    params.distinguished_name = name;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let now = OffsetDateTime::now_utc();
    params.not_before = now - TimeDuration::minutes(1);
    params.not_after = now + TimeDuration::days(SELF_SIGNED_ROOT_DAYS);
    let cert = params.self_signed(&key).map_err(RootError::Generate)?;
    write_file(&dir.join(CA_KEY), &key.serialize_pem(), 0o600)?;
    write_file(&dir.join(CA_CERT), &cert.pem(), 0o644)?;
    write_file(&dir.join(ROOT_CERT), &cert.pem(), 0o644)?;
    Ok(())
}

pub(crate) fn write_file(path: &Path, text: &str, mode: u32) -> Result<(), RootError> {
    let write = || -> io::Result<()> {
        let tmp = path.with_extension("tmp");
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)?;
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        fs::rename(&tmp, path)
    };
    write().map_err(|source| RootError::Write {
        path: path.to_path_buf(),
        source,
    })
}
