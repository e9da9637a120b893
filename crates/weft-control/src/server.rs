//! weftd's command line and its life: open the store, serve the API and ADS, follow the
//! config folder, and stop cleanly on a signal.

use crate::api::{self, AppState};
use crate::auth::{Token, TokenError};
use crate::ca::sds::MeshSecrets;
use crate::ca::service::CaService;
use crate::ca::sign::Lifetimes;
use crate::ca::{Ca, CaError, CaOptions};
use crate::config_dir::ConfigDir;
use crate::mesh::{MeshConfig, MeshConfigError};
use crate::store::{EmbeddedStore, Store, StoreError};
use crate::xds::pipeline::{self, Debounce};
use crate::xds::{Xds, XdsConfig};
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
    /// xDS (ADS, plaintext gRPC) address; port 0 picks a free port (printed on start).
    #[arg(long, default_value = "127.0.0.1:15010")]
    pub xds_addr: SocketAddr,
    /// Quiet time after the last config change before proxies are pushed (PILOT_DEBOUNCE_AFTER).
    #[arg(long, default_value = "100ms", value_parser = parse_duration)]
    pub debounce_after: Duration,
    /// Longest a burst of config changes may delay a push (PILOT_DEBOUNCE_MAX).
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    pub debounce_max: Duration,
    /// How long an auto-registered WorkloadEntry outlives its proxy's last connection.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub auto_register_grace: Duration,
    /// Folder of Istio YAML/JSON to load at start and follow (GitOps).
    #[arg(long)]
    pub config_dir: Option<PathBuf>,
    /// Mesh-wide settings as Istio's MeshConfig YAML (rootNamespace, trustDomain,
    /// outboundTrafficPolicy, enableAutoMtls); Istio's defaults without it.
    #[arg(long)]
    pub mesh_config: Option<PathBuf>,
    /// Plug-in CA: a folder laid out like Istio's cacerts (ca-cert.pem, ca-key.pem,
    /// root-cert.pem, cert-chain.pem); without it, a self-signed root in <data-dir>/ca.
    #[arg(long)]
    pub cacerts: Option<PathBuf>,
    /// Lifetime of workload certificates when the request names none (DEFAULT_WORKLOAD_CERT_TTL).
    #[arg(long, default_value = "24h", value_parser = parse_duration)]
    pub workload_cert_ttl: Duration,
    /// Longest lifetime a workload may ask for (MAX_WORKLOAD_CERT_TTL).
    #[arg(long, default_value = "90d", value_parser = parse_duration)]
    pub max_workload_cert_ttl: Duration,
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
    #[error(transparent)]
    Mesh(#[from] MeshConfigError),
    #[error(transparent)]
    Ca(#[from] CaError),
    #[error("cannot open the store: {0}; is another weftd using the same --data-dir?")]
    Store(#[from] StoreError),
    #[error("cannot listen on {addr}: {source}; pass another --api-addr")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("API server failed: {0}")]
    Serve(std::io::Error),
    #[error("cannot listen for xDS on {addr}: {source}; pass another --xds-addr")]
    XdsBind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// `250ms`, `1s`, `2m`, `24h`, `90d`, or a bare number of milliseconds.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(at) => text.split_at(at),
        None => (text, "ms"),
    };
    let n: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration such as 100ms, 1s or 2m"))?;
    match unit {
        "ms" => Ok(Duration::from_millis(n)),
        "s" => Ok(Duration::from_secs(n)),
        "m" => Ok(Duration::from_secs(n * 60)),
        "h" => Ok(Duration::from_secs(n * 3600)),
        "d" => Ok(Duration::from_secs(n * 86400)),
        _ => Err(format!("{text:?}: unit must be ms, s, m, h or d")),
    }
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
    let mesh = Arc::new(match &options.mesh_config {
        Some(path) => MeshConfig::load(path)?,
        None => MeshConfig::default(),
    });
    let token = Arc::new(Token::load_or_create(&data_dir)?);
    let ca = Arc::new(Ca::open(
        &CaOptions {
            cacerts: options.cacerts.clone(),
            lifetimes: Lifetimes {
                default: options.workload_cert_ttl,
                max: options.max_workload_cert_ttl,
            },
        },
        &data_dir,
        &mesh.trust_domain,
    )?);
    let store: Arc<dyn Store> = Arc::new(EmbeddedStore::open(&data_dir)?);

    let listener = tokio::net::TcpListener::bind(options.api_addr)
        .await
        .map_err(|source| ServerError::Bind {
            addr: options.api_addr,
            source,
        })?;
    let api_addr = listener.local_addr().map_err(ServerError::Serve)?;
    let xds_listener = tokio::net::TcpListener::bind(options.xds_addr)
        .await
        .map_err(|source| ServerError::XdsBind {
            addr: options.xds_addr,
            source,
        })?;
    let xds_addr = xds_listener.local_addr().map_err(ServerError::Serve)?;
    // Plain lines on stdout: what a user (or a test) reads to find weftd.
    println!("api listening on {api_addr}");
    println!("token file: {}", token.path().display());
    println!("xds listening on {xds_addr}");
    tracing::info!(source = ?ca.source(), trust_domain = ca.trust_domain(), "CA ready");

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let xds_config = XdsConfig {
        debounce: Debounce {
            after: options.debounce_after,
            max: options.debounce_max,
        },
        auto_register_grace: options.auto_register_grace,
    };
    let (snapshots, pipeline) =
        pipeline::start(store.clone(), mesh, xds_config.debounce, stop_rx.clone()).await?;
    // Translation plus the CA's SDS secrets (ROOTCA, and `default` for proxies that
    // proved their identity with a bootstrap token).
    let mesh_secrets = Arc::new(MeshSecrets::new(ca.clone()));
    // Renews those `default` certificates at half-life, pushed without a config change.
    let rotations = mesh_secrets.rotations();
    tokio::spawn(mesh_secrets.clone().run_rotation(stop_rx.clone()));
    // Translation shares each view's outbound part between proxies; the hook completes
    // every proxy's own part.
    let hook: crate::xds::LocalHook = Arc::new(move |snapshot, proxy, generated| {
        mesh_secrets.add(snapshot, proxy, generated);
    });
    let xds = Xds::with_local_hook(snapshots, store.clone(), xds_config, stop_rx.clone(), hook);
    xds.regenerate_on_secret_rotation(rotations);
    xds.adopt_orphans().await;
    let mut xds_stop = stop_rx.clone();
    let ads = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(xds.service())
            .add_service(CaService::new(ca.clone()).server())
            .serve_with_incoming_shutdown(
                // Without TCP_NODELAY a unary answer's trailers wait ~40 ms for the client's
                // delayed ACK (Nagle): one client got ~22 certificates a second.
                tonic::transport::server::TcpIncoming::from(xds_listener).with_nodelay(Some(true)),
                async move {
                    let _ = xds_stop.wait_for(|down| *down).await;
                },
            ),
    );
    let follower = options.config_dir.clone().map(|dir| {
        let folder = ConfigDir::new(dir, store.clone());
        tokio::spawn(folder.follow(stop_rx.clone()))
    });
    let state = AppState {
        store,
        token,
        data_dir,
        xds_addr: Some(xds_addr),
        shutdown: stop_rx,
        ca: Some(ca.clone()),
    };
    let ca_metrics = ca.clone();
    let app = api::router(state).merge(api::debug::router(xds).layer(axum::Extension(
        api::debug::ExtraMetrics(Arc::new(move || ca_metrics.metrics.encode())),
    )));
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
    let _ = pipeline.await;
    // Streams end on the stop signal, so ADS drains at once; cut it if a proxy lingers.
    match tokio::time::timeout(DRAIN, ads).await {
        Ok(Ok(Err(e))) => tracing::warn!(error = %e, "xDS server failed"),
        Ok(_) => {}
        Err(_) => tracing::warn!("xDS streams did not finish in time; closing them"),
    }
    tracing::info!("stopped");
    Ok(())
}
