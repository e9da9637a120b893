//! The echo fleet: `weft-echo` processes that stand in for the mesh's workloads.

use reqwest::blocking::Client;
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use weft_testkit::binary;

/// What a `weft-echo` speaks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EchoMode {
    /// HTTP/1.1 and h2c, with `/__count`.
    Http,
    /// HTTPS with this certificate and key (PEM files).
    Tls { cert: PathBuf, key: PathBuf },
    /// Raw TCP: answers `<name>: ` and the bytes it got. No request count.
    Tcp,
}

/// One running `weft-echo`; killed when dropped.
pub struct EchoServer {
    child: Child,
    pub name: String,
    pub version: String,
    pub addr: SocketAddr,
    pub mode: EchoMode,
}

impl EchoServer {
    /// Starts `weft-echo --name NAME --version VERSION` on a port the kernel picks and reads
    /// the real address from its first line, so there is no race for the port.
    pub fn start(name: &str, version: &str) -> Result<EchoServer, String> {
        EchoServer::start_mode(name, version, EchoMode::Http)
    }

    /// [`EchoServer::start`] in another mode.
    pub fn start_mode(name: &str, version: &str, mode: EchoMode) -> Result<EchoServer, String> {
        let mut command = Command::new(binary("weft-echo"));
        command.args([
            "--listen",
            "127.0.0.1:0",
            "--name",
            name,
            "--version",
            version,
        ]);
        match &mode {
            EchoMode::Http => {}
            EchoMode::Tls { cert, key } => {
                command.arg("--tls").arg(cert).arg(key);
            }
            EchoMode::Tcp => {
                command.arg("--tcp");
            }
        }
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("start weft-echo {name}: {e}"))?;
        let stdout = child.stdout.take().ok_or("weft-echo stdout is piped")?;
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .map_err(|e| format!("read weft-echo {name}'s address: {e}"))?;
        let addr = line
            .trim()
            .strip_prefix("listening on ")
            .and_then(|a| a.parse().ok())
            .ok_or_else(|| format!("weft-echo {name} printed {line:?}, not its address"))?;
        Ok(EchoServer {
            child,
            name: name.to_owned(),
            version: version.to_owned(),
            addr,
            mode,
        })
    }

    /// How many requests this instance has answered (read directly, not through the mesh).
    pub fn count(&self, http: &Client) -> Result<u64, String> {
        if self.mode != EchoMode::Http {
            return Err(format!(
                "{} does not count requests (not plain HTTP)",
                self.name
            ));
        }
        let body: Value = http
            .get(format!("http://{}/__count", self.addr))
            .timeout(Duration::from_secs(5))
            .send()
            .and_then(|r| r.json())
            .map_err(|e| format!("count of {}: {e}", self.name))?;
        body["count"]
            .as_u64()
            .ok_or_else(|| format!("count of {}: {body}", self.name))
    }
}

impl Drop for EchoServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
