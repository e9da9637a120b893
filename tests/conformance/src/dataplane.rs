//! The data plane under test, behind a trait: real Envoy or weft-proxy.

use reqwest::blocking::Client;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use weft_testkit::binary;

/// How long a proxy may take before its admin endpoint answers.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(20);

/// Sidecar next to a workload, or a gateway.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProxyType {
    Sidecar,
    Router,
}

/// What `weft bootstrap envoy` is told about a proxy (docs/xds.md); explicit capture always.
#[derive(Clone, Debug)]
pub struct BootstrapArgs {
    pub workload_group: String,
    pub namespace: String,
    pub proxy_type: ProxyType,
    pub ip: String,
    pub app_ports: Vec<(String, u16)>,
    pub outbound_port: u16,
    pub admin_port: u16,
    pub xds: SocketAddr,
    pub labels: Vec<(String, String)>,
    /// weftd's API (`WEFT_SERVER`), where the CLI reads the WorkloadGroup.
    pub server: String,
    /// weftd's data dir (`WEFT_DATA_DIR`), for the token.
    pub data_dir: PathBuf,
    /// Where the proxy may write its bootstrap and logs.
    pub work_dir: PathBuf,
}

/// A workload identity: the service account and a file holding its bootstrap token
/// (`weft token create`). Envoy gets it through the bootstrap (SDS from weftd),
/// weft-proxy through its own flags (it makes its key and asks weftd's CA).
#[derive(Clone, Debug)]
pub struct Identity {
    pub service_account: String,
    pub token_file: PathBuf,
}

impl BootstrapArgs {
    /// The `weft bootstrap envoy` command line for these arguments.
    pub fn cli_args(&self) -> Vec<String> {
        let mut args: Vec<String> = ["bootstrap", "envoy", "--capture", "explicit"]
            .map(String::from)
            .to_vec();
        let mut flag = |k: &str, v: String| {
            args.push(k.to_owned());
            args.push(v);
        };
        flag("--workload-group", self.workload_group.clone());
        flag("-n", self.namespace.clone());
        let kind = match self.proxy_type {
            ProxyType::Sidecar => "sidecar",
            ProxyType::Router => "router",
        };
        flag("--type", kind.to_owned());
        flag("--ip", self.ip.clone());
        for (name, port) in &self.app_ports {
            flag("--app-port", format!("{name}={port}"));
        }
        flag("--outbound-port", self.outbound_port.to_string());
        flag("--admin-port", self.admin_port.to_string());
        flag("--xds", self.xds.to_string());
        for (k, v) in &self.labels {
            flag("--label", format!("{k}={v}"));
        }
        args
    }

    /// [`BootstrapArgs::cli_args`] with `identity`'s token in the bootstrap, as Envoy
    /// needs it (the ADS stream carries it; weftd answers with SDS secrets).
    pub fn cli_args_with_token(&self, identity: Option<&Identity>) -> Vec<String> {
        let mut args = self.cli_args();
        if let Some(id) = identity {
            args.push("--token-file".into());
            args.push(id.token_file.display().to_string());
        }
        args
    }
}

/// A data plane implementation the suite can start proxies of.
pub trait DataPlane {
    /// Short name for the summary line, e.g. `envoy`.
    fn name(&self) -> &str;
    /// Starts a proxy without a workload identity: plaintext only.
    fn start(&self, args: &BootstrapArgs) -> Result<Box<dyn RunningProxy>, String> {
        self.start_as(args, None)
    }
    /// Starts a proxy with `identity` (mesh mTLS), or without one.
    fn start_as(
        &self,
        args: &BootstrapArgs,
        identity: Option<&Identity>,
    ) -> Result<Box<dyn RunningProxy>, String>;
}

/// One running proxy; stopped when dropped.
pub trait RunningProxy {
    /// The admin endpoint, on 127.0.0.1.
    fn admin(&self) -> SocketAddr;
    /// Counters from the admin `/stats` whose names contain `filter`, summed.
    fn stat_sum(&self, filter: &str) -> Result<u64, String>;
    /// Config updates the proxy rejected (NACKed) since it started.
    fn rejected_updates(&self) -> Result<u64, String> {
        self.stat_sum("update_rejected")
    }
    /// Whether something accepts connections on 127.0.0.1:`port` (a listener is in place).
    fn listening(&self, port: u16) -> bool {
        TcpStream::connect_timeout(
            &SocketAddr::from(([127, 0, 0, 1], port)),
            Duration::from_millis(200),
        )
        .is_ok()
    }
    /// The tail of the proxy's log, for failure reports.
    fn log(&self) -> String;
}

