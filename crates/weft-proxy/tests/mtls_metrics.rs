//! Istio's security labels on weft-proxy's standard metrics, with workload certificates
//! from weftd's CA: `connection_security_policy`, `source_principal` and
//! `destination_principal` as Istio's stats filter fills them.
//!
//! reviews has a sidecar with an HTTP and a TCP port (PERMISSIVE: mTLS and plain text
//! both accepted). productpage's sidecar calls reviews over auto mTLS (HTTP); an ingress
//! gateway forwards a TCP port to reviews over auto mTLS too. The test also talks plain
//! text to reviews' inbound ports directly, and productpage calls `details`, a service
//! without a sidecar (plain text). Each proxy's `/stats/prometheus` must tell these apart.
//! Build the binaries first: `cargo build --workspace --bins`.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use weft_testkit::{echo, free_port, Weftd};

const TIMEOUT: Duration = Duration::from_secs(30);
const REVIEWS: &str = "spiffe://cluster.local/ns/default/sa/reviews";
const PRODUCTPAGE: &str = "spiffe://cluster.local/ns/default/sa/productpage";
const INGRESS: &str = "spiffe://cluster.local/ns/default/sa/ingress";

/// A running weft-proxy, killed when dropped.
struct Proxy {
    name: String,
    child: Child,
    log: PathBuf,
    outbound: u16,
    stats: u16,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Proxy {
    /// `/stats/prometheus` on the stats port.
    fn prometheus(&self) -> String {
        reqwest::blocking::get(format!("http://127.0.0.1:{}/stats/prometheus", self.stats))
            .and_then(|r| r.text())
            .unwrap_or_default()
    }

    fn log(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        format!("--- {} stderr\n{text}", self.name)
    }
}

/// Starts weft-proxy for WorkloadGroup `group` with `bootstrap_args` for
/// `weft bootstrap envoy` and a bootstrap token for the group's service account.
fn start(weftd: &Weftd, group: &str, bootstrap_args: &[&str]) -> Proxy {
    let dir = weftd.scratch();
    let token = weftd
        .weft(&[
            "token",
            "create",
            "-n",
            "default",
            "--service-account",
            group,
        ])
        .ok()
        .trim()
        .to_string();
    let token_file = dir.join(format!("{group}.token"));
    std::fs::write(&token_file, token).unwrap();
    let (outbound, admin, stats) = (free_port(), free_port(), free_port());
    let xds = weftd.xds_addr().to_string();
    let (outbound_s, admin_s) = (outbound.to_string(), admin.to_string());
    let mut args = vec![
        "bootstrap",
        "envoy",
        "--workload-group",
        group,
        "--outbound-port",
        &outbound_s,
        "--admin-port",
        &admin_s,
        "--xds",
        &xds,
    ];
    args.extend_from_slice(bootstrap_args);
    let bootstrap = dir.join(format!("{group}.yaml"));
    std::fs::write(&bootstrap, weftd.weft(&args).ok()).unwrap();
    let log = dir.join(format!("{group}.log"));
    let child = Command::new(env!("CARGO_BIN_EXE_weft-proxy"))
        .arg("--bootstrap")
        .arg(&bootstrap)
        .arg("--token-file")
        .arg(&token_file)
        .args(["--stats-port", &stats.to_string()])
        .args(["--health-port", &free_port().to_string()])
        .args(["--access-log", "off"])
        .env_remove("WEFT_TOKEN")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("start weft-proxy");
    Proxy {
        name: group.to_string(),
        child,
        log,
        outbound,
        stats,
    }
}

fn config(reviews_http: u16, reviews_tcp: u16, details_app: u16, gateway_port: u16) -> String {
    format!(
        "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: reviews, namespace: default}}
spec:
  hosts: [reviews.default.svc.cluster.local]
  location: MESH_INTERNAL
  ports: [{{number: 9080, name: http, protocol: HTTP}}, {{number: 9000, name: tcp, protocol: TCP}}]
  resolution: STATIC
  workloadSelector: {{labels: {{app: reviews}}}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadGroup
metadata: {{name: reviews, namespace: default}}
spec:
  metadata: {{labels: {{app: reviews, security.istio.io/tlsMode: istio}}}}
  template: {{serviceAccount: reviews, ports: {{http: {reviews_http}, tcp: {reviews_tcp}}}}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadGroup
metadata: {{name: productpage, namespace: default}}
spec:
  metadata: {{labels: {{app: productpage, security.istio.io/tlsMode: istio}}}}
  template: {{serviceAccount: productpage}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadGroup
metadata: {{name: ingress, namespace: default}}
spec:
  metadata: {{labels: {{istio: ingressgateway}}}}
  template: {{serviceAccount: ingress}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: details, namespace: default}}
spec:
  hosts: [details.default.svc.cluster.local]
  location: MESH_INTERNAL
  ports: [{{number: 9080, name: http, protocol: HTTP}}]
  resolution: STATIC
  endpoints: [{{address: 127.0.0.1, ports: {{http: {details_app}}}}}]
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {{name: tcp, namespace: default}}
spec:
  selector: {{istio: ingressgateway}}
  servers: [{{port: {{number: {gateway_port}, name: tcp, protocol: TCP}}, hosts: ['*']}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: tcp, namespace: default}}
spec:
  hosts: ['*']
  gateways: [tcp]
  tcp: [{{route: [{{destination: {{host: reviews.default.svc.cluster.local, port: {{number: 9000}}}}}}]}}]
"
    )
}

/// One HTTP/1.1 GET written on a raw TCP connection to `port` (through a TCP proxy the
/// echo still answers HTTP); the answer's status line, once the server closes.
fn raw_get(port: u16) -> Option<String> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.write_all(b"GET /tcp HTTP/1.1\r\nHost: reviews\r\nConnection: close\r\n\r\n")
        .ok()?;
    let mut answer = String::new();
    s.read_to_string(&mut answer).ok()?;
    answer.lines().next().map(str::to_string)
}

/// Retries `attempt` until it is true, or fails with `what` and the logs.
fn eventually(what: &str, logs: &dyn Fn() -> String, mut attempt: impl FnMut() -> bool) {
    let deadline = Instant::now() + TIMEOUT;
    while !attempt() {
        assert!(Instant::now() < deadline, "{what}\n{}", logs());
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The sum of `metric`'s series carrying every label of `want`.
fn value(text: &str, metric: &str, want: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter_map(|l| l.strip_prefix(metric)?.strip_prefix('{'))
        .filter(|l| {
            want.iter()
                .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Asserts that `proxy` reports a positive `metric` with `want`'s labels (within the
/// timeout: a request is recorded when its response ends).
fn assert_reported(proxy: &Proxy, metric: &str, want: &[(&str, &str)]) {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let text = proxy.prometheus();
        if value(&text, metric, want) > 0.0 {
            return;
        }
        if Instant::now() > deadline {
            let lines: Vec<&str> = text.lines().filter(|l| l.starts_with(metric)).collect();
            panic!(
                "{}: no {metric} with {want:?}; its series:\n{}",
                proxy.name,
                lines.join("\n")
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn principals_and_connection_security_policy_on_both_sides() {
    let weftd = Weftd::start();
    let (_reviews_app, reviews_app) = echo::start("reviews", "v1");
    let (_details_app, details_app) = echo::start("details", "v1");
    let (reviews_http, reviews_tcp, gateway_port) = (free_port(), free_port(), free_port());
    let yaml = config(reviews_http, reviews_tcp, details_app, gateway_port);
    weftd.weft_stdin(&["apply", "-f", "-"], Some(&yaml)).ok();

    let (http_app, tcp_app) = (format!("http={reviews_app}"), format!("tcp={reviews_app}"));
    let reviews = start(
        &weftd,
        "reviews",
        &["--app-port", &http_app, "--app-port", &tcp_app],
    );
    let productpage = start(&weftd, "productpage", &[]);
    let gateway_label = "istio=ingressgateway";
    let ingress = start(
        &weftd,
        "ingress",
        &["--type", "router", "--label", gateway_label],
    );
    let logs = || {
        format!(
            "{}\n{}\n{}\n{}",
            reviews.log(),
            productpage.log(),
            ingress.log(),
            weftd.log()
        )
    };
    let client = reqwest::blocking::Client::builder()
        .proxy(reqwest::Proxy::http(format!("http://127.0.0.1:{}", productpage.outbound)).unwrap())
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let get = |url: &str| client.get(url).send().is_ok_and(|r| r.status() == 200);

    // HTTP over mutual TLS: productpage -> reviews.
    eventually("no 200 from reviews over mTLS", &logs, || {
        get("http://reviews:9080/mtls")
    });
    let inbound_mtls = [
        ("reporter", "destination"),
        ("connection_security_policy", "mutual_tls"),
        ("source_principal", PRODUCTPAGE),
        ("destination_principal", REVIEWS),
        ("source_workload_namespace", "default"),
        ("response_code", "200"),
    ];
    assert_reported(&reviews, "istio_requests_total", &inbound_mtls);
    assert_reported(
        &reviews,
        "istio_request_duration_milliseconds_count",
        &inbound_mtls,
    );
    let outbound_mtls = [
        ("reporter", "source"),
        ("connection_security_policy", "unknown"),
        ("source_principal", PRODUCTPAGE),
        ("destination_principal", REVIEWS),
        ("destination_service", "reviews.default.svc.cluster.local"),
        ("response_code", "200"),
    ];
    assert_reported(&productpage, "istio_requests_total", &outbound_mtls);
    assert_reported(&productpage, "istio_response_bytes_count", &outbound_mtls);

    // HTTP in plain text: straight to reviews' inbound port (PERMISSIVE), and from
    // productpage to details, which has no sidecar.
    let direct = reqwest::blocking::Client::new();
    eventually(
        "no 200 from reviews' inbound port in plain text",
        &logs,
        || {
            direct
                .get(format!("http://127.0.0.1:{reviews_http}/plain"))
                .send()
                .is_ok_and(|r| r.status() == 200)
        },
    );
    assert_reported(
        &reviews,
        "istio_requests_total",
        &[
            ("reporter", "destination"),
            ("connection_security_policy", "none"),
            ("source_principal", "unknown"),
            ("destination_principal", "unknown"),
            ("response_code", "200"),
        ],
    );
    eventually("no 200 from details", &logs, || {
        get("http://details:9080/plain")
    });
    assert_reported(
        &productpage,
        "istio_requests_total",
        &[
            ("reporter", "source"),
            ("connection_security_policy", "unknown"),
            ("source_principal", "unknown"),
            ("destination_principal", "unknown"),
            ("destination_service", "details.default.svc.cluster.local"),
        ],
    );

    // TCP over mutual TLS: the gateway's TCP server -> reviews' TCP port.
    eventually("no answer through the gateway's TCP port", &logs, || {
        raw_get(gateway_port).is_some_and(|l| l.contains(" 200 "))
    });
    let tcp_inbound_mtls = [
        ("reporter", "destination"),
        ("request_protocol", "tcp"),
        ("connection_security_policy", "mutual_tls"),
        ("source_principal", INGRESS),
        ("destination_principal", REVIEWS),
    ];
    for metric in [
        "istio_tcp_connections_opened_total",
        "istio_tcp_connections_closed_total",
        "istio_tcp_received_bytes_total",
        "istio_tcp_sent_bytes_total",
    ] {
        eventually(&format!("reviews: no {metric} over mTLS"), &logs, || {
            value(&reviews.prometheus(), metric, &tcp_inbound_mtls) > 0.0
        });
    }
    let tcp_outbound_mtls = [
        ("reporter", "source"),
        ("request_protocol", "tcp"),
        ("connection_security_policy", "unknown"),
        ("source_principal", INGRESS),
        ("destination_principal", REVIEWS),
        ("destination_service", "reviews.default.svc.cluster.local"),
    ];
    assert_reported(
        &ingress,
        "istio_tcp_connections_opened_total",
        &tcp_outbound_mtls,
    );
    eventually("ingress: no closed TCP connection over mTLS", &logs, || {
        value(
            &ingress.prometheus(),
            "istio_tcp_connections_closed_total",
            &tcp_outbound_mtls,
        ) > 0.0
    });

    // TCP in plain text: straight to reviews' TCP port.
    let status = raw_get(reviews_tcp);
    assert!(
        status.as_deref().is_some_and(|l| l.contains(" 200 ")),
        "plain TCP to reviews: {status:?}\n{}",
        logs()
    );
    eventually("reviews: no plain-text TCP connection", &logs, || {
        value(
            &reviews.prometheus(),
            "istio_tcp_connections_closed_total",
            &[
                ("reporter", "destination"),
                ("connection_security_policy", "none"),
                ("source_principal", "unknown"),
                ("destination_principal", "unknown"),
            ],
        ) > 0.0
    });
}
