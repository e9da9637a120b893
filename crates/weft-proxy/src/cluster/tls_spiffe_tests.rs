//! Istio mutual TLS between [`Origination`] and [`Termination`] with workload
//! certificates from an in-process CA: SPIFFE URI SANs verified, the peer's identity
//! read, expired certificates and foreign roots refused, a renewal used by the next
//! handshake while open connections go on.

use super::*;
use crate::identity::test_ca::TestCa;
use crate::identity::{with_local_secrets, Identity};
use crate::listener::tls::Termination;
use crate::model::{DownstreamTls, Validation};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use weft_ca_api::SpiffeId;

const REVIEWS: &str = "spiffe://cluster.local/ns/default/sa/reviews";
const PRODUCTPAGE: &str = "spiffe://cluster.local/ns/default/sa/productpage";

/// The proxy's secrets: its own certificate (`default`) and the mesh root (`ROOTCA`).
fn secrets(identity: &Arc<Identity>, trusted: &TestCa) -> BTreeMap<String, Arc<Secret>> {
    let mut s = with_local_secrets(&BTreeMap::new(), Some(identity));
    s.insert(
        "ROOTCA".into(),
        Arc::new(Secret::ValidationContext {
            trusted_ca: trusted.root_pem.as_bytes().to_vec(),
            dns_sans: Vec::new(),
        }),
    );
    s
}

fn rootca(uri_sans: &[&str]) -> Option<Validation> {
    Some(Validation {
        trusted_ca: Some(CaSource::Sds("ROOTCA".into())),
        dns_sans: Vec::new(),
        uri_sans: uri_sans.iter().map(|s| s.to_string()).collect(),
    })
}

/// An inbound chain of a STRICT PeerAuthentication, as Istio builds it for HTTP.
fn inbound() -> DownstreamTls {
    DownstreamTls {
        certificates: vec!["default".into()],
        validation: rootca(&[]),
        require_client_certificate: true,
        alpn: vec!["h2".into(), "http/1.1".into()],
    }
}

/// An ISTIO_MUTUAL cluster expecting `peers`.
fn outbound(peers: &[&str]) -> UpstreamTls {
    UpstreamTls {
        sni: "outbound_.9080_._.reviews.default.svc.cluster.local".into(),
        certificate: Some("default".into()),
        validation: rootca(peers),
        alpn: vec!["istio-peer-exchange".into(), "istio".into()],
    }
}

/// What the server saw of one connection.
#[derive(Debug)]
struct Accepted {
    peer: Option<String>,
    alpn: Option<Vec<u8>>,
}

