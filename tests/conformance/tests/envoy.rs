//! The conformance suite against real Envoy: `cargo test -p weft-conformance` (after
//! `cargo build --workspace --bins`).

use weft_conformance::dataplane::{DataPlane, EnvoyDataPlane};
use weft_conformance::mesh::Mesh;
use weft_conformance::{runner, scenarios};

#[test]
fn conformance_envoy() {
    let envoy = EnvoyDataPlane::find().unwrap_or_else(|e| panic!("{e}"));
    let scenarios = scenarios::all();
    let mesh = Mesh::start(&envoy).unwrap_or_else(|e| panic!("the mesh did not start: {e}"));
    for problem in &mesh.problems {
        runner::say(&format!("mesh problem: {problem}"));
    }
    let report = runner::run(&mesh, &scenarios);
    let text = report.render(envoy.name());
    runner::say(text.lines().last().unwrap_or_default());
    if report.failed() > 0 {
        eprintln!("{}", mesh.control.log());
        for (name, proxy) in mesh.proxies() {
            eprintln!("--- {name} log\n{}", proxy.log());
        }
    }
    assert_eq!(report.failed(), 0, "conformance failures:\n{text}");
}
