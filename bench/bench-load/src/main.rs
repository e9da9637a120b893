//! bench-load: the load generators of bench/ that oha cannot be.
//!
//! - `grpc`: unary gRPC calls over h2c, open loop at a fixed rate (or closed loop), each
//!   one checked for HTTP 200, a `grpc-status: 0` trailer and a whole response message;
//!   oha sends the same bytes but never reads trailers, so it counts a failed call as a
//!   success (bench/dataplane.py runs the gRPC scenario with this instead).
//! - `csr`: N concurrent clients calling Istio's `CreateCertificate` on weftd's CA with
//!   valid bootstrap tokens, reporting CSRs per second and per weftd CPU-second
//!   (bench/ca.sh).
//!
//! Both print one JSON object on stdout; bench/ turns it into reports.

mod csr;
mod grpc;
mod stats;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Debug, Parser)]
#[command(name = "bench-load", about = "Load generators for Weft's benchmarks")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Unary gRPC calls over h2c (prior knowledge), every grpc-status checked.
    Grpc(grpc::Args),
    /// CreateCertificate calls against weftd's CA with bootstrap tokens.
    Csr(csr::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // One thread, as oha runs with --worker-threads 1 in bench/dataplane.py: the load
    // generator is pinned to its own CPU and must not need more.
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let out = match cli.command {
        Command::Grpc(a) => rt.block_on(grpc::run(a)),
        Command::Csr(a) => rt.block_on(csr::run(a)),
    };
    match out {
        Ok(json) => {
            println!("{json}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