/// Accepts connections until dropped; each echoes what it reads until EOF. Reports each
/// handshake's outcome.
async fn server(
    termination: Termination,
) -> (
    std::net::SocketAddr,
    mpsc::UnboundedReceiver<Result<Accepted, String>>,
) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    let termination = Arc::new(termination);
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let (termination, tx) = (termination.clone(), tx.clone());
            tokio::spawn(async move {
                let mut tls = match termination.accept(tcp).await {
                    Ok(tls) => tls,
                    Err(e) => return drop(tx.send(Err(e))),
                };
                let conn = tls.get_ref().1;
                let _ = tx.send(Ok(Accepted {
                    peer: crate::identity::verify::peer_spiffe_id(conn),
                    alpn: conn.alpn_protocol().map(<[u8]>::to_vec),
                }));
                let mut buf = [0u8; 64];
                while let Ok(n) = tls.read(&mut buf).await {
                    if n == 0 || tls.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    (addr, rx)
}

async fn connect(o: &Origination, addr: std::net::SocketAddr) -> Result<Stream, String> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    o.connect("127.0.0.1", tcp).await
}

/// One line there and back on an open connection.
async fn echo(s: &mut Stream, line: &[u8]) -> Result<Vec<u8>, String> {
    s.write_all(line).await.map_err(|e| e.to_string())?;
    let mut buf = vec![0; line.len()];
    s.read_exact(&mut buf).await.map_err(|e| e.to_string())?;
    Ok(buf)
}

fn peer_serial(s: &Stream) -> String {
    let Stream::Tls(tls) = s else {
        panic!("not TLS")
    };
    let der = &tls.get_ref().1.peer_certificates().unwrap()[0];
    use x509_parser::prelude::FromDer;
    let (_, cert) = x509_parser::certificate::X509Certificate::from_der(der).unwrap();
    cert.raw_serial_as_string()
}

#[tokio::test]
async fn istio_mutual_verifies_spiffe_ids_both_ways() {
    let ca = TestCa::new("mesh");
    let (reviews, productpage) = (
        ca.identity("default", "reviews"),
        ca.identity("default", "productpage"),
    );
    let (addr, mut seen) = server(Termination::new(&inbound(), &secrets(&reviews, &ca))).await;
    let client = Origination::new(&outbound(&[REVIEWS]), &secrets(&productpage, &ca));
    let mut s = connect(&client, addr).await.unwrap();
    assert_eq!(echo(&mut s, b"hello").await.unwrap(), b"hello");
    let accepted = seen.recv().await.unwrap().unwrap();
    assert_eq!(accepted.peer.as_deref(), Some(PRODUCTPAGE));
    // The client offered only Istio's protocols, the chain only h2/http1.1: Envoy goes on
    // without ALPN rather than failing, and so does weft-proxy.
    assert_eq!(accepted.alpn, None);
}

#[tokio::test]
async fn an_unexpected_identity_is_refused() {
    let ca = TestCa::new("mesh");
    let reviews = ca.identity("default", "reviews");
    let (addr, _seen) = server(Termination::new(&inbound(), &secrets(&reviews, &ca))).await;
    let client = Origination::new(
        &outbound(&["spiffe://cluster.local/ns/default/sa/ratings"]),
        &secrets(&ca.identity("default", "productpage"), &ca),
    );
    let err = connect(&client, addr).await.unwrap_err();
    assert!(
        err.contains(REVIEWS) && err.contains("match none of the expected"),
        "{err}"
    );
}

#[tokio::test]
async fn an_expired_server_certificate_is_refused() {
    let ca = TestCa::new("mesh");
    let id = SpiffeId::parse(REVIEWS).unwrap();
    let reviews = Identity::new(id.clone());
    reviews.install(ca.issue_between(&id, -time::Duration::hours(2), -time::Duration::hours(1)));
    let (addr, _seen) = server(Termination::new(&inbound(), &secrets(&reviews, &ca))).await;
    let client = Origination::new(
        &outbound(&[REVIEWS]),
        &secrets(&ca.identity("default", "productpage"), &ca),
    );
    let err = connect(&client, addr).await.unwrap_err();
    assert!(err.contains("expired"), "{err}");
}

#[tokio::test]
async fn a_server_certificate_from_another_root_is_refused() {
    let (ca, other) = (TestCa::new("mesh"), TestCa::new("elsewhere"));
    // The server's certificate comes from another CA; the client trusts only the mesh's.
    let reviews = other.identity("default", "reviews");
    let (addr, _seen) = server(Termination::new(&inbound(), &secrets(&reviews, &other))).await;
    let client = Origination::new(
        &outbound(&[REVIEWS]),
        &secrets(&ca.identity("default", "productpage"), &ca),
    );
    let err = connect(&client, addr).await.unwrap_err();
    assert!(err.contains("UnknownIssuer"), "{err}");
}

/// A client certificate the server refuses: the error the server reports.
async fn server_refusal(client_identity: Arc<Identity>, server_ca: &TestCa) -> String {
    let reviews = server_ca.identity("default", "reviews");
    let (addr, mut seen) =
        server(Termination::new(&inbound(), &secrets(&reviews, server_ca))).await;
    // The client trusts the server's root; only its own certificate is wrong.
    let client = Origination::new(&outbound(&[REVIEWS]), &secrets(&client_identity, server_ca));
    // TLS 1.3: the client may finish before the server refuses; the first read fails.
    if let Ok(mut s) = connect(&client, addr).await {
        assert!(echo(&mut s, b"hello").await.is_err());
    }
    seen.recv().await.unwrap().unwrap_err()
}

#[tokio::test]
async fn expired_client_certificates_and_foreign_roots_are_refused_inbound() {
    let ca = TestCa::new("mesh");
    let id = SpiffeId::parse(PRODUCTPAGE).unwrap();
    let expired = Identity::new(id.clone());
    expired.install(ca.issue_between(&id, -time::Duration::hours(2), -time::Duration::hours(1)));
    let err = server_refusal(expired, &ca).await;
    assert!(err.contains("expired"), "{err}");
    let foreign = TestCa::new("elsewhere").identity("default", "productpage");
    let err = server_refusal(foreign, &ca).await;
    assert!(err.contains("UnknownIssuer"), "{err}");
}

#[tokio::test]
async fn a_renewed_certificate_serves_new_handshakes_while_open_connections_go_on() {
    let ca = TestCa::new("mesh");
    let reviews = ca.identity("default", "reviews");
    let termination = Termination::new(&inbound(), &secrets(&reviews, &ca));
    let (addr, _seen) = server(termination).await;
    let client = Origination::new(
        &outbound(&[REVIEWS]),
        &secrets(&ca.identity("default", "productpage"), &ca),
    );
    let mut before = connect(&client, addr).await.unwrap();
    assert_eq!(echo(&mut before, b"one").await.unwrap(), b"one");
    let first = peer_serial(&before);

    let id = reviews.id().clone();
    reviews.install(ca.issue(&id, std::time::Duration::from_secs(3600)));

    // The same Termination (no rebuild) presents the new certificate to a new session
    // (a fresh client: the first one would resume its session, certificate included) ...
    let fresh = Origination::new(
        &outbound(&[REVIEWS]),
        &secrets(&ca.identity("default", "productpage"), &ca),
    );
    let mut after = connect(&fresh, addr).await.unwrap();
    assert_eq!(echo(&mut after, b"two").await.unwrap(), b"two");
    assert_ne!(peer_serial(&after), first);
    // ... and the connection opened before keeps working.
    assert_eq!(echo(&mut before, b"three").await.unwrap(), b"three");
}

#[tokio::test]
async fn contexts_needing_the_workload_certificate_wait_for_it() {
    let ca = TestCa::new("mesh");
    let pending = Identity::new(SpiffeId::parse(REVIEWS).unwrap());
    let termination = Termination::new(&inbound(), &secrets(&pending, &ca));
    let why = termination.ready().unwrap_err();
    assert!(why.contains("no workload certificate"), "{why}");
    let origination = Origination::new(&outbound(&[PRODUCTPAGE]), &secrets(&pending, &ca));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let err = connect(&origination, listener.local_addr().unwrap())
        .await
        .unwrap_err();
    assert!(err.contains("no workload certificate"), "{err}");
    // Once the CA answers, the very same contexts work: nothing to rebuild.
    pending.install(ca.issue(
        &SpiffeId::parse(REVIEWS).unwrap(),
        std::time::Duration::from_secs(60),
    ));
    assert!(termination.ready().is_ok());
    // Without an identity at all, `default` is missing and says why.
    let mut bare = secrets(&pending, &ca);
    bare.remove("default");
    let bare = Origination::new(&outbound(&[PRODUCTPAGE]), &bare);
    let tcp = TcpStream::connect(listener.local_addr().unwrap())
        .await
        .unwrap();
    let err = bare.connect("127.0.0.1", tcp).await.unwrap_err();
    assert!(err.contains("no workload identity"), "{err}");
}

#[tokio::test]
async fn handshakes_record_both_identities_per_endpoint_for_telemetry() {
    let ca = TestCa::new("mesh");
    let (reviews, productpage) = (
        ca.identity("default", "reviews"),
        ca.identity("default", "productpage"),
    );
    let server_side = Termination::new(&inbound(), &secrets(&reviews, &ca));
    assert_eq!(server_side.local_principal().as_deref(), Some(REVIEWS));
    let (addr, _seen) = server(server_side).await;
    let client = Origination::new(&outbound(&[REVIEWS]), &secrets(&productpage, &ca));
    let authority = addr.to_string();
    let nothing = crate::telemetry::labels::Security::default();
    assert_eq!(client.verified(&authority), nothing);
    let tcp = TcpStream::connect(addr).await.unwrap();
    let mut s = client
        .connect_to(&authority, "127.0.0.1", tcp)
        .await
        .unwrap();
    assert_eq!(echo(&mut s, b"hi").await.unwrap(), b"hi");
    let proved = client.verified(&authority);
    assert_eq!(proved.peer.as_deref(), Some(REVIEWS));
    assert_eq!(proved.own.as_deref(), Some(PRODUCTPAGE));
    // Another endpoint is not this one.
    assert_eq!(client.verified("127.0.0.1:1"), nothing);
}
