//! A small mesh driven the way a user drives one, for end-to-end tests outside the scenario
//! tables: weftd (optionally with `--mesh-config`), `weft apply -f` of Istio YAML, proxies
//! started by `weft bootstrap envoy`, and `curl` through a sidecar used as HTTP proxy.

use crate::control::ControlPlane;
use crate::dataplane::{BootstrapArgs, DataPlane, ProxyType, RunningProxy};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use weft_testkit::{free_port, run_weft};

/// How long config may take to reach a proxy and change what a request gets.
pub const CONVERGE_TIMEOUT: Duration = Duration::from_secs(30);

/// weftd plus the CLI environment that talks to it.
pub struct UserMesh {
    pub control: ControlPlane,
    files: std::cell::Cell<usize>,
    /// Holds the `--mesh-config` file for weftd's lifetime.
    _mesh_dir: Option<tempfile::TempDir>,
}

/// What `curl` got: the status (0 when no HTTP response came back) and the body.
#[derive(Clone, Debug)]
pub struct Answer {
    pub status: u16,
    pub body: String,
    pub headers: String,
}

impl Answer {
    /// The echo's JSON description, when an echo answered.
    pub fn echo(&self) -> Option<serde_json::Value> {
        serde_json::from_str(&self.body)
            .ok()
            .filter(|v: &serde_json::Value| v.get("name").is_some())
    }

    /// Name of the echo instance that answered.
    pub fn served_by(&self) -> Option<String> {
        self.echo()
            .and_then(|v| v["name"].as_str().map(str::to_owned))
    }

    /// A response header's value (case-insensitive name), from `curl -D`.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_owned())
        })
    }
}

impl UserMesh {
    /// weftd with Istio's default mesh config.
    pub fn start() -> UserMesh {
        UserMesh {
            control: ControlPlane::start().expect("start weftd"),
            files: Default::default(),
            _mesh_dir: None,
        }
    }

    /// weftd started with `--mesh-config` pointing at a file holding `mesh_config`.
    pub fn with_mesh_config(mesh_config: &str) -> UserMesh {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("mesh.yaml");
        std::fs::write(&file, mesh_config).expect("write mesh config");
        let control = ControlPlane::start_with_args(&[
            "--mesh-config".to_owned(),
            file.display().to_string(),
        ])
        .expect("start weftd with --mesh-config");
        UserMesh {
            control,
            files: Default::default(),
            _mesh_dir: Some(dir),
        }
    }

    fn env(&self) -> Vec<(String, String)> {
        vec![
            ("WEFT_SERVER".into(), self.control.server()),
            (
                "WEFT_DATA_DIR".into(),
                self.control.data_dir().display().to_string(),
            ),
        ]
    }

    /// `weft <args>`; panics with the output unless it exits 0.
    pub fn weft(&self, args: &[&str]) -> String {
        let env = self.env();
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let out = run_weft(args, &env, None);
        assert_eq!(
            out.code,
            0,
            "weft {}: {}{}",
            args.join(" "),
            out.stdout,
            out.stderr
        );
        out.stdout
    }

    /// Writes `yaml` to a file and runs `weft apply -f` on it, as a user would.
    pub fn apply(&self, yaml: &str) -> String {
        self.files.set(self.files.get() + 1);
        let file = self
            .control
            .scratch()
            .join(format!("applied-{}.yaml", self.files.get()));
        std::fs::write(&file, yaml).expect("write yaml");
        self.weft(&["apply", "-f", file.to_str().expect("utf-8 path")])
    }

    /// Starts a proxy of `data_plane` in explicit capture for `workload_group` (which must
    /// be applied), with the labels given; returns it with its outbound (HTTP proxy) port.
    pub fn proxy(
        &self,
        data_plane: &dyn DataPlane,
        workload_group: &str,
        namespace: &str,
        proxy_type: ProxyType,
        labels: &[(&str, &str)],
    ) -> (Box<dyn RunningProxy>, u16) {
        let outbound_port = free_port();
        let proxy = data_plane
            .start(&BootstrapArgs {
                workload_group: workload_group.into(),
                namespace: namespace.into(),
                proxy_type,
                ip: "127.0.0.1".into(),
                app_ports: Vec::new(),
                outbound_port,
                admin_port: free_port(),
                xds: self.control.xds_addr(),
                labels: labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                server: self.control.server(),
                data_dir: self.control.data_dir(),
                work_dir: self.control.scratch().join(workload_group),
            })
            .unwrap_or_else(|e| panic!("start {workload_group}: {e}"));
        (proxy, outbound_port)
    }
}

/// `curl` of `url`, through the HTTP proxy on 127.0.0.1:`proxy_port` when given, with
/// `--resolve` entries (`host:port:addr`) so no DNS is needed.
pub fn curl(proxy_port: Option<u16>, url: &str, resolve: &[String]) -> Answer {
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "--max-time", "5", "-D", "-", "-o", "/dev/stderr"]);
    match proxy_port {
        Some(p) => {
            cmd.arg("-x").arg(format!("http://127.0.0.1:{p}"));
        }
        None => {
            cmd.args(["--noproxy", "*"]);
        }
    }
    for r in resolve {
        cmd.arg("--resolve").arg(r);
    }
    let out = cmd
        .arg(url)
        .stdin(Stdio::null())
        .env_remove("http_proxy")
        .env_remove("HTTP_PROXY")
        .output()
        .expect("run curl");
    // Headers went to stdout (-D -), the body to stderr, after curl's own messages if any.
    let headers = String::from_utf8_lossy(&out.stdout).into_owned();
    let status = headers
        .lines()
        .rfind(|l| l.starts_with("HTTP/"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Answer {
        status,
        body: String::from_utf8_lossy(&out.stderr).into_owned(),
        headers,
    }
}

/// Retries `attempt` until it returns Ok or `CONVERGE_TIMEOUT` passes; the last error
/// (with `context()` appended) is the panic message.
pub fn eventually<T>(
    what: &str,
    mut attempt: impl FnMut() -> Result<T, String>,
    context: impl Fn() -> String,
) -> T {
    let deadline = Instant::now() + CONVERGE_TIMEOUT;
    loop {
        match attempt() {
            Ok(v) => return v,
            Err(e) if Instant::now() > deadline => {
                panic!("{what}: {e}\n{}", context())
            }
            Err(_) => std::thread::sleep(Duration::from_millis(250)),
        }
    }
}
