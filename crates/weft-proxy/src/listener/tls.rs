//! Downstream TLS termination (`DownstreamTlsContext` on a filter chain): a rustls server
//! config built from the chain's context and the SDS secrets it names.
//!
//! Like Envoy's listener warming, a chain whose secrets have not arrived yet refuses
//! handshakes (the connection is closed) until a snapshot with them is published.

use crate::cluster::tls::{key_pair, provider, trust, used};
use crate::model::{DownstreamTls, Secret};
use std::collections::BTreeMap;
use std::sync::Arc;
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::TlsAcceptor;

/// A filter chain's TLS termination, ready or waiting for its secrets.
#[derive(Debug)]
pub struct Termination {
    /// The context it was built for; chains find theirs by it.
    pub config: DownstreamTls,
    /// The secrets it was built with.
    used: Vec<Arc<Secret>>,
    acceptor: Result<Arc<ServerConfig>, String>,
}

impl Termination {
    pub fn new(config: &DownstreamTls, secrets: &BTreeMap<String, Arc<Secret>>) -> Termination {
        let acceptor = server_config(config, secrets).map(Arc::new);
        if let Err(e) = &acceptor {
            tracing::info!(error = %e, "downstream TLS context not ready");
        }
        Termination {
            config: config.clone(),
            used: used(config.secret_names(), secrets),
            acceptor,
        }
    }

    /// Whether this was built from `config` and the same secrets (then it can be kept).
    pub fn is_for(&self, config: &DownstreamTls, secrets: &BTreeMap<String, Arc<Secret>>) -> bool {
        self.config == *config && self.used == used(config.secret_names(), secrets)
    }

    /// The acceptor, or why handshakes are refused.
    pub fn acceptor(&self) -> Result<TlsAcceptor, &str> {
        match &self.acceptor {
            Ok(config) => Ok(TlsAcceptor::from(config.clone())),
            Err(why) => Err(why),
        }
    }
}

fn server_config(
    tls: &DownstreamTls,
    secrets: &BTreeMap<String, Arc<Secret>>,
) -> Result<ServerConfig, String> {
    let provider = provider();
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let builder = match tls.validation.as_ref().and_then(|v| v.trusted_ca.as_ref()) {
        Some(ca) => {
            let (roots, _) = trust(secrets, ca, &[])?;
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
        key_pair(secrets, name)?;
    }
    let (chain, key) = key_pair(secrets, first)?;
    let mut config = builder
        .with_single_cert(chain, key)
        .map_err(|e| format!("secret {first}: {e}"))?;
    config.alpn_protocols = tls.alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
    Ok(config)
}
