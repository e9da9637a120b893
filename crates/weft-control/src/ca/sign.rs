//! Signing workload certificates: a CSR and the caller's proven identity in, a leaf for
//! that identity (its only SAN the SPIFFE URI) and the chain up to the roots out.

use super::root::CaKeys;
use rand::RngCore;
use rcgen::{
    CertificateParams, CertificateSigningRequestParams, DistinguishedName, ExtendedKeyUsagePurpose,
    IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};
use std::time::Duration;
use thiserror::Error;
use time::{Duration as TimeDuration, OffsetDateTime};
use weft_ca_api::SpiffeId;

/// Leaves start a minute early so a peer whose clock lags a little accepts them at once.
const BACKDATE: TimeDuration = TimeDuration::minutes(1);

#[derive(Debug, Error, PartialEq, Eq)]
pub enum SignError {
    /// The request is not a PEM PKCS#10 CSR with a valid self-signature.
    #[error("csr: {0}")]
    Malformed(String),
    /// The CSR asks for an identity the caller did not prove.
    #[error("csr: subject alternative name {requested:?} is not the caller's identity {allowed}")]
    Identity { requested: String, allowed: String },
    /// `validity_duration` is above `--max-workload-cert-ttl`.
    #[error("validity_duration: {requested}s is longer than the maximum {max}s")]
    Ttl { requested: u64, max: u64 },
    #[error("signing failed: {0}")]
    Sign(String),
}

/// Lifetimes of workload certificates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lifetimes {
    /// When the request asks for none (Istio's DEFAULT_WORKLOAD_CERT_TTL: 24h).
    pub default: Duration,
    /// The longest allowed (Istio's MAX_WORKLOAD_CERT_TTL: 90 days).
    pub max: Duration,
}

impl Default for Lifetimes {
    fn default() -> Self {
        Lifetimes {
            default: Duration::from_secs(24 * 3600),
            max: Duration::from_secs(90 * 24 * 3600),
        }
    }
}

/// A signed leaf: the chain as CreateCertificate returns it and when it expires.
#[derive(Clone, Debug)]
pub struct Signed {
    /// The leaf first, then intermediates, the trust bundle last.
    pub chain: Vec<String>,
    pub not_after: OffsetDateTime,
}

impl Signed {
    /// The certificate chain a TLS server or client presents: leaf and intermediates,
    /// without the roots.
    pub fn presented_chain(&self) -> String {
        self.chain[..self.chain.len() - 1].concat()
    }
}

/// Signs under one CA certificate.
pub struct Signer {
    issuer: Issuer<'static, KeyPair>,
    chain: Vec<String>,
    roots_pem: String,
    pub lifetimes: Lifetimes,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("lifetimes", &self.lifetimes)
            .finish_non_exhaustive()
    }
}

impl Signer {
    pub fn new(keys: CaKeys, lifetimes: Lifetimes) -> Result<Signer, SignError> {
        let issuer = Issuer::from_ca_cert_pem(&keys.cert_pem, keys.key)
            .map_err(|e| SignError::Sign(format!("the CA certificate is not usable: {e}")))?;
        Ok(Signer {
            issuer,
            chain: keys.chain,
            roots_pem: keys.roots_pem,
            lifetimes,
        })
    }

    /// The trust bundle (`root-cert.pem`).
    pub fn roots_pem(&self) -> &str {
        &self.roots_pem
    }

    /// Signs `csr_pem` for `identity`. The CSR's public key is used; its subject and any
    /// DNS, IP or e-mail SANs are ignored, and a URI SAN other than `identity` is refused.
    /// `requested` of zero takes the default lifetime.
    pub fn sign_csr(
        &self,
        csr_pem: &str,
        identity: &SpiffeId,
        requested: Duration,
    ) -> Result<Signed, SignError> {
        let csr = parse_csr(csr_pem)?;
        let allowed = identity.to_string();
        for san in &csr.params.subject_alt_names {
            if let SanType::URI(uri) = san {
                if uri.as_str() != allowed {
                    return Err(SignError::Identity {
                        requested: uri.as_str().to_string(),
                        allowed,
                    });
                }
            }
        }
        let ttl = self.ttl(requested)?;
        let params = self.leaf_params(identity, ttl)?;
        let cert = params
            .signed_by(&csr.public_key, &self.issuer)
            .map_err(|e| SignError::Sign(e.to_string()))?;
        Ok(self.signed(cert.pem(), params.not_after))
    }

