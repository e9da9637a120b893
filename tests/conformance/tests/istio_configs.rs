//! Istio's own test configs (`tests/testdata/config/*.yaml` of istio/istio, read from the
//! shared checkout) applied one file at a time to weftd, each pushed to a sidecar, an
//! ingress gateway and an egress gateway on real Envoy, and ACKed by all three.
//!
//! Run: `cargo build --workspace --bins && cargo test -p weft-conformance --test istio_configs -- --nocapture`.

use serde_json::Value;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use weft_conformance::control::{ControlPlane, ResourceKey};
use weft_conformance::dataplane::{
    BootstrapArgs, DataPlane, EnvoyDataPlane, ProxyType, RunningProxy,
};
use weft_testkit::free_port;

/// How long all proxies may take to connect and ACK their first config.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);
/// How long one change may take to be pushed and ACKed by every proxy.
const SYNC_TIMEOUT: Duration = Duration::from_secs(10);
/// Longer than weftd's debounce (at most 1 s): when no proxy's config changed by then, the
/// change produced nothing to push to these proxies.
const NO_CHANGE_AFTER: Duration = Duration::from_millis(1500);
/// The state must hold this long before it counts as settled (pushes to the proxies are
/// concurrent; one proxy's change may precede another's).
const SETTLE: Duration = Duration::from_millis(250);

/// Per proxy id, per xDS type: (status, sent version, NACK message).
type SyncState = BTreeMap<String, BTreeMap<String, (String, Value, Value)>>;

fn config_dir() -> PathBuf {
    weft_conformance::istio_testdata().join("tests/testdata/config")
}

/// The Istio documents of one file; Kubernetes kinds (Deployment, Service) are skipped,
/// as weftd stores only Istio's.
fn istio_documents(text: &str) -> Result<Vec<Value>, String> {
    let mut docs = Vec::new();
    for doc in serde_yaml::Deserializer::from_str(text) {
        let value: Value = serde::Deserialize::deserialize(doc).map_err(|e| e.to_string())?;
        let istio = value
            .get("apiVersion")
            .and_then(Value::as_str)
            .is_some_and(|v| v.contains(".istio.io/"));
        if istio {
            docs.push(value);
        }
    }
    Ok(docs)
}

fn state(control: &ControlPlane) -> Option<SyncState> {
    let list = control.proxies()?;
    let mut out = SyncState::new();
    for p in list.as_array()? {
        let id = p.get("proxy")?.as_str()?.to_owned();
        let types = p
            .get("xds")?
            .as_object()?
            .iter()
            .map(|(t, s)| {
                let status = s.get("status").and_then(Value::as_str).unwrap_or_default();
                let sent = s.get("sent").cloned().unwrap_or(Value::Null);
                let nack = s.get("nack").cloned().unwrap_or(Value::Null);
                (t.clone(), (status.to_owned(), sent, nack))
            })
            .collect();
        out.insert(id, types);
    }
    Some(out)
}

fn nacks(s: &SyncState) -> Vec<String> {
    s.iter()
        .flat_map(|(id, types)| {
            types
                .iter()
                .filter(|(_, (_, _, nack))| !nack.is_null())
                .map(move |(t, (_, _, nack))| format!("{id} {t}: {nack}"))
        })
        .collect()
}

fn all_synced(s: &SyncState, proxies: usize) -> bool {
    s.len() == proxies
        && s.values().all(|types| {
            types
                .values()
                .all(|(status, _, _)| status == "SYNCED" || status == "NOT SENT")
        })
}

fn versions(s: &SyncState) -> BTreeMap<(&str, &str), &Value> {
    s.iter()
        .flat_map(|(id, types)| {
            types
                .iter()
                .map(move |(t, (_, sent, _))| ((id.as_str(), t.as_str()), sent))
        })
        .collect()
}

/// What happened after one change, once settled.
struct Outcome {
    /// Some proxy got a new version of some type.
    changed: bool,
    nacks: Vec<String>,
}

