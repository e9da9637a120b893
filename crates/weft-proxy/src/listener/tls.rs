//! Downstream TLS termination (`DownstreamTlsContext` on a filter chain): a rustls server
//! config built from the chain's context and the SDS secrets it names.
//!
//! Like Envoy's listener warming, a chain whose secrets have not arrived yet refuses
//! handshakes (the connection is closed) until a snapshot with them is published; a
//! chain serving the workload certificate (`default`) waits for the CA's first answer.
//! Client certificates are verified against the trusted CA (expired ones and ones from
//! another root are refused, with a log line); the verified client's SPIFFE id is what
//! authorization and telemetry know the peer by.
//!
//! ALPN as Envoy negotiates it: when the client offers none of the chain's protocols
//! (Istio clients offer `istio-peer-exchange`/`istio` to HTTP chains that list `h2` and
//! `http/1.1`), the handshake goes on without ALPN instead of failing as RFC 7301 and
//! rustls would have it.

use crate::cluster::tls::{certificate, provider, trust, used};
use crate::identity::resolver::CertSource;
use crate::identity::verify::SanMatchers;
use crate::model::{DownstreamTls, Secret};
use std::collections::BTreeMap;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::rustls::server::{Acceptor, WebPkiClientVerifier};
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::server::TlsStream;
use tokio_rustls::LazyConfigAcceptor;

/// A filter chain's TLS termination, ready or waiting for its secrets.
#[derive(Debug)]
pub struct Termination {
    /// The context it was built for; chains find theirs by it.
    pub config: DownstreamTls,
    /// The secrets it was built with.
    used: Vec<Arc<Secret>>,
    server: Result<Server, String>,
}

#[derive(Debug)]
struct Server {
    /// With the chain's `alpn_protocols` ...
    config: Arc<ServerConfig>,
    /// ... and without, for clients offering none of them.
    without_alpn: Arc<ServerConfig>,
    certificate: CertSource,
}

impl Termination {
    pub fn new(config: &DownstreamTls, secrets: &BTreeMap<String, Arc<Secret>>) -> Termination {
        let server = server(config, secrets);
        if let Err(e) = &server {
            tracing::info!(error = %e, "downstream TLS context not ready");
        }
        Termination {
            config: config.clone(),
            used: used(config.secret_names(), secrets),
            server,
        }
    }

    /// Whether this was built from `config` and the same secrets (then it can be kept).
    pub fn is_for(&self, config: &DownstreamTls, secrets: &BTreeMap<String, Arc<Secret>>) -> bool {
        self.config == *config && self.used == used(config.secret_names(), secrets)
    }

    /// Whether handshakes are accepted now, or why they are refused.
    pub fn ready(&self) -> Result<(), String> {
        let server = self.server.as_ref().map_err(Clone::clone)?;
        match server.certificate.not_ready() {
            Some(why) => Err(why),
            None => Ok(()),
        }
    }

    /// The SPIFFE id of the certificate this chain presents (Istio's local principal).
    pub fn local_principal(&self) -> Option<Arc<str>> {
        self.server.as_ref().ok()?.certificate.spiffe_id()
    }

    /// The server side of the handshake on `io`; the error says why it failed (a
    /// client certificate that does not verify, no common protocol version, ...).
    pub async fn accept<IO>(&self, io: IO) -> Result<TlsStream<IO>, String>
    where
        IO: AsyncRead + AsyncWrite + Unpin,
    {
        self.ready()?;
        let server = self.server.as_ref().map_err(Clone::clone)?;
        let start = LazyConfigAcceptor::new(Acceptor::default(), io)
            .await
            .map_err(|e| format!("bad ClientHello: {e}"))?;
        let hello = start.client_hello();
        let ours = &server.config.alpn_protocols;
        let overlap = match hello.alpn() {
            None => true,
            Some(mut offered) => ours.is_empty() || offered.any(|p| ours.iter().any(|o| o == p)),
        };
        let config = if overlap {
            server.config.clone()
        } else {
            server.without_alpn.clone()
        };
        start
            .into_stream(config)
            .await
            .map_err(|e| format!("TLS handshake failed: {e}"))
    }
}

fn server(tls: &DownstreamTls, secrets: &BTreeMap<String, Arc<Secret>>) -> Result<Server, String> {
    let provider = provider();
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let builder = match tls.validation.as_ref().and_then(|v| v.trusted_ca.as_ref()) {
        Some(ca) => {
            let (roots, _) = trust(secrets, ca, &SanMatchers::default())?;
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let verifier = if tls.require_client_certificate {
                verifier
            } else {
                // OPTIONAL_MUTUAL: a certificate, when sent, must verify.
                verifier.allow_unauthenticated()
            };
            let verifier = verifier
                .build()
                .map_err(|e| format!("cannot verify clients with this CA: {e}"))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    // Envoy picks among several certificates by SNI and key type; the first one serves
    // every connection here (weftd sends one per chain).
    let first = tls
        .certificates
        .first()
        .ok_or_else(|| "no certificate".to_string())?;
    for name in &tls.certificates {
        certificate(secrets, name)?;
    }
    let source = certificate(secrets, first)?;
    let mut config = builder.with_cert_resolver(source.server_resolver());
    let without_alpn = Arc::new(config.clone());
    config.alpn_protocols = tls.alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
    Ok(Server {
        config: Arc::new(config),
        without_alpn,
        certificate: source,
    })
}
