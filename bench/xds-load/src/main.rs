//! xds-load: loads a synthetic mesh into weftd and plays N Envoy sidecars against its ADS
//! server, timing how fast changes reach every proxy (bench/controlplane.md).

mod loader;
mod mesh;
mod procfs;
mod proxy;
mod report;
mod scenario;

use clap::{Args, Parser, Subcommand};
use mesh::{Mesh, Shape};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Debug, Parser)]
#[command(name = "xds-load", about = "Control-plane load tool for weftd")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Write the synthetic registry (ServiceEntries, WorkloadEntries, VirtualServices and,
    /// with --scoped, a mesh-wide Sidecar) through weftd's HTTP API.
    Setup(SetupArgs),
    /// Connect N simulated sidecars, apply changes with `weft`, write the results as JSON.
    Run(RunArgs),
    /// Turn result JSON files into the Markdown tables of bench/results.
    Report(ReportArgs),
}

#[derive(Debug, Args)]
struct MeshArgs {
    #[arg(long, default_value_t = 1000)]
    services: usize,
    #[arg(long, default_value_t = 5000)]
    endpoints: usize,
    #[arg(long, default_value_t = 50)]
    namespaces: usize,
}

impl MeshArgs {
    fn shape(&self) -> Shape {
        Shape {
            services: self.services,
            endpoints: self.endpoints,
            namespaces: self.namespaces,
            ..Shape::default()
        }
    }
}

#[derive(Debug, Args)]
struct SetupArgs {
    #[command(flatten)]
    mesh: MeshArgs,
    #[arg(long, default_value = "http://127.0.0.1:15014")]
    server: String,
    /// weftd's data directory (for its API token).
    #[arg(long)]
    data_dir: PathBuf,
    /// Add a mesh-wide default Sidecar (root namespace): each proxy imports its own
    /// namespace and `shared`.
    #[arg(long)]
    scoped: bool,
    /// Writes in flight at once.
    #[arg(long, default_value_t = 32)]
    parallel: usize,
}

#[derive(Debug, Args)]
struct RunArgs {
    #[command(flatten)]
    mesh: MeshArgs,
    #[arg(long, default_value = "run")]
    label: String,
    #[arg(long, default_value = "127.0.0.1:15010")]
    xds: String,
    #[arg(long, default_value = "http://127.0.0.1:15014")]
    server: String,
    #[arg(long)]
    data_dir: PathBuf,
    /// The weft CLI used to apply changes.
    #[arg(long, default_value = "weft")]
    weft: PathBuf,
    /// weftd's process id, for CPU and memory from /proc.
    #[arg(long)]
    weftd_pid: u32,
    #[arg(long, default_value_t = 1000)]
    proxies: usize,
    /// ADS streams multiplexed over one HTTP/2 connection.
    #[arg(long, default_value_t = 100)]
    streams_per_connection: usize,
    #[arg(long, default_value_t = 5)]
    vs_changes: usize,
    /// Workloads that join and then leave, one at a time.
    #[arg(long, default_value_t = 3)]
    churn: usize,
    /// Silence after which a change counts as fully delivered, in milliseconds.
    #[arg(long, default_value_t = 2000)]
    quiet_ms: u64,
    #[arg(long, default_value_t = 600)]
    sync_timeout_s: u64,
    /// Recorded in the results: whether setup ran with --scoped.
    #[arg(long)]
    scoped: bool,
    /// Stop the run if weftd's RSS passes this many MB (protects a shared machine).
    #[arg(long, default_value_t = 12000.0)]
    max_weftd_rss_mb: f64,
    #[arg(long)]
    out: PathBuf,
}

#[derive(Debug, Args)]
struct ReportArgs {
    /// The exact command that produced the results, quoted in the report.
    #[arg(long)]
    command: String,
    /// A line about the machine and how loaded it was.
    #[arg(long, default_value = "")]
    conditions: String,
    #[arg(long)]
    out: PathBuf,
    /// Result JSON files of `run`.
    files: Vec<PathBuf>,
}

fn setup_objects(mesh: &Mesh, scoped: bool) -> Vec<serde_json::Value> {
    let mut objects = Vec::new();
    for s in &mesh.services {
        objects.push(mesh::service_entry(s));
        objects.extend(s.endpoints.iter().map(|e| mesh::workload_entry(s, e)));
    }
    // VirtualServices on every shared service and on one team service in ten.
    for (i, s) in mesh.services.iter().enumerate() {
        if s.namespace == mesh::SHARED || i % 10 == 0 {
            objects.push(mesh::virtual_service(s, "initial"));
        }
    }
    if scoped {
        objects.push(mesh::sidecar());
    }
    objects
}

fn token(data_dir: &std::path::Path) -> Result<String, String> {
    std::fs::read_to_string(data_dir.join("token"))
        .map(|t| t.trim().to_string())
        .map_err(|e| format!("cannot read {}/token: {e}", data_dir.display()))
}

async fn main_async(cli: Cli) -> Result<(), String> {
    match cli.command {
        Command::Setup(a) => {
            let mesh = Mesh::generate(a.mesh.shape());
            let objects = setup_objects(&mesh, a.scoped);
            let count = objects.len();
            let took = loader::put_all(&a.server, &token(&a.data_dir)?, objects, a.parallel)
                .await
                .map_err(|e| e.to_string())?;
            println!(
                "setup: {count} resources in {:.1}s ({:.0}/s)",
                took.as_secs_f64(),
                count as f64 / took.as_secs_f64()
            );
            Ok(())
        }
        Command::Run(a) => {
            let plan = scenario::Plan {
                label: a.label,
                xds: a.xds,
                server: a.server,
                data_dir: a.data_dir,
                weft: a.weft,
                weftd_pid: a.weftd_pid,
                proxies: a.proxies,
                streams_per_connection: a.streams_per_connection,
                vs_changes: a.vs_changes,
                churn: a.churn,
                quiet: Duration::from_millis(a.quiet_ms),
                sync_timeout: Duration::from_secs(a.sync_timeout_s),
                scoped: a.scoped,
                shape: a.mesh.shape(),
                max_weftd_rss_mb: a.max_weftd_rss_mb,
            };
            let result = scenario::run(plan).await.map_err(|e| e.to_string())?;
            let json = serde_json::to_string_pretty(&result).map_err(|e| e.to_string())?;
            std::fs::write(&a.out, json)
                .map_err(|e| format!("cannot write {}: {e}", a.out.display()))?;
            println!("{}", report::one_line(&result));
            Ok(())
        }
        Command::Report(a) => report::write(&a.files, &a.command, &a.conditions, &a.out),
    }
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "xds_load=info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    match runtime.block_on(main_async(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xds-load: {e}");
            ExitCode::FAILURE
        }
    }
}
