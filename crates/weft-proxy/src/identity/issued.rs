//! A certificate the CA issued: the chain it answered with, checked against the request,
//! paired with the key that stayed here, and its validity (which drives rotation).

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use thiserror::Error;
use tokio_rustls::rustls::crypto::CryptoProvider;
use tokio_rustls::rustls::sign::CertifiedKey;
use weft_ca_api::SpiffeId;
use x509_parser::prelude::{FromDer, X509Certificate};

#[derive(Debug, Error)]
pub enum IssuedError {
    #[error("the CA answered with an empty certificate chain")]
    Empty,
    #[error("cert_chain[{index}] is not a PEM certificate: {reason}")]
    Pem { index: usize, reason: String },
    #[error("the issued certificate cannot be parsed: {0}")]
    Parse(String),
    #[error("the issued certificate names {got:?}, not the requested {want}")]
    WrongIdentity { got: Vec<String>, want: String },
    #[error("the issued certificate does not match the workload key: {0}")]
    Key(String),
}

/// The workload's current certificate and key, ready for rustls.
#[derive(Debug)]
pub struct Issued {
    /// The leaf and intermediates (the root is not sent: peers have it as ROOTCA) with
    /// the signing key.
    pub key: Arc<CertifiedKey>,
    /// The last certificate of the CA's answer: the root that signed the chain.
    pub root: CertificateDer<'static>,
    pub not_before: SystemTime,
    pub not_after: SystemTime,
    /// When the CA's answer arrived here.
    pub received: SystemTime,
    /// Hex serial number of the leaf, for logs.
    pub serial: String,
}

impl Issued {
    /// Checks the CA's `cert_chain` (leaf first, root last) for the requested `id` and
    /// pairs it with `key`.
    pub fn new(
        id: &SpiffeId,
        chain_pem: &[String],
        key: PrivateKeyDer<'static>,
        provider: &CryptoProvider,
    ) -> Result<Issued, IssuedError> {
        let mut chain = Vec::new();
        for (index, pem) in chain_pem.iter().enumerate() {
            // An entry may hold several PEM blocks (a leaf with its intermediates).
            for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
                chain.push(cert.map_err(|e| IssuedError::Pem {
                    index,
                    reason: e.to_string(),
                })?);
            }
        }
        let leaf = chain.first().ok_or(IssuedError::Empty)?.clone();
        let (_, parsed) =
            X509Certificate::from_der(&leaf).map_err(|e| IssuedError::Parse(e.to_string()))?;
        let sans = uri_sans(&parsed);
        let want = id.to_string();
        if !sans.contains(&want) {
            return Err(IssuedError::WrongIdentity { got: sans, want });
        }
        let validity = parsed.validity();
        let time = |t: i64| UNIX_EPOCH + Duration::from_secs(t.max(0) as u64);
        let not_before = time(validity.not_before.timestamp());
        let not_after = time(validity.not_after.timestamp());
        let serial = parsed.raw_serial_as_string();
        let root = chain.last().cloned().ok_or(IssuedError::Empty)?;
        if chain.len() > 1 {
            chain.pop();
        }
        let key = CertifiedKey::from_der(chain, key, provider)
            .map_err(|e| IssuedError::Key(e.to_string()))?;
        Ok(Issued {
            key: Arc::new(key),
            root,
            not_before,
            not_after,
            received: SystemTime::now(),
            serial,
        })
    }

    /// When to ask for the next certificate: `ratio` of the way through the lifetime.
    /// The lifetime counts from when the certificate arrived, not from `not_before`: CAs
    /// backdate `not_before` (weftd by a minute) for peers with lagging clocks, which
    /// would make a short-lived certificate look half spent on arrival.
    pub fn refresh_at(&self, ratio: f64) -> SystemTime {
        let start = self.not_before.max(self.received);
        let lifetime = self.not_after.duration_since(start).unwrap_or_default();
        start + lifetime.mul_f64(ratio.clamp(0.0, 1.0))
    }

    /// The leaf's SPIFFE URI SANs.
    pub fn uri_sans(&self) -> Vec<String> {
        self.key
            .end_entity_cert()
            .ok()
            .and_then(|der| X509Certificate::from_der(der).ok())
            .map(|(_, c)| uri_sans(&c))
            .unwrap_or_default()
    }
}

/// Every URI SAN of a certificate.
pub fn uri_sans(cert: &X509Certificate<'_>) -> Vec<String> {
    let Ok(Some(san)) = cert.subject_alternative_name() else {
        return Vec::new();
    };
    san.value
        .general_names
        .iter()
        .filter_map(|n| match n {
            x509_parser::extensions::GeneralName::URI(u) => Some(u.to_string()),
            _ => None,
        })
        .collect()
}

/// The URI SANs of a DER certificate; empty when it cannot be parsed.
pub fn uri_sans_der(der: &[u8]) -> Vec<String> {
    X509Certificate::from_der(der)
        .map(|(_, c)| uri_sans(&c))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::csr;
    use crate::identity::test_ca::TestCa;

    #[test]
    fn a_certificate_for_another_identity_is_not_taken() {
        let ca = TestCa::new("mesh");
        let asked = SpiffeId::new("cluster.local", "default", "reviews");
        let request = csr::request(&SpiffeId::new("cluster.local", "default", "admin")).unwrap();
        let leaf = ca.sign(
            &request.csr_pem,
            time::Duration::ZERO,
            time::Duration::hours(1),
        );
        let err = Issued::new(
            &asked,
            &[leaf, ca.root_pem.clone()],
            request.key,
            &crate::cluster::tls::provider(),
        )
        .unwrap_err();
        assert!(
            matches!(&err, IssuedError::WrongIdentity { got, .. } if got == &["spiffe://cluster.local/ns/default/sa/admin"]),
            "{err}"
        );
        assert!(matches!(
            Issued::new(
                &asked,
                &[],
                csr::request(&asked).unwrap().key,
                &crate::cluster::tls::provider()
            ),
            Err(IssuedError::Empty)
        ));
    }

    #[test]
    fn renewal_time_is_a_share_of_the_lifetime() {
        let ca = TestCa::new("mesh");
        let id = SpiffeId::new("cluster.local", "default", "reviews");
        // Backdated by a minute, as weftd does: the minute already gone does not count.
        let issued = ca.issue(&id, Duration::from_secs(7200));
        let remaining = issued.not_after.duration_since(issued.received).unwrap();
        assert!(remaining <= Duration::from_secs(7200));
        let at = issued.refresh_at(0.5);
        let expected = issued.received + remaining / 2;
        let off = at
            .duration_since(expected)
            .or_else(|_| expected.duration_since(at))
            .unwrap();
        assert!(off < Duration::from_millis(1), "{at:?} vs {expected:?}");
    }
}
