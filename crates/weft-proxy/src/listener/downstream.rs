//! What the proxy knows about a downstream connection once its filter chain is chosen and
//! TLS (if any) is terminated: what HTTP filters, authorization and telemetry read.

use std::net::SocketAddr;

/// Facts of one downstream connection, shared by every request on it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Downstream {
    /// The client's address (`source.ip`, x-forwarded-for, source-IP hashing).
    pub remote: Option<SocketAddr>,
    /// The socket's local address.
    pub local: Option<SocketAddr>,
    /// The original destination (SO_ORIGINAL_DST) when the listener restored it: where
    /// ORIGINAL_DST clusters connect.
    pub original_dst: Option<SocketAddr>,
    /// SNI the client sent (`connection.sni`, `requestedServerName`).
    pub server_name: Option<String>,
    /// Whether the connection was TLS-terminated here.
    pub tls: bool,
    /// The verified client certificate's URI SAN (`spiffe://td/ns/NS/sa/SA`) when the
    /// connection is mutual TLS: Envoy's `authenticated.principal_name`, Istio's
    /// `source.principal` (without the scheme).
    pub peer_principal: Option<std::sync::Arc<str>>,
    /// The SPIFFE id of the certificate this proxy presented on the connection (Istio's
    /// local principal, `destination_principal` of inbound metrics).
    pub local_principal: Option<std::sync::Arc<str>>,
    /// The certificate chain the peer presented on mutual TLS (x-forwarded-client-cert).
    pub peer_certificate: Option<std::sync::Arc<crate::http::xfcc::PeerCertificate>>,
    /// The listener that accepted the connection (empty when unknown): an update of it
    /// drains the connection, as Envoy drains the connections of a replaced listener.
    pub listener: String,
    /// The listener's accepted config as of the snapshot that picked it for this
    /// connection: the drain compares against it, so an update that lands while the
    /// connection is still in its TLS handshake is not missed.
    pub listener_config: Option<std::sync::Arc<crate::xds::store::Accepted>>,
}

impl Downstream {
    /// A connection known only by its client's address (tests, plain listeners).
    pub fn from_remote(remote: Option<SocketAddr>) -> Downstream {
        Downstream {
            remote,
            ..Downstream::default()
        }
    }

    /// What the connection's TLS handshake proved, for Istio's principal labels.
    pub fn security(&self) -> crate::telemetry::labels::Security {
        crate::telemetry::labels::Security {
            peer: self.peer_principal.clone(),
            own: self.local_principal.clone(),
        }
    }

    /// Where the connection was going: the original destination, else the local address.
    pub fn destination(&self) -> Option<SocketAddr> {
        self.original_dst.or(self.local)
    }
}
