//! Shared by the zero-failure tests: weftd (restartable on the same data dir and ports), two
//! weft-echo backends as subsets v1/v2 of `ratings`, a weft-proxy sidecar configured over
//! ADS, and client loops that count every request through the proxy.
//! Build the workspace binaries first: `cargo build --workspace --bins`.

#![allow(dead_code)] // Each test binary uses part of this.

use serde_json::Value;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use weft_testkit::{binary, free_port, run_weft};

pub const TIMEOUT: Duration = Duration::from_secs(20);
pub const PROXY_ID: &str = "sidecar~127.0.0.1~sleep.default~default.svc.cluster.local";

/// Children killed when dropped, pass or fail; weft-echo backends as every test starts them.
pub use weft_testkit::echo::{start as echo, Running};

/// weftd on fixed ephemeral ports and a data dir that survive a kill.
pub struct ControlPlane {
    dir: tempfile::TempDir,
    pub api: SocketAddr,
    pub xds: SocketAddr,
    child: Option<Running>,
}

impl ControlPlane {
    pub fn start() -> ControlPlane {
        let mut cp = ControlPlane {
            dir: tempfile::tempdir().unwrap(),
            api: ([127, 0, 0, 1], free_port()).into(),
            xds: ([127, 0, 0, 1], free_port()).into(),
            child: None,
        };
        cp.restart();
        cp
    }

