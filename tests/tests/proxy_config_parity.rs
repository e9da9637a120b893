//! `weft proxy-config --admin` gives the same answers for Envoy and weft-proxy when one
//! weftd configures both: the admin `/config_dump` (and `/clusters?format=json`) of
//! weft-proxy are Envoy-shaped enough for every table. Needs real Envoy (skips without)
//! and the workspace binaries (`cargo build --bins`).

use serde_json::Value;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use weft_testkit::envoy::{self, Envoy};
use weft_testkit::{binary, free_port, Weftd};

const TIMEOUT: Duration = Duration::from_secs(30);

/// weft-proxy, killed when dropped.
struct WeftProxy {
    child: Child,
    log: std::path::PathBuf,
}

impl Drop for WeftProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl WeftProxy {
    fn log(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        format!("--- weft-proxy stderr\n{text}")
    }
}

fn group(name: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1\nkind: WorkloadGroup\n\
         metadata: {{name: {name}, namespace: default}}\n\
         spec:\n  metadata:\n    labels: {{app: sleep}}\n  template: {{serviceAccount: sleep}}\n"
    )
}

/// A service with one workload (a real weft-echo), a subset and a routed path.
fn mesh_config(port: u16) -> String {
    format!(
        "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\n\
         metadata: {{name: ratings, namespace: default}}\n\
         spec:\n  hosts: [ratings.default.svc.cluster.local]\n  location: MESH_INTERNAL\n\
         \x20 ports: [{{number: 9080, name: http, protocol: HTTP}}]\n  resolution: STATIC\n\
         \x20 workloadSelector: {{labels: {{app: ratings}}}}\n\
         ---\n\
         apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\n\
         metadata: {{name: ratings-v1, namespace: default}}\n\
         spec:\n  address: 127.0.0.1\n  ports: {{http: {port}}}\n  labels: {{app: ratings, version: v1}}\n\
         ---\n\
         apiVersion: networking.istio.io/v1\nkind: DestinationRule\n\
         metadata: {{name: ratings, namespace: default}}\n\
         spec:\n  host: ratings.default.svc.cluster.local\n\
         \x20 subsets: [{{name: v1, labels: {{version: v1}}}}]\n\
         ---\n\
         apiVersion: networking.istio.io/v1\nkind: VirtualService\n\
         metadata: {{name: ratings, namespace: default}}\n\
         spec:\n  hosts: [ratings.default.svc.cluster.local]\n\
         \x20 http:\n  - match: [{{uri: {{prefix: /ratings}}}}]\n\
         \x20   route: [{{destination: {{host: ratings.default.svc.cluster.local, subset: v1}}}}]\n"
    )
}

/// `weft bootstrap envoy` for `group` with its outbound listener and admin on the given ports.
fn bootstrap(weftd: &Weftd, group: &str, outbound: u16, admin: u16) -> String {
    let (outbound, admin) = (outbound.to_string(), admin.to_string());
    let xds = weftd.xds_addr().to_string();
    weftd
        .weft(&[
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
        ])
        .ok()
        .to_string()
}

