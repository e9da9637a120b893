//! weft-proxy end to end with real processes: weftd configures it over ADS from Istio
//! config, requests through its outbound HTTP-proxy listener reach echo servers, a 50/50
//! VirtualService spreads them, and weftd sees the proxy SYNCED.
//! Build the workspace binaries first: `cargo build --workspace --bins`.

use serde_json::Value;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use weft_testkit::echo::{start as echo, Running};
use weft_testkit::{free_port, Weftd};

const CONFIG_TIMEOUT: Duration = Duration::from_secs(20);

fn apply(weftd: &Weftd, yaml: &str) {
    weftd.weft_stdin(&["apply", "-f", "-"], Some(yaml)).ok();
}

fn workload_entry(name: &str, version: &str, port: u16) -> String {
    format!(
        "apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {{name: {name}, namespace: default}}\n\
         spec:\n  address: 127.0.0.1\n  ports: {{http: {port}}}\n  labels: {{app: ratings, version: {version}}}\n"
    )
}

fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn http() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap()
}

#[test]
fn weft_proxy_serves_mesh_traffic_configured_by_weftd() {
    let weftd = Weftd::start();
    let (_v1, v1_port) = echo("ratings-v1", "v1");
    apply(
        &weftd,
        "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: ratings, namespace: default}\n\
         spec:\n  hosts: [ratings.default.svc.cluster.local]\n  location: MESH_INTERNAL\n\
         \x20 ports: [{number: 9080, name: http, protocol: HTTP}]\n  resolution: STATIC\n\
         \x20 workloadSelector: {labels: {app: ratings}}\n",
    );
    apply(&weftd, &workload_entry("ratings-v1", "v1", v1_port));
    apply(
        &weftd,
        "apiVersion: networking.istio.io/v1\nkind: WorkloadGroup\nmetadata: {name: sleep, namespace: default}\n\
         spec:\n  metadata: {labels: {app: sleep}}\n  template: {serviceAccount: sleep}\n",
    );

    let outbound = free_port();
    let admin = free_port();
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
    let file = weftd.scratch().join("weft-proxy.yaml");
    std::fs::write(&file, bootstrap).unwrap();
    let log_path = weftd.scratch().join("weft-proxy.log");
    let proxy = Running(
        Command::new(env!("CARGO_BIN_EXE_weft-proxy"))
            .arg("--bootstrap")
            .arg(&file)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log_path).unwrap())
            .spawn()
            .expect("start weft-proxy"),
    );
    let pid = proxy.0.id();
    let log = || std::fs::read_to_string(&log_path).unwrap_or_default();
    let client = http();
    let admin_url = format!("http://127.0.0.1:{admin}");

    // Ready once the first LDS is applied.
    let deadline = Instant::now() + CONFIG_TIMEOUT;
    while !client
        .get(format!("{admin_url}/ready"))
        .send()
        .is_ok_and(|r| r.status() == 200)
    {
        assert!(
            Instant::now() < deadline,
            "weft-proxy never ready\n{}\n{}",
            log(),
            weftd.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    // Absolute-form through the outbound HTTP proxy listener.
    let via_proxy = reqwest::blocking::Client::builder()
        .proxy(reqwest::Proxy::http(format!("http://127.0.0.1:{outbound}")).unwrap())
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let get = |path: &str| via_proxy.get(format!("http://ratings:9080{path}")).send();
    let deadline = Instant::now() + CONFIG_TIMEOUT;
    let first = loop {
        match get("/hello") {
            Ok(r) if r.status() == 200 => break r,
            other => {
                assert!(
                    Instant::now() < deadline,
                    "no 200 through weft-proxy: {other:?}\n{}",
                    log()
                );
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    };
    assert!(first
        .headers()
        .contains_key("x-envoy-upstream-service-time"));
    let body: Value = first.json().unwrap();
    assert_eq!(body["name"], "ratings-v1");
    assert_eq!(body["path"], "/hello");
    assert_eq!(body["host"], "ratings:9080");
    assert!(body["headers"]["x-request-id"].is_string(), "{body}");

    // An unknown host falls to weftd's `allow_any` virtual host (ALLOW_ANY, Istio's
    // default): PassthroughCluster towards the request's authority. The explicit proxy
    // resolves no names, so a hostname that is not an address has no upstream host: 503,
    // as Envoy answers the same configuration.
    let passthrough = via_proxy.get("http://nowhere:9080/").send().unwrap();
    assert_eq!(passthrough.status(), 503);

    // Idle memory, after config and a few requests.
    std::thread::sleep(Duration::from_millis(500));
    let rss = rss_kib(pid).expect("read VmRSS of weft-proxy");
    println!(
        "weft-proxy idle RSS: {rss} KiB ({:.1} MiB)",
        rss as f64 / 1024.0
    );

    // A second version and a 50/50 split between subsets.
    let (_v2, v2_port) = echo("ratings-v2", "v2");
    apply(&weftd, &workload_entry("ratings-v2", "v2", v2_port));
    apply(
        &weftd,
        "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: ratings, namespace: default}\n\
         spec:\n  host: ratings.default.svc.cluster.local\n\
         \x20 subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}]\n",
    );
    apply(
        &weftd,
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: ratings, namespace: default}\n\
         spec:\n  hosts: [ratings]\n  http:\n  - route:\n\
         \x20   - destination: {host: ratings, subset: v1}\n      weight: 50\n\
         \x20   - destination: {host: ratings, subset: v2}\n      weight: 50\n",
    );
    let deadline = Instant::now() + CONFIG_TIMEOUT;
    let (mut v1, mut v2) = (0, 0);
    while v2 == 0 {
        assert!(
            Instant::now() < deadline,
            "ratings-v2 never answered\n{}",
            log()
        );
        if let Ok(r) = get("/split") {
            if r.status() == 200 && r.json::<Value>().unwrap()["name"] == "ratings-v2" {
                v2 += 1;
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    for _ in 0..200 {
        let body: Value = get("/split").unwrap().json().unwrap();
        match body["name"].as_str() {
            Some("ratings-v1") => v1 += 1,
            Some("ratings-v2") => v2 += 1,
            other => panic!("unexpected answer {other:?}"),
        }
    }
    println!("50/50 split over 201 requests: v1={v1} v2={v2}");
    // Binomial(200, 0.5): below 60 has probability < 1e-8.
    assert!(v1 >= 60 && v2 >= 60, "v1={v1} v2={v2}");

    // weftd's view: every type sent was ACKed, none NACKed.
    let id = "sidecar~127.0.0.1~sleep.default~default.svc.cluster.local";
    let deadline = Instant::now() + CONFIG_TIMEOUT;
    let entry = loop {
        let proxies: Value = client
            .get(format!("{}/debug/proxies", weftd.url()))
            .send()
            .unwrap()
            .json()
            .unwrap();
        let entry = proxies
            .as_array()
            .and_then(|a| a.iter().find(|p| p["proxy"] == id))
            .cloned();
        let synced = entry.as_ref().is_some_and(|p| {
            ["cds", "lds", "eds", "rds"]
                .iter()
                .all(|t| p["xds"][t]["status"] == "SYNCED")
        });
        if synced {
            break entry.unwrap();
        }
        assert!(
            Instant::now() < deadline,
            "weft-proxy not SYNCED: {proxies:#}\n{}",
            log()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    for t in ["cds", "lds", "eds", "rds"] {
        assert_eq!(entry["xds"][t]["nack"], Value::Null, "{entry:#}");
    }

    // The proxy's own counters and config dump agree.
    let stats = client
        .get(format!("{admin_url}/stats"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(
        stats.contains("listener_manager.lds.update_rejected: 0"),
        "{stats}"
    );
    assert!(
        stats.contains("cluster_manager.cds.update_rejected: 0"),
        "{stats}"
    );
    let dump: Value = client
        .get(format!("{admin_url}/config_dump"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    // Envoy's shape: the dumps found by their @type, resources as Envoy's protos.
    let of = |kind: &str| {
        dump["configs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["@type"] == format!("type.googleapis.com/envoy.admin.v3.{kind}"))
            .unwrap_or_else(|| panic!("no {kind} in {dump:#}"))
            .clone()
    };
    let listeners = &of("ListenersConfigDump")["dynamic_listeners"];
    assert!(
        listeners
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["name"] == format!("127.0.0.1_{outbound}")),
        "{dump:#}"
    );
    let clusters = of("ClustersConfigDump")["dynamic_active_clusters"].to_string();
    assert!(
        clusters.contains("outbound|9080|v2|ratings.default.svc.cluster.local"),
        "{clusters}"
    );
}
