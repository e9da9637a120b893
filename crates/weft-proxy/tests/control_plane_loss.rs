//! Zero failed requests when the control plane goes away: weftd is SIGKILLed under load,
//! the weft-proxy sidecar (delta ADS) keeps serving its last good config, reconnects with
//! backoff when weftd comes back on the same data dir and ports, and takes new config.
//! Build the workspace binaries first: `cargo build --workspace --bins`.

mod sidecar;

use sidecar::{echo, mesh_config, split, ControlPlane, Load, Sidecar};
use std::time::{Duration, Instant};

#[test]
fn weftd_killed_and_restarted_under_load_fails_no_request() {
    let mut cp = ControlPlane::start();
    let (_v1, v1_port) = echo("ratings-v1", "v1");
    let (_v2, v2_port) = echo("ratings-v2", "v2");
    mesh_config(&cp, v1_port, v2_port);
    cp.apply(&split(50));
    let proxy = Sidecar::start(&cp, true, &[]);
    cp.wait_synced("delta", || proxy.log());

    let load = Load::start(&proxy, 4);
    std::thread::sleep(Duration::from_millis(500));
    cp.kill();
    let before_outage = load.total();
    std::thread::sleep(Duration::from_secs(3));
    let during_outage = load.total() - before_outage;
    let failed_during_outage = load.failed();
    assert!(during_outage > 0, "no requests ran while weftd was gone");
    assert_eq!(
        failed_during_outage,
        0,
        "requests failed while weftd was gone: {:?}\n{}",
        load.failures.lock().unwrap().first(),
        proxy.log()
    );

    let restarted = Instant::now();
    cp.restart();
    // Resynced: weftd sees the proxy again, in delta mode, everything ACKed.
    cp.wait_synced("delta", || proxy.log());
    let resynced = restarted.elapsed();
    // New config after the restart takes effect.
    cp.apply(&split(100));
    proxy.wait_only("ratings-v1", 20, &cp);
    let (ok, v1, v2, failures) = load.stop();
    println!(
        "control plane loss: {during_outage} requests while weftd was down, resynced \
         {resynced:.1?} after restart; {ok} requests OK (v1={v1} v2={v2}), {} failed",
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "{} failed requests, first: {:?}\n{}",
        failures.len(),
        &failures[..failures.len().min(5)],
        proxy.log()
    );
    assert!(v1 > 0 && v2 > 0, "both backends reached: v1={v1} v2={v2}");
    assert!(
        proxy.log().matches("delta ADS stream open").count() >= 2,
        "the proxy reconnected\n{}",
        proxy.log()
    );
}
