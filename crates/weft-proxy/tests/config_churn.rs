//! Zero failed requests while the mesh config churns: 100 VirtualService changes move
//! traffic between two backends under continuous load through a weft-proxy sidecar on
//! delta ADS, and weftd sees the proxy SYNCED in delta mode afterwards.
//! Build the workspace binaries first: `cargo build --workspace --bins`.

mod sidecar;

use sidecar::{echo, mesh_config, split, ControlPlane, Load, Sidecar};
use std::time::Instant;

#[test]
fn hundred_virtual_service_changes_under_load_fail_no_request() {
    let cp = ControlPlane::start();
    let (_v1, v1_port) = echo("ratings-v1", "v1");
    let (_v2, v2_port) = echo("ratings-v2", "v2");
    mesh_config(&cp, v1_port, v2_port);
    cp.apply(&split(100));
    let proxy = Sidecar::start(&cp, true, &[]);
    cp.wait_synced("delta", || proxy.log());

    let rds_before = proxy.stat("http.rds.update_success");
    let load = Load::start(&proxy, 4);
    let started = Instant::now();
    // Alternate between one subset only, the other only, and uneven splits.
    for i in 0..100u32 {
        let v1 = match i % 4 {
            0 => 0,
            1 => 100,
            2 => (i * 37) % 101,
            _ => 100 - (i * 37) % 101,
        };
        cp.apply(&split(v1));
    }
    // The last change (i = 99: 100 - 99*37 % 101 = 73) holds once every change has come
    // through; then all v2, to see the end state take effect.
    cp.apply(&split(0));
    proxy.wait_only("ratings-v2", 20, &cp);
    let elapsed = started.elapsed();
    let (ok, v1, v2, failures) = load.stop();
    let rds_updates = proxy.stat("http.rds.update_success") - rds_before;
    println!(
        "config churn: 101 VirtualService changes in {elapsed:.1?} reached the proxy as \
         {rds_updates} route updates; {ok} requests OK (v1={v1} v2={v2}), {} failed",
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
    // weftd pushes each change alone (1ms debounce); allow some to share a push.
    assert!(
        rds_updates >= 50,
        "only {rds_updates} route updates applied\n{}",
        proxy.log()
    );

    let entry = cp.wait_synced("delta", || proxy.log());
    for t in ["cds", "lds", "eds", "rds"] {
        assert_eq!(
            entry["xds"][t]["nack"],
            serde_json::Value::Null,
            "{entry:#}"
        );
    }
    assert!(
        !proxy.log().contains("rejected"),
        "weft-proxy NACKed something\n{}",
        proxy.log()
    );
}
