//! Verifying a peer's certificate the way Envoy does, which is what Istio's identities
//! need: the chain against the trusted CA (validity dates included), and the names only
//! against the context's SAN matchers, URI (SPIFFE ids) or DNS, never against the server
//! name. Istio's workload certificates carry a URI SAN and no DNS name, so WebPKI's
//! hostname check alone could never accept them.

use super::issued::uri_sans_der;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use std::sync::Arc;
use tokio_rustls::rustls::client::danger::{
    HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier,
};
use tokio_rustls::rustls::client::WebPkiServerVerifier;
use tokio_rustls::rustls::{
    self, CertificateError, CommonState, DigitallySignedStruct, OtherError, SignatureScheme,
};

/// SAN matchers of a validation context (`match_typed_subject_alt_names`, exact).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SanMatchers {
    pub dns: Vec<String>,
    pub uri: Vec<String>,
}

impl SanMatchers {
    pub fn is_empty(&self) -> bool {
        self.dns.is_empty() && self.uri.is_empty()
    }
}

/// Why a certificate's names match no matcher.
#[derive(Debug, thiserror::Error)]
#[error("peer certificate SANs {presented:?} match none of the expected {expected:?}")]
pub struct SanMismatch {
    pub presented: Vec<String>,
    pub expected: Vec<String>,
}

/// Server certificate verification with Envoy's semantics (see the module docs).
#[derive(Debug)]
pub struct PeerVerifier {
    inner: Arc<WebPkiServerVerifier>,
    sans: SanMatchers,
}

impl PeerVerifier {
    pub fn new(inner: Arc<WebPkiServerVerifier>, sans: SanMatchers) -> PeerVerifier {
        PeerVerifier { inner, sans }
    }
}

fn name_mismatch(e: &rustls::Error) -> bool {
    matches!(
        e,
        rustls::Error::InvalidCertificate(
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. }
        )
    )
}

impl ServerCertVerifier for PeerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let verify = |name: &ServerName<'_>| {
            self.inner
                .verify_server_cert(end_entity, intermediates, name, ocsp, now)
        };
        // WebPKI checks the chain (issuer, dates, usage) before the name: a name
        // mismatch means the chain itself is good.
        let chain = match verify(server_name) {
            Err(e) if name_mismatch(&e) => Ok(ServerCertVerified::assertion()),
            other => other,
        }?;
        if self.sans.is_empty() {
            return Ok(chain);
        }
        let uris = uri_sans_der(end_entity);
        if uris.iter().any(|u| self.sans.uri.contains(u)) {
            return Ok(chain);
        }
        for san in &self.sans.dns {
            let Ok(name) = ServerName::try_from(san.as_str()) else {
                continue;
            };
            if verify(&name).is_ok() {
                return Ok(chain);
            }
        }
        let expected = self
            .sans
            .uri
            .iter()
            .chain(&self.sans.dns)
            .cloned()
            .collect();
        Err(rustls::Error::InvalidCertificate(CertificateError::Other(
            OtherError(Arc::new(SanMismatch {
                presented: uris,
                expected,
            })),
        )))
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// The SPIFFE id of a connection's verified peer: the first `spiffe://` URI SAN of the
/// certificate it presented (Envoy's `uriSanPeerCertificate`, Istio's principal).
pub fn peer_spiffe_id(conn: &CommonState) -> Option<String> {
    let leaf = conn.peer_certificates()?.first()?;
    uri_sans_der(leaf)
        .into_iter()
        .find(|u| u.starts_with("spiffe://"))
}
