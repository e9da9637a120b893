//! Mesh mTLS end to end: two sidecars configured only by weftd, each proving its identity
//! with a bootstrap token, the server's workload under a mesh-wide STRICT
//! PeerAuthentication. Requests through the pair succeed over mutual TLS; a plaintext
//! client sent straight to the server sidecar's inbound port is refused, and served once
//! the policy turns PERMISSIVE.
//!
//! [`mtls_pair`] is written per data plane so weft-proxy can join with its own variant.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use weft_testkit::envoy::{self, Envoy};
use weft_testkit::{echo, free_port, Weftd};

/// Which proxy runs as the sidecar.
#[derive(Clone, Copy, Debug)]
enum DataPlane {
    Envoy,
}

/// A running sidecar, stopped when dropped.
enum Sidecar {
    Envoy(Envoy),
}

impl Sidecar {
    fn log(&self) -> String {
        match self {
            Sidecar::Envoy(e) => e.log(),
        }
    }

    /// The admin's Prometheus-less `/stats` text.
    fn stats(&self) -> String {
        let url = match self {
            Sidecar::Envoy(e) => e.admin_url(),
        };
        let addr = url.trim_start_matches("http://");
        let mut s = TcpStream::connect(addr).expect("admin answers");
        write!(
            s,
            "GET /stats HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut text = String::new();
        s.read_to_string(&mut text).unwrap();
        text
    }
}

/// The value of the stat named `<prefix>...<suffix>` on a sidecar's admin, summed.
fn stat(sidecar: &Sidecar, suffix: &str, prefix: &str) -> u64 {
    sidecar
        .stats()
        .lines()
        .filter_map(|l| l.split_once(": "))
        .filter(|(name, _)| name.starts_with(prefix) && name.ends_with(suffix))
        .filter_map(|(_, v)| v.trim().parse::<u64>().ok())
        .sum()
}

const CONFIG: &str = r#"
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: istio-system}
spec:
  mtls: {mode: STRICT}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: server, namespace: default}
