//! weft-echo for tests: start it on a free port and stop it when the test ends.

use crate::binary;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

/// A child process killed when the test ends, pass or fail.
pub struct Running(pub Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `weft-echo --name NAME --version VERSION`; returns it and the port it listens on.
pub fn start(name: &str, version: &str) -> (Running, u16) {
    let mut child = Command::new(binary("weft-echo"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--name",
            name,
            "--version",
            version,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start weft-echo");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .expect("weft-echo prints its address");
    let port = line
        .trim()
        .strip_prefix("listening on ")
        .and_then(|a| a.rsplit(':').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("unexpected first line from weft-echo: {line:?}"));
    (Running(child), port)
}
