//! `x-forwarded-client-cert` (XFCC): the connection manager's `forward_client_cert_details`
//! and `set_current_client_cert_details`, with Envoy's semantics. A mutual-TLS connection's
//! peer certificate becomes one header element (`By=…;Hash=…;Cert="…";Chain="…";
//! Subject="…";URI=…;DNS=…`, keys in that order) that is appended to, or replaces, what the
//! client sent; other connections lose the header unless it is forwarded as it came.

use crate::xds::convert::{at, invalid, Result};
use base64::Engine;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    http_connection_manager::ForwardClientCertDetails as ForwardProto,
    HttpConnectionManager as HcmProto,
};
use http::header::{HeaderMap, HeaderName, HeaderValue};
use rustls_pki_types::CertificateDer;
use serde::Serialize;
use std::fmt::Write as _;
use std::sync::OnceLock;
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate, X509Name};

pub static XFCC: HeaderName = HeaderName::from_static("x-forwarded-client-cert");

/// `forward_client_cert_details`: what happens to the client's header.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ForwardClientCert {
    /// Envoy's default: the header never reaches the next hop.
    #[default]
    Sanitize,
    /// Kept as it came on mutual TLS, removed otherwise.
    ForwardOnly,
    /// On mutual TLS the current peer is appended, otherwise removed (Istio's sidecar inbound).
    AppendForward,
    /// On mutual TLS replaced by the current peer, otherwise removed (Istio's gateways).
    SanitizeSet,
    /// Kept as it came, whatever the connection.
    AlwaysForwardOnly,
}

/// `set_current_client_cert_details`: which facts of the peer certificate the element holds
/// besides `By` and `Hash` (which are always there).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct CurrentClientCertDetails {
    pub subject: bool,
    pub cert: bool,
    pub chain: bool,
    pub dns: bool,
    pub uri: bool,
}

/// The connection manager's XFCC configuration.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ClientCertConfig {
    pub forward: ForwardClientCert,
    pub details: CurrentClientCertDetails,
}

/// Reads the two fields of an `HttpConnectionManager` (`field` names it, for errors).
pub(crate) fn from_hcm(field: &str, h: &HcmProto) -> Result<ClientCertConfig> {
    let forward = match ForwardProto::try_from(h.forward_client_cert_details) {
        Ok(ForwardProto::Sanitize) => ForwardClientCert::Sanitize,
        Ok(ForwardProto::ForwardOnly) => ForwardClientCert::ForwardOnly,
        Ok(ForwardProto::AppendForward) => ForwardClientCert::AppendForward,
        Ok(ForwardProto::SanitizeSet) => ForwardClientCert::SanitizeSet,
        Ok(ForwardProto::AlwaysForwardOnly) => ForwardClientCert::AlwaysForwardOnly,
        Err(_) => {
            return Err(invalid(
                at(field, "forward_client_cert_details"),
                format!("unknown value {}", h.forward_client_cert_details),
            ))
        }
    };
    let details = h
        .set_current_client_cert_details
        .as_ref()
        .map(|d| CurrentClientCertDetails {
            subject: d.subject.as_ref().is_some_and(|s| s.value),
            cert: d.cert,
            chain: d.chain,
            dns: d.dns,
            uri: d.uri,
        })
        .unwrap_or_default();
    Ok(ClientCertConfig { forward, details })
}

/// The certificate chain a downstream peer presented (leaf first), with the facts XFCC
/// needs worked out once per connection, on the first request that asks.
pub struct PeerCertificate {
    chain: Vec<CertificateDer<'static>>,
    facts: OnceLock<Facts>,
}

#[derive(Default)]
struct Facts {
    hash: String,
    subject: String,
    uris: Vec<String>,
    dns: Vec<String>,
}

impl PeerCertificate {
    /// The chain of a TLS connection's peer, if it presented one.
    pub fn of(conn: &tokio_rustls::rustls::CommonState) -> Option<PeerCertificate> {
        let chain = conn.peer_certificates()?;
        (!chain.is_empty()).then(|| PeerCertificate::new(chain.to_vec()))
    }

    pub fn new(chain: Vec<CertificateDer<'static>>) -> PeerCertificate {
        PeerCertificate {
            chain,
            facts: OnceLock::new(),
        }
    }

    fn facts(&self) -> &Facts {
        self.facts.get_or_init(|| {
            let leaf = self.chain[0].as_ref();
            let mut facts = Facts {
                hash: hex(ring::digest::digest(&ring::digest::SHA256, leaf).as_ref()),
                ..Facts::default()
            };
            if let Ok((_, cert)) = X509Certificate::from_der(leaf) {
                facts.subject = rfc2253(cert.subject());
                if let Ok(Some(san)) = cert.subject_alternative_name() {
                    for name in &san.value.general_names {
                        match name {
                            GeneralName::URI(u) => facts.uris.push(u.to_string()),
                            GeneralName::DNSName(d) => facts.dns.push(d.to_string()),
                            _ => {}
                        }
                    }
                }
            }
            facts
        })
    }
}

impl std::fmt::Debug for PeerCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerCertificate")
            .field("certificates", &self.chain.len())
            .finish()
    }
}

