//! `weft demo` end to end: Bookinfo through the ingress gateway as a browser sees it, through
//! each of Istio's traffic-management task files applied unchanged, then SIGTERM leaves no process.
//!
//! Needs Envoy (skipped without it unless WEFT_REQUIRE_ENVOY=1) and the workspace's binaries
//! (`cargo build --workspace --bins`).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use weft_testkit::{binary, envoy, free_port, run_weft, Output};

/// How long the demo may take to print that Bookinfo is up.
const START_TIMEOUT: Duration = Duration::from_secs(120);
/// How long an applied config may take to show on the page.
const CONVERGE_TIMEOUT: Duration = Duration::from_secs(20);
/// Ports the demo takes from its block (see `weft demo --help`).
const BLOCK: u16 = 64;
/// Istio's Bookinfo samples, beside the checkout.
const SAMPLES: &str = "../../shared/istio-testdata/samples/bookinfo/networking";

/// What one page load returned.
struct Page {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Page {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The colours of the star ratings shown, one per review that has them.
    fn stars(&self) -> Vec<&str> {
        self.body
            .match_indices("class=\"stars\" style=\"color: ")
            .map(|(i, m)| {
                let rest = &self.body[i + m.len()..];
                &rest[..rest.find('"').unwrap_or(0)]
            })
            .collect()
    }

