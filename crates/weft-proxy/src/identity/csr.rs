//! The workload key and its certificate signing request.
//!
//! A fresh ECDSA P-256 key for every request (Istio's agent does the same), made in this
//! process: only the CSR, which carries the public key and the SPIFFE URI, is sent to the
//! CA. The subject is empty, as in Istio's workload certificates: the identity is the URI
//! SAN alone.

use rcgen::{CertificateParams, DistinguishedName, KeyPair, SanType, PKCS_ECDSA_P256_SHA256};
use rustls_pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use thiserror::Error;
use weft_ca_api::SpiffeId;

#[derive(Debug, Error)]
pub enum CsrError {
    #[error("cannot generate the workload key: {0}")]
    Key(rcgen::Error),
    #[error("SPIFFE id {id} cannot be a URI SAN: {source}")]
    San { id: String, source: rcgen::Error },
    #[error("cannot sign the certificate request: {0}")]
    Sign(rcgen::Error),
}

/// A new key and the PEM CSR naming `id`.
pub struct Request {
    /// PKCS#8 DER of the private key; kept in memory only.
    pub key: PrivateKeyDer<'static>,
    /// PEM PKCS#10 request, as CreateCertificate takes it.
    pub csr_pem: String,
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the key.
        f.debug_struct("Request")
            .field("csr_pem", &self.csr_pem)
            .finish_non_exhaustive()
    }
}

/// Generates a key pair and a CSR whose only SAN is `id`'s URI.
pub fn request(id: &SpiffeId) -> Result<Request, CsrError> {
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(CsrError::Key)?;
    let uri = id.to_string();
    let san = uri
        .clone()
        .try_into()
        .map_err(|source| CsrError::San { id: uri, source })?;
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params.subject_alt_names = vec![SanType::URI(san)];
    let csr = params.serialize_request(&key).map_err(CsrError::Sign)?;
    let csr_pem = csr.pem().map_err(CsrError::Sign)?;
    Ok(Request {
        key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        csr_pem,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use x509_parser::certification_request::X509CertificationRequest;
    use x509_parser::extensions::{GeneralName, ParsedExtension};
    use x509_parser::prelude::FromDer;

    fn parse(pem: &str) -> Vec<u8> {
        let (_, p) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).expect("PEM");
        assert_eq!(p.label, "CERTIFICATE REQUEST");
        p.contents
    }

    #[test]
    fn csr_names_the_spiffe_id_and_nothing_else() {
        let id = SpiffeId::new("cluster.local", "shop", "reviews");
        let r = request(&id).unwrap();
        let der = parse(&r.csr_pem);
        let (_, csr) = X509CertificationRequest::from_der(&der).unwrap();
        csr.verify_signature().expect("self-signed by the new key");
        let info = &csr.certification_request_info;
        assert_eq!(info.subject.iter().count(), 0, "empty subject");
        let mut sans = Vec::new();
        for ext in csr.requested_extensions().into_iter().flatten() {
            if let ParsedExtension::SubjectAlternativeName(san) = ext {
                for name in &san.general_names {
                    match name {
                        GeneralName::URI(u) => sans.push(u.to_string()),
                        other => panic!("unexpected SAN {other:?}"),
                    }
                }
            }
        }
        assert_eq!(sans, ["spiffe://cluster.local/ns/shop/sa/reviews"]);
        // P-256 public key (id-ecPublicKey with prime256v1).
        let spki = &info.subject_pki;
        assert_eq!(spki.algorithm.algorithm.to_id_string(), "1.2.840.10045.2.1");
    }

    #[test]
    fn every_request_has_a_new_key() {
        let id = SpiffeId::new("cluster.local", "default", "sleep");
        let (a, b) = (request(&id).unwrap(), request(&id).unwrap());
        assert_ne!(a.key.secret_der(), b.key.secret_der());
        assert_ne!(a.csr_pem, b.csr_pem);
    }
}
