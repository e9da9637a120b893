//! The certificate a TLS context presents: a fixed one from an SDS secret, or the
//! workload's own, looked up at each handshake so that a renewal needs no rebuild.

use super::Identity;
use std::sync::Arc;
use tokio_rustls::rustls::client::ResolvesClientCert;
use tokio_rustls::rustls::server::{ClientHello, ResolvesServerCert};
use tokio_rustls::rustls::sign::{CertifiedKey, SingleCertAndKey};
use tokio_rustls::rustls::SignatureScheme;

/// Where a context's certificate comes from.
#[derive(Clone, Debug)]
pub enum CertSource {
    /// A `tls_certificate` secret received over SDS.
    Fixed(Arc<CertifiedKey>),
    /// The secret `default`: the identity's current certificate.
    Workload(Arc<Identity>),
}

impl CertSource {
    /// Why the context cannot present a certificate yet, if it cannot.
    pub fn not_ready(&self) -> Option<String> {
        match self {
            CertSource::Workload(identity) if identity.current().is_none() => Some(format!(
                "secret default: no workload certificate for {} yet (waiting for the CA)",
                identity.id()
            )),
            _ => None,
        }
    }

    /// The first `spiffe://` URI SAN of the certificate presented now (Envoy's
    /// `uriSanLocalCertificate`, Istio's local principal); None without one.
    pub fn spiffe_id(&self) -> Option<Arc<str>> {
        let key = match self {
            CertSource::Fixed(key) => key.clone(),
            CertSource::Workload(identity) => identity.current()?.key.clone(),
        };
        super::issued::uri_sans_der(key.cert.first()?)
            .into_iter()
            .find(|u| u.starts_with("spiffe://"))
            .map(Into::into)
    }

    pub fn client_resolver(&self) -> Arc<dyn ResolvesClientCert> {
        match self {
            CertSource::Fixed(key) => Arc::new(SingleCertAndKey::from(key.clone())),
            CertSource::Workload(identity) => Arc::new(WorkloadResolver(identity.clone())),
        }
    }

    pub fn server_resolver(&self) -> Arc<dyn ResolvesServerCert> {
        match self {
            CertSource::Fixed(key) => Arc::new(SingleCertAndKey::from(key.clone())),
            CertSource::Workload(identity) => Arc::new(WorkloadResolver(identity.clone())),
        }
    }
}

/// Presents the identity's current certificate; none before the first one arrives (the
/// handshake then fails, which is what a context waiting for its secret should do).
#[derive(Debug)]
struct WorkloadResolver(Arc<Identity>);

impl WorkloadResolver {
    fn current(&self) -> Option<Arc<CertifiedKey>> {
        self.0.current().map(|issued| issued.key.clone())
    }
}

impl ResolvesClientCert for WorkloadResolver {
    fn resolve(&self, _: &[&[u8]], _: &[SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        self.current()
    }

    fn has_certs(&self) -> bool {
        true
    }
}

impl ResolvesServerCert for WorkloadResolver {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.current()
    }
}
