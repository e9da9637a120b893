//! `weft demo` driven as a user would: started on free ports with its own HOME, read from
//! its output, Bookinfo loaded through the ingress gateway, `weft` run against its weftd.
//!
//! Shared by the demo's end-to-end test binaries (`demo.rs`, `bookinfo_mtls.rs`); each uses
//! only part of it.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use weft_testkit::{binary, free_port, run_weft, Output};

/// How long the demo may take to print that Bookinfo is up.
pub const START_TIMEOUT: Duration = Duration::from_secs(120);
/// How long an applied config may take to show on the page.
pub const CONVERGE_TIMEOUT: Duration = Duration::from_secs(20);
/// Ports the demo takes from its block (see `weft demo --help`).
pub const BLOCK: u16 = 64;
/// Istio's Bookinfo samples, beside the checkout.
pub const SAMPLES: &str = "../../shared/istio-testdata/samples/bookinfo/networking";

/// What one page load returned.
pub struct Page {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Page {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The colours of the star ratings shown, one per review that has them.
    pub fn stars(&self) -> Vec<&str> {
        self.body
            .match_indices("class=\"stars\" style=\"color: ")
            .map(|(i, m)| {
                let rest = &self.body[i + m.len()..];
                &rest[..rest.find('"').unwrap_or(0)]
            })
            .collect()
    }

    pub fn complete(&self) -> bool {
        self.status == 200
            && self.body.contains("The Comedy of Errors")
            && self.body.contains("Book Details")
            && self.body.contains("Book Reviews")
    }
}

/// One HTTP/1.1 request through the gateway, as a browser would send it.
pub fn request(
    port: u16,
    method: &str,
    path: &str,
    cookie: Option<&str>,
    form: Option<&str>,
) -> Page {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut s = TcpStream::connect(addr).expect("connect to the gateway");
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: bookinfo.local:{port}\r\nUser-Agent: weft-demo-test\r\nConnection: close\r\n"
    );
    if let Some(c) = cookie {
        req.push_str(&format!("Cookie: {c}\r\n"));
    }
    let body = form.unwrap_or_default();
    if form.is_some() {
        req.push_str("Content-Type: application/x-www-form-urlencoded\r\n");
    }
    req.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    s.write_all(req.as_bytes()).expect("send the request");
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read the response");
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, rest) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let chunked = headers.iter().any(|(k, v)| {
        k.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked")
    });
    let body = if chunked {
        dechunk(rest)
    } else {
        rest.to_string()
    };
    Page {
        status,
        headers,
        body,
    }
}

/// Decodes a chunked body (sizes in hex, each chunk followed by CRLF).
pub fn dechunk(mut rest: &str) -> String {
    let mut out = String::new();
    while let Some((size, tail)) = rest.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || tail.len() < n {
            break;
        }
        out.push_str(&tail[..n]);
        rest = tail[n..].trim_start_matches("\r\n");
    }
    out
}

/// A block of [`BLOCK`] loopback ports that are all free now, below the ephemeral range
/// so that other tests' `free_port()` cannot land in it.
pub fn free_block() -> u16 {
    let seed = std::process::id() as u64
        ^ std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos() as u64;
    for attempt in 0..50u64 {
        let base = 20000 + ((seed + attempt * 7919) % 120) as u16 * 100;
        let all_free = (base..base + BLOCK).all(|p| TcpListener::bind(("127.0.0.1", p)).is_ok());
        if all_free {
            return base;
        }
    }
    panic!("no free block of {BLOCK} ports between 20000 and 32000");
}

/// The running demo: its process, the lines it printed, and where its files are.
pub struct Demo {
    pub child: Child,
    lines: mpsc::Receiver<String>,
    printed: Vec<String>,
    scratch: PathBuf,
    env: Vec<(String, String)>,
    pub gateway: u16,
    /// The gateway's HTTPS server port.
    pub https: u16,
    /// `--port-base`: workload i's sidecar listens (inbound) on base+10i, its admin on +3.
    pub port_base: u16,
}

