//! `bookinfo`: one binary for every Bookinfo service, chosen by subcommand.
//!
//! `bookinfo productpage|details|ratings|reviews --version v1|v2|v3`, each listening on
//! `--listen` and calling the others at `http://<service>:9080` through `--upstream-proxy`
//! (its sidecar's outbound HTTP proxy) when given.

mod catalog;
mod details;
mod headers;
mod page;
mod productpage;
mod ratings;
mod reviews;
mod upstream;

use clap::{Parser, Subcommand};
use std::net::SocketAddr;
use std::process::ExitCode;
use upstream::Upstream;

#[derive(Debug, Parser)]
#[command(
    name = "bookinfo",
    about = "Bookinfo, the sample application of Istio's docs: productpage, details, reviews and ratings"
)]
struct Cli {
    /// Address to listen on.
    #[arg(long, global = true, default_value = "127.0.0.1:9080")]
    listen: SocketAddr,
    /// The sidecar's outbound HTTP proxy, e.g. http://127.0.0.1:15001; calls to other
    /// services go through it. Without it, service names must resolve by themselves.
    #[arg(long, global = true)]
    upstream_proxy: Option<String>,
    #[command(subcommand)]
    service: Service,
}

#[derive(Debug, Subcommand)]
enum Service {
    /// The web page and JSON API; calls details and reviews.
    Productpage,
    /// Publishing facts about the book.
    Details,
    /// Reader reviews; v2 (black stars) and v3 (red stars) call ratings.
    Reviews {
        #[arg(long = "version", value_enum, default_value = "v1")]
        version: reviews::Version,
    },
    /// Stars per reviewer.
    Ratings,
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
    let cli = Cli::parse();
    let upstream = match Upstream::new(cli.upstream_proxy.as_deref()) {
        Ok(u) => u,
        Err(e) => {
            eprintln!("bookinfo: {e}");
            return ExitCode::from(2);
        }
    };
    let (name, app) = match cli.service {
        Service::Productpage => ("productpage", productpage::router(upstream)),
        Service::Details => ("details", details::router()),
        Service::Reviews { version } => ("reviews", reviews::router(version, upstream)),
        Service::Ratings => ("ratings", ratings::router()),
    };
    let listener = match tokio::net::TcpListener::bind(cli.listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("bookinfo: {name} cannot listen on {}: {e}", cli.listen);
            return ExitCode::FAILURE;
        }
    };
    tracing::info!(service = name, listen = %cli.listen, "serving");
    match axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await
    {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bookinfo: {name}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let Ok(mut term) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
    else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
