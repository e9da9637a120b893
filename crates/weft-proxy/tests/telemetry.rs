//! Telemetry end to end: weftd configures weft-proxy, requests through it (200s, a 404 NR,
//! a 503 UH) show up in Istio's standard metrics on the stats port with Istio's labels,
//! promtool accepts the exposition, and the access log has Istio's text format.
//! Build the workspace binaries first: `cargo build --workspace --bins`.

use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use weft_testkit::echo::{start as echo, Running};
use weft_testkit::{free_port, Weftd};

const CONFIG_TIMEOUT: Duration = Duration::from_secs(20);

fn apply(weftd: &Weftd, yaml: &str) {
    weftd.weft_stdin(&["apply", "-f", "-"], Some(yaml)).ok();
}

fn http() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap()
}

fn workload_entry(name: &str, app: &str, port: u16) -> String {
    format!(
        "apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {{name: {name}, namespace: default}}\n\
         spec:\n  address: 127.0.0.1\n  ports: {{http: {port}}}\n  labels: {{app: {app}, version: v1}}\n"
    )
}

fn service_entry(name: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: {name}, namespace: default}}\n\
         spec:\n  hosts: [{name}.default.svc.cluster.local]\n  location: MESH_INTERNAL\n\
         \x20 ports: [{{number: 9080, name: http, protocol: HTTP}}]\n  resolution: STATIC\n\
         \x20 workloadSelector: {{labels: {{app: {name}}}}}\n"
    )
}

/// The labels of a Prometheus sample line, and its value.
fn parse_sample(line: &str) -> (BTreeMap<String, String>, f64) {
    let open = line.find('{').unwrap();
    let close = line.rfind('}').unwrap();
    let mut labels = BTreeMap::new();
    let mut rest = &line[open + 1..close];
    while let Some(eq) = rest.find("=\"") {
        let key = rest[..eq].trim_start_matches(',').to_string();
        let after = &rest[eq + 2..];
        let end = after.find('"').unwrap();
        labels.insert(key, after[..end].to_string());
        rest = &after[end + 1..];
    }
    (labels, line[close + 1..].trim().parse().unwrap())
}

fn samples(text: &str, name: &str) -> Vec<(BTreeMap<String, String>, f64)> {
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")))
        .map(parse_sample)
        .collect()
}

