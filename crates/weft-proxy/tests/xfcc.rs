//! x-forwarded-client-cert and the workload certificate in the admin dump, weft-proxy next
//! to real Envoy (`WEFT_ENVOY`), both configured by weftd as Istio configures its sidecars.
//!
//! Two clients (a weft-proxy and an Envoy sidecar) call two servers (the same) over STRICT
//! mutual TLS. Each client sends a forged XFCC header, which its sidecar's outbound side
//! strips; the server sidecar's inbound side appends the caller's certificate
//! (APPEND_FORWARD with Subject, URI and DNS), so the app sees one element whose fields,
//! order and quoting must be the same whichever proxy is the server. `weft proxy-config
//! secret` then shows the sidecar's own certificate `default` for both data planes.
//! Build the binaries first: `cargo build -p weft-control -p weft-proxy -p weft-cli -p weft-echo --bins`.

use base64::Engine;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use weft_testkit::echo::start as echo;
use weft_testkit::{free_port, Weftd};

const CONFIG_TIMEOUT: Duration = Duration::from_secs(30);
const FORGED: &str = "By=spiffe://cluster.local/ns/default/sa/forged;Hash=00;URI=spiffe://evil";

struct Proxy {
    name: &'static str,
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

/// Services reviews and ratings (port 9080, the given inbound ports), the WorkloadGroups of
/// the four sidecars, all with Istio's mTLS label, and mesh-wide STRICT mTLS.
fn mesh(weftd: &Weftd, reviews_inbound: u16, ratings_inbound: u16) {
    let mut yaml = String::new();
    for (svc, inbound) in [("reviews", reviews_inbound), ("ratings", ratings_inbound)] {
        yaml.push_str(&format!(
            "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: {svc}, namespace: default}}\n\
             spec:\n  hosts: [{svc}.default.svc.cluster.local]\n  location: MESH_INTERNAL\n\
             \x20 ports: [{{number: 9080, name: http, protocol: HTTP}}]\n  resolution: STATIC\n\
             \x20 workloadSelector: {{labels: {{app: {svc}}}}}\n---\n\
             apiVersion: networking.istio.io/v1\nkind: WorkloadGroup\nmetadata: {{name: {svc}, namespace: default}}\n\
             spec:\n  metadata: {{labels: {{app: {svc}, security.istio.io/tlsMode: istio}}}}\n\
             \x20 template: {{serviceAccount: {svc}, ports: {{http: {inbound}}}}}\n---\n"
        ));
    }
    for client in ["productpage", "details"] {
        yaml.push_str(&format!(
            "apiVersion: networking.istio.io/v1\nkind: WorkloadGroup\nmetadata: {{name: {client}, namespace: default}}\n\
             spec:\n  metadata: {{labels: {{app: {client}, security.istio.io/tlsMode: istio}}}}\n\
             \x20 template: {{serviceAccount: {client}}}\n---\n"
        ));
    }
    yaml.push_str(
        "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: default, namespace: istio-system}\n\
         spec: {mtls: {mode: STRICT}}\n",
    );
    weftd.weft_stdin(&["apply", "-f", "-"], Some(&yaml)).ok();
}

/// A bootstrap token for service account `sa`, in a file.
fn token(weftd: &Weftd, sa: &str) -> PathBuf {
    let out = weftd.weft(&["token", "create", "-n", "default", "--service-account", sa]);
    let path = weftd.scratch().join(format!("{sa}.token"));
    std::fs::write(&path, out.ok().trim()).unwrap();
    path
}

/// `weft bootstrap envoy` for WorkloadGroup `group`, written to the scratch dir.
fn bootstrap(
    weftd: &Weftd,
    group: &str,
    ports: (u16, u16),
    app: Option<u16>,
    extra: &[&str],
) -> PathBuf {
    let xds = weftd.xds_addr().to_string();
    let (outbound, admin) = (ports.0.to_string(), ports.1.to_string());
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
        "--capture",
        "explicit",
    ];
    args.extend_from_slice(extra);
    let app = app.map(|p| format!("http={p}"));
    if let Some(app) = &app {
        args.extend(["--app-port", app]);
    }
    let file = weftd.scratch().join(format!("{group}.yaml"));
    std::fs::write(&file, weftd.weft(&args).ok()).unwrap();
    file
}