    /// A key generated here and a leaf for it: for proxies without an agent of their own
    /// (Envoy), whose key weftd must make. Returns the key's PEM and the signed chain.
    pub fn issue(&self, identity: &SpiffeId) -> Result<(String, Signed), SignError> {
        let key = KeyPair::generate().map_err(|e| SignError::Sign(e.to_string()))?;
        let params = self.leaf_params(identity, self.lifetimes.default)?;
        let cert = params
            .signed_by(&key, &self.issuer)
            .map_err(|e| SignError::Sign(e.to_string()))?;
        Ok((
            key.serialize_pem(),
            self.signed(cert.pem(), params.not_after),
        ))
    }

    fn ttl(&self, requested: Duration) -> Result<Duration, SignError> {
        if requested.is_zero() {
            return Ok(self.lifetimes.default);
        }
        if requested > self.lifetimes.max {
            return Err(SignError::Ttl {
                requested: requested.as_secs(),
                max: self.lifetimes.max.as_secs(),
            });
        }
        Ok(requested)
    }

    fn leaf_params(
        &self,
        identity: &SpiffeId,
        ttl: Duration,
    ) -> Result<CertificateParams, SignError> {
        let mut params = CertificateParams::default();
        // An empty subject, as Istio's leaves: the identity is the (then critical) URI SAN.
        params.distinguished_name = DistinguishedName::new();
        let uri = identity
            .to_string()
            .try_into()
            .map_err(|_| SignError::Sign(format!("{identity} is not an IA5 string")))?;
        params.subject_alt_names = vec![SanType::URI(uri)];
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let now = OffsetDateTime::now_utc();
        params.not_before = now - BACKDATE;
        params.not_after = now
            + TimeDuration::try_from(ttl)
                .map_err(|_| SignError::Sign(format!("lifetime {ttl:?} is out of range")))?;
        let mut serial = [0u8; 16];
        rand::rng().fill_bytes(&mut serial);
        serial[0] &= 0x7f; // a positive INTEGER
        params.serial_number = Some(SerialNumber::from_slice(&serial));
        Ok(params)
    }

    fn signed(&self, leaf: String, not_after: OffsetDateTime) -> Signed {
        let mut chain = Vec::with_capacity(self.chain.len() + 2);
        chain.push(leaf);
        chain.extend(self.chain.iter().cloned());
        chain.push(self.roots_pem.clone());
        Signed { chain, not_after }
    }
}

/// Parses and checks a CSR, naming what is wrong with it.
fn parse_csr(pem: &str) -> Result<CertificateSigningRequestParams, SignError> {
    if pem.trim().is_empty() {
        return Err(SignError::Malformed(
            "empty; send a PEM PKCS#10 request".into(),
        ));
    }
    if !pem.contains("-----BEGIN CERTIFICATE REQUEST-----") {
        return Err(SignError::Malformed(
            "not PEM with a \"CERTIFICATE REQUEST\" block".into(),
        ));
    }
    CertificateSigningRequestParams::from_pem(pem).map_err(|e| {
        SignError::Malformed(match e {
            rcgen::Error::InvalidCertificationRequestSignature => {
                "its signature does not verify with its own public key".into()
            }
            rcgen::Error::UnsupportedExtension => {
                "it requests an extension other than subjectAltName, keyUsage, \
                 extendedKeyUsage or basicConstraints"
                    .into()
            }
            rcgen::Error::CouldNotParseCertificationRequest => {
                "not a DER PKCS#10 request inside the PEM block".into()
            }
            other => other.to_string(),
        })
    })
}

#[cfg(test)]
#[path = "sign_tests.rs"]
mod tests;