#[test]
fn istio_metrics_and_access_log() {
    let weftd = Weftd::start();
    let (_ratings, ratings_port) = echo("ratings-v1", "v1");
    apply(&weftd, &service_entry("ratings"));
    apply(
        &weftd,
        &workload_entry("ratings-v1", "ratings", ratings_port),
    );
    // A service with no workloads: its cluster has no endpoint (503 UH).
    apply(&weftd, &service_entry("empty"));
    // Only /ok is routed for ratings: anything else is 404 NR.
    apply(
        &weftd,
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: ratings, namespace: default}\n\
         spec:\n  hosts: [ratings.default.svc.cluster.local]\n\
         \x20 http: [{match: [{uri: {prefix: /ok}}], route: [{destination: {host: ratings.default.svc.cluster.local}}]}]\n",
    );
    apply(
        &weftd,
        "apiVersion: networking.istio.io/v1\nkind: WorkloadGroup\nmetadata: {name: sleep, namespace: default}\n\
         spec:\n  metadata: {labels: {app: sleep, version: v3}}\n  template: {serviceAccount: sleep}\n",
    );

    let (outbound, admin, stats) = (free_port(), free_port(), free_port());
    let xds = weftd.xds_addr().to_string();
    let (outbound_s, admin_s) = (outbound.to_string(), admin.to_string());
    let bootstrap = weftd
        .weft(&[
            "bootstrap",
            "envoy",
            "--workload-group",
            "sleep",
            "--capture",
            "explicit",
            "--outbound-port",
            &outbound_s,
            "--admin-port",
            &admin_s,
            "--xds",
            &xds,
        ])
        .ok()
        .to_string();
    // `weft bootstrap envoy` has no stats port flag: the harness sets the metadata key.
    let mut doc: serde_yaml::Value = serde_yaml::from_str(&bootstrap).unwrap();
    doc["node"]["metadata"]["WEFT_STATS_PORT"] = serde_yaml::Value::from(stats.to_string());
    let file = weftd.scratch().join("weft-proxy.yaml");
    std::fs::write(&file, serde_yaml::to_string(&doc).unwrap()).unwrap();
    let log_path = weftd.scratch().join("weft-proxy.log");
    let access_path = weftd.scratch().join("access.log");
    let _proxy = Running(
        Command::new(env!("CARGO_BIN_EXE_weft-proxy"))
            .arg("--bootstrap")
            .arg(&file)
            .stdout(std::fs::File::create(&access_path).unwrap())
            .stderr(std::fs::File::create(&log_path).unwrap())
            .spawn()
            .expect("start weft-proxy"),
    );
    let log = || std::fs::read_to_string(&log_path).unwrap_or_default();
    let via_proxy = reqwest::blocking::Client::builder()
        .proxy(reqwest::Proxy::http(format!("http://127.0.0.1:{outbound}")).unwrap())
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let get = |url: &str| {
        via_proxy
            .get(url)
            .header("user-agent", "telemetry-test")
            .send()
    };

    // Wait for config: the first 200 counts, like every later one.
    let deadline = Instant::now() + CONFIG_TIMEOUT;
    let first = loop {
        match get("http://ratings:9080/ok/0") {
            Ok(r) if r.status() == 200 => break r,
            other => {
                assert!(Instant::now() < deadline, "no 200: {other:?}\n{}", log());
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    };
    assert_eq!(first.headers()["server"], "envoy");
    let more = 6;
    for i in 1..=more {
        assert_eq!(
            get(&format!("http://ratings:9080/ok/{i}"))
                .unwrap()
                .status(),
            200
        );
    }
    let not_found = get("http://ratings:9080/nope").unwrap();
    assert_eq!(not_found.status(), 404);
    let deadline = Instant::now() + CONFIG_TIMEOUT;
    loop {
        let r = get("http://empty:9080/").unwrap();
        if r.status() == 503 {
            assert_eq!(r.text().unwrap(), "no healthy upstream");
            break;
        }
        assert!(Instant::now() < deadline, "no 503 UH: {}", r.status());
        std::thread::sleep(Duration::from_millis(100));
    }

    let scrape = http()
        .get(format!("http://127.0.0.1:{stats}/stats/prometheus"))
        .send()
        .unwrap();
    assert_eq!(scrape.status(), 200);
    let text = scrape.text().unwrap();
    let requests = samples(&text, "istio_requests_total");
    let ok: Vec<_> = requests
        .iter()
        .filter(|(l, _)| {
            l["destination_service"] == "ratings.default.svc.cluster.local"
                && l["response_code"] == "200"
        })
        .collect();
    assert_eq!(ok.len(), 1, "one series for the 200s:\n{text}");
    let (labels, count) = ok[0];
    assert_eq!(*count, f64::from(1 + more), "{text}");
    let expected = [
        ("reporter", "source"),
        ("source_workload", "sleep"),
        ("source_workload_namespace", "default"),
        ("source_principal", "unknown"),
        ("source_app", "sleep"),
        ("source_version", "v3"),
        ("source_canonical_service", "sleep"),
        ("source_canonical_revision", "v3"),
        ("source_cluster", "unknown"),
        // The endpoint's Istio metadata from weftd's EDS names the workload that answered;
        // like Istio's, that encoding has no app or version.
        ("destination_workload", "ratings-v1"),
        ("destination_workload_namespace", "default"),
        ("destination_principal", "unknown"),
        ("destination_app", "unknown"),
        ("destination_version", "unknown"),
        ("destination_service", "ratings.default.svc.cluster.local"),
        ("destination_service_name", "ratings"),
        ("destination_service_namespace", "default"),
        ("destination_canonical_service", "ratings"),
        ("destination_canonical_revision", "v1"),
        ("destination_cluster", "unknown"),
        ("request_protocol", "http"),
        ("response_code", "200"),
        ("grpc_response_status", ""),
        ("response_flags", "-"),
        ("connection_security_policy", "unknown"),
    ];
    let want: BTreeMap<String, String> = expected
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    assert_eq!(labels, &want);
    let nr: Vec<_> = requests
        .iter()
        .filter(|(l, _)| l["response_code"] == "404")
        .collect();
    assert_eq!(nr.len(), 1, "{text}");
    assert_eq!(nr[0].0["response_flags"], "NR");
    assert_eq!(nr[0].1, 1.0);
    let uh = requests
        .iter()
        .find(|(l, _)| {
            l["destination_service"] == "empty.default.svc.cluster.local"
                && l["response_code"] == "503"
        })
        .unwrap_or_else(|| panic!("no 503 series:\n{text}"));
    assert_eq!(uh.0["response_flags"], "UH");
    // No endpoint answered: no destination workload, and Istio's default revision.
    assert_eq!(uh.0["destination_workload"], "unknown");
    assert_eq!(uh.0["destination_canonical_revision"], "latest");
    // The duration histogram's count agrees with the counter, series by series.
    let durations = samples(&text, "istio_request_duration_milliseconds_count");
    let d = durations.iter().find(|(l, _)| l == labels).unwrap();
    assert_eq!(d.1, *count);

    promtool_check(&text);

    // The access log: the 404's line, field by field.
    let deadline = Instant::now() + Duration::from_secs(5);
    let line = loop {
        let all = std::fs::read_to_string(&access_path).unwrap_or_default();
        if let Some(l) = all.lines().find(|l| l.contains("\"GET /nope HTTP/1.1\"")) {
            break l.to_string();
        }
        assert!(
            Instant::now() < deadline,
            "no access log line for /nope:\n{all}"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(line.starts_with('['), "{line}");
    let after_time = line.split_once("] ").unwrap().1;
    let quoted: Vec<&str> = after_time.split('"').collect();
    assert_eq!(quoted[1], "GET /nope HTTP/1.1");
    let fields: Vec<&str> = quoted[2].split_whitespace().collect();
    assert_eq!(
        &fields[..4],
        &["404", "NR", "route_not_found", "-"],
        "{line}"
    );
    assert_eq!(quoted[7], "telemetry-test", "{line}");
    assert_eq!(quoted[9].len(), 36, "generated x-request-id: {line}");
    assert_eq!(quoted[11], "ratings:9080", "{line}");
    println!("access log line: {line}");
}

/// `promtool check metrics`: the exposition must parse, and the only lint allowed is the
/// one Istio's own names trip (`_milliseconds` instead of seconds).
fn promtool_check(text: &str) {
    let Ok(mut child) = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    else {
        assert!(
            std::env::var_os("WEFT_REQUIRE_ENVOY").is_none(),
            "promtool is required (scripts/install-test-deps.sh installs it)"
        );
        println!("promtool not found: skipping `promtool check metrics`");
        return;
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let problems: Vec<&str> = report
        .lines()
        .filter(|l| !l.trim().is_empty())
        .filter(|l| {
            *l != "istio_request_duration_milliseconds use base unit \"seconds\" instead of \"milliseconds\""
        })
        .collect();
    assert!(problems.is_empty(), "promtool check metrics:\n{report}");
    println!(
        "promtool check metrics: {}",
        if report.trim().is_empty() {
            "clean"
        } else {
            report.trim()
        }
    );
}