/// A weft-proxy sidecar of `group`, certificate from weftd's CA.
fn weft_sidecar(weftd: &Weftd, group: &'static str, app: Option<u16>) -> Proxy {
    let (outbound, admin) = (free_port(), free_port());
    let file = bootstrap(weftd, group, (outbound, admin), app, &[]);
    let log = weftd.scratch().join(format!("{group}.log"));
    let child = Command::new(env!("CARGO_BIN_EXE_weft-proxy"))
        .arg("--bootstrap")
        .arg(&file)
        .arg("--token-file")
        .arg(token(weftd, group))
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
        name: group,
        child,
        log,
        outbound,
        admin,
    }
}

/// A real Envoy sidecar of `group`, certificate from weftd over SDS.
fn envoy_sidecar(weftd: &Weftd, envoy: &Path, group: &'static str, app: Option<u16>) -> Proxy {
    let (outbound, admin) = (free_port(), free_port());
    let token = token(weftd, group).display().to_string();
    let file = bootstrap(
        weftd,
        group,
        (outbound, admin),
        app,
        &["--token-file", &token],
    );
    let log = weftd.scratch().join(format!("{group}.log"));
    let child = Command::new(envoy)
        .arg("-c")
        .arg(&file)
        .args(["--disable-hot-restart", "-l", "warning"])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("start envoy");
    Proxy {
        name: group,
        child,
        log,
        outbound,
        admin,
    }
}

