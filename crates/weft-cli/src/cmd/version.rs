//! `weft version`: client version, and weftd's when it answers.

use super::{Context, Error};
use std::io::Write;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print only the client version; do not contact weftd.
    #[arg(long)]
    pub client: bool,
}

/// Like `kubectl version`: the client line always prints; an unreachable server is an
/// error (exit 1) so scripts can use this as a health check.
pub fn run(
    args: &Args,
    ctx: &Context,
    out: &mut dyn Write,
    _err: &mut dyn Write,
) -> Result<u8, Error> {
    writeln!(out, "client version: {}", env!("CARGO_PKG_VERSION"))?;
    if args.client {
        return Ok(0);
    }
    out.flush()?;
    let root = ctx.client().root()?;
    let version = root["version"].as_str().unwrap_or("unknown");
    writeln!(out, "control plane version: {version}")?;
    Ok(0)
}