impl PartialEq for PeerCertificate {
    fn eq(&self, other: &Self) -> bool {
        self.chain == other.chain
    }
}

impl Eq for PeerCertificate {}

/// Applies `config` to a request's headers, as Envoy's connection manager does before the
/// HTTP filters run. `peer` is the connection's peer certificate (mutual TLS only) and
/// `local` the URI SAN of the certificate this proxy presented (`By`).
pub fn mutate_request(
    headers: &mut HeaderMap,
    config: ClientCertConfig,
    peer: Option<&PeerCertificate>,
    local: Option<&str>,
) {
    let peer = match (config.forward, peer) {
        (ForwardClientCert::AlwaysForwardOnly, _) => return,
        (ForwardClientCert::Sanitize, _) | (_, None) => {
            headers.remove(&XFCC);
            return;
        }
        (ForwardClientCert::ForwardOnly, Some(_)) => return,
        (_, Some(peer)) => peer,
    };
    let element = element(config.details, peer, local);
    let value = match config.forward {
        ForwardClientCert::AppendForward => {
            let before: Vec<&str> = headers
                .get_all(&XFCC)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .filter(|v| !v.is_empty())
                .collect();
            if before.is_empty() {
                element
            } else {
                format!("{},{element}", before.join(","))
            }
        }
        _ => element,
    };
    match HeaderValue::try_from(value) {
        Ok(v) => {
            headers.insert(XFCC.clone(), v);
        }
        // A SAN with bytes a header cannot carry: nothing trustworthy to forward.
        Err(_) => {
            headers.remove(&XFCC);
        }
    }
}

/// The current peer's element, keys in Envoy's order.
fn element(
    details: CurrentClientCertDetails,
    peer: &PeerCertificate,
    local: Option<&str>,
) -> String {
    let facts = peer.facts();
    let mut parts: Vec<String> = Vec::with_capacity(6);
    if let Some(by) = local {
        parts.push(format!("By={by}"));
    }
    parts.push(format!("Hash={}", facts.hash));
    if details.cert {
        parts.push(format!(
            "Cert=\"{}\"",
            url_encode(&certificate_pem(&peer.chain[0]))
        ));
    }
    if details.chain {
        let chain: String = peer.chain.iter().map(|c| certificate_pem(c)).collect();
        parts.push(format!("Chain=\"{}\"", url_encode(&chain)));
    }
    if details.subject {
        // The key is there even when the subject is empty (Istio's workload certificates).
        parts.push(format!("Subject=\"{}\"", facts.subject));
    }
    if details.uri {
        if facts.uris.is_empty() {
            parts.push("URI=".to_string());
        }
        parts.extend(facts.uris.iter().map(|u| format!("URI={u}")));
    }
    if details.dns {
        parts.extend(facts.dns.iter().map(|d| format!("DNS={d}")));
    }
    parts.join(";")
}

/// One certificate as PEM, 64 base64 characters a line, as OpenSSL writes it.
pub(crate) fn certificate_pem(der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = String::with_capacity(b64.len() + b64.len() / 64 + 60);
    out.push_str("-----BEGIN CERTIFICATE-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap_or_default());
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

/// Percent-encodes all but RFC 3986's unreserved characters, uppercase hex (Envoy's
/// `PercentEncoding::urlEncode`).
fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 2);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// A distinguished name as RFC 2253 text (OpenSSL's `XN_FLAG_RFC2253`, which Envoy uses):
/// last RDN first, `,` between RDNs, `+` inside one, short attribute names.
fn rfc2253(name: &X509Name<'_>) -> String {
    let registry = x509_parser::objects::oid_registry();
    let mut out = String::new();
    let rdns: Vec<_> = name.iter().collect();
    for (i, rdn) in rdns.into_iter().rev().enumerate() {
        if i > 0 {
            out.push(',');
        }
        for (j, attr) in rdn.iter().enumerate() {
            if j > 0 {
                out.push('+');
            }
            match x509_parser::objects::oid2abbrev(attr.attr_type(), registry) {
                Ok(short) => out.push_str(short),
                Err(_) => out.push_str(&attr.attr_type().to_id_string()),
            }
            out.push('=');
            match attr.as_str() {
                Ok(v) => escape_2253(&mut out, v),
                // Values that are not strings are dumped as hex DER, as OpenSSL does.
                Err(_) => {
                    out.push('#');
                    out.push_str(&hex(attr.attr_value().data));
                }
            }
        }
    }
    out
}

/// Lowercase hex, as Envoy prints digests.
fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

fn escape_2253(out: &mut String, v: &str) {
    let last = v.len().saturating_sub(1);
    for (i, b) in v.bytes().enumerate() {
        let special = matches!(b, b',' | b'+' | b'"' | b'\\' | b'<' | b'>' | b';')
            || (i == 0 && (b == b'#' || b == b' '))
            || (i == last && b == b' ');
        if !(0x20..0x7f).contains(&b) {
            let _ = write!(out, "\\{b:02X}");
        } else if special {
            out.push('\\');
            out.push(b as char);
        } else {
            out.push(b as char);
        }
    }
}

#[cfg(test)]
#[path = "xfcc_tests.rs"]
mod tests;
