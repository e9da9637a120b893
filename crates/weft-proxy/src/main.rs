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
    // Two worker threads: a sidecar shares the machine with its application.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("start the tokio runtime");
    let telemetry = weft_proxy::telemetry::Options {
        stats_port: cli.stats_port,
        access_log: cli.access_log == "on",
        access_log_format: cli.access_log_format,
    };
    match runtime.block_on(weft_proxy::run_with_health(
        settings,
        telemetry,
        cli.health_port,
    )) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("weft-proxy: admin endpoint: {e}");
            ExitCode::FAILURE
        }
    }
}
