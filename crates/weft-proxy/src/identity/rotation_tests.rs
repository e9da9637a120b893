//! The renewal task against an in-process CA speaking Istio's CreateCertificate: the
//! certificate names the workload, a wrong token or a missing CA is a clear error, and a
//! short-lived certificate is replaced at about half its lifetime.

use super::*;
use crate::identity::test_ca::TestCa;
use std::sync::atomic::{AtomicUsize, Ordering};
use weft_ca_api::server::{CertificateServer, CertificateService};
use weft_ca_api::{IstioCertificateRequest, IstioCertificateResponse, SpiffeId};

struct FakeCa {
    ca: TestCa,
    token: &'static str,
    signed: AtomicUsize,
}

#[tonic::async_trait]
impl CertificateService for FakeCa {
    async fn create_certificate(
        &self,
        request: tonic::Request<IstioCertificateRequest>,
    ) -> Result<tonic::Response<IstioCertificateResponse>, tonic::Status> {
        let bearer = format!("Bearer {}", self.token);
        if request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            != Some(bearer.as_str())
        {
            return Err(tonic::Status::unauthenticated("unknown bootstrap token"));
        }
        let r = request.into_inner();
        // Backdated a minute, as weftd signs.
        let leaf = self.ca.sign(
            &r.csr,
            -time::Duration::minutes(1),
            time::Duration::seconds(r.validity_duration),
        );
        self.signed.fetch_add(1, Ordering::SeqCst);
        Ok(tonic::Response::new(IstioCertificateResponse {
            cert_chain: vec![leaf, self.ca.root_pem.clone()],
        }))
    }
}

async fn serve(token: &'static str) -> (String, Arc<FakeCa>) {
    let socket = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = socket.local_addr().unwrap().to_string();
    let fake = Arc::new(FakeCa {
        ca: TestCa::new("mesh"),
        token,
        signed: AtomicUsize::new(0),
    });
    let incoming = futures::stream::unfold(socket, |s| async move {
        Some((s.accept().await.map(|(c, _)| c), s))
    });
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(CertificateServer::from_arc(fake.clone()))
            .serve_with_incoming(incoming),
    );
    (addr, fake)
}

fn config(addr: &str, token: &str, ttl: Duration) -> Config {
    Config {
        id: SpiffeId::new("cluster.local", "shop", "reviews"),
        ca_addr: addr.into(),
        token: TokenSource::Value(token.into()),
        ttl,
    }
}

#[tokio::test]
async fn the_ca_signs_the_workload_identity() {
    let (addr, fake) = serve("t0ken").await;
    let c = config(&addr, "t0ken", Duration::from_secs(600));
    let identity = Identity::new(c.id.clone());
    let issued = renew(&identity, &c).await.unwrap();
    assert_eq!(
        issued.uri_sans(),
        ["spiffe://cluster.local/ns/shop/sa/reviews"]
    );
    let lifetime = issued.not_after.duration_since(issued.not_before).unwrap();
    assert_eq!(lifetime, Duration::from_secs(660));
    // Leaf only: the root is the trust bundle, not part of what the proxy presents.
    assert_eq!(issued.key.cert.len(), 1);
    assert_eq!(fake.signed.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_wrong_token_and_a_missing_ca_say_so() {
    let (addr, fake) = serve("right").await;
    let c = config(&addr, "wrong", Duration::from_secs(600));
    let identity = Identity::new(c.id.clone());
    let err = renew(&identity, &c).await.unwrap_err().to_string();
    assert!(
        err.contains("refused") && err.contains("unknown bootstrap token"),
        "{err}"
    );
    assert_eq!(fake.signed.load(Ordering::SeqCst), 0);

    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let gone = closed.local_addr().unwrap().to_string();
    drop(closed);
    let err = renew(&identity, &config(&gone, "right", Duration::from_secs(600)))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("not reachable") && err.contains(&gone),
        "{err}"
    );

    let missing = TokenSource::File("/nonexistent/weft-token".into());
    let err = token(&missing).unwrap_err().to_string();
    assert!(err.contains("/nonexistent/weft-token"), "{err}");
}

#[tokio::test]
async fn a_short_lived_certificate_is_renewed_at_about_half_its_lifetime() {
    let (addr, fake) = serve("t0ken").await;
    let c = config(&addr, "t0ken", Duration::from_secs(4));
    let identity = Identity::new(c.id.clone());
    let mut changes = identity.subscribe();
    tokio::spawn(run(identity.clone(), c));
    changes.changed().await.unwrap();
    let first = identity.current().unwrap();
    let started = std::time::Instant::now();
    tokio::time::timeout(Duration::from_secs(4), changes.changed())
        .await
        .expect("renewed before expiry")
        .unwrap();
    let waited = started.elapsed();
    // Half of 4 s, give or take the jitter (5% of the lifetime) and second-granular
    // validity times.
    assert!(
        waited >= Duration::from_millis(900) && waited <= Duration::from_millis(3100),
        "renewed after {waited:?}"
    );
    let second = identity.current().unwrap();
    assert_ne!(first.serial, second.serial);
    assert_eq!(fake.signed.load(Ordering::SeqCst), 2);
}
