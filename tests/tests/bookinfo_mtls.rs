//! Istio's mutual TLS task on `weft demo`: Bookinfo with `destination-rule-all-mtls.yaml`
//! and a mesh-wide STRICT PeerAuthentication. Sidecars keep serving the whole product page
//! (productpage -> reviews -> ratings, over mutual TLS) while a plaintext client talking
//! straight to a sidecar's inbound port gets no answer; with PERMISSIVE (Istio's default)
//! it gets one. Every sidecar presents a certificate for its own service account, issued
//! by weftd's CA, and the bootstrap tokens behind them are owner-only files, never
//! arguments.
//!
//! Needs the workspace's binaries (`cargo build -p weft-cli -p weft-control -p weft-proxy
//! -p weft-bookinfo --bins`), `openssl` on PATH, and Envoy for the Envoy variant (skipped
//! without it).

mod demo_harness;

use demo_harness::{children_of, Demo, Page, START_TIMEOUT};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use weft_testkit::envoy;

/// How long a policy change may take to reach every sidecar.
const POLICY_TIMEOUT: Duration = Duration::from_secs(30);

/// The demo's workloads in its port order (`weft demo --help`): workload i's sidecar
/// listens on base+10i, its admin on base+10i+3. With its service account.
const WORKLOADS: [(&str, &str); 6] = [
    ("ratings-v1", "bookinfo-ratings"),
    ("details-v1", "bookinfo-details"),
    ("reviews-v1", "bookinfo-reviews"),
    ("reviews-v2", "bookinfo-reviews"),
    ("reviews-v3", "bookinfo-reviews"),
    ("productpage-v1", "bookinfo-productpage"),
];

/// Istio's "enable mutual TLS mesh-wide": the root namespace's policy without a selector.
const MESH_STRICT: &str = "\
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata:
  name: default
  namespace: istio-system
spec:
  mtls:
    mode: STRICT
";

#[test]
fn bookinfo_on_weft_proxy_with_mesh_wide_strict_mtls() {
    run_mtls_task("weft", None);
}

#[test]
fn bookinfo_on_envoy_with_mesh_wide_strict_mtls() {
    let Some(envoy) = envoy::find() else { return };
    run_mtls_task("envoy", Some(&envoy));
}

/// What a plaintext HTTP client sees when it talks straight to a sidecar's inbound port.
#[derive(Debug, PartialEq)]
enum Plain {
    /// An HTTP response, with its status line.
    Answered(String),
    /// The connection was closed or reset with no response at all.
    Refused,
}

/// GET `path` in plain HTTP/1.1 on the inbound port, bypassing every proxy.
fn plaintext(port: u16, path: &str) -> Plain {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_secs(5)) else {
        return Plain::Refused;
    };
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
    if s.write_all(req.as_bytes()).is_err() {
        return Plain::Refused;
    }
    let mut raw = Vec::new();
    // A reset after some bytes still counts as what arrived.
    let _ = s.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw);
    match text.lines().next() {
        Some(status) if status.starts_with("HTTP/") => Plain::Answered(text.into_owned()),
        _ => Plain::Refused,
    }
}

