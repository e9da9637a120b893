//! weftd's command line and its life: open the store, serve the API, follow the config
//! folder, and stop cleanly on a signal.

use crate::api::{self, AppState};
use crate::auth::{Token, TokenError};
use crate::config_dir::ConfigDir;
use crate::store::{EmbeddedStore, Store, StoreError};
use clap::Parser;
use std::future::Future;
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use thiserror::Error;

/// weftd: Weft's control plane.
#[derive(Clone, Debug, Parser)]
#[command(name = "weftd", version, about)]
pub struct Options {
    /// Where the embedded store and the API token live [default: $WEFT_DATA_DIR, else $HOME/.weft].
    #[arg(long, env = "WEFT_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// HTTP API address; port 0 picks a free port (printed on start).
    #[arg(long, default_value = "127.0.0.1:15014")]
    pub api_addr: SocketAddr,
    /// xDS address (accepted now, served in a later release).
    #[arg(long, default_value = "127.0.0.1:15010")]
    pub xds_addr: SocketAddr,
    /// Folder of Istio YAML/JSON to load at start and follow (GitOps).
    #[arg(long)]
    pub config_dir: Option<PathBuf>,
    /// Log filter, e.g. `info` or `weft_control=debug,info`.
    #[arg(long, default_value = "info")]
    pub log_level: String,
}

#[derive(Debug, Error)]
pub enum ServerError {
    #[error("no data directory: pass --data-dir or set WEFT_DATA_DIR or HOME")]
    NoDataDir,
    #[error("cannot create the data directory {path}: {source}")]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Token(#[from] TokenError),
    #[error("cannot open the store: {0}; is another weftd using the same --data-dir?")]
    Store(#[from] StoreError),
    #[error("cannot listen on {addr}: {source}; pass another --api-addr")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("API server failed: {0}")]
    Serve(std::io::Error),
}

impl Options {
    /// The data directory after applying the defaults.
    pub fn resolved_data_dir(&self) -> Result<PathBuf, ServerError> {
        match &self.data_dir {
            Some(dir) => Ok(dir.clone()),
            None => std::env::var_os("HOME")
                .filter(|h| !h.is_empty())
                .map(|h| PathBuf::from(h).join(".weft"))
                .ok_or(ServerError::NoDataDir),
        }
    }
}

/// How long open requests get to finish after a shutdown signal.
const DRAIN: Duration = Duration::from_secs(5);

/// Runs weftd until `shutdown` resolves.
pub async fn run(
    options: Options,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    let data_dir = options.resolved_data_dir()?;
    std::fs::create_dir_all(&data_dir)
        .and_then(|()| {
            // The token and every resource live here: owner only.
            std::fs::set_permissions(&data_dir, std::fs::Permissions::from_mode(0o700))
        })
        .map_err(|source| ServerError::DataDir {
            path: data_dir.clone(),
            source,
        })?;
    let token = Arc::new(Token::load_or_create(&data_dir)?);
    let store: Arc<dyn Store> = Arc::new(EmbeddedStore::open(&data_dir)?);

    let listener = tokio::net::TcpListener::bind(options.api_addr)
        .await
        .map_err(|source| ServerError::Bind {
            addr: options.api_addr,
            source,
        })?;
    let api_addr = listener.local_addr().map_err(ServerError::Serve)?;
    // Plain lines on stdout: what a user (or a test) reads to find weftd.
    println!("api listening on {api_addr}");
    println!("token file: {}", token.path().display());
    println!("xds address {} (not served yet)", options.xds_addr);

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let follower = options.config_dir.clone().map(|dir| {
        let folder = ConfigDir::new(dir, store.clone());
        tokio::spawn(folder.follow(stop_rx.clone()))
    });
    let state = AppState {
        store,
        token,
        data_dir,
        shutdown: stop_rx,
    };
    let app = api::router(state);
    let stop_tx = Arc::new(stop_tx);
    let signal_tx = stop_tx.clone();
    let graceful = async move {
        shutdown.await;
        tracing::info!("shutting down");
        let _ = signal_tx.send(true);
    };
    let server = axum::serve(listener, app).with_graceful_shutdown(graceful);
    let mut stopped = stop_tx.subscribe();
    tokio::select! {
        result = server => result.map_err(ServerError::Serve)?,
        // Connections that do not finish in time are cut; every acknowledged write is
        // already durable, so nothing is lost by not waiting longer.
        _ = async {
            let _ = stopped.wait_for(|down| *down).await;
            tokio::time::sleep(DRAIN).await;
        } => tracing::warn!("open connections did not finish in time; closing them"),
    }
    if let Some(follower) = follower {
        let _ = follower.await;
    }
    tracing::info!("stopped");
    Ok(())
}