    pub fn scratch(&self) -> &Path {
        self.dir.path()
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Starts weftd (again) on the same data dir and ports; waits until it answers.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "weftd already running");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("weftd.log"))
            .unwrap();
        let child = Command::new(binary("weftd"))
            .arg("--data-dir")
            .arg(self.data_dir())
            .args(["--api-addr", &self.api.to_string()])
            .args(["--xds-addr", &self.xds.to_string()])
            // Push every change on its own rather than one batch per burst: the churn
            // reaches the proxy as many separate updates.
            .args(["--debounce-after", "1ms", "--debounce-max", "20ms"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start weftd");
        self.child = Some(Running(child));
        let client = plain_client();
        let deadline = Instant::now() + TIMEOUT;
        while !client
            .get(format!("http://{}/", self.api))
            .send()
            .is_ok_and(|r| r.status() == 200)
        {
            assert!(Instant::now() < deadline, "weftd not ready\n{}", self.log());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILL: no goodbye to the proxy, its stream just breaks.
    pub fn kill(&mut self) {
        drop(self.child.take());
    }

    pub fn log(&self) -> String {
        let text = std::fs::read_to_string(self.dir.path().join("weftd.log")).unwrap_or_default();
        format!("--- weftd stderr\n{text}")
    }

    pub fn weft(&self, args: &[&str], stdin: Option<&str>) -> String {
        let server = format!("http://{}", self.api);
        let data_dir = self.data_dir().display().to_string();
        let out = run_weft(
            args,
            &[("WEFT_SERVER", &server), ("WEFT_DATA_DIR", &data_dir)],
            stdin,
        );
        out.ok().to_string()
    }

    pub fn apply(&self, yaml: &str) {
        self.weft(&["apply", "-f", "-"], Some(yaml));
    }

    /// This proxy's entry in `/debug/proxies`, if connected.
    pub fn proxy_status(&self) -> Option<Value> {
        let all: Value = plain_client()
            .get(format!("http://{}/debug/proxies", self.api))
            .send()
            .ok()?
            .json()
            .ok()?;
        all.as_array()?
            .iter()
            .find(|p| p["proxy"] == PROXY_ID)
            .cloned()
    }

    /// Waits until weftd sees the proxy connected in `mode` with every type SYNCED.
    pub fn wait_synced(&self, mode: &str, proxy_log: impl Fn() -> String) -> Value {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let entry = self.proxy_status();
            if let Some(e) = &entry {
                let synced = ["cds", "lds", "eds", "rds"]
                    .iter()
                    .all(|t| e["xds"][t]["status"] == "SYNCED");
                if synced && e["mode"] == mode {
                    return e.clone();
                }
            }
            assert!(
                Instant::now() < deadline,
                "proxy not SYNCED in mode {mode}: {entry:#?}\n{}\n{}",
                proxy_log(),
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

pub fn plain_client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap()
}

/// `ratings` with subsets v1 and v2 (one echo each) and the `sleep` WorkloadGroup the
/// proxy registers into.
pub fn mesh_config(cp: &ControlPlane, v1_port: u16, v2_port: u16) {
    let entry = |name: &str, version: &str, port: u16| {
        format!(
            "apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {{name: {name}, namespace: default}}\n\
             spec:\n  address: 127.0.0.1\n  ports: {{http: {port}}}\n  labels: {{app: ratings, version: {version}}}\n"
        )
    };
    cp.apply(
        "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: ratings, namespace: default}\n\
         spec:\n  hosts: [ratings.default.svc.cluster.local]\n  location: MESH_INTERNAL\n\
         \x20 ports: [{number: 9080, name: http, protocol: HTTP}]\n  resolution: STATIC\n\
         \x20 workloadSelector: {labels: {app: ratings}}\n",
    );
    cp.apply(&entry("ratings-v1", "v1", v1_port));
    cp.apply(&entry("ratings-v2", "v2", v2_port));
    cp.apply(
        "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: ratings, namespace: default}\n\
         spec:\n  host: ratings.default.svc.cluster.local\n\
         \x20 subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}]\n",
    );
    cp.apply(
        "apiVersion: networking.istio.io/v1\nkind: WorkloadGroup\nmetadata: {name: sleep, namespace: default}\n\
         spec:\n  metadata: {labels: {app: sleep}}\n  template: {serviceAccount: sleep}\n",
    );
}

/// A VirtualService for `ratings` splitting `v1`% to subset v1, the rest to v2.
pub fn split(v1: u32) -> String {
    let mut routes = String::new();
    for (subset, weight) in [("v1", v1), ("v2", 100 - v1)] {
        if weight > 0 {
            routes.push_str(&format!(
                "\x20   - destination: {{host: ratings, subset: {subset}}}\n      weight: {weight}\n"
            ));
        }
    }
    format!(
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: ratings, namespace: default}}\n\
         spec:\n  hosts: [ratings]\n  http:\n  - route:\n{routes}"
    )
}

/// A running weft-proxy with its log file and ports.
pub struct Sidecar {
    pub process: Running,
    pub outbound: u16,
    pub admin: u16,
    log: PathBuf,
}

impl Sidecar {
    /// Writes a bootstrap with `weft bootstrap envoy` (`--delta` when `delta`), starts
    /// weft-proxy and waits until a request reaches `ratings`.
    pub fn start(cp: &ControlPlane, delta: bool, extra_args: &[&str]) -> Sidecar {
        let outbound = free_port();
        let admin = free_port();
        let (o, a, x) = (outbound.to_string(), admin.to_string(), cp.xds.to_string());
        let mut args = vec![
            "bootstrap",
            "envoy",
            "--workload-group",
            "sleep",
            "--capture",
            "explicit",
            "--outbound-port",
            &o,
            "--admin-port",
            &a,
            "--xds",
            &x,
        ];
        if delta {
            args.push("--delta");
        }
        let bootstrap = cp.weft(&args, None);
        let file = cp.scratch().join("weft-proxy.yaml");
        std::fs::write(&file, bootstrap).unwrap();
        let log = cp.scratch().join("weft-proxy.log");
        let process = Running(
            Command::new(env!("CARGO_BIN_EXE_weft-proxy"))
                .arg("--bootstrap")
                .arg(&file)
                .args(extra_args)
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&log).unwrap())
                .spawn()
                .expect("start weft-proxy"),
        );
        let sidecar = Sidecar {
            process,
            outbound,
            admin,
            log,
        };
        let client = sidecar.client();
        let deadline = Instant::now() + TIMEOUT;
        while !get(&client).is_ok_and(|n| n.starts_with("ratings-")) {
            assert!(
                Instant::now() < deadline,
                "no answer from ratings through weft-proxy\n{}\n{}",
                sidecar.log(),
                cp.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        sidecar
    }

    /// A counter from the proxy's admin `/stats` (`name: value` lines).
    pub fn stat(&self, name: &str) -> u64 {
        let text = plain_client()
            .get(format!("http://127.0.0.1:{}/stats", self.admin))
            .send()
            .and_then(|r| r.text())
            .unwrap_or_default();
        text.lines()
            .find_map(|l| {
                l.strip_prefix(name)?
                    .strip_prefix(": ")?
                    .trim()
                    .parse()
                    .ok()
            })
            .unwrap_or_else(|| panic!("no {name} in /stats:\n{text}"))
    }

    pub fn log(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        format!("--- weft-proxy stderr\n{text}")
    }

    /// A client that sends everything through the proxy's outbound listener.
    pub fn client(&self) -> reqwest::blocking::Client {
        reqwest::blocking::Client::builder()
            .proxy(reqwest::Proxy::http(format!("http://127.0.0.1:{}", self.outbound)).unwrap())
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap()
    }

    /// Waits until `want` answers `n` requests in a row.
    pub fn wait_only(&self, want: &str, n: usize, cp: &ControlPlane) {
        let client = self.client();
        let deadline = Instant::now() + TIMEOUT;
        let mut run = 0;
        while run < n {
            assert!(
                Instant::now() < deadline,
                "{want} never answered {n} in a row\n{}\n{}",
                self.log(),
                cp.log()
            );
            match get(&client) {
                Ok(name) if name == want => run += 1,
                _ => {
                    run = 0;
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        }
    }
}

/// One `GET http://ratings:9080/` through the proxy: the answering backend's name, or what
/// went wrong.
pub fn get(client: &reqwest::blocking::Client) -> Result<String, String> {
    let r = client
        .get("http://ratings:9080/churn")
        .send()
        .map_err(|e| format!("{e:?}"))?;
    let status = r.status();
    let body = r.text().map_err(|e| format!("body: {e:?}"))?;
    if status != 200 {
        return Err(format!("{status}: {body}"));
    }
    let v: Value = serde_json::from_str(&body).map_err(|e| format!("{e}: {body}"))?;
    v["name"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| format!("no name in {body}"))
}

/// Client loops sending requests through the proxy until stopped.
pub struct Load {
    stop: Arc<AtomicBool>,
    pub ok: Arc<AtomicU64>,
    pub v1: Arc<AtomicU64>,
    pub v2: Arc<AtomicU64>,
    pub failures: Arc<Mutex<Vec<String>>>,
    threads: Vec<JoinHandle<()>>,
}

impl Load {
    pub fn start(sidecar: &Sidecar, loops: usize) -> Load {
        let load = Load {
            stop: Arc::default(),
            ok: Arc::default(),
            v1: Arc::default(),
            v2: Arc::default(),
            failures: Arc::default(),
            threads: Vec::new(),
        };
        let threads = (0..loops)
            .map(|_| {
                let client = sidecar.client();
                let (stop, ok, v1, v2, failures) = (
                    load.stop.clone(),
                    load.ok.clone(),
                    load.v1.clone(),
                    load.v2.clone(),
                    load.failures.clone(),
                );
                std::thread::spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        match get(&client).as_deref() {
                            Ok("ratings-v1") => v1.fetch_add(1, Ordering::Relaxed),
                            Ok("ratings-v2") => v2.fetch_add(1, Ordering::Relaxed),
                            Ok(other) => {
                                failures.lock().unwrap().push(format!("answer {other}"));
                                continue;
                            }
                            Err(e) => {
                                failures.lock().unwrap().push(e.clone());
                                continue;
                            }
                        };
                        ok.fetch_add(1, Ordering::Relaxed);
                    }
                })
            })
            .collect();
        Load { threads, ..load }
    }

    pub fn total(&self) -> u64 {
        self.ok.load(Ordering::Relaxed) + self.failures.lock().unwrap().len() as u64
    }

    pub fn failed(&self) -> usize {
        self.failures.lock().unwrap().len()
    }

    /// Stops the loops; returns (ok, v1, v2, failures).
    pub fn stop(mut self) -> (u64, u64, u64, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            t.join().unwrap();
        }
        let failures = std::mem::take(&mut *self.failures.lock().unwrap());
        (
            self.ok.load(Ordering::Relaxed),
            self.v1.load(Ordering::Relaxed),
            self.v2.load(Ordering::Relaxed),
            failures,
        )
    }
}
