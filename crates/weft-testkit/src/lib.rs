//! Test helpers: find the workspace's binaries, start weftd on a free port, run `weft`.
//!
//! End-to-end tests drive real processes, so what they assert is what a user sees.
//! Build the binaries first: `cargo build --workspace`.

pub mod echo;
pub mod envoy;
pub mod jwt;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tempfile::TempDir;

/// How long weftd may take to answer `GET /` after starting.
const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// The path of a workspace binary (`weftd`, `weft`) next to the running test executable:
/// tests run from `target/<profile>/deps/`, binaries live in `target/<profile>/`.
pub fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable has a path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test executables live in target/<profile>/deps");
    let path = profile_dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.is_file(),
        "{} not found: run `cargo build --workspace` first",
        path.display()
    );
    path
}

/// A loopback port that was free a moment ago. Binding port 0 lets the kernel choose;
/// the listener is closed before weftd binds it, a small race tests accept.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind an ephemeral loopback port")
}

/// What a `weft` run printed and how it ended.
#[derive(Debug)]
pub struct Output {
    /// Exit code; -1 when killed by a signal.
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    /// Panics with everything the command printed unless it exited with `code`.
    #[track_caller]
    pub fn expect_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code, code,
            "unexpected exit code\n--- stdout\n{}--- stderr\n{}",
            self.stdout, self.stderr
        );
        self
    }

    /// Panics unless the command succeeded; returns stdout.
    #[track_caller]
    pub fn ok(&self) -> &str {
        self.expect_code(0);
        &self.stdout
    }
}

/// Runs `weft` with `args`, `env` pairs added to its environment and `stdin` piped in.
pub fn run_weft(args: &[&str], env: &[(&str, &str)], stdin: Option<&str>) -> Output {
    let mut cmd = Command::new(binary("weft"));
    cmd.args(args)
        .env_remove("WEFT_TOKEN")
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("start weft");
    if let Some(text) = stdin {
        let mut pipe = child.stdin.take().expect("stdin is piped");
        pipe.write_all(text.as_bytes()).expect("write weft's stdin");
    }
    let out = child.wait_with_output().expect("wait for weft");
    Output {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A weftd process with its own data dir on a free port; killed when dropped.
pub struct Weftd {
    child: Child,
    addr: SocketAddr,
    xds_addr: SocketAddr,
    data_dir: TempDir,
}

impl Weftd {
    /// Starts weftd and waits until `GET /` answers 200.
    pub fn start() -> Weftd {
        Weftd::start_with(&[])
    }

    /// Starts weftd with `extra` flags (e.g. `--workload-cert-ttl 20s`) and waits until
    /// `GET /` answers 200.
    pub fn start_with(extra: &[&str]) -> Weftd {
        let data_dir = tempfile::tempdir().expect("create a temp data dir");
        let addr: SocketAddr = ([127, 0, 0, 1], free_port()).into();
        // Its own xDS port too: the default 15010 would collide between parallel tests.
        let xds_addr: SocketAddr = ([127, 0, 0, 1], free_port()).into();
        let log = std::fs::File::create(data_dir.path().join("weftd.log"))
            .expect("create weftd's log file");
        let child = Command::new(binary("weftd"))
            .arg("--data-dir")
            .arg(data_dir.path().join("data"))
            .arg("--api-addr")
            .arg(addr.to_string())
            .arg("--xds-addr")
            .arg(xds_addr.to_string())
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            // A file, not a pipe: nobody reads a pipe while tests run, and a full one would
            // block weftd.
            .stderr(log)
            .spawn()
            .expect("start weftd");
        let mut weftd = Weftd {
            child,
            addr,
            xds_addr,
            data_dir,
        };
        weftd.wait_ready();
        weftd
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "weftd exited with {status} before it was ready\n{}",
                    self.log()
                );
            }
            if http_get_ok(self.addr) {
                return;
            }
            if Instant::now() > deadline {
                panic!(
                    "weftd did not answer GET / on {} within {:?}\n{}",
                    self.addr,
                    READY_TIMEOUT,
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `http://127.0.0.1:PORT`, for `--server` / `WEFT_SERVER`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Where weftd serves xDS (ADS), for a data plane's bootstrap.
    pub fn xds_addr(&self) -> SocketAddr {
        self.xds_addr
    }

    /// weftd's `--data-dir` (where its token lives), for `WEFT_DATA_DIR`.
    pub fn data_dir(&self) -> PathBuf {
        self.data_dir.path().join("data")
    }

    /// A scratch directory removed with this weftd, for test input files.
    pub fn scratch(&self) -> &Path {
        self.data_dir.path()
    }

    /// What weftd wrote on stderr so far.
    pub fn log(&self) -> String {
        let text =
            std::fs::read_to_string(self.data_dir.path().join("weftd.log")).unwrap_or_default();
        format!("--- weftd stderr\n{text}")
    }

    /// Runs `weft args...` against this weftd.
    pub fn weft(&self, args: &[&str]) -> Output {
        self.weft_stdin(args, None)
    }

    /// Runs `weft args...` against this weftd with `stdin` piped in.
    pub fn weft_stdin(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let data_dir = self.data_dir();
        let env = [
            ("WEFT_SERVER", self.url()),
            ("WEFT_DATA_DIR", data_dir.display().to_string()),
        ];
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        run_weft(args, &env, stdin)
    }
}

impl Drop for Weftd {
    fn drop(&mut self) {
        // Errors mean it already exited; nothing more to clean up.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether `GET /` on `addr` answers 200. Plain HTTP/1.1 over a socket keeps this crate
/// free of an HTTP client.
fn http_get_ok(addr: SocketAddr) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let req = format!("GET / HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    if s.write_all(req.as_bytes()).is_err() {
        return false;
    }
    let mut head = [0u8; 12];
    s.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.1 200")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_ports_are_bindable() {
        let port = free_port();
        assert_ne!(port, 0);
        TcpListener::bind(("127.0.0.1", port)).expect("the port is free");
    }

    #[test]
    fn readiness_probe_sees_200_and_nothing_else() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            for reply in [
                "HTTP/1.1 503 Service Unavailable\r\n\r\n",
                "HTTP/1.1 200 OK\r\n\r\n",
            ] {
                let (mut s, _) = listener.accept().unwrap();
                let mut buf = [0u8; 512];
                let _ = s.read(&mut buf).unwrap();
                s.write_all(reply.as_bytes()).unwrap();
            }
        });
        assert!(!http_get_ok(addr));
        assert!(http_get_ok(addr));
        server.join().unwrap();
        assert!(!http_get_ok(addr), "nothing listens any more");
    }
}
