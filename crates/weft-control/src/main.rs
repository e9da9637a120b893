//! `weftd`: parses flags, sets up logging and signals, and runs the control plane.

use clap::Parser;
use std::process::ExitCode;
use tracing_subscriber::EnvFilter;
use weft_control::server::{run, Options};

/// Pushes build and drop many short-lived buffers on every worker thread; jemalloc keeps
/// that cheaper and fragments less than glibc's malloc (bench/controlplane.md).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let options = Options::parse();
    let filter = EnvFilter::try_new(&options.log_level).unwrap_or_else(|e| {
        eprintln!(
            "weftd: invalid --log-level {:?} ({e}); using info",
            options.log_level
        );
        EnvFilter::new("info")
    });
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour codes only help a terminal; in files and pipes they are noise.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match run(options, shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("weftd: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler installs");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