/// Runs `weft bootstrap envoy` with `cli` (from `args`) and writes the bootstrap into
/// the work dir.
fn write_bootstrap(args: &BootstrapArgs, cli: &[String]) -> Result<PathBuf, String> {
    let out = Command::new(binary("weft"))
        .args(cli)
        .env("WEFT_SERVER", &args.server)
        .env("WEFT_DATA_DIR", &args.data_dir)
        .env_remove("WEFT_TOKEN")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("run weft bootstrap envoy: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "weft {} failed: {}",
            cli.join(" "),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    std::fs::create_dir_all(&args.work_dir).map_err(|e| e.to_string())?;
    let config = args.work_dir.join("bootstrap.yaml");
    std::fs::write(&config, &out.stdout).map_err(|e| e.to_string())?;
    Ok(config)
}

/// Real Envoy, configured by `weft bootstrap envoy`.
pub struct EnvoyDataPlane {
    envoy: PathBuf,
}

impl EnvoyDataPlane {
    /// Finds Envoy the way every test does ([`weft_testkit::envoy::find`]).
    pub fn find() -> Result<EnvoyDataPlane, String> {
        weft_testkit::envoy::find()
            .map(|envoy| EnvoyDataPlane { envoy })
            .ok_or_else(|| {
                "envoy not found: run scripts/install-test-deps.sh or set WEFT_ENVOY".to_owned()
            })
    }
}

impl DataPlane for EnvoyDataPlane {
    fn name(&self) -> &str {
        "envoy"
    }

    fn start_as(
        &self,
        args: &BootstrapArgs,
        identity: Option<&Identity>,
    ) -> Result<Box<dyn RunningProxy>, String> {
        let config = write_bootstrap(args, &args.cli_args_with_token(identity))?;
        let mut command = Command::new(&self.envoy);
        command
            .arg("-c")
            .arg(&config)
            // Several Envoys share the host; hot restart would make them fight over one
            // shared-memory region.
            .args(["--disable-hot-restart", "-l", "warning"])
            // As Istio's pilot-agent starts Envoy: connections of a replaced listener are
            // told to close at once (`Connection: close`, GOAWAY), not over ten minutes,
            // so a changed policy reaches keep-alive clients.
            .args(["--drain-strategy", "immediate", "--drain-time-s", "45"]);
        ProxyProcess::spawn("envoy", command, args)
    }
}

/// weft-proxy from the workspace's target dir, with the same bootstrap Envoy gets.
pub struct WeftDataPlane {
    proxy: PathBuf,
}

impl WeftDataPlane {
    /// `target/<profile>/weft-proxy`; panics (as every end-to-end test does) when it is not
    /// built.
    pub fn new() -> WeftDataPlane {
        WeftDataPlane {
            proxy: binary("weft-proxy"),
        }
    }
}

impl Default for WeftDataPlane {
    fn default() -> Self {
        Self::new()
    }
}

impl DataPlane for WeftDataPlane {
    fn name(&self) -> &str {
        "weft"
    }

    fn start_as(
        &self,
        args: &BootstrapArgs,
        identity: Option<&Identity>,
    ) -> Result<Box<dyn RunningProxy>, String> {
        let config = write_bootstrap(args, &args.cli_args())?;
        let mut command = Command::new(&self.proxy);
        command.arg("--bootstrap").arg(&config).env(
            "RUST_LOG",
            std::env::var("WEFT_PROXY_LOG").unwrap_or_else(|_| "warn".into()),
        );
        if let Some(id) = identity {
            command
                .arg("--ca-addr")
                .arg(args.xds.to_string())
                .arg("--token-file")
                .arg(&id.token_file)
                .args(["--namespace", &args.namespace])
                .args(["--service-account", &id.service_account]);
        }
        ProxyProcess::spawn("weft-proxy", command, args)
    }
}

/// A data plane process whose stderr goes to `<work_dir>/<program>.log`; killed on drop.
struct ProxyProcess {
    program: &'static str,
    child: Child,
    admin: SocketAddr,
    log_path: PathBuf,
    http: Client,
}

impl ProxyProcess {
    /// Starts `command` and waits for its admin endpoint (`/server_info`, which both Envoy
    /// and weft-proxy answer from the moment they start).
    fn spawn(
        program: &'static str,
        mut command: Command,
        args: &BootstrapArgs,
    ) -> Result<Box<dyn RunningProxy>, String> {
        let log_path = args.work_dir.join(format!("{program}.log"));
        let log = std::fs::File::create(&log_path).map_err(|e| e.to_string())?;
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("start {program}: {e}"))?;
        let mut proxy = ProxyProcess {
            program,
            child,
            admin: ([127, 0, 0, 1], args.admin_port).into(),
            log_path,
            http: Client::builder()
                .no_proxy()
                .timeout(Duration::from_secs(5))
                .build()
                .map_err(|e| e.to_string())?,
        };
        proxy.wait_admin()?;
        Ok(Box::new(proxy))
    }

    fn wait_admin(&mut self) -> Result<(), String> {
        let program = self.program;
        let deadline = Instant::now() + ADMIN_TIMEOUT;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("{program} exited with {status}\n{}", self.log()));
            }
            let url = format!("http://{}/server_info", self.admin);
            if self
                .http
                .get(url)
                .send()
                .is_ok_and(|r| r.status().is_success())
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "{program} admin not up in {ADMIN_TIMEOUT:?}\n{}",
                    self.log()
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl RunningProxy for ProxyProcess {
    fn admin(&self) -> SocketAddr {
        self.admin
    }

    fn stat_sum(&self, filter: &str) -> Result<u64, String> {
        let text = self
            .http
            .get(format!("http://{}/stats", self.admin))
            .query(&[("filter", filter)])
            .send()
            .and_then(|r| r.text())
            .map_err(|e| format!("{} /stats: {e}", self.program))?;
        Ok(sum_counters(&text))
    }

    fn log(&self) -> String {
        log_tail(&self.log_path)
    }
}

