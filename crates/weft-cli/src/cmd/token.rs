//! `weft token create`: a bootstrap token binding a namespace and service account, which a
//! workload's proxy presents to weftd's CA (`weft bootstrap envoy --token`, weft-proxy).

use super::{Context, Error};
use serde_json::json;
use std::io::Write;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Create a token for one workload identity; the token is printed once, weftd keeps
    /// only its digest.
    Create(CreateArgs),
}

#[derive(Debug, clap::Args)]
pub struct CreateArgs {
    /// The workload's namespace.
    #[arg(short = 'n', long, default_value = "default")]
    pub namespace: String,
    /// The workload's service account: its identity is
    /// spiffe://<trust domain>/ns/<namespace>/sa/<service account>.
    #[arg(long)]
    pub service_account: String,
    /// How long the token is accepted, e.g. 3600s, 30m, 24h, 7d [default: no expiry].
    #[arg(long)]
    pub ttl: Option<String>,
    /// `json` prints weftd's whole answer (identity and expiry too); by default only the
    /// token, so `TOKEN=$(weft token create ...)` works.
    #[arg(short = 'o', long)]
    pub output: Option<String>,
}

pub fn run(
    args: &Args,
    ctx: &Context,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<u8, Error> {
    match &args.command {
        Command::Create(a) => create(a, ctx, out, err),
    }
}

fn create(
    args: &CreateArgs,
    ctx: &Context,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<u8, Error> {
    let mut body = json!({
        "namespace": args.namespace,
        "serviceAccount": args.service_account,
    });
    if let Some(ttl) = &args.ttl {
        body["ttl"] = json!(ttl);
    }
    match args.output.as_deref() {
        None | Some("json") => {}
        Some(other) => {
            return Err(Error::Usage(format!(
                "--output {other:?}: only \"json\" is supported"
            )))
        }
    }
    let answer = ctx.client().post_authorized("/api/weft/v1/tokens", &body)?;
    if args.output.is_some() {
        writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(&answer).unwrap_or_default()
        )?;
        return Ok(0);
    }
    let token = answer["token"].as_str().unwrap_or_default();
    writeln!(out, "{token}")?;
    let identity = answer["identity"].as_str().unwrap_or_default();
    let expires = answer["expires"].as_str().unwrap_or("never");
    writeln!(
        err,
        "token for {identity} (expires: {expires}); it is not shown again"
    )?;
    Ok(0)
}