/// The certificate a TLS client (ALPN `istio`, as a client sidecar offers it, and no
/// client certificate) is shown on `port`, checked against `root`: (s_client's report,
/// the certificate's subjectAltName text).
fn server_certificate(port: u16, root: &Path) -> (String, String) {
    let s_client = Command::new("openssl")
        .args(["s_client", "-connect", &format!("127.0.0.1:{port}")])
        .args(["-alpn", "istio", "-CAfile"])
        .arg(root)
        .stdin(Stdio::null())
        .output()
        .expect("run openssl s_client (is openssl on PATH?)");
    let report = String::from_utf8_lossy(&s_client.stdout).into_owned();
    let mut x509 = Command::new("openssl")
        .args(["x509", "-noout", "-ext", "subjectAltName"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run openssl x509");
    x509.stdin
        .take()
        .unwrap()
        .write_all(report.as_bytes())
        .unwrap();
    let san = x509.wait_with_output().unwrap();
    (report, String::from_utf8_lossy(&san.stdout).into_owned())
}

/// An HTTP request over TLS without a client certificate: what comes back, if anything.
fn tls_without_client_certificate(port: u16) -> String {
    let mut s_client = Command::new("openssl")
        .args([
            "s_client",
            "-quiet",
            "-connect",
            &format!("127.0.0.1:{port}"),
        ])
        .args(["-alpn", "istio"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("run openssl s_client");
    let mut stdin = s_client.stdin.take().unwrap();
    let _ =
        stdin.write_all(b"GET /ratings/0 HTTP/1.1\r\nHost: ratings\r\nConnection: close\r\n\r\n");
    // Keep stdin open a moment: s_client quits at EOF, maybe before the server answers.
    std::thread::sleep(Duration::from_secs(2));
    drop(stdin);
    let out = s_client.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The body of a plain GET to a proxy's admin or stats port.
fn get(port: u16, path: &str) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect to the proxy's admin");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).unwrap();
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw).into_owned();
    text.split_once("\r\n\r\n")
        .map(|(_, body)| body.to_string())
        .unwrap_or(text)
}

/// How much of what reached the ratings sidecar (workload 0) came over mutual TLS from
/// reviews, as the proxy itself counts it. weft-proxy: Istio's `istio_requests_total` on its
/// stats port (base+4) with reviews' principal and `connection_security_policy="mutual_tls"`.
/// Envoy (no Istio stats filter): TLS handshakes on the inbound listener, after checking
/// that every connection it accepted was one and presented a client certificate.
fn mtls_from_reviews(demo: &Demo, plane: &str) -> u64 {
    let base = demo.port_base;
    if plane == "envoy" {
        let stats = get(base + 3, "/stats");
        let stat = |name: &str| -> u64 {
            let key = format!("listener.127.0.0.1_{base}.{name}: ");
            stats
                .lines()
                .find_map(|l| l.strip_prefix(key.as_str()))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or_else(|| panic!("no {key} in Envoy's stats"))
        };
        let handshakes = stat("ssl.handshake");
        assert_eq!(
            stat("downstream_cx_total"),
            handshakes,
            "plain text reached ratings"
        );
        assert_eq!(
            stat("ssl.no_certificate"),
            0,
            "a peer without a certificate"
        );
        return handshakes;
    }
    let metrics = get(base + 4, "/stats/prometheus");
    let principal = "source_principal=\"spiffe://cluster.local/ns/default/sa/bookinfo-reviews\"";
    let mut total = 0;
    for line in metrics
        .lines()
        .filter(|l| l.starts_with("istio_requests_total{"))
    {
        let (labels, value) = line.rsplit_once(' ').unwrap_or((line, "0"));
        if labels.contains("reporter=\"destination\"")
            && labels.contains(principal)
            && labels.contains("connection_security_policy=\"mutual_tls\"")
        {
            total += value.trim().parse::<f64>().unwrap_or(0.0) as u64;
        }
    }
    total
}

/// Loads the page until `ok` holds; panics with the last page and the logs after `limit`.
fn page_until(demo: &Demo, what: &str, ok: impl Fn(&Page) -> bool) -> Page {
    let deadline = Instant::now() + POLICY_TIMEOUT;
    loop {
        let page = demo.page(None);
        if ok(&page) {
            return page;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not seen within {POLICY_TIMEOUT:?}; last page ({}):\n{}\n{}",
            page.status,
            page.body,
            demo.logs()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// A page with ratings: reviews answered and each review shows its stars.
fn with_stars(p: &Page) -> bool {
    p.complete() && p.stars().len() == 2
}

/// Asserts `n` loads in a row are complete pages whose ratings never failed, and that
/// some show stars (reviews v2 and v3 call ratings; v1 does not).
fn whole_pages(demo: &Demo, n: usize) {
    let mut starred = 0;
    for _ in 0..n {
        let p = demo.page(None);
        assert!(p.complete(), "incomplete page:\n{}", p.body);
        assert!(
            !p.body.contains("Ratings service is currently unavailable"),
            "ratings failed:\n{}",
            p.body
        );
        if with_stars(&p) {
            starred += 1;
        }
    }
    assert!(starred > 0, "none of {n} loads showed ratings");
}

fn run_mtls_task(plane: &str, envoy: Option<&Path>) {
    let (mut demo, identities) = Demo::start_until(plane, envoy, "✓ identity", START_TIMEOUT);
    demo.wait_for_line("Press Ctrl-C", START_TIMEOUT);
    for (_, sa) in WORKLOADS {
        assert!(
            identities.contains(&format!("spiffe://cluster.local/ns/default/sa/{sa}")),
            "{identities}"
        );
    }
    assert!(
        identities.contains(
            "spiffe://cluster.local/ns/istio-system/sa/istio-ingressgateway-service-account"
        ),
        "{identities}"
    );
    tokens_are_private_files(&demo);

    let inbound = |i: usize| demo.port_base + 10 * i as u16;
    let ratings = inbound(0);

    // Istio's default: PERMISSIVE. Sidecars already talk mTLS (auto mTLS), plain text is
    // still answered.
    page_until(&demo, "the product page with ratings", with_stars);
    let before = mtls_from_reviews(&demo, plane);
    assert!(
        before > 0,
        "reviews -> ratings is not mutual TLS by default\n{}",
        demo.logs()
    );
    match plaintext(ratings, "/ratings/0") {
        Plain::Answered(text) => assert!(text.starts_with("HTTP/1.1 200"), "{text}"),
        Plain::Refused => panic!("PERMISSIVE refused plain text\n{}", demo.logs()),
    }

    // The mutual TLS task: ISTIO_MUTUAL to every Bookinfo service, STRICT mesh-wide.
    demo.apply("destination-rule-all-mtls.yaml");
    let strict = demo.dir().join("mesh-strict.yaml");
    std::fs::write(&strict, MESH_STRICT).unwrap();
    let strict = strict.display().to_string();
    demo.weft(&["apply", "-f", &strict]).ok();

    // Every sidecar stops answering plain text...
    let deadline = Instant::now() + POLICY_TIMEOUT;
    for (i, (name, _)) in WORKLOADS.iter().enumerate() {
        loop {
            match plaintext(inbound(i), "/") {
                Plain::Refused => break,
                Plain::Answered(text) => assert!(
                    Instant::now() < deadline,
                    "{name}'s sidecar still answers plain text under STRICT: {text}\n{}",
                    demo.logs()
                ),
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }
    // ... and so does TLS without a mesh client certificate.
    let answer = tls_without_client_certificate(ratings);
    assert!(!answer.contains("HTTP/"), "{answer}");

    // ... while the page, through the gateway and three sidecar hops, still has ratings.
    page_until(
        &demo,
        "the product page with ratings under STRICT",
        with_stars,
    );
    whole_pages(&demo, 12);
    assert_eq!(plaintext(ratings, "/ratings/0"), Plain::Refused);
    if plane == "weft" {
        // Envoy keeps reviews' pooled connection open, so only requests count here.
        let after = mtls_from_reviews(&demo, plane);
        assert!(
            after > before,
            "no mutual TLS requests under STRICT: {after}"
        );
    }

    // Each sidecar's inbound port presents a certificate for its own service account,
    // issued by weftd's CA (its root in weftd's data dir).
    let root = demo.dir().join("weftd/ca/root-cert.pem");
    for (i, (name, sa)) in WORKLOADS.iter().enumerate() {
        let (report, san) = server_certificate(inbound(i), &root);
        assert!(
            report.contains("Verify return code: 0 (ok)"),
            "{name}: not issued by weftd's CA:\n{report}"
        );
        let uris: Vec<&str> = san
            .split([',', '\n'])
            .map(str::trim)
            .filter(|s| s.starts_with("URI:"))
            .collect();
        assert_eq!(
            uris,
            [format!("URI:spiffe://cluster.local/ns/default/sa/{sa}")],
            "{name}: {san}"
        );
    }
    if plane == "envoy" {
        envoy_holds_its_certificate(&demo);
    }

    // Back to PERMISSIVE: plain text is answered again.
    demo.weft(&["delete", "-f", &strict]).ok();
    let deadline = Instant::now() + POLICY_TIMEOUT;
    loop {
        match plaintext(ratings, "/ratings/0") {
            Plain::Answered(text) => {
                assert!(text.starts_with("HTTP/1.1 200"), "{text}");
                break;
            }
            Plain::Refused => assert!(
                Instant::now() < deadline,
                "plain text still refused after the STRICT policy was deleted\n{}",
                demo.logs()
            ),
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    whole_pages(&demo, 6);
}

/// One token file per service account, mode 0600 in a 0700 dir, and no token on any
/// process's command line.
fn tokens_are_private_files(demo: &Demo) {
    let dir = demo.dir().join("tokens");
    let dir_mode = std::fs::metadata(&dir).unwrap().permissions().mode();
    assert_eq!(
        dir_mode & 0o077,
        0,
        "{} is mode {dir_mode:o}",
        dir.display()
    );
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let names: Vec<String> = files
        .iter()
        .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        [
            "default.bookinfo-details.token",
            "default.bookinfo-productpage.token",
            "default.bookinfo-ratings.token",
            "default.bookinfo-reviews.token",
            "istio-system.istio-ingressgateway-service-account.token",
        ]
    );
    let mut tree = children_of(demo.child.id());
    let mut i = 0;
    while i < tree.len() {
        tree.extend(children_of(tree[i]));
        i += 1;
    }
    for file in &files {
        let mode = std::fs::metadata(file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{}", file.display());
        let token = std::fs::read_to_string(file).unwrap().trim().to_string();
        assert!(token.len() > 16, "{}: {token:?}", file.display());
        for pid in &tree {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            assert!(
                !String::from_utf8_lossy(&cmdline).contains(&token),
                "process {pid} has a token on its command line"
            );
        }
    }
}

/// Envoy gets its certificate from weftd over SDS: `weft proxy-config secret` on a sidecar's
/// admin shows the workload certificate `default` and the trust bundle `ROOTCA`, active.
fn envoy_holds_its_certificate(demo: &Demo) {
    let admin = format!("http://127.0.0.1:{}", demo.port_base + 3);
    let out = demo.weft(&["proxy-config", "secret", "--admin", &admin]);
    let table = out.ok();
    let row = |name: &str| {
        table
            .lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .unwrap_or_else(|| panic!("no {name} in:\n{table}"))
            .to_string()
    };
    let default = row("default");
    assert!(
        default.contains("Cert Chain") && default.contains("ACTIVE"),
        "{table}"
    );
    let root = row("ROOTCA");
    assert!(root.contains("CA") && root.contains("ACTIVE"), "{table}");
}
