//! A rustls round trip between [`Origination`] and the listener side's
//! [`Termination`], with certificates the openssl CLI makes.

use super::*;
use crate::listener::tls::Termination;
use crate::model::{DownstreamTls, Validation};
use std::path::Path;
use std::process::Command;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA, then `name.pem`/`name.key` signed by it with the given extensions.
fn issue(dir: &Path, name: &str, ext: &str) {
    std::fs::write(dir.join(format!("{name}.ext")), ext).unwrap();
    openssl(
        dir,
        &[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-subj",
            &format!("/CN={name}"),
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.csr"),
        ],
    );
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            &format!("{name}.ext"),
            "-out",
            &format!("{name}.pem"),
        ],
    );
}

/// Secrets as weftd would send them: server and client certificates and the CA.
fn secrets(dir: &Path) -> BTreeMap<String, Arc<Secret>> {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-subj",
            "/CN=test-ca",
            "-days",
            "2",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
        ],
    );
    issue(
        dir,
        "server",
        "subjectAltName=DNS:egress.example.com\nextendedKeyUsage=serverAuth\n",
    );
    issue(dir, "client", "extendedKeyUsage=clientAuth\n");
    let read = |f: &str| std::fs::read(dir.join(f)).unwrap();
    let pair = |n: &str| {
        Arc::new(Secret::TlsCertificate {
            certificate_chain: read(&format!("{n}.pem")),
            private_key: read(&format!("{n}.key")),
        })
    };
    BTreeMap::from([
        ("server".to_string(), pair("server")),
        ("client".to_string(), pair("client")),
        (
            "ca".to_string(),
            Arc::new(Secret::ValidationContext {
                trusted_ca: read("ca.pem"),
                dns_sans: Vec::new(),
            }),
        ),
    ])
}

fn validation(sans: &[&str]) -> Option<Validation> {
    Some(Validation {
        trusted_ca: Some(CaSource::Sds("ca".into())),
        dns_sans: sans.iter().map(|s| s.to_string()).collect(),
        uri_sans: Vec::new(),
    })
}

/// Serves one TLS connection that echoes one line back, or reports the handshake error.
async fn serve_once(
    termination: Termination,
) -> (
    std::net::SocketAddr,
    tokio::task::JoinHandle<Result<Vec<u8>, String>>,
) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut tls = termination.accept(tcp).await?;
        let mut buf = vec![0; 5];
        tls.read_exact(&mut buf).await.map_err(|e| e.to_string())?;
        tls.write_all(&buf).await.map_err(|e| e.to_string())?;
        tls.shutdown().await.map_err(|e| e.to_string())?;
        Ok(buf)
    });
    (addr, task)
}

async fn exchange(
    origination: &Origination,
    addr: std::net::SocketAddr,
) -> Result<Vec<u8>, String> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let mut s = origination.connect("127.0.0.1", tcp).await?;
    s.write_all(b"hello").await.map_err(|e| e.to_string())?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.map_err(|e| e.to_string())?;
    Ok(buf)
}

fn mutual_server() -> DownstreamTls {
    DownstreamTls {
        certificates: vec!["server".into()],
        validation: validation(&[]),
        require_client_certificate: true,
        alpn: vec!["h2".into(), "http/1.1".into()],
    }
}

#[tokio::test]
async fn mutual_tls_round_trip_with_sni_ca_and_san_check() {
    let dir = tempfile::tempdir().unwrap();
    let secrets = secrets(dir.path());
    let (addr, server) = serve_once(Termination::new(&mutual_server(), &secrets)).await;
    let client = UpstreamTls {
        sni: "egress.example.com".into(),
        certificate: Some("client".into()),
        validation: validation(&["egress.example.com"]),
        alpn: vec!["h2".into()],
    };
    let origination = Origination::new(&client, &secrets);
    assert_eq!(exchange(&origination, addr).await.unwrap(), b"hello");
    assert_eq!(server.await.unwrap().unwrap(), b"hello");
}

#[tokio::test]
async fn the_sni_need_not_name_the_certificate_but_san_matchers_must() {
    let dir = tempfile::tempdir().unwrap();
    let secrets = secrets(dir.path());
    let simple = DownstreamTls {
        certificates: vec!["server".into()],
        ..Default::default()
    };
    // Envoy checks names only against SAN matchers: another SNI is fine without them...
    let (addr, server) = serve_once(Termination::new(&simple, &secrets)).await;
    let client = UpstreamTls {
        sni: "other.example.com".into(),
        validation: validation(&[]),
        ..Default::default()
    };
    assert_eq!(
        exchange(&Origination::new(&client, &secrets), addr)
            .await
            .unwrap(),
        b"hello"
    );
    server.await.unwrap().unwrap();
    // ...but a matcher the certificate does not satisfy fails the handshake.
    let (addr, server) = serve_once(Termination::new(&simple, &secrets)).await;
    let client = UpstreamTls {
        sni: "egress.example.com".into(),
        validation: validation(&["wrong.example.com"]),
        ..Default::default()
    };
    let err = exchange(&Origination::new(&client, &secrets), addr)
        .await
        .unwrap_err();
    assert!(err.contains("TLS handshake failed"), "{err}");
    assert!(server.await.unwrap().is_err());
}

#[tokio::test]
async fn mutual_refuses_a_client_without_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let secrets = secrets(dir.path());
    let (addr, server) = serve_once(Termination::new(&mutual_server(), &secrets)).await;
    let client = UpstreamTls {
        sni: "egress.example.com".into(),
        validation: validation(&[]),
        ..Default::default()
    };
    // TLS 1.3: the client may finish its handshake before the server refuses; the
    // refusal shows on the first read.
    assert!(exchange(&Origination::new(&client, &secrets), addr)
        .await
        .is_err());
    let err = server.await.unwrap().unwrap_err();
    assert!(err.to_lowercase().contains("certificate"), "{err}");
}

#[tokio::test]
async fn contexts_wait_for_their_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let mut secrets = secrets(dir.path());
    secrets.remove("ca");
    let client = UpstreamTls {
        sni: "egress.example.com".into(),
        validation: validation(&[]),
        ..Default::default()
    };
    let origination = Origination::new(&client, &secrets);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let tcp = TcpStream::connect(listener.local_addr().unwrap())
        .await
        .unwrap();
    let err = origination.connect("127.0.0.1", tcp).await.unwrap_err();
    assert_eq!(err, "secret ca not received yet");
    let termination = Termination::new(&mutual_server(), &secrets);
    assert_eq!(
        termination.ready().err().as_deref(),
        Some("secret ca not received yet")
    );
    assert!(!origination.is_for(&client, &self::secrets(tempfile::tempdir().unwrap().path())));
    assert!(origination.is_for(&client, &secrets));
}