impl Drop for ProxyProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sums `name: value` lines of Envoy's text `/stats`; histograms (non-numeric) are skipped.
fn sum_counters(text: &str) -> u64 {
    text.lines()
        .filter_map(|l| l.rsplit_once(": "))
        .filter_map(|(_, v)| v.trim().parse::<u64>().ok())
        .sum()
}

fn log_tail(path: &Path) -> String {
    crate::tail(&std::fs::read_to_string(path).unwrap_or_default(), 30)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_are_summed_and_histograms_skipped() {
        let text = "cluster_manager.cds.update_rejected: 2\n\
                    listener_manager.lds.update_rejected: 1\n\
                    http.x.downstream_rq_time: P0(nan,1) P25(nan,2)\n";
        assert_eq!(sum_counters(text), 3);
    }

    #[test]
    fn bootstrap_flags_follow_the_contract() {
        let args = BootstrapArgs {
            workload_group: "sleep".into(),
            namespace: "default".into(),
            proxy_type: ProxyType::Router,
            ip: "127.0.0.1".into(),
            app_ports: vec![("http".into(), 8000)],
            outbound_port: 15001,
            admin_port: 15000,
            xds: ([127, 0, 0, 1], 15010).into(),
            labels: vec![("istio".into(), "ingressgateway".into())],
            server: String::new(),
            data_dir: PathBuf::new(),
            work_dir: PathBuf::new(),
        };
        let identity = Identity {
            service_account: "sleep".into(),
            token_file: PathBuf::from("/t/sleep.token"),
        };
        let line = args.cli_args().join(" ");
        assert!(line.starts_with("bootstrap envoy --capture explicit"));
        for part in [
            "--workload-group sleep",
            "--type router",
            "--app-port http=8000",
            "--xds 127.0.0.1:15010",
            "--label istio=ingressgateway",
        ] {
            assert!(line.contains(part), "{line} lacks {part}");
        }
        assert!(!line.contains("--token-file"));
        let with_token = args.cli_args_with_token(Some(&identity)).join(" ");
        assert!(with_token.ends_with("--token-file /t/sleep.token"));
    }
}
