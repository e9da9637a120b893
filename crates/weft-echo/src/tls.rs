//! HTTPS for the echo server: a TLS listener that reports the SNI each client sent.

use axum::extract::connect_info::Connected;
use axum::serve::{IncomingStream, Listener};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

/// A client that opens a connection and never finishes the handshake must not stall the
/// listener for long: handshakes run one at a time inside `accept`.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// Accepts TCP connections and completes the TLS handshake before handing them to axum.
pub struct TlsListener {
    tcp: TcpListener,
    acceptor: TlsAcceptor,
}

impl TlsListener {
    /// Serves the PEM certificate chain `cert` with the PEM private key `key`; offers
    /// HTTP/2 and HTTP/1.1 by ALPN, as a real HTTPS server would.
    pub fn new(tcp: TcpListener, cert: &Path, key: &Path) -> std::io::Result<TlsListener> {
        let invalid = |what: &str, e: &dyn std::fmt::Display| {
            std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("{what}: {e}"))
        };
        let chain = CertificateDer::pem_file_iter(cert)
            .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
            .map_err(|e| invalid(&cert.display().to_string(), &e))?;
        let key = PrivateKeyDer::from_pem_file(key)
            .map_err(|e| invalid(&key.display().to_string(), &e))?;
        let mut config = ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .map_err(|e| invalid("certificate and key", &e))?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(TlsListener {
            tcp,
            acceptor: TlsAcceptor::from(Arc::new(config)),
        })
    }
}

impl Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let (tcp, addr) = match self.tcp.accept().await {
                Ok(conn) => conn,
                Err(_) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let handshake = self.acceptor.accept(tcp);
            if let Ok(Ok(tls)) = tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake).await {
                return (tls, addr);
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}

/// Who is on the other end of a connection, for the echoed description.
#[derive(Clone, Debug)]
pub struct Peer {
    pub addr: SocketAddr,
    /// None on plain connections; `Some(sni)` on TLS ones (empty when the client sent none).
    pub tls_sni: Option<String>,
}

impl Connected<IncomingStream<'_, TcpListener>> for Peer {
    fn connect_info(stream: IncomingStream<'_, TcpListener>) -> Peer {
        Peer {
            addr: *stream.remote_addr(),
            tls_sni: None,
        }
    }
}

impl Connected<IncomingStream<'_, TlsListener>> for Peer {
    fn connect_info(stream: IncomingStream<'_, TlsListener>) -> Peer {
        let sni = stream.io().get_ref().1.server_name().unwrap_or_default();
        Peer {
            addr: *stream.remote_addr(),
            tls_sni: Some(sni.to_owned()),
        }
    }
}