/// The XFCC header the app behind `server` saw for a request from `client`'s app that
/// carried a forged one.
fn xfcc_seen(weftd: &Weftd, client: &Proxy, host: &str, server: &Proxy) -> Option<String> {
    let http = reqwest::blocking::Client::builder()
        .proxy(reqwest::Proxy::http(format!("http://127.0.0.1:{}", client.outbound)).unwrap())
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let deadline = Instant::now() + CONFIG_TIMEOUT;
    loop {
        let sent = http
            .get(format!("http://{host}:9080/xfcc"))
            .header("x-forwarded-client-cert", FORGED)
            .send();
        match sent {
            Ok(r) if r.status() == 200 => {
                let body: serde_json::Value = r.json().unwrap();
                return body["headers"]["x-forwarded-client-cert"]
                    .as_str()
                    .map(str::to_string);
            }
            other => {
                assert!(
                    Instant::now() < deadline,
                    "no 200 from {host} via {}: {other:?}\n--- client\n{}\n--- server\n{}\n{}",
                    client.name,
                    client.log(),
                    server.log(),
                    weftd.log()
                );
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    }
}

/// The admin `/config_dump` of `proxy`.
fn config_dump(proxy: &Proxy) -> serde_json::Value {
    reqwest::blocking::get(format!("http://127.0.0.1:{}/config_dump", proxy.admin))
        .and_then(|r| r.json())
        .unwrap()
}

/// The DER of the leaf of secret `default` in `proxy`'s config dump.
fn default_leaf(proxy: &Proxy) -> Vec<u8> {
    let dump = config_dump(proxy);
    let secrets = dump["configs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| {
            c["@type"]
                .as_str()
                .is_some_and(|t| t.ends_with("SecretsConfigDump"))
        })
        .unwrap_or_else(|| panic!("no secrets in {}'s dump", proxy.name));
    let default = secrets["dynamic_active_secrets"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|s| s["name"] == "default")
        .unwrap_or_else(|| panic!("no default in {}'s secrets: {secrets}", proxy.name));
    // Envoy prints bytes as base64, strings as they are.
    let chain = &default["secret"]["tls_certificate"]["certificate_chain"];
    let pem = match (
        chain["inline_bytes"].as_str(),
        chain["inline_string"].as_str(),
    ) {
        (Some(b64), _) => String::from_utf8(
            base64::engine::general_purpose::STANDARD
                .decode(b64)
                .unwrap(),
        )
        .unwrap(),
        (None, Some(s)) => s.to_string(),
        _ => panic!("{}'s default has no inline chain: {default}", proxy.name),
    };
    let body: String = pem
        .lines()
        .skip_while(|l| !l.starts_with("-----BEGIN CERTIFICATE"))
        .skip(1)
        .take_while(|l| !l.starts_with("-----END"))
        .collect();
    base64::engine::general_purpose::STANDARD
        .decode(body)
        .unwrap()
}

fn sha256_hex(der: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA256, der)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[test]
fn the_app_sees_the_same_client_certificate_header_behind_envoy_and_weft_proxy() {
    let Some(envoy) = weft_testkit::envoy::find() else {
        eprintln!("Envoy not found (WEFT_ENVOY): XFCC parity not tested");
        return;
    };
    let weftd = Weftd::start();
    let (_reviews_app, reviews_port) = echo("reviews", "v1");
    let (_ratings_app, ratings_port) = echo("ratings", "v1");
    mesh(&weftd, free_port(), free_port());
    let reviews = weft_sidecar(&weftd, "reviews", Some(reviews_port));
    let ratings = envoy_sidecar(&weftd, &envoy, "ratings", Some(ratings_port));
    let productpage = weft_sidecar(&weftd, "productpage", None);
    let details = envoy_sidecar(&weftd, &envoy, "details", None);

    let spiffe = |sa: &str| format!("spiffe://cluster.local/ns/default/sa/{sa}");
    for client in [&productpage, &details] {
        let behind_weft = xfcc_seen(&weftd, client, "reviews", &reviews)
            .unwrap_or_else(|| panic!("no XFCC behind weft-proxy from {}", client.name));
        let behind_envoy = xfcc_seen(&weftd, client, "ratings", &ratings)
            .unwrap_or_else(|| panic!("no XFCC behind Envoy from {}", client.name));
        // Envoy's own answer, checked for the shape Istio documents, then compared field by
        // field (By names the server, so it is set aside).
        let hash = behind_envoy
            .split(';')
            .find_map(|f| f.strip_prefix("Hash="))
            .unwrap_or_default()
            .to_string();
        assert_eq!(
            behind_envoy,
            format!(
                "By={};Hash={hash};Subject=\"\";URI={}",
                spiffe("ratings"),
                spiffe(client.name)
            ),
            "Envoy server, {} client",
            client.name
        );
        assert_eq!(hash.len(), 64, "{behind_envoy}");
        assert_eq!(
            behind_weft,
            behind_envoy.replace(&spiffe("ratings"), &spiffe("reviews")),
            "weft-proxy server vs Envoy server, {} client",
            client.name
        );
        // The hash is the client's certificate as its own admin dump shows it.
        assert_eq!(hash, sha256_hex(&default_leaf(client)), "{}", client.name);
    }

    // `weft proxy-config secret`: the sidecar's own certificate and the trust bundle, for
    // both data planes.
    for proxy in [&productpage, &details, &reviews, &ratings] {
        let admin = format!("http://127.0.0.1:{}", proxy.admin);
        let out = weftd.weft(&["proxy-config", "secret", "--admin", &admin]);
        let table = out.ok();
        let row = |name: &str| {
            table
                .lines()
                .find(|l| l.split_whitespace().next() == Some(name))
                .unwrap_or_else(|| panic!("no {name} for {}:\n{table}", proxy.name))
                .to_string()
        };
        let default = row("default");
        assert!(
            default.contains("Cert Chain") && default.contains("ACTIVE"),
            "{}:\n{table}",
            proxy.name
        );
        let root = row("ROOTCA");
        assert!(
            root.contains("CA") && root.contains("ACTIVE"),
            "{}:\n{table}",
            proxy.name
        );
    }
}