    fn complete(&self) -> bool {
        self.status == 200
            && self.body.contains("The Comedy of Errors")
            && self.body.contains("Book Details")
            && self.body.contains("Book Reviews")
    }
}

/// One HTTP/1.1 request through the gateway, as a browser would send it.
fn request(port: u16, method: &str, path: &str, cookie: Option<&str>, form: Option<&str>) -> Page {
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
fn dechunk(mut rest: &str) -> String {
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
fn free_block() -> u16 {
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
struct Demo {
    child: Child,
    lines: mpsc::Receiver<String>,
    printed: Vec<String>,
    scratch: PathBuf,
    env: Vec<(String, String)>,
    gateway: u16,
    /// The gateway's HTTPS server port.
    https: u16,
}

impl Demo {
    /// Starts `weft demo --data-plane <plane>`; `envoy` is the binary when the plane is Envoy.
    fn start(plane: &str, envoy: Option<&Path>) -> Demo {
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
            .args(["--port-base", &free_block().to_string()])
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
        }
    }

    /// Waits for a printed line containing `needle`; panics with everything printed if the
    /// demo exits or `limit` passes first.
    fn wait_for_line(&mut self, needle: &str, limit: Duration) -> String {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            match self.lines.recv_timeout(Duration::from_millis(200)) {
                Ok(line) => {
                    self.printed.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
        }
        panic!(
            "weft demo never printed {needle:?}\n--- printed\n{}\n{}",
            self.printed.join("\n"),
            self.logs()
        );
    }

    /// The demo's log files, for failure messages.
    fn logs(&self) -> String {
        let dir = self.scratch.join("demo/logs");
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
    fn apply(&self, file: &str) {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join(SAMPLES)
            .join(file);
        let env: Vec<(&str, &str)> = self
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let out: Output = run_weft(&["apply", "-f", &path.display().to_string()], &env, None);
        out.ok();
    }

    fn page(&self, cookie: Option<&str>) -> Page {
        request(self.gateway, "GET", "/productpage", cookie, None)
    }

    /// Loads the page until `ok` holds for it; panics with the last page after the timeout.
    fn until(&self, what: &str, cookie: Option<&str>, ok: impl Fn(&Page) -> bool) -> Page {
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
    fn all_v1(&self, n: usize) -> bool {
        (0..n).all(|_| {
            let p = self.page(None);
            p.complete() && p.stars().is_empty()
        })
    }

    /// Loads the page `n` times; returns how many showed stars of `color`, after checking
    /// that every load was complete and showed only `allowed` colours.
    fn count(&self, n: usize, color: &str, allowed: &[&str]) -> usize {
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

fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status();
}

/// Processes whose parent is `pid`, from /proc.
fn children_of(pid: u32) -> Vec<u32> {
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

#[test]
fn bookinfo_demo_on_envoy_runs_istios_traffic_management_tasks() {
    let Some(envoy) = envoy::find() else { return };
    run_traffic_management_tasks("envoy", Some(&envoy));
}

#[test]
fn bookinfo_demo_on_weft_proxy_runs_istios_traffic_management_tasks() {
    run_traffic_management_tasks("weft", None);
}

/// The same doc flows, whichever data plane carries the traffic.
/// The banner's HTTPS line names the URL and the certificate to trust; curl with that
/// certificate gets the whole product page from the gateway's SIMPLE TLS server.
fn over_https(demo: &Demo, line: &str) {
    let url = format!("https://localhost:{}/productpage", demo.https);
    assert!(line.contains(&url), "{line}");
    let cert = line
        .split("--cacert ")
        .nth(1)
        .and_then(|rest| rest.strip_suffix(')'))
        .unwrap_or_else(|| panic!("no certificate named in {line:?}"));
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = Command::new("curl")
            .args([
                "-sS",
                "--max-time",
                "5",
                "--noproxy",
                "*",
                "--cacert",
                cert,
                &url,
            ])
            .stdin(Stdio::null())
            .output()
            .expect("run curl");
        let body = String::from_utf8_lossy(&out.stdout);
        if out.status.success() && body.contains("Book Details") && body.contains("Book Reviews") {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no product page over HTTPS: {body} {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            demo.logs()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn run_traffic_management_tasks(plane: &str, envoy: Option<&Path>) {
    let started = Instant::now();
    let mut demo = Demo::start(plane, envoy);
    let url = demo.wait_for_line("Product page", START_TIMEOUT);
    assert!(
        url.contains(&format!("http://127.0.0.1:{}/productpage", demo.gateway)),
        "{url}"
    );
    let https = demo.wait_for_line("Over HTTPS", Duration::from_secs(5));
    demo.wait_for_line("Press Ctrl-C", Duration::from_secs(5));
    eprintln!("demo up in {:?}", started.elapsed());
    over_https(&demo, &https);

    // Anonymous: the book, its details and reviews.
    let page = demo.page(None);
    assert!(page.complete(), "{}", page.body);
    assert!(page.body.contains("ISBN-10"), "{}", page.body);

    // Sign in as jason: a session cookie, then the page greets him.
    let login = request(
        demo.gateway,
        "POST",
        "/login",
        None,
        Some("username=jason&passwd=jason"),
    );
    assert!(
        (300..400).contains(&login.status),
        "login answered {}",
        login.status
    );
    let set_cookie = login.header("set-cookie").expect("login sets a cookie");
    let cookie = set_cookie.split(';').next().unwrap().to_string();
    let jason = Some(cookie.as_str());
    let page = demo.page(jason);
    assert!(
        page.body.contains("Signed in as <b>jason</b>"),
        "{}",
        page.body
    );

    // Request routing: everyone on v1 (no stars), then jason alone on v2 (black stars).
    demo.apply("virtual-service-all-v1.yaml");
    demo.until("all-v1: ten loads without stars", None, |_| demo.all_v1(10));
    demo.apply("virtual-service-reviews-test-v2.yaml");
    demo.until("test-v2: jason sees black stars", jason, |p| {
        p.complete() && p.stars() == ["black", "black"]
    });
    for _ in 0..5 {
        assert_eq!(demo.page(jason).stars(), ["black", "black"]);
        let anonymous = demo.page(None);
        assert!(
            anonymous.complete() && anonymous.stars().is_empty(),
            "{}",
            anonymous.body
        );
    }

    // Fault injection: a 7 s ratings delay for jason outlasts productpage's 2 x 3 s for reviews.
    demo.apply("virtual-service-ratings-test-delay.yaml");
    let t = Instant::now();
    let page = demo.until("ratings delay: reviews unavailable for jason", jason, |p| {
        p.body
            .contains("Sorry, product reviews are currently unavailable for this book.")
    });
    assert!(
        page.body.contains("Error fetching product reviews"),
        "{}",
        page.body
    );
    assert!(
        t.elapsed() >= Duration::from_secs(5),
        "the page waited for both tries"
    );
    let anonymous = demo.page(None);
    assert!(
        anonymous.complete(),
        "others are not delayed:\n{}",
        anonymous.body
    );

    demo.apply("virtual-service-ratings-test-abort.yaml");
    let page = demo.until("ratings abort: unavailable for jason", jason, |p| {
        p.body.contains("Ratings service is currently unavailable")
    });
    assert!(page.complete() && page.stars().is_empty(), "{}", page.body);

    // Traffic shifting: from all-v1 to 80/20 v1/v2, 50/50 v1/v3, then all v3.
    demo.apply("virtual-service-all-v1.yaml");
    demo.until("all-v1 again", None, |_| demo.all_v1(10));
    demo.apply("virtual-service-reviews-80-20.yaml");
    demo.until("80-20: some v2", None, |p| p.stars().contains(&"black"));
    let v2 = demo.count(60, "black", &["black"]);
    assert!(
        (4..=24).contains(&v2),
        "80-20: {v2} of 60 loads on v2, expected about 12"
    );

    demo.apply("virtual-service-reviews-50-v3.yaml");
    demo.until("50-v3: some v3", None, |p| p.stars().contains(&"red"));
    let v3 = demo.count(60, "red", &["red"]);
    assert!(
        (15..=45).contains(&v3),
        "50-v3: {v3} of 60 loads on v3, expected about 30"
    );

    demo.apply("virtual-service-reviews-v3.yaml");
    demo.until("v3: ten loads of red stars", None, |_| {
        (0..10).all(|_| demo.page(None).stars() == ["red", "red"])
    });

    demo.apply("fault-injection-details-v1.yaml");
    let page = demo.until("details abort", None, |p| {
        p.body.contains("Error fetching product details")
    });
    assert!(page.body.contains("Book Reviews"), "{}", page.body);

    // SIGTERM stops everything the demo started.
    let pid = demo.child.id();
    let children = children_of(pid);
    assert!(
        children.len() >= 14,
        "weftd, 6 apps, 6 sidecars and a gateway: {children:?}"
    );
    // Grandchildren too: an `envoy` on PATH may be a wrapper that starts the real one.
    let mut tree = children.clone();
    let mut i = 0;
    while i < tree.len() {
        tree.extend(children_of(tree[i]));
        i += 1;
    }
    signal(pid, "TERM");
    demo.wait_for_line("stopped", Duration::from_secs(15));
    let status = demo.child.wait().expect("the demo exits");
    assert!(status.success(), "demo exited with {status}");
    let left: Vec<u32> = tree
        .into_iter()
        .filter(|c| Path::new(&format!("/proc/{c}")).exists())
        .collect();
    assert!(left.is_empty(), "processes left behind: {left:?}");
    eprintln!("whole run took {:?}", started.elapsed());
}
