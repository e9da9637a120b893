//! Upstream TLS origination (`UpstreamTlsContext`): a rustls client config built from the
//! cluster's context and the SDS secrets it names, and the stream type the pools use.
//!
//! Verification follows Envoy, not browsers: the chain is checked against the trusted CA,
//! and the certificate's names only against the SAN matchers (when there are any: DNS
//! names, or URI SANs such as the SPIFFE ids of ISTIO_MUTUAL), never against the SNI
//! ([`crate::identity::verify`]). Without a validation context the server is not verified
//! at all. A secret not received yet makes every connection fail (UF) until it arrives;
//! the secret `default` is the workload's own certificate, read at each handshake.

use crate::identity::resolver::CertSource;
use crate::identity::verify::{PeerVerifier, SanMatchers};
use crate::model::{CaSource, Secret, UpstreamTls};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use std::collections::BTreeMap;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::client::danger::{
    HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier,
};
use tokio_rustls::rustls::client::WebPkiServerVerifier;
use tokio_rustls::rustls::crypto::{ring, verify_tls12_signature, verify_tls13_signature};
use tokio_rustls::rustls::sign::CertifiedKey;
use tokio_rustls::rustls::{
    self, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use tokio_rustls::TlsConnector;

/// The ring provider, shared by both directions.
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(ring::default_provider())
}

/// Certificates of a PEM bundle; an error when there are none.
pub fn certificates(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("bad PEM certificate: {e}"))?;
    if certs.is_empty() {
        return Err("no certificate in PEM data".into());
    }
    Ok(certs)
}

/// A root store of every certificate in `pem`.
pub fn roots(pem: &[u8]) -> Result<RootCertStore, String> {
    let mut store = RootCertStore::empty();
    for cert in certificates(pem)? {
        store
            .add(cert)
            .map_err(|e| format!("bad CA certificate: {e}"))?;
    }
    Ok(store)
}

/// The certificate a context presents, from the secret `name`: a received
/// `tls_certificate`, or the workload's own (`default`, see [`crate::identity`]).
pub fn certificate(
    secrets: &BTreeMap<String, Arc<Secret>>,
    name: &str,
) -> Result<CertSource, String> {
    match secrets.get(name).map(|s| s.as_ref()) {
        Some(Secret::TlsCertificate {
            certificate_chain,
            private_key,
        }) => {
            let key = PrivateKeyDer::from_pem_slice(private_key)
                .map_err(|e| format!("secret {name}: bad private key: {e}"))?;
            let certified =
                CertifiedKey::from_der(certificates(certificate_chain)?, key, &provider())
                    .map_err(|e| format!("secret {name}: {e}"))?;
            Ok(CertSource::Fixed(Arc::new(certified)))
        }
        Some(Secret::Workload(local)) => Ok(CertSource::Workload(local.0.clone())),
        Some(Secret::ValidationContext { .. }) => {
            Err(format!("secret {name} is not a tls_certificate"))
        }
        None if crate::identity::is_local_secret(name) => Err(format!(
            "secret {name}: this proxy has no workload identity (no bootstrap token given)"
        )),
        None => Err(format!("secret {name} not received yet")),
    }
}

/// A validation context's CA and SAN matchers, from the context and its secret.
pub fn trust(
    secrets: &BTreeMap<String, Arc<Secret>>,
    ca: &CaSource,
    matchers: &SanMatchers,
) -> Result<(RootCertStore, SanMatchers), String> {
    let mut sans = matchers.clone();
    let pem = match ca {
        CaSource::Pem(pem) => pem.clone(),
        CaSource::Sds(name) => match secrets.get(name).map(|s| s.as_ref()) {
            Some(Secret::ValidationContext {
                trusted_ca,
                dns_sans,
            }) => {
                sans.dns.extend(dns_sans.iter().cloned());
                trusted_ca.clone()
            }
            Some(_) => return Err(format!("secret {name} is not a validation_context")),
            None => return Err(format!("secret {name} not received yet")),
        },
    };
    Ok((roots(&pem)?, sans))
}

/// One TLS context a cluster originates with, and the secrets it was built from.
#[derive(Debug)]
pub struct TlsContext {
    config: UpstreamTls,
    /// The secrets it used, so that a change to one rebuilds the pool.
    used: Vec<Arc<Secret>>,
    /// The connector, or why there is none yet (a missing secret, unusable PEM).
    connector: Result<Arc<ClientConfig>, String>,
    /// The client certificate's source, to tell whether the workload's is there yet.
    client_cert: Option<CertSource>,
}

impl PartialEq for TlsContext {
    fn eq(&self, other: &Self) -> bool {
        self.config == other.config && self.used == other.used
    }
}

