//! `weft demo` end to end: Bookinfo through the ingress gateway as a browser sees it, through
//! each of Istio's traffic-management task files applied unchanged, then SIGTERM leaves no process.
//!
//! Needs Envoy (skipped without it unless WEFT_REQUIRE_ENVOY=1) and the workspace's binaries
//! (`cargo build --workspace --bins`).

mod demo_harness;

use demo_harness::{children_of, request, signal, Demo, START_TIMEOUT};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use weft_testkit::envoy;

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
    let (mut demo, url) = Demo::start_until(plane, envoy, "Product page", START_TIMEOUT);
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