impl Demo {
    /// Starts `weft demo --data-plane <plane>`; `envoy` is the binary when the plane is Envoy.
    pub fn start(plane: &str, envoy: Option<&Path>) -> Demo {
        let scratch = std::env::temp_dir().join(format!(
            "weft-demo-test-{}-{}",
            std::process::id(),
            free_port()
        ));
        let home = scratch.join("home");
        std::fs::create_dir_all(&home).unwrap();
        let gateway = free_port();
        let https = free_port();
        let api = free_port();
        let port_base = free_block();
        let env = vec![
            ("HOME".to_string(), home.display().to_string()),
            // Where plain `weft` looks for its token: the demo must put it there.
            (
                "WEFT_DATA_DIR".to_string(),
                home.join(".weft").display().to_string(),
            ),
            ("WEFT_SERVER".to_string(), format!("http://127.0.0.1:{api}")),
        ];
        let mut child = Command::new(binary("weft"))
            .args(["demo", "--data-plane", plane])
            .args(["--gateway-port", &gateway.to_string()])
            .args(["--https-port", &https.to_string()])
            .args(["--api-addr", &format!("127.0.0.1:{api}")])
            .args(["--xds-addr", &format!("127.0.0.1:{}", free_port())])
            .args(["--port-base", &port_base.to_string()])
            .arg("--demo-dir")
            .arg(scratch.join("demo"))
            .envs(env.iter().map(|(k, v)| (k, v)))
            .envs(envoy.map(|e| ("WEFT_ENVOY", e)))
            .env_remove("WEFT_TOKEN")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start weft demo");
        let (tx, lines) = mpsc::channel();
        for pipe in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
        }
        Demo {
            child,
            lines,
            printed: Vec::new(),
            scratch,
            env,
            gateway,
            https,
            port_base,
        }
    }

    /// The demo's directory (`--demo-dir`): weftd's store, tokens, bootstraps, logs.
    pub fn dir(&self) -> PathBuf {
        self.scratch.join("demo")
    }

    /// `weft <args>` against the demo's weftd, with no server or token flags.
    pub fn weft(&self, args: &[&str]) -> Output {
        let env: Vec<(&str, &str)> = self
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        run_weft(args, &env, None)
    }

    /// Waits for a printed line containing `needle`; panics with everything printed if the
    /// demo exits or `limit` passes first.
    /// [`Demo::start`] and wait for `needle`; started again on other ports when a port
    /// picked free was taken by a parallel test before the demo bound it.
    pub fn start_until(
        plane: &str,
        envoy: Option<&Path>,
        needle: &str,
        limit: Duration,
    ) -> (Demo, String) {
        for _ in 0..3 {
            let mut demo = Demo::start(plane, envoy);
            if let Some(line) = demo.line_or_port_clash(needle, limit) {
                return (demo, line);
            }
        }
        let mut demo = Demo::start(plane, envoy);
        let line = demo.wait_for_line(needle, limit);
        (demo, line)
    }

    /// Like [`Demo::wait_for_line`], but `None` when the demo exited because a port was
    /// already in use.
    fn line_or_port_clash(&mut self, needle: &str, limit: Duration) -> Option<String> {
        if let Some(line) = self.next_line_with(needle, limit) {
            return Some(line);
        }
        if self.printed.iter().any(|l| l.contains("already in use")) {
            return None;
        }
        Some(self.wait_for_line(needle, Duration::ZERO))
    }

    /// The first printed line containing `needle`; `None` when the demo exits or `limit`
    /// passes first.
    fn next_line_with(&mut self, needle: &str, limit: Duration) -> Option<String> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            match self.lines.recv_timeout(Duration::from_millis(200)) {
                Ok(line) => {
                    self.printed.push(line.clone());
                    if line.contains(needle) {
                        return Some(line);
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => return None,
            }
        }
        None
    }

    pub fn wait_for_line(&mut self, needle: &str, limit: Duration) -> String {
        if let Some(line) = self.next_line_with(needle, limit) {
            return line;
        }
        panic!(
            "weft demo never printed {needle:?}\n--- printed\n{}\n{}",
            self.printed.join("\n"),
            self.logs()
        );
    }

    /// The demo's log files, for failure messages.
    pub fn logs(&self) -> String {
        let dir = self.dir().join("logs");
        let mut out = String::new();
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(8).collect();
            out.push_str(&format!("--- {}\n", entry.path().display()));
            for l in tail.into_iter().rev() {
                out.push_str(l);
                out.push('\n');
            }
        }
        out
    }

    /// `weft apply -f <Istio's sample file>` with no server or token flags.
    pub fn apply(&self, file: &str) {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join(SAMPLES)
            .join(file);
        self.weft(&["apply", "-f", &path.display().to_string()])
            .ok();
    }

    pub fn page(&self, cookie: Option<&str>) -> Page {
        request(self.gateway, "GET", "/productpage", cookie, None)
    }

    /// Loads the page until `ok` holds for it; panics with the last page after the timeout.
    pub fn until(&self, what: &str, cookie: Option<&str>, ok: impl Fn(&Page) -> bool) -> Page {
        let deadline = Instant::now() + CONVERGE_TIMEOUT;
        loop {
            let page = self.page(cookie);
            if ok(&page) {
                return page;
            }
            if Instant::now() > deadline {
                panic!(
                    "{what}: not seen within {CONVERGE_TIMEOUT:?}; last page ({}):\n{}\n{}",
                    page.status,
                    page.body,
                    self.logs()
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Whether `n` anonymous loads in a row were complete and showed no stars (reviews v1).
    pub fn all_v1(&self, n: usize) -> bool {
        (0..n).all(|_| {
            let p = self.page(None);
            p.complete() && p.stars().is_empty()
        })
    }

    /// Loads the page `n` times; returns how many showed stars of `color`, after checking
    /// that every load was complete and showed only `allowed` colours.
    pub fn count(&self, n: usize, color: &str, allowed: &[&str]) -> usize {
        let mut hits = 0;
        for _ in 0..n {
            let page = self.page(None);
            assert!(page.complete(), "incomplete page:\n{}", page.body);
            let stars = page.stars();
            assert!(
                stars.iter().all(|c| allowed.contains(c)),
                "unexpected stars {stars:?}"
            );
            if stars.contains(&color) {
                hits += 1;
            }
        }
        hits
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        // Only when the test failed before SIGTERM: leave nothing running.
        if self.child.try_wait().ok().flatten().is_none() {
            signal(self.child.id(), "TERM");
            let _ = self.child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.scratch);
    }
}

pub fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status();
}

/// Processes whose parent is `pid`, from /proc.
pub fn children_of(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(child) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        // `pid (comm) state ppid ...`; comm may hold spaces, so read after the last ')'.
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        if ppid == Some(pid) {
            out.push(child);
        }
    }
    out
}
