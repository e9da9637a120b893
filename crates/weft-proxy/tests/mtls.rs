//! Mutual TLS between two weft-proxy sidecars configured by weftd, with workload
//! certificates from weftd's CA: each proxy makes its key, proves its identity with a
//! bootstrap token, and renews its certificate at half its lifetime.
//!
//! productpage's sidecar calls reviews through auto mTLS (both workloads are labelled
//! `security.istio.io/tlsMode: istio`), reviews' sidecar takes only mTLS (a mesh-wide
//! STRICT PeerAuthentication) and knows its caller by its SPIFFE id.
//! Real Envoy sidecars (`WEFT_ENVOY`) get their certificate from weftd over SDS instead,
//! renewed by weftd at half its lifetime.
//! Build the binaries first: `cargo build --workspace --bins`.
//! To debug a failure, `WEFT_TEST_ENVOY_LOG=debug` and `WEFT_TEST_WEFTD_LOG=weft_control=debug`
//! raise the log levels of Envoy and weftd (their logs are printed when a test fails).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use weft_testkit::echo::start as echo;
use weft_testkit::{free_port, Weftd};

const CONFIG_TIMEOUT: Duration = Duration::from_secs(30);

struct Proxy {
    child: Child,
    log: PathBuf,
    outbound: u16,
    admin: u16,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Proxy {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

fn apply(weftd: &Weftd, yaml: &str) {
    weftd.weft_stdin(&["apply", "-f", "-"], Some(yaml)).ok();
}

/// Workloads of two services with sidecars, and mesh-wide STRICT mTLS.
fn mesh(weftd: &Weftd, reviews_inbound: u16) {
    apply(
        weftd,
        &format!(
            "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: reviews, namespace: default}}\n\
             spec:\n  hosts: [reviews.default.svc.cluster.local]\n  location: MESH_INTERNAL\n\
             \x20 ports: [{{number: 9080, name: http, protocol: HTTP}}]\n  resolution: STATIC\n\
             \x20 workloadSelector: {{labels: {{app: reviews}}}}\n\
             ---\n\
             apiVersion: networking.istio.io/v1\nkind: WorkloadGroup\nmetadata: {{name: reviews, namespace: default}}\n\
             spec:\n  metadata: {{labels: {{app: reviews, security.istio.io/tlsMode: istio}}}}\n\
             \x20 template: {{serviceAccount: reviews, ports: {{http: {reviews_inbound}}}}}\n\
             ---\n\
             apiVersion: networking.istio.io/v1\nkind: WorkloadGroup\nmetadata: {{name: productpage, namespace: default}}\n\
             spec:\n  metadata: {{labels: {{app: productpage, security.istio.io/tlsMode: istio}}}}\n\
             \x20 template: {{serviceAccount: productpage}}\n\
             ---\n\
             apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {{name: default, namespace: istio-system}}\n\
             spec: {{mtls: {{mode: STRICT}}}}\n"
        ),
    );
}

/// A bootstrap token for `sa` in file `dir/sa.token`.
fn token(weftd: &Weftd, sa: &str, dir: &Path) -> PathBuf {
    let out = weftd.weft(&["token", "create", "-n", "default", "--service-account", sa]);
    let token = out.ok().trim().to_string();
    assert!(!token.is_empty());
    let path = dir.join(format!("{sa}.token"));
    std::fs::write(&path, token).unwrap();
    path
}

/// A weft-proxy sidecar of WorkloadGroup `group` with the bootstrap token in `token`.
fn sidecar(weftd: &Weftd, group: &str, app_port: Option<u16>, token: &Path, ttl: &str) -> Proxy {
    let (outbound, admin) = (free_port(), free_port());
    let file = write_bootstrap(
        weftd,
        group,
        (outbound, admin),
        app_port,
        &["--capture", "explicit"],
        group,
    );
    let log = weftd.scratch().join(format!("{group}.log"));
    let child = Command::new(env!("CARGO_BIN_EXE_weft-proxy"))
        .arg("--bootstrap")
        .arg(&file)
        .arg("--token-file")
        .arg(token)
        .arg("--cert-ttl")
        .arg(ttl)
        .args(["--stats-port", &free_port().to_string()])
        .args(["--health-port", &free_port().to_string()])
        .args(["--access-log", "off"])
        .env_remove("WEFT_TOKEN")
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("start weft-proxy");
    Proxy {
        child,
        log,
        outbound,
        admin,
    }
}

/// `weft bootstrap envoy` for WorkloadGroup `group` (outbound and admin ports, the app's
/// port if any, `extra` flags), written to `<name>.yaml` in weftd's scratch dir.
fn write_bootstrap(
    weftd: &Weftd,
    group: &str,
    (outbound, admin): (u16, u16),
    app_port: Option<u16>,
    extra: &[&str],
    name: &str,
) -> std::path::PathBuf {
    let xds = weftd.xds_addr().to_string();
    let (outbound, admin) = (outbound.to_string(), admin.to_string());
    let mut args = vec![
        "bootstrap",
        "envoy",
        "--workload-group",
        group,
        "--outbound-port",
        &outbound,
        "--admin-port",
        &admin,
        "--xds",
        &xds,
    ];
    args.extend_from_slice(extra);
    let app = app_port.map(|p| format!("http={p}"));
    if let Some(app) = &app {
        args.extend(["--app-port", app]);
    }
    let file = weftd.scratch().join(format!("{name}.yaml"));
    std::fs::write(&file, weftd.weft(&args).ok()).unwrap();
    file
}

/// A real Envoy sidecar of WorkloadGroup `group` (`delta`: over incremental xDS); weftd
/// serves it its certificate over SDS. None when Envoy is not installed.
fn envoy_sidecar(weftd: &Weftd, group: &str, app_port: Option<u16>, delta: bool) -> Option<Proxy> {
    let envoy = weft_testkit::envoy::find()?;
    let token = token(weftd, group, weftd.scratch());
    let token = token.display().to_string();
    let mut flags = vec!["--token-file", &token];
    if delta {
        flags.push("--delta");
    }
    let (outbound, admin) = (free_port(), free_port());
    let file = write_bootstrap(
        weftd,
        group,
        (outbound, admin),
        app_port,
        &flags,
        &format!("{group}-envoy"),
    );
    let log = weftd.scratch().join(format!("{group}-envoy.log"));
    let child = Command::new(envoy)
        .arg("-c")
        .arg(&file)
        .args([
            "--disable-hot-restart",
            "-l",
            &log_level("WEFT_TEST_ENVOY_LOG", "warning"),
        ])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("start envoy");
    Some(Proxy {
        child,
        log,
        outbound,
        admin,
    })
}

/// A 200 from `host` through `client`'s sidecar within the config timeout.
fn wait_ok(client: &Proxy, host: &str, server: &Proxy, weftd: &Weftd) -> serde_json::Value {
    let http = via(client);
    let deadline = Instant::now() + CONFIG_TIMEOUT;
    loop {
        match http.get(format!("http://{host}/interop")).send() {
            Ok(r) if r.status() == 200 => return r.json().unwrap(),
            other => {
                assert!(
                    Instant::now() < deadline,
                    "no 200 from {host}: {other:?}\n--- client\n{}\n--- server\n{}\n{}",
                    client.log(),
                    server.log(),
                    weftd.log()
                );
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    }
}

fn via(proxy: &Proxy) -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .proxy(reqwest::Proxy::http(format!("http://127.0.0.1:{}", proxy.outbound)).unwrap())
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap()
}

/// Waits for a 200 from reviews through `client`'s sidecar; returns the echo's answer.
fn first_ok(weftd: &Weftd, client: &Proxy, server: &Proxy) -> serde_json::Value {
    let http = via(client);
    let deadline = Instant::now() + CONFIG_TIMEOUT;
    loop {
        match http.get("http://reviews:9080/hello").send() {
            Ok(r) if r.status() == 200 => return r.json().unwrap(),
            other => {
                assert!(
                    Instant::now() < deadline,
                    "no 200 through mTLS: {other:?}\n--- client\n{}\n--- server\n{}\n{}",
                    client.log(),
                    server.log(),
                    weftd.log()
                );
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    }
}

/// `upstream_cx_total` of the proxy's outbound cluster of reviews (admin `/stats`).
fn upstream_connections(proxy: &Proxy) -> u64 {
    let stats = reqwest::blocking::get(format!("http://127.0.0.1:{}/stats", proxy.admin))
        .and_then(|r| r.text())
        .unwrap_or_default();
    stats
        .lines()
        .filter(|l| {
            l.contains("reviews.default.svc.cluster.local") && l.contains("upstream_cx_total")
        })
        .filter_map(|l| l.rsplit(':').next()?.trim().parse::<u64>().ok())
        .sum()
}

struct Setup {
    weftd: Weftd,
    _app: weft_testkit::echo::Running,
    reviews_inbound: u16,
    reviews: Proxy,
    productpage: Proxy,
}

fn log_level(var: &str, default: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| default.to_string())
}

/// reviews and productpage with weft-proxy sidecars whose certificates last `ttl`; weftd
/// started with `weftd_args` too.
fn setup_with(ttl: &str, weftd_args: &[&str]) -> Setup {
    let log = log_level("WEFT_TEST_WEFTD_LOG", "info");
    let mut args = vec!["--log-level", &log];
    args.extend_from_slice(weftd_args);
    let weftd = Weftd::start_with(&args);
    let (app, app_port) = echo("reviews", "v1");
    let reviews_inbound = free_port();
    mesh(&weftd, reviews_inbound);
    let dir = weftd.scratch().to_path_buf();
    let reviews = sidecar(
        &weftd,
        "reviews",
        Some(app_port),
        &token(&weftd, "reviews", &dir),
        ttl,
    );
    let productpage = sidecar(
        &weftd,
        "productpage",
        None,
        &token(&weftd, "productpage", &dir),
        ttl,
    );
    Setup {
        weftd,
        _app: app,
        reviews_inbound,
        reviews,
        productpage,
    }
}

fn setup(ttl: &str) -> Setup {
    setup_with(ttl, &[])
}

#[test]
fn sidecars_talk_mutual_tls_with_certificates_from_weftd() {
    let s = setup("24h");
    let body = first_ok(&s.weftd, &s.productpage, &s.reviews);
    assert_eq!(body["name"], "reviews");
    assert_eq!(body["path"], "/hello");
    // Both proxies got their certificate from the CA, for their own identity.
    for (proxy, sa) in [(&s.reviews, "reviews"), (&s.productpage, "productpage")] {
        let log = proxy.log();
        assert!(
            log.contains("workload certificate issued")
                && log.contains(&format!("spiffe://cluster.local/ns/default/sa/{sa}")),
            "{log}"
        );
    }
    // STRICT: a plaintext client straight at reviews' inbound port gets nothing.
    let plain = reqwest::blocking::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(3))
        .build()
        .unwrap();
    let direct = plain
        .get(format!("http://127.0.0.1:{}/hello", s.reviews_inbound))
        .send();
    assert!(direct.is_err(), "plaintext was served: {direct:?}");
}

#[test]
fn certificate_rotation_under_load_fails_no_request() {
    // 20 s certificates, renewed at about 10 s: ~30 s of requests span two or more
    // renewals on each side.
    let s = setup("20s");
    // One request per upstream connection: every request is a new mTLS handshake, so
    // renewals meet handshakes in flight, not only one long-lived connection.
    apply(
        &s.weftd,
        "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: reviews, namespace: default}\n\
         spec:\n  host: reviews.default.svc.cluster.local\n\
         \x20 trafficPolicy: {connectionPool: {http: {maxRequestsPerConnection: 1}}}\n",
    );
    first_ok(&s.weftd, &s.productpage, &s.reviews);
    let http = via(&s.productpage);
    let connections = || upstream_connections(&s.productpage);
    let opened_before = connections();
    let (mut ok, mut failed) = (0u32, Vec::new());
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(30) {
        match http.get("http://reviews:9080/load").send() {
            Ok(r) if r.status() == 200 => ok += 1,
            Ok(r) => failed.push(format!("{} {:?}", r.status(), r.text())),
            Err(e) => failed.push(e.to_string()),
        }
    }
    let issued = |p: &Proxy| p.log().matches("workload certificate issued").count();
    let (server, client) = (issued(&s.reviews), issued(&s.productpage));
    println!(
        "rotation under load: {ok} requests ok, {} failed; certificates issued: reviews {server}, productpage {client}",
        failed.len()
    );
    assert!(
        failed.is_empty(),
        "{} of {} requests failed: {:?}\n--- client\n{}\n--- server\n{}",
        failed.len(),
        ok as usize + failed.len(),
        &failed[..failed.len().min(5)],
        s.productpage.log(),
        s.reviews.log()
    );
    assert!(ok > 100, "only {ok} requests in 30 s");
    let opened = connections() - opened_before;
    println!("upstream mTLS connections opened during the run: {opened}");
    assert!(
        opened as f64 >= f64::from(ok) * 0.9,
        "{opened} connections for {ok} requests: not one handshake per request"
    );
    assert!(
        server >= 3 && client >= 3,
        "expected renewals during the run: reviews {server}, productpage {client}"
    );
}

/// ratings' app and its real Envoy sidecar (`delta`: over incremental xDS), in the same
/// STRICT mesh; None when Envoy is not installed.
fn ratings_behind_envoy(s: &Setup, delta: bool) -> Option<(weft_testkit::echo::Running, Proxy)> {
    let (app, port) = echo("ratings", "v1");
    let inbound = free_port();
    apply(
        &s.weftd,
        &format!(
            "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: ratings, namespace: default}}\n\
             spec:\n  hosts: [ratings.default.svc.cluster.local]\n  location: MESH_INTERNAL\n\
             \x20 ports: [{{number: 9080, name: http, protocol: HTTP}}]\n  resolution: STATIC\n\
             \x20 workloadSelector: {{labels: {{app: ratings}}}}\n\
             ---\n\
             apiVersion: networking.istio.io/v1\nkind: WorkloadGroup\nmetadata: {{name: ratings, namespace: default}}\n\
             spec:\n  metadata: {{labels: {{app: ratings, security.istio.io/tlsMode: istio}}}}\n\
             \x20 template: {{serviceAccount: ratings, ports: {{http: {inbound}}}}}\n"
        ),
    );
    let Some(envoy) = envoy_sidecar(&s.weftd, "ratings", Some(port), delta) else {
        eprintln!("Envoy not found (WEFT_ENVOY): weft-proxy <-> Envoy mTLS not tested");
        return None;
    };
    Some((app, envoy))
}

#[test]
fn weft_proxy_and_envoy_talk_mutual_tls_both_ways() {
    let s = setup("24h");
    let Some((_ratings_app, ratings)) = ratings_behind_envoy(&s, false) else {
        return;
    };
    apply(
        &s.weftd,
        "apiVersion: networking.istio.io/v1\nkind: WorkloadGroup\nmetadata: {name: details, namespace: default}\n\
         spec:\n  metadata: {labels: {app: details, security.istio.io/tlsMode: istio}}\n\
         \x20 template: {serviceAccount: details}\n",
    );
    let details = envoy_sidecar(&s.weftd, "details", None, false).unwrap();
    // weft-proxy client -> Envoy server.
    let body = wait_ok(&s.productpage, "ratings:9080", &ratings, &s.weftd);
    assert_eq!(body["name"], "ratings");
    // Envoy client -> weft-proxy server.
    let body = wait_ok(&details, "reviews:9080", &s.reviews, &s.weftd);
    assert_eq!(body["name"], "reviews");
}

/// The serial numbers and expiry times of the `ratings` certificates Envoy holds (admin
/// `/certs`: one entry per TLS context).
fn envoy_workload_certs(envoy: &Proxy) -> BTreeSet<(String, String)> {
    let certs: serde_json::Value =
        reqwest::blocking::get(format!("http://127.0.0.1:{}/certs", envoy.admin))
            .and_then(|r| r.json())
            .unwrap_or_default();
    let mut out = BTreeSet::new();
    for context in certs["certificates"].as_array().into_iter().flatten() {
        for cert in context["cert_chain"].as_array().into_iter().flatten() {
            let sans = cert["subject_alt_names"].to_string();
            if sans.contains("spiffe://cluster.local/ns/default/sa/ratings") {
                out.insert((
                    cert["serial_number"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                    cert["expiration_time"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                ));
            }
        }
    }
    out
}

#[test]
fn envoy_gets_its_certificate_renewed_at_half_life_without_a_config_change() {
    // weftd signs Envoy's `default` for 20 s and renews it at about 10 s; no config changes
    // after the first request. Over delta xDS (the test above runs state of the world).
    let s = setup_with("24h", &["--workload-cert-ttl", "20s"]);
    let Some((_ratings_app, ratings)) = ratings_behind_envoy(&s, true) else {
        return;
    };
    // A new mTLS handshake with ratings' Envoy per request.
    apply(
        &s.weftd,
        "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: ratings, namespace: default}\n\
         spec:\n  host: ratings.default.svc.cluster.local\n\
         \x20 trafficPolicy: {connectionPool: {http: {maxRequestsPerConnection: 1}}}\n",
    );
    wait_ok(&s.productpage, "ratings:9080", &ratings, &s.weftd);
    let first = envoy_workload_certs(&ratings);
    assert!(
        !first.is_empty(),
        "no ratings certificate in Envoy's /certs"
    );
    let http = via(&s.productpage);
    let (mut ok, mut failed) = (0u32, Vec::new());
    let mut seen = first.clone();
    let started = Instant::now();
    // Past the first certificate's expiry: handshakes then succeed only with a renewed one.
    while started.elapsed() < Duration::from_secs(32) {
        match http.get("http://ratings:9080/rotation").send() {
            Ok(r) if r.status() == 200 => ok += 1,
            Ok(r) => failed.push(format!("{} {:?}", r.status(), r.text())),
            Err(e) => failed.push(e.to_string()),
        }
        seen.extend(envoy_workload_certs(&ratings));
        std::thread::sleep(Duration::from_millis(50));
    }
    let serials: BTreeSet<&String> = seen.iter().map(|(serial, _)| serial).collect();
    println!(
        "Envoy certificate rotation: {ok} requests ok, {} failed; certificates seen: {seen:?}",
        failed.len()
    );
    assert!(
        failed.is_empty(),
        "{} of {} requests failed: {:?}\n--- ratings (Envoy)\n{}\n{}",
        failed.len(),
        ok as usize + failed.len(),
        &failed[..failed.len().min(5)],
        ratings.log(),
        s.weftd.log()
    );
    assert!(ok > 50, "only {ok} requests in 32 s");
    // Issued at 0 s, renewed at about 10, 20 and 30 s.
    assert!(
        serials.len() >= 3,
        "Envoy got {} certificates in 32 s, expected renewals: {seen:?}\n{}",
        serials.len(),
        s.weftd.log()
    );
    let latest = envoy_workload_certs(&ratings);
    let last_expiry = |set: &BTreeSet<(String, String)>| set.iter().map(|(_, e)| e.clone()).max();
    assert!(
        last_expiry(&latest) > last_expiry(&first),
        "no later expiry: {first:?} then {latest:?}"
    );
    let log = s.weftd.log();
    assert!(log.contains("re-issuing them for SDS"), "{log}");
}
