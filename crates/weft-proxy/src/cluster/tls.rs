//! Upstream TLS origination (`UpstreamTlsContext`): a rustls client config built from the
//! cluster's context and the SDS secrets it names, and the stream type the pools use.
//!
//! Verification follows Envoy, not browsers: the chain is checked against the trusted CA,
//! and the certificate's names only against the SAN matchers (when there are any), never
//! against the SNI. Without a validation context the server is not verified at all. A
//! secret not received yet makes every connection fail (UF) until it arrives.

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
use tokio_rustls::rustls::{
    self, CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
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

/// A `TlsCertificate` secret's chain and key.
pub fn key_pair(
    secrets: &BTreeMap<String, Arc<Secret>>,
    name: &str,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), String> {
    match secrets.get(name).map(|s| s.as_ref()) {
        Some(Secret::TlsCertificate {
            certificate_chain,
            private_key,
        }) => Ok((
            certificates(certificate_chain)?,
            PrivateKeyDer::from_pem_slice(private_key)
                .map_err(|e| format!("secret {name}: bad private key: {e}"))?,
        )),
        Some(_) => Err(format!("secret {name} is not a tls_certificate")),
        None => Err(format!("secret {name} not received yet")),
    }
}

/// A validation context's CA (PEM) and SAN matchers, from the context and its secret.
pub fn trust(
    secrets: &BTreeMap<String, Arc<Secret>>,
    ca: &CaSource,
    dns_sans: &[String],
) -> Result<(RootCertStore, Vec<String>), String> {
    let mut sans = dns_sans.to_vec();
    let pem = match ca {
        CaSource::Pem(pem) => pem.clone(),
        CaSource::Sds(name) => match secrets.get(name).map(|s| s.as_ref()) {
            Some(Secret::ValidationContext {
                trusted_ca,
                dns_sans,
            }) => {
                sans.extend(dns_sans.iter().cloned());
                trusted_ca.clone()
            }
            Some(_) => return Err(format!("secret {name} is not a validation_context")),
            None => return Err(format!("secret {name} not received yet")),
        },
    };
    Ok((roots(&pem)?, sans))
}

/// A cluster's TLS origination with the secrets it was built from.
#[derive(Debug)]
pub struct Origination {
    config: UpstreamTls,
    /// The secrets it used, so that a change to one rebuilds the pool.
    used: Vec<Arc<Secret>>,
    /// The connector, or why there is none yet (a missing secret, unusable PEM).
    connector: Result<Arc<ClientConfig>, String>,
}

impl PartialEq for Origination {
    fn eq(&self, other: &Self) -> bool {
        self.config == other.config && self.used == other.used
    }
}

impl Origination {
    /// Whether this was built from `config` and the same secrets (then it can be kept).
    pub fn is_for(&self, config: &UpstreamTls, secrets: &BTreeMap<String, Arc<Secret>>) -> bool {
        self.config == *config && self.used == used(config.secret_names(), secrets)
    }

    pub fn new(config: &UpstreamTls, secrets: &BTreeMap<String, Arc<Secret>>) -> Origination {
        let used = used(config.secret_names(), secrets);
        let connector = client_config(config, secrets).map(Arc::new);
        if let Err(e) = &connector {
            tracing::info!(error = %e, "upstream TLS context not ready");
        }
        Origination {
            config: config.clone(),
            used,
            connector,
        }
    }

    /// The TLS handshake over `tcp` to `host` (an IP or name, used as the server name
    /// when the context has no SNI; rustls sends no SNI for an IP).
    pub async fn connect(&self, host: &str, tcp: TcpStream) -> Result<Stream, String> {
        let connector = TlsConnector::from(self.connector.clone()?);
        let name = if self.config.sni.is_empty() {
            host
        } else {
            &self.config.sni
        };
        let name = ServerName::try_from(name.to_string())
            .map_err(|e| format!("bad server name {name}: {e}"))?;
        let tls = connector
            .connect(name, tcp)
            .await
            .map_err(|e| format!("TLS handshake failed: {e}"))?;
        Ok(Stream::Tls(Box::new(tls)))
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
) -> Result<ClientConfig, String> {
    let provider = provider();
    let verifier: Arc<dyn ServerCertVerifier> = match &tls.validation {
        None => Arc::new(Unverified(provider.clone())),
        Some(v) => match &v.trusted_ca {
            None => Arc::new(Unverified(provider.clone())),
            Some(ca) => {
                let (roots, sans) = trust(secrets, ca, &v.dns_sans)?;
                let inner =
                    WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                        .build()
                        .map_err(|e| format!("cannot verify with this CA: {e}"))?;
                Arc::new(EnvoyVerifier { inner, sans })
            }
        },
    };
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let mut config = match &tls.certificate {
        Some(name) => {
            let (chain, key) = key_pair(secrets, name)?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| format!("secret {name}: {e}"))?
        }
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = tls.alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
    config.enable_sni = !tls.sni.is_empty();
    Ok(config)
}

fn name_mismatch(e: &rustls::Error) -> bool {
    matches!(
        e,
        rustls::Error::InvalidCertificate(
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. }
        )
    )
}

/// The chain against the CA; names only against the SAN matchers.
#[derive(Debug)]
struct EnvoyVerifier {
    inner: Arc<WebPkiServerVerifier>,
    sans: Vec<String>,
}

impl ServerCertVerifier for EnvoyVerifier {
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
        if self.sans.is_empty() {
            return match verify(server_name) {
                Err(e) if name_mismatch(&e) => Ok(ServerCertVerified::assertion()),
                other => other,
            };
        }
        let mut last = rustls::Error::InvalidCertificate(CertificateError::NotValidForName);
        for san in &self.sans {
            let Ok(name) = ServerName::try_from(san.as_str()) else {
                continue;
            };
            match verify(&name) {
                Ok(v) => return Ok(v),
                Err(e) => last = e,
            }
        }
        Err(last)
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

#[cfg(test)]
#[path = "tls_tests.rs"]
mod tests;
