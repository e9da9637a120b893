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
        Ok(s) => s,
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
    match runtime.block_on(weft_proxy::run(settings)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("weft-proxy: admin endpoint: {e}");
            ExitCode::FAILURE
        }
    }
}
