//! Test harness: runs the real weftd binary on an ephemeral port and talks to it over HTTP.
#![allow(dead_code)] // each test file uses a different part of the harness

use reqwest::blocking::{Client, Response};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const VS: &str = "/apis/networking.istio.io/v1/namespaces/default/virtualservices";
pub const DR: &str = "/apis/networking.istio.io/v1/namespaces/default/destinationrules";

/// A running weftd.
pub struct Weftd {
    child: Child,
    pub base: String,
    pub token: String,
    pub data_dir: PathBuf,
    logs: Arc<Mutex<Vec<String>>>,
}

impl Weftd {
    pub fn start(data_dir: &Path) -> Weftd {
        Self::start_with(data_dir, &[])
    }

    pub fn start_with(data_dir: &Path, extra: &[&str]) -> Weftd {
        let mut child = Command::new(env!("CARGO_BIN_EXE_weftd"))
            .arg("--data-dir")
            .arg(data_dir)
            .args(["--api-addr", "127.0.0.1:0", "--xds-addr", "127.0.0.1:0"])
            .args(["--log-level", "info"])
            .args(extra)
            .env_remove("WEFT_DATA_DIR")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("weftd starts");
        let logs = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let stderr = child.stderr.take().unwrap();
        let sink = logs.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut addr = None;
        while addr.is_none() {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = rx.recv_timeout(left).unwrap_or_else(|_| {
                panic!("weftd printed no address; logs: {:?}", logs.lock().unwrap())
            });
            addr = line.strip_prefix("api listening on ").map(str::to_string);
        }
        let token = std::fs::read_to_string(data_dir.join("token"))
            .expect("token file exists after start")
            .trim()
            .to_string();
        Weftd {
            child,
            base: format!("http://{}", addr.unwrap()),
            token,
            data_dir: data_dir.to_path_buf(),
            logs,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// kill -9.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then waits for the exit.
    pub fn terminate(&mut self) -> ExitStatus {
        Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "weftd did not exit after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn logs(&self) -> Vec<String> {
        self.logs.lock().unwrap().clone()
    }

    /// Waits until a log line contains every one of `needles`.
    pub fn wait_for_log(&self, needles: &[&str]) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(line) = self
                .logs()
                .into_iter()
                .find(|l| needles.iter().all(|n| l.contains(n)))
            {
                return line;
            }
            assert!(
                Instant::now() < deadline,
                "no log line with {needles:?}; logs: {:#?}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn get(&self, path: &str) -> Response {
        client().get(self.url(path)).send().unwrap()
    }

    pub fn put(&self, path: &str, body: &Value) -> Response {
        client()
            .put(self.url(path))
            .bearer_auth(&self.token)
            .json(body)
            .send()
            .unwrap()
    }

    pub fn post(&self, path: &str, body: &Value) -> Response {
        client()
            .post(self.url(path))
            .bearer_auth(&self.token)
            .json(body)
            .send()
            .unwrap()
    }

    pub fn delete(&self, path: &str) -> Response {
        client()
            .delete(self.url(path))
            .bearer_auth(&self.token)
            .send()
            .unwrap()
    }
}

impl Drop for Weftd {
    fn drop(&mut self) {
        self.kill();
    }
}

pub fn client() -> Client {
    Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

/// A VirtualService routing `host` to itself, as in Istio's bookinfo.
pub fn virtual_service(name: &str, host: &str) -> Value {
    json!({
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": {"name": name, "namespace": "default", "labels": {"app": host}},
        "spec": {
            "hosts": [host],
            "http": [{"route": [{"destination": {"host": host}}]}]
        }
    })
}

/// A DestinationRule with one subset per version label.
pub fn destination_rule(name: &str, host: &str, versions: &[&str]) -> Value {
    let subsets: Vec<Value> = versions
        .iter()
        .map(|v| json!({"name": v, "labels": {"version": v}}))
        .collect();
    json!({
        "apiVersion": "networking.istio.io/v1",
        "kind": "DestinationRule",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"host": host, "subsets": subsets}
    })
}

pub fn names(list: &Value) -> Vec<String> {
    list["items"]
        .as_array()
        .expect("a list has items")
        .iter()
        .map(|o| o["metadata"]["name"].as_str().unwrap().to_string())
        .collect()
}