impl TlsContext {
    /// Whether this was built from `config` and the same secrets (then it can be kept).
    pub fn is_for(&self, config: &UpstreamTls, secrets: &BTreeMap<String, Arc<Secret>>) -> bool {
        self.config == *config && self.used == used(config.secret_names(), secrets)
    }

    pub fn new(config: &UpstreamTls, secrets: &BTreeMap<String, Arc<Secret>>) -> TlsContext {
        let used = used(config.secret_names(), secrets);
        let client_cert = config
            .certificate
            .as_ref()
            .and_then(|name| certificate(secrets, name).ok());
        let connector = client_config(config, secrets, client_cert.as_ref()).map(Arc::new);
        if let Err(e) = &connector {
            tracing::info!(error = %e, "upstream TLS context not ready");
        }
        TlsContext {
            config: config.clone(),
            used,
            connector,
            client_cert,
        }
    }

    /// The SPIFFE id of the client certificate this context presents, if any.
    pub fn local_principal(&self) -> Option<Arc<str>> {
        self.client_cert.as_ref()?.spiffe_id()
    }

    /// The TLS handshake over `tcp` to `host` (an IP or name, used as the server name
    /// when the context has no SNI; rustls sends no SNI for an IP).
    pub async fn connect(&self, host: &str, tcp: TcpStream) -> Result<Stream, String> {
        let connector = TlsConnector::from(self.connector.clone()?);
        if let Some(why) = self.client_cert.as_ref().and_then(CertSource::not_ready) {
            return Err(why);
        }
        let name = if self.config.sni.is_empty() {
            host
        } else {
            &self.config.sni
        };
        let server_name = ServerName::try_from(name.to_string())
            .map_err(|e| format!("bad server name {name}: {e}"))?;
        let tls = connector.connect(server_name, tcp).await.map_err(|e| {
            let e = handshake_error(&e);
            // The peer's certificate failing verification (expired, another root, an
            // unexpected identity) is worth an operator's attention; say which.
            tracing::warn!(host, sni = %self.config.sni, error = %e, "upstream TLS handshake failed");
            format!("TLS handshake failed: {e}")
        })?;
        Ok(Stream::Tls(Box::new(tls)))
    }
}

/// A handshake error as an operator reads it: rustls' own message, with the reason of a
/// custom verification failure (SAN mismatch) in words rather than debug output.
pub fn handshake_error(e: &io::Error) -> String {
    match e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        Some(rustls::Error::InvalidCertificate(rustls::CertificateError::Other(other))) => {
            format!("invalid peer certificate: {}", other.0)
        }
        _ => e.to_string(),
    }
}

/// The secrets `names` resolve to now.
pub fn used<'a>(
    names: impl Iterator<Item = &'a String>,
    secrets: &BTreeMap<String, Arc<Secret>>,
) -> Vec<Arc<Secret>> {
    names.filter_map(|n| secrets.get(n).cloned()).collect()
}

fn client_config(
    tls: &UpstreamTls,
    secrets: &BTreeMap<String, Arc<Secret>>,
    client_cert: Option<&CertSource>,
) -> Result<ClientConfig, String> {
    let provider = provider();
    let verifier: Arc<dyn ServerCertVerifier> = match &tls.validation {
        None => Arc::new(Unverified(provider.clone())),
        Some(v) => match &v.trusted_ca {
            None => Arc::new(Unverified(provider.clone())),
            Some(ca) => {
                let matchers = SanMatchers {
                    dns: v.dns_sans.clone(),
                    uri: v.uri_sans.clone(),
                };
                let (roots, sans) = trust(secrets, ca, &matchers)?;
                let inner =
                    WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                        .build()
                        .map_err(|e| format!("cannot verify with this CA: {e}"))?;
                Arc::new(PeerVerifier::new(inner, sans))
            }
        },
    };
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let mut config = match (&tls.certificate, client_cert) {
        (Some(_), Some(source)) => builder.with_client_cert_resolver(source.client_resolver()),
        // Not usable: `certificate` says why.
        (Some(name), None) => return Err(certificate(secrets, name).err().unwrap_or_default()),
        (None, _) => builder.with_no_client_auth(),
    };
    config.alpn_protocols = tls.alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
    config.enable_sni = !tls.sni.is_empty();
    Ok(config)
}

/// No validation context: any certificate, as Envoy does; handshake signatures are still
/// checked (they prove the peer holds the key of the certificate it sent).
#[derive(Debug)]
struct Unverified(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for Unverified {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// An upstream connection: plaintext or TLS.
#[derive(Debug)]
pub enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

#[path = "tls_sockets.rs"]
mod sockets;
pub use sockets::Origination;

#[cfg(test)]
#[path = "tls_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "tls_spiffe_tests.rs"]
mod spiffe_tests;
