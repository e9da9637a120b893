//! Admin `POST /drain`: every listener stops accepting at once, a request in flight still
//! gets its answer, and the proxy exits 0 once its connections are gone, within
//! `--drain-time-s`; `POST /quitquitquit` exits at once.
//! Build the workspace binaries first: `cargo build --workspace --bins`.

mod sidecar;

use sidecar::{echo, mesh_config, plain_client, split, ControlPlane, Sidecar};
use std::net::TcpStream;
use std::time::{Duration, Instant};

fn wait_exit(proxy: &mut Sidecar, within: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = proxy.process.0.try_wait().unwrap() {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "weft-proxy still running after {within:?}\n{}",
            proxy.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn drain_finishes_requests_in_flight_then_exits_zero() {
    let cp = ControlPlane::start();
    let (_v1, v1_port) = echo("ratings-v1", "v1");
    let (_v2, v2_port) = echo("ratings-v2", "v2");
    mesh_config(&cp, v1_port, v2_port);
    cp.apply(&split(100));
    let mut proxy = Sidecar::start(&cp, false, &["--drain-time-s", "3"]);

    // A slow request in flight when the drain starts.
    let client = proxy.client();
    let slow = std::thread::spawn(move || {
        client
            .get("http://ratings:9080/slow")
            .header("x-echo-delay-ms", "800")
            .send()
            .map(|r| r.status().as_u16())
    });
    std::thread::sleep(Duration::from_millis(200));
    let begun = Instant::now();
    let r = plain_client()
        .post(format!("http://127.0.0.1:{}/drain", proxy.admin))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);

    // The outbound listener closes promptly; the slow request still succeeds.
    let outbound = format!("127.0.0.1:{}", proxy.outbound);
    let deadline = Instant::now() + Duration::from_secs(2);
    while TcpStream::connect(&outbound).is_ok() {
        assert!(Instant::now() < deadline, "listener still accepting");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        slow.join().unwrap().expect("in-flight request answered"),
        200
    );

    // Out as soon as the last connection closed, well before the 3s drain time.
    let status = wait_exit(&mut proxy, Duration::from_secs(5));
    assert_eq!(status.code(), Some(0), "{}", proxy.log());
    let took = begun.elapsed();
    println!("drain: exited 0 after {took:.2?}");
    assert!(
        took >= Duration::from_millis(500),
        "exited before the request in flight ended"
    );
    assert!(
        took < Duration::from_secs(3),
        "waited for the whole drain time: {took:?}"
    );
}

#[test]
fn drain_time_bounds_connections_that_stay_open() {
    let cp = ControlPlane::start();
    let (_v1, v1_port) = echo("ratings-v1", "v1");
    let (_v2, v2_port) = echo("ratings-v2", "v2");
    mesh_config(&cp, v1_port, v2_port);
    cp.apply(&split(100));
    let mut proxy = Sidecar::start(&cp, false, &["--drain-time-s", "1"]);
    // A request longer than the drain time: the drain time cuts it short.
    let client = proxy.client();
    let slow = std::thread::spawn(move || {
        client
            .get("http://ratings:9080/slow")
            .header("x-echo-delay-ms", "4000")
            .send()
            .map(|r| r.status().as_u16())
    });
    std::thread::sleep(Duration::from_millis(200));
    let begun = Instant::now();
    plain_client()
        .post(format!("http://127.0.0.1:{}/drain", proxy.admin))
        .send()
        .unwrap();
    let status = wait_exit(&mut proxy, Duration::from_secs(4));
    let took = begun.elapsed();
    assert_eq!(status.code(), Some(0), "{}", proxy.log());
    assert!(took >= Duration::from_millis(900), "exited after {took:?}");
    assert!(
        slow.join().unwrap().is_err(),
        "the cut request did not succeed"
    );

    // /quitquitquit exits at once.
    let mut proxy = Sidecar::start(&cp, true, &[]);
    let begun = Instant::now();
    plain_client()
        .post(format!("http://127.0.0.1:{}/quitquitquit", proxy.admin))
        .send()
        .unwrap();
    assert_eq!(
        wait_exit(&mut proxy, Duration::from_secs(2)).code(),
        Some(0)
    );
    println!("quitquitquit: exited after {:.2?}", begun.elapsed());
}