spec:
  hosts: [server.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 80, name: http, protocol: HTTP}]
  workloadSelector: {labels: {app: server}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadGroup
metadata: {name: server, namespace: default}
spec:
  metadata:
    labels: {app: server, security.istio.io/tlsMode: istio}
  template:
    serviceAccount: server-sa
    ports: {http: INBOUND}
---
apiVersion: networking.istio.io/v1
kind: WorkloadGroup
metadata: {name: client, namespace: default}
spec:
  metadata:
    labels: {app: client, security.istio.io/tlsMode: istio}
  template:
    serviceAccount: client-sa
"#;

/// GET `url` through an HTTP proxy at 127.0.0.1:`proxy`; the status line and body.
fn get_via(proxy: u16, url: &str) -> Option<(String, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", proxy)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let host = url.split('/').nth(2)?;
    write!(
        s,
        "GET {url} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    Some((head.lines().next()?.to_string(), body.to_string()))
}

/// What a plaintext HTTP client gets from a port: the answer's first line, or None when
/// the connection is closed without one.
fn plaintext_answer(port: u16) -> Option<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.write_all(b"GET / HTTP/1.1\r\nHost: server\r\nConnection: close\r\n\r\n")
        .ok()?;
    let mut text = String::new();
    let _ = s.read_to_string(&mut text);
    text.lines().next().map(str::to_string)
}

fn token(weftd: &Weftd, sa: &str) -> String {
    weftd
        .weft(&["token", "create", "-n", "default", "--service-account", sa])
        .ok()
        .trim()
        .to_string()
}

/// `weft bootstrap envoy` for `group` with its bootstrap token, started on `plane`.
fn sidecar(
    plane: DataPlane,
    bin: &Path,
    weftd: &Weftd,
    group: &str,
    token: &str,
    extra: &[String],
) -> Sidecar {
    let xds = weftd.xds_addr().to_string();
    match plane {
        DataPlane::Envoy => Sidecar::Envoy(Envoy::start(bin, |admin| {
            let admin = admin.to_string();
            let mut args: Vec<&str> = vec![
                "bootstrap",
                "envoy",
                "--workload-group",
                group,
                "--xds",
                &xds,
                "--admin-port",
                &admin,
                "--bootstrap-token",
                token,
            ];
            args.extend(extra.iter().map(String::as_str));
            weftd.weft(&args).ok().to_string()
        })),
    }
}

/// weftd, the server's application, and the two sidecars, with the first answer through
/// them.
struct Pair {
    weftd: Weftd,
    _app: echo::Running,
    server: Sidecar,
    client: Sidecar,
    /// The server sidecar's inbound port.
    inbound: u16,
    /// The client sidecar's outbound (HTTP proxy) port.
    outbound: u16,
}

const URL: &str = "http://server.default.svc.cluster.local/mtls";

impl Pair {
    fn start(plane: DataPlane, bin: &Path) -> (Pair, (String, String)) {
        let weftd = Weftd::start();
        let inbound = free_port();
        let config = CONFIG.replace("INBOUND", &inbound.to_string());
        weftd.weft_stdin(&["apply", "-f", "-"], Some(&config)).ok();
        let (app, app_port) = echo::start("server-app", "v1");
        let server = sidecar(
            plane,
            bin,
            &weftd,
            "server",
            &token(&weftd, "server-sa"),
            &[
                "--app-port".into(),
                format!("http={app_port}"),
                "--outbound-port".into(),
                free_port().to_string(),
            ],
        );
        let outbound = free_port();
        let client = sidecar(
            plane,
            bin,
            &weftd,
            "client",
            &token(&weftd, "client-sa"),
            &["--outbound-port".into(), outbound.to_string()],
        );
        let pair = Pair {
            weftd,
            _app: app,
            server,
            client,
            inbound,
            outbound,
        };
        let answer = pair.wait_for_200();
        (pair, answer)
    }

    /// Polls until a request through the pair answers 200: the server registers and weftd
    /// pushes its endpoint to the client first.
    fn wait_for_200(&self) -> (String, String) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let answer = get_via(self.outbound, URL);
            if let Some(ok) = answer
                .as_ref()
                .filter(|(status, _)| status.contains(" 200 "))
            {
                return ok.clone();
            }
            assert!(
                Instant::now() < deadline,
                "no 200 through the sidecar pair, last answer {answer:?}\n{}\n--- server\n{}\n--- client\n{}",
                self.weftd.log(),
                self.server.log(),
                self.client.log()
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

fn mtls_pair(plane: DataPlane, bin: PathBuf) {
    let (pair, answer) = Pair::start(plane, &bin);
    let Pair {
        weftd,
        server,
        client,
        inbound,
        outbound,
        ..
    } = &pair;
    let (inbound, outbound) = (*inbound, *outbound);
    let url = URL;
    assert!(answer.1.contains("server-app"), "{answer:?}");
    // Both sides completed TLS handshakes: the client's cluster towards the server, and the
    // server's inbound listener (which, STRICT, has no other chain and requires a client
    // certificate from the mesh CA).
    let client_side = stat(client, "ssl.handshake", "cluster.outbound|80||server");
    let server_side = stat(
        server,
        "ssl.handshake",
        &format!("listener.127.0.0.1_{inbound}."),
    );
    assert!(client_side >= 1, "client handshakes: {client_side}");
    assert!(server_side >= 1, "server handshakes: {server_side}");

    // STRICT: plain text straight to the server sidecar's inbound port gets no answer.
    let plain = plaintext_answer(inbound);
    assert_eq!(plain, None, "plaintext was served by a STRICT inbound port");

    // PERMISSIVE: the same port now takes plain text too, and the pair keeps using mTLS.
    let permissive = "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\n\
         metadata: {name: default, namespace: istio-system}\nspec:\n  mtls: {mode: PERMISSIVE}\n";
    weftd
        .weft_stdin(&["apply", "-f", "-"], Some(permissive))
        .ok();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let plain = plaintext_answer(inbound);
        if plain.as_deref() == Some("HTTP/1.1 200 OK") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "PERMISSIVE never served plain text: {plain:?}\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    // The client sidecar still originates mTLS (the endpoint is labelled); a 200 means the
    // server's mTLS chain, chosen by the mesh ALPN, took it rather than the plain one.
    let again = get_via(outbound, url).expect("an answer through the pair");
    assert!(again.0.contains(" 200 "), "{again:?}");
}

#[test]
fn envoy_sidecars_talk_mtls_and_strict_refuses_plaintext() {
    let Some(bin) = envoy::find() else {
        return;
    };
    mtls_pair(DataPlane::Envoy, bin);
}