fn start_weft_proxy(weftd: &Weftd, outbound: u16, admin: u16) -> WeftProxy {
    let file = weftd.scratch().join("weft-proxy.yaml");
    std::fs::write(&file, bootstrap(weftd, "sleep-weft", outbound, admin)).unwrap();
    let log = weftd.scratch().join("weft-proxy.log");
    let child = Command::new(binary("weft-proxy"))
        .arg("--bootstrap")
        .arg(&file)
        // Free ports: Istio's 15090/15021 may be taken by a parallel test.
        .args(["--stats-port", &free_port().to_string()])
        .args(["--health-port", &free_port().to_string()])
        .args(["--access-log", "off"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("start weft-proxy");
    WeftProxy { child, log }
}

/// `weft proxy-config <args> --admin <admin>`, with the proxy's own outbound port written
/// as `OUTBOUND` so two proxies' tables can be compared.
fn proxy_config(weftd: &Weftd, admin: &str, outbound: u16, args: &[&str]) -> String {
    let mut argv = vec!["proxy-config"];
    argv.extend_from_slice(args);
    argv.extend(["--admin", admin]);
    let out = weftd.weft(&argv);
    out.ok().replace(&outbound.to_string(), "OUTBOUND")
}

fn cells(table: &str) -> Vec<Vec<String>> {
    table
        .lines()
        .map(|l| {
            l.split("   ")
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .map(str::to_string)
                .collect()
        })
        .collect()
}

#[test]
fn proxy_config_reads_weft_proxy_and_envoy_alike() {
    let Some(envoy_bin) = envoy::find() else {
        eprintln!("SKIP proxy_config_reads_weft_proxy_and_envoy_alike: no envoy");
        return;
    };
    let weftd = Weftd::start();
    let (_ratings, ratings_port) = weft_testkit::echo::start("ratings-v1", "v1");
    weftd
        .weft_stdin(&["apply", "-f", "-"], Some(&mesh_config(ratings_port)))
        .ok();
    for g in ["sleep-envoy", "sleep-weft"] {
        weftd
            .weft_stdin(&["apply", "-f", "-"], Some(&group(g)))
            .ok();
    }

    let (envoy_out, weft_out, weft_admin) = (free_port(), free_port(), free_port());
    let envoy = Envoy::start(&envoy_bin, |admin| {
        bootstrap(&weftd, "sleep-envoy", envoy_out, admin)
    });
    let weft = start_weft_proxy(&weftd, weft_out, weft_admin);
    let envoy_admin = envoy.admin_url();
    let weft_admin = format!("http://127.0.0.1:{weft_admin}");
    let logs = || format!("{}\n{}\n{}", weftd.log(), envoy.log(), weft.log());

    // Both have the routes once weftd has pushed and each proxy has applied them.
    let deadline = Instant::now() + TIMEOUT;
    let configured = |admin: &str| {
        let out = weftd.weft(&["proxy-config", "routes", "--admin", admin]);
        out.stdout.contains("/ratings*")
    };
    while !(configured(&envoy_admin) && configured(&weft_admin)) {
        assert!(
            Instant::now() < deadline,
            "proxies not configured\n{}",
            logs()
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    for section in ["clusters", "listeners", "routes", "endpoints", "secret"] {
        let from_envoy = proxy_config(&weftd, &envoy_admin, envoy_out, &[section]);
        let from_weft = proxy_config(&weftd, &weft_admin, weft_out, &[section]);
        assert_eq!(
            cells(&from_weft),
            cells(&from_envoy),
            "`proxy-config {section}` differs:\n--- weft-proxy\n{from_weft}\n--- envoy\n{from_envoy}"
        );
    }

    // What the tables show is what a user looks for.
    let clusters = cells(&proxy_config(&weftd, &weft_admin, weft_out, &["clusters"]));
    assert!(
        clusters.contains(&vec![
            "ratings.default.svc.cluster.local".to_string(),
            "9080".into(),
            "v1".into(),
            "outbound".into(),
            "EDS".into(),
            "-".into(),
        ]),
        "{clusters:?}"
    );
    assert!(clusters.iter().any(|r| r[0] == "xds-grpc"), "{clusters:?}");
    let endpoints = proxy_config(&weftd, &weft_admin, weft_out, &["endpoints"]);
    assert!(
        endpoints.contains(&format!("127.0.0.1:{ratings_port}")),
        "{endpoints}"
    );
    let listeners = cells(&proxy_config(&weftd, &weft_admin, weft_out, &["listeners"]));
    assert!(
        listeners
            .iter()
            .any(|r| r[..2] == ["127.0.0.1".to_string(), "OUTBOUND".to_string()]),
        "{listeners:?}"
    );

    // -o json: the same resources by name, Envoy's objects on both sides.
    let names = |admin: &str, out: u16, section: &str| -> Vec<String> {
        let argv = ["proxy-config", section, "-o", "json", "--admin", admin];
        let json: Value = serde_json::from_str(weftd.weft(&argv).ok()).expect("-o json is JSON");
        let mut names: Vec<String> = json
            .as_array()
            .expect("an array")
            .iter()
            .filter_map(|r| r["name"].as_str())
            .map(|n| n.replace(&out.to_string(), "OUTBOUND"))
            .collect();
        names.sort();
        names
    };
    for section in ["clusters", "listeners", "routes"] {
        assert_eq!(
            names(&weft_admin, weft_out, section),
            names(&envoy_admin, envoy_out, section),
            "{section}"
        );
    }

    // The raw dump: Envoy's @types and versions on each resource.
    let dump: Value = serde_json::from_str(
        weftd
            .weft(&["proxy-config", "all", "-o", "json", "--admin", &weft_admin])
            .ok(),
    )
    .unwrap();
    let types: Vec<&str> = dump["configs"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["@type"].as_str())
        .collect();
    assert_eq!(
        types,
        [
            "type.googleapis.com/envoy.admin.v3.BootstrapConfigDump",
            "type.googleapis.com/envoy.admin.v3.ClustersConfigDump",
            "type.googleapis.com/envoy.admin.v3.ListenersConfigDump",
            "type.googleapis.com/envoy.admin.v3.RoutesConfigDump",
            "type.googleapis.com/envoy.admin.v3.SecretsConfigDump",
        ]
    );
    let cluster = dump["configs"][1]["dynamic_active_clusters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["cluster"]["name"] == "outbound|9080|v1|ratings.default.svc.cluster.local")
        .expect("the subset cluster");
    assert!(!cluster["version_info"].as_str().unwrap().is_empty());
    assert_eq!(
        cluster["cluster"]["@type"],
        "type.googleapis.com/envoy.config.cluster.v3.Cluster"
    );
}
