//! `weft`: the command line for Weft, shaped like istioctl and kubectl.

mod client;
mod cmd;
mod source;
mod table;

use clap::{Parser, Subcommand};
use cmd::{Context, Error};
use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Parser)]
#[command(
    name = "weft",
    version,
    about = "Weft's command line: validate, apply, get, delete and analyze Istio configuration"
)]
struct Cli {
    /// weftd's HTTP API.
    #[arg(
        long,
        global = true,
        env = "WEFT_SERVER",
        default_value = "http://127.0.0.1:15014"
    )]
    server: String,
    /// Bearer token for writes; by default read from <data-dir>/token.
    #[arg(long, global = true, env = "WEFT_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// weftd's data directory, where it keeps the token [default: $HOME/.weft].
    #[arg(long, global = true, env = "WEFT_DATA_DIR")]
    data_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check Istio configuration files offline, like `istioctl validate`.
    Validate(cmd::validate::Args),
    /// Create or update resources in weftd from files, like `kubectl apply`.
    Apply(cmd::apply::Args),
    /// List or show resources, like `kubectl get`.
    Get(cmd::get::Args),
    /// Delete resources by file or by kind and name, like `kubectl delete`.
    Delete(cmd::delete::Args),
    /// Find problems across resources, like `istioctl analyze`.
    Analyze(cmd::analyze::Args),
    /// Print the client and control plane versions.
    Version(cmd::version::Args),
    /// Print a proxy bootstrap that joins the mesh as a workload, as pilot-agent does.
    Bootstrap(cmd::bootstrap::Args),
    /// Show which proxies weftd serves and whether they took their config, like `istioctl proxy-status`.
    ProxyStatus(cmd::proxy_status::Args),
    /// Show a proxy's listeners, routes, clusters or endpoints, like `istioctl proxy-config`.
    #[command(visible_alias = "pc")]
    ProxyConfig(cmd::proxy_config::Args),
    /// Create bootstrap tokens that prove a workload's identity to weftd's CA.
    Token(cmd::token::Args),
    /// Run Bookinfo on this machine: weftd, an ingress gateway and every workload with its sidecar.
    Demo(cmd::demo::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let data_dir = cli.data_dir.unwrap_or_else(|| {
        std::env::var_os("HOME")
            .map(PathBuf::from)
            .unwrap_or_default()
            .join(".weft")
    });
    let ctx = Context {
        server: cli.server,
        token: cli.token.filter(|t| !t.is_empty()),
        data_dir,
    };
    let stdout = io::stdout();
    let stderr = io::stderr();
    let (mut out, mut err) = (stdout.lock(), stderr.lock());
    let result = match &cli.command {
        Command::Validate(a) => cmd::validate::run(a, &mut out, &mut err),
        Command::Apply(a) => cmd::apply::run(a, &ctx, &mut out, &mut err),
        Command::Get(a) => cmd::get::run(a, &ctx, &mut out, &mut err),
        Command::Delete(a) => cmd::delete::run(a, &ctx, &mut out, &mut err),
        Command::Analyze(a) => cmd::analyze::run(a, &ctx, &mut out, &mut err),
        Command::Version(a) => cmd::version::run(a, &ctx, &mut out, &mut err),
        Command::Bootstrap(a) => cmd::bootstrap::run(a, &ctx, &mut out, &mut err),
        Command::ProxyStatus(a) => cmd::proxy_status::run(a, &ctx, &mut out, &mut err),
        Command::ProxyConfig(a) => cmd::proxy_config::run(a, &ctx, &mut out, &mut err),
        Command::Demo(a) => cmd::demo::run(a, &ctx, &mut out, &mut err),
        Command::Token(a) => cmd::token::run(a, &ctx, &mut out, &mut err),
    };
    let code = match result {
        Ok(code) => code,
        // `weft get vs | head` closing the pipe is not a failure worth a message.
        Err(Error::Io(e)) if e.kind() == io::ErrorKind::BrokenPipe => 0,
        Err(e) => {
            let _ = writeln!(err, "{}", e.report());
            1
        }
    };
    let _ = out.flush();
    ExitCode::from(code)
}
