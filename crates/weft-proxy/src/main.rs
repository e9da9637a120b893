//! `weft-proxy --bootstrap FILE`: start the proxy with an Envoy-style bootstrap.

use clap::Parser;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Parser)]
#[command(
    name = "weft-proxy",
    version,
    about = "Lean xDS-driven proxy for the Weft mesh"
)]
struct Cli {
    /// Bootstrap file (YAML or JSON), as `weft bootstrap envoy` prints it.
    #[arg(long, short = 'c')]
    bootstrap: PathBuf,
    /// Seconds `/drain` lets open connections finish before the process exits (Envoy's
    /// `--drain-time-s`).
    #[arg(
        long = "drain-time-s",
        visible_alias = "drain-time",
        default_value_t = 5
    )]
    drain_time_s: u64,
    /// Port of `/stats/prometheus` (Istio's 15090); node metadata `WEFT_STATS_PORT` wins.
    #[arg(long)]
    stats_port: Option<u16>,
    /// Port of `/healthz/ready` (Istio's 15021); node metadata `WEFT_HEALTH_PORT` wins.
    #[arg(long)]
    health_port: Option<u16>,
    /// Access log on stdout: `on` or `off`.
    #[arg(long, default_value = "on", value_parser = ["on", "off"])]
    access_log: String,
    /// Access log format.
    #[arg(long, value_enum, default_value_t = weft_proxy::telemetry::access_log::Format::Text)]
    access_log_format: weft_proxy::telemetry::access_log::Format,
    /// Worker threads (Envoy's `--concurrency`). Two by default: a sidecar shares the
    /// machine with its application.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..))]
    concurrency: u16,
    /// CA endpoint (`host:port`) for the workload certificate; default: the xDS server.
    #[arg(long)]
    ca_addr: Option<String>,
    /// File holding the bootstrap token (`weft token create -n NS --service-account SA`);
    /// else WEFT_BOOTSTRAP_TOKEN or WEFT_TOKEN, else the token `weft bootstrap envoy
    /// --bootstrap-token` put in the bootstrap. Without one the proxy has no workload
    /// identity: mutual TLS contexts wait, plaintext works.
    #[arg(long)]
    token_file: Option<PathBuf>,
    /// SPIFFE trust domain of the workload identity.
    #[arg(long, default_value = weft_proxy::identity::DEFAULT_TRUST_DOMAIN)]
    trust_domain: String,
    /// Namespace of the workload identity; default: node metadata NAMESPACE.
    #[arg(long)]
    namespace: Option<String>,
    /// Service account of the workload identity; default: node metadata SERVICE_ACCOUNT.
    #[arg(long)]
    service_account: Option<String>,
    /// Requested certificate lifetime (`24h`, `90m`, `20s`); renewed at half of it.
    #[arg(long, default_value = "24h", value_parser = weft_proxy::identity::parse_ttl)]
    cert_ttl: std::time::Duration,
}

/// The identity settings, when a bootstrap token is configured.
fn identity(
    cli: &Cli,
    settings: &weft_proxy::bootstrap::Settings,
) -> Option<weft_proxy::identity::Config> {
    use weft_proxy::identity::{Config, TokenSource};
    // WEFT_BOOTSTRAP_TOKEN as `weft bootstrap envoy` names it; WEFT_TOKEN too, though
    // the CLI uses that name for its own API token.
    let env = ["WEFT_BOOTSTRAP_TOKEN", "WEFT_TOKEN"]
        .iter()
        .filter_map(|k| std::env::var(k).ok())
        .find(|v| !v.trim().is_empty());
    let token = match (&cli.token_file, env) {
        (Some(path), _) => TokenSource::File(path.clone()),
        (None, Some(value)) => TokenSource::Value(value),
        (None, None) => match weft_proxy::identity::token_from_bootstrap(&settings.bootstrap) {
            Some(value) => TokenSource::Value(value),
            None => {
                tracing::info!("no bootstrap token (--token-file, WEFT_BOOTSTRAP_TOKEN, WEFT_TOKEN, the bootstrap's ADS initial_metadata): no workload identity; mutual TLS waits, plaintext works");
                return None;
            }
        },
    };
    Some(Config {
        id: Config::from_metadata(
            &settings.metadata,
            &cli.trust_domain,
            cli.namespace.as_deref(),
            cli.service_account.as_deref(),
        ),
        ca_addr: cli.ca_addr.clone().unwrap_or_else(|| settings.xds.clone()),
        token,
        ttl: cli.cert_ttl,
    })
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let settings = match weft_proxy::bootstrap::Bootstrap::load(&cli.bootstrap) {
        Ok(s) => weft_proxy::bootstrap::Settings {
            drain_time: std::time::Duration::from_secs(cli.drain_time_s),
            ..s
        },
        Err(e) => {
            eprintln!("weft-proxy: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(usize::from(cli.concurrency))
        .enable_all()
        .build()
        .expect("start the tokio runtime");
    let telemetry = weft_proxy::telemetry::Options {
        stats_port: cli.stats_port,
        access_log: cli.access_log == "on",
        access_log_format: cli.access_log_format,
    };
    let identity = identity(&cli, &settings);
    match runtime.block_on(weft_proxy::run_with_identity(
        settings,
        telemetry,
        cli.health_port,
        identity,
    )) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("weft-proxy: admin endpoint: {e}");
            ExitCode::FAILURE
        }
    }
}
