//! The conformance suite against weft-proxy: the same scenario tables as Envoy's run, with
//! weft-proxy's expected failures from `pending::WEFT_PENDING`.
//! Run: `cargo build --workspace --bins && cargo test -p weft-conformance --test weft -- --nocapture`.

use weft_conformance::dataplane::{DataPlane, WeftDataPlane};
use weft_conformance::mesh::Mesh;
use weft_conformance::pending::{self, WEFT_PENDING};
use weft_conformance::{runner, scenarios};

#[test]
fn conformance_weft() {
    let weft = WeftDataPlane::new();
    let scenarios = pending::mark(scenarios::all(), WEFT_PENDING).unwrap_or_else(|e| panic!("{e}"));
    let mesh = Mesh::start(&weft).unwrap_or_else(|e| panic!("the mesh did not start: {e}"));
    for problem in &mesh.problems {
        runner::say(&format!("mesh problem: {problem}"));
    }
    let report = runner::run_with(&mesh, &scenarios, Some("WEFT_PENDING"));
    let text = report.render(weft.name());
    runner::say(text.lines().last().unwrap_or_default());
    if report.failed() > 0 {
        eprintln!("{}", mesh.control.log());
        for (name, proxy) in mesh.proxies() {
            eprintln!("--- {name} log\n{}", proxy.log());
        }
    }
    assert_eq!(report.failed(), 0, "conformance failures:\n{text}");
}