/// Waits (bounded) until the change made after `before` is pushed and every proxy ACKed
/// it, or a NACK shows up.
fn wait_settled(
    control: &ControlPlane,
    before: &SyncState,
    proxies: usize,
) -> Result<Outcome, String> {
    let start = Instant::now();
    let mut last: Option<(SyncState, Instant)> = None;
    loop {
        let now = state(control).ok_or("weftd's /debug/proxies does not answer")?;
        // A NACK still showing from before this change is not news; the next ACK clears it.
        let old = nacks(before);
        let nacks: Vec<String> = nacks(&now)
            .into_iter()
            .filter(|n| !old.contains(n))
            .collect();
        let changed = versions(&now) != versions(before);
        if !nacks.is_empty() {
            return Ok(Outcome { changed, nacks });
        }
        let stable_since = match &last {
            Some((prev, since)) if *prev == now => *since,
            _ => Instant::now(),
        };
        if all_synced(&now, proxies)
            && (changed || start.elapsed() > NO_CHANGE_AFTER)
            && stable_since.elapsed() >= SETTLE
        {
            return Ok(Outcome { changed, nacks });
        }
        if start.elapsed() > SYNC_TIMEOUT {
            return Err(format!(
                "not every proxy SYNCED after {SYNC_TIMEOUT:?}: {now:?}"
            ));
        }
        last = Some((now, stable_since));
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn rejected(proxies: &[(&str, Box<dyn RunningProxy>)]) -> Result<Vec<u64>, String> {
    proxies.iter().map(|(_, p)| p.rejected_updates()).collect()
}

#[test]
fn istio_test_configs_are_acked_by_envoy() {
    let envoy = EnvoyDataPlane::find().unwrap_or_else(|e| panic!("{e}"));
    let control = ControlPlane::start().unwrap_or_else(|e| panic!("weftd: {e}"));
    // Each proxy registers through a WorkloadGroup of its own (weftd refuses a proxy
    // naming one that does not exist).
    for (group, label) in [
        ("sleep", ("app", "sleep")),
        ("istio-ingressgateway", ("istio", "ingressgateway")),
        ("istio-egressgateway", ("istio", "egressgateway")),
    ] {
        let doc = serde_json::json!({
            "apiVersion": "networking.istio.io/v1", "kind": "WorkloadGroup",
            "metadata": {"name": group, "namespace": "default"},
            "spec": {"metadata": {"labels": {label.0: label.1}}, "template": {"serviceAccount": group}},
        });
        control
            .apply(&doc)
            .unwrap_or_else(|e| panic!("WorkloadGroup {group}: {e}"));
    }
    let args = |group: &str, proxy_type, labels: &[(&str, &str)]| BootstrapArgs {
        workload_group: group.to_owned(),
        namespace: "default".into(),
        proxy_type,
        ip: "127.0.0.1".into(),
        app_ports: Vec::new(),
        outbound_port: free_port(),
        admin_port: free_port(),
        xds: control.xds_addr(),
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        server: control.server(),
        data_dir: control.data_dir(),
        work_dir: control.scratch().join(group),
    };
    let started = Instant::now();
    let mut proxies: Vec<(&str, Box<dyn RunningProxy>)> = Vec::new();
    for (name, a) in [
        (
            "sidecar",
            args("sleep", ProxyType::Sidecar, &[("app", "sleep")]),
        ),
        (
            "ingress gateway",
            args(
                "istio-ingressgateway",
                ProxyType::Router,
                &[("istio", "ingressgateway")],
            ),
        ),
        (
            "egress gateway",
            args(
                "istio-egressgateway",
                ProxyType::Router,
                &[("istio", "egressgateway")],
            ),
        ),
    ] {
        let proxy = envoy
            .start(&a)
            .unwrap_or_else(|e| panic!("{name} did not start: {e}"));
        proxies.push((name, proxy));
    }
    if !(control.wait_synced(CONNECT_TIMEOUT)
        && state(&control).is_some_and(|s| s.len() == proxies.len()))
    {
        for (name, p) in &proxies {
            eprintln!("--- {name} log\n{}", p.log());
        }
        panic!(
            "the proxies did not connect and ACK their first config: {:?}\n{}",
            control.proxies(),
            control.log()
        );
    }

    let mut files: Vec<PathBuf> = std::fs::read_dir(config_dir())
        .unwrap_or_else(|e| panic!("{}: {e}", config_dir().display()))
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    assert_eq!(files.len(), 30, "Istio's config test data: {files:?}");

    let mut acked = 0;
    let mut failures = Vec::new();
    for file in &files {
        let name = file.file_name().unwrap_or_default().to_string_lossy();
        match run_file(&control, &proxies, file) {
            Ok(changed) => {
                acked += 1;
                let what = if changed { "pushed" } else { "nothing to push" };
                println!("  ok    {name} ({what})");
            }
            Err(e) => {
                println!("  FAIL  {name}: {e}");
                failures.push(format!("{name}: {e}"));
            }
        }
    }
    println!(
        "istio configs: {acked} of {} applied and ACKed by every proxy ({:.1} s)",
        files.len(),
        started.elapsed().as_secs_f64()
    );
    if !failures.is_empty() {
        eprintln!("--- weftd log\n{}", control.log());
        for (name, p) in &proxies {
            eprintln!("--- {name} log\n{}", p.log());
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Applies one file, checks every proxy ACKed the result, deletes it and checks again.
/// Returns whether the file changed any proxy's config.
fn run_file(
    control: &ControlPlane,
    proxies: &[(&str, Box<dyn RunningProxy>)],
    file: &std::path::Path,
) -> Result<bool, String> {
    let text = std::fs::read_to_string(file).map_err(|e| e.to_string())?;
    let docs = istio_documents(&text)?;
    if docs.is_empty() {
        return Err("no Istio resources in the file".into());
    }
    let rejected_before = rejected(proxies)?;
    let before = state(control).ok_or("no /debug/proxies")?;
    let mut keys = Vec::new();
    let mut apply_error = None;
    for doc in &docs {
        let key = ResourceKey::of(doc)?;
        if let Err(e) = control.apply(doc) {
            apply_error.get_or_insert(e);
        }
        keys.push(key);
    }
    let applied = wait_settled(control, &before, proxies.len());
    let rejected_after = rejected(proxies)?;
    // Deleted whatever happened, so the next file starts from the same mesh.
    let before_delete = state(control).ok_or("no /debug/proxies")?;
    for key in keys.iter().rev() {
        control.delete(key)?;
    }
    let deleted = wait_settled(control, &before_delete, proxies.len());
    let rejected_end = rejected(proxies)?;

    if let Some(e) = apply_error {
        return Err(e);
    }
    let applied = applied?;
    if !applied.nacks.is_empty() {
        return Err(format!("NACK: {}", applied.nacks.join("; ")));
    }
    for (((name, _), b), a) in proxies.iter().zip(&rejected_before).zip(&rejected_after) {
        if a > b {
            return Err(format!("{name}: update_rejected rose from {b} to {a}"));
        }
    }
    let deleted = deleted?;
    if !deleted.nacks.is_empty() {
        return Err(format!("NACK after delete: {}", deleted.nacks.join("; ")));
    }
    for (((name, _), b), a) in proxies.iter().zip(&rejected_after).zip(&rejected_end) {
        if a > b {
            return Err(format!(
                "{name}: update_rejected rose from {b} to {a} on delete"
            ));
        }
    }
    Ok(applied.changed)
}

#[test]
fn kubernetes_kinds_are_skipped() {
    let text = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: a}\n---\n\
                apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: g}\n";
    let docs = istio_documents(text).unwrap();
    assert_eq!(docs.len(), 1);
    assert_eq!(docs[0]["kind"], "Gateway");
}
