//! Real Envoy against real weftd: Envoy connects over ADS (state-of-the-world and delta),
//! weftd shows it SYNCED in /debug/proxies, and Envoy rejected nothing.
//! Skipped (with a message) only when `envoy` is not on PATH.

use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const ID: &str = "sidecar~127.0.0.1~reviews-v1.default~default.svc.cluster.local";

/// A child process killed when the test ends, pass or fail.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts weftd on ephemeral ports; returns it with its API base URL and xDS port.
fn start_weftd(data_dir: &Path) -> (Running, String, u16) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_weftd"))
        .arg("--data-dir")
        .arg(data_dir)
        .args(["--api-addr", "127.0.0.1:0", "--xds-addr", "127.0.0.1:0"])
        .env_remove("WEFT_DATA_DIR")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("weftd starts");
    let stdout = child.stdout.take().unwrap();
    let weftd = Running(child);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let (mut api, mut xds) = (None, None);
    while api.is_none() || xds.is_none() {
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("weftd prints its addresses");
        if let Some(a) = line.strip_prefix("api listening on ") {
            api = Some(format!("http://{a}"));
        }
        if let Some(a) = line.strip_prefix("xds listening on ") {
            xds = Some(a.rsplit(':').next().unwrap().parse::<u16>().unwrap());
        }
    }
    (weftd, api.unwrap(), xds.unwrap())
}

fn bootstrap(xds_port: u16, api_type: &str) -> String {
    format!(
        r#"
node:
  id: "{ID}"
  cluster: reviews.default
  metadata:
    NAMESPACE: default
    WORKLOAD_NAME: reviews-v1
    INTERCEPTION_MODE: NONE
    INSTANCE_IPS: 127.0.0.1
    LABELS: {{app: reviews, version: v1}}
dynamic_resources:
  ads_config:
    api_type: {api_type}
    transport_api_version: V3
    set_node_on_first_message_only: true
    grpc_services: [{{envoy_grpc: {{cluster_name: xds}}}}]
  cds_config: {{ads: {{}}, resource_api_version: V3}}
  lds_config: {{ads: {{}}, resource_api_version: V3}}
static_resources:
  clusters:
  - name: xds
    type: STATIC
    connect_timeout: 1s
    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config: {{http2_protocol_options: {{}}}}
    load_assignment:
      cluster_name: xds
      endpoints:
      - lb_endpoints:
        - endpoint: {{address: {{socket_address: {{address: 127.0.0.1, port_value: {xds_port}}}}}}}
admin:
  address: {{socket_address: {{address: 127.0.0.1, port_value: 0}}}}
"#
    )
}

fn start_envoy(envoy: &Path, dir: &Path, xds_port: u16, api_type: &str) -> (Running, String) {
    let config = dir.join("envoy.yaml");
    std::fs::write(&config, bootstrap(xds_port, api_type)).unwrap();
    let admin_path = dir.join("admin.txt");
    let log = std::fs::File::create(dir.join("envoy.log")).unwrap();
    let envoy = Running(
        Command::new(envoy)
            .arg("-c")
            .arg(&config)
            .arg("--admin-address-path")
            .arg(&admin_path)
            // Several Envoys run at once in tests: no shared-memory hot restart.
            .args(["--disable-hot-restart", "--log-level", "info"])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("envoy starts"),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(addr) = std::fs::read_to_string(&admin_path) {
            if !addr.trim().is_empty() {
                return (envoy, format!("http://{}", addr.trim()));
            }
        }
        assert!(
            Instant::now() < deadline,
            "envoy wrote no admin address; see {}",
            dir.join("envoy.log").display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn get(url: &str) -> reqwest::blocking::Response {
    reqwest::blocking::get(url).unwrap_or_else(|e| panic!("GET {url}: {e}"))
}

/// Waits until weftd shows the proxy with CDS and LDS SYNCED and every sent type SYNCED.
fn wait_synced(api: &str, dir: &Path) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut last = Value::Null;
    while Instant::now() < deadline {
        let proxies: Value = get(&format!("{api}/debug/proxies")).json().unwrap();
        if let Some(p) = proxies
            .as_array()
            .and_then(|a| a.iter().find(|p| p["proxy"] == ID))
        {
            let xds = &p["xds"];
            let all_sent_synced = ["cds", "eds", "lds", "rds"]
                .iter()
                .all(|t| xds[t]["status"] == "SYNCED" || xds[t]["status"] == "NOT SENT");
            if xds["cds"]["status"] == "SYNCED"
                && xds["lds"]["status"] == "SYNCED"
                && all_sent_synced
            {
                return p.clone();
            }
        }
        last = proxies;
        std::thread::sleep(Duration::from_millis(100));
    }
    let log = std::fs::read_to_string(dir.join("envoy.log")).unwrap_or_default();
    panic!(
        "envoy never got SYNCED; /debug/proxies: {last}\nenvoy log tail:\n{}",
        tail(&log)
    );
}

fn tail(text: &str) -> String {
    let lines: Vec<_> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

/// Envoy's own view: updates succeeded and none was rejected.
fn assert_envoy_accepted(admin: &str) {
    let stats = get(&format!("{admin}/stats")).text().unwrap();
    let value = |name: &str| -> u64 {
        stats
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name}: ")))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("{name} not in Envoy's /stats"))
    };
    assert!(value("cluster_manager.cds.update_success") >= 1, "{stats}");
    assert!(value("listener_manager.lds.update_success") >= 1, "{stats}");
    let rejected: Vec<_> = stats
        .lines()
        .filter(|l| l.contains("update_rejected") && !l.ends_with(": 0"))
        .collect();
    assert!(rejected.is_empty(), "Envoy rejected config: {rejected:?}");
    assert_eq!(value("control_plane.connected_state"), 1);
}

fn run(api_type: &str, mode: &str) {
    let Some(envoy) = weft_testkit::envoy::find() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (_weftd, api, xds_port) = start_weftd(&dir.path().join("data"));
    let (_envoy, admin) = start_envoy(&envoy, dir.path(), xds_port, api_type);
    let proxy = wait_synced(&api, dir.path());
    assert_eq!(proxy["mode"], mode);
    assert_eq!(proxy["namespace"], "default");
    assert_eq!(proxy["type"], "sidecar");
    assert_envoy_accepted(&admin);
    let metrics = get(&format!("{api}/metrics")).text().unwrap();
    assert!(metrics.contains("pilot_xds 1"), "{metrics}");
    assert!(
        metrics.contains("pilot_xds_pushes{type=\"cds\"}"),
        "{metrics}"
    );
    let dump: Value = get(&format!(
        "{api}/debug/config_dump?proxy={}",
        ID.replace('~', "%7E")
    ))
    .json()
    .unwrap();
    // Clusters, endpoints, listeners, routes and secrets, as Envoy's admin lists them.
    assert_eq!(dump["configs"].as_array().map(Vec::len), Some(5), "{dump}");
    assert_eq!(
        dump["configs"][4]["@type"],
        "type.googleapis.com/envoy.admin.v3.SecretsConfigDump"
    );
}

#[test]
fn envoy_syncs_over_sotw_ads() {
    run("GRPC", "sotw");
}

#[test]
fn envoy_syncs_over_delta_ads() {
    run("DELTA_GRPC", "delta");
}
