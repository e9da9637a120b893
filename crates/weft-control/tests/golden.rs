//! Golden tests of translation: each folder under `tests/golden/` holds Istio config
//! (`config.yaml`), the proxy asking (`proxy.yaml`, its xDS node id and metadata as
//! docs/xds.md defines them) and the four resource lists it gets, as Envoy's JSON
//! (`expected.json`). `UPDATE_GOLDEN=1 cargo test -p weft-control --test golden` rewrites
//! the expected files; review the diff before committing it.

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::google::protobuf::{value::Kind, ListValue, Struct, Value as PbValue};
use serde::Deserialize;
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};
use weft_control::model::{MeshSnapshot, Proxy};
use weft_control::translate::{self, Generated};
use weft_control::xds::dump::to_json;

const UPDATE_COMMAND: &str = "UPDATE_GOLDEN=1 cargo test -p weft-control --test golden";

/// `proxy.yaml`: the node a proxy would send.
#[derive(Deserialize)]
struct NodeFile {
    id: String,
    #[serde(default)]
    metadata: Map<String, Value>,
}

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

fn pb_value(v: &Value) -> PbValue {
    let kind = match v {
        Value::Null => Kind::NullValue(0),
        Value::Bool(b) => Kind::BoolValue(*b),
        Value::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or_default()),
        // Node metadata values are strings in the contract; numbers in YAML are written as
        // strings by the bootstrap too.
        Value::String(s) => Kind::StringValue(s.clone()),
        Value::Array(a) => Kind::ListValue(ListValue {
            values: a.iter().map(pb_value).collect(),
        }),
        Value::Object(o) => Kind::StructValue(pb_struct(o)),
    };
    PbValue { kind: Some(kind) }
}

fn pb_struct(o: &Map<String, Value>) -> Struct {
    Struct {
        fields: o.iter().map(|(k, v)| (k.clone(), pb_value(v))).collect(),
    }
}

fn load_proxy(dir: &Path) -> Proxy {
    let text = std::fs::read_to_string(dir.join("proxy.yaml")).expect("proxy.yaml is readable");
    let file: NodeFile = serde_yaml::from_str(&text).expect("proxy.yaml is a node");
    let node = Node {
        id: file.id,
        metadata: Some(pb_struct(&file.metadata)),
        ..Node::default()
    };
    Proxy::from_node(&node).unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
}

fn load_snapshot(dir: &Path) -> MeshSnapshot {
    let text = std::fs::read_to_string(dir.join("config.yaml")).expect("config.yaml is readable");
    let mut resources = Vec::new();
    for parsed in weft_config::parse_and_validate(&text) {
        let (resource, errors) = parsed.unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        // Errors fail above; warnings (deprecated fields) are refused too, so the cases
        // show current Istio usage.
        assert!(
            errors.is_empty(),
            "{}: {} does not validate: {errors:?}",
            dir.display(),
            resource.metadata.name
        );
        resources.push(resource);
    }
    MeshSnapshot::build(1, resources)
}

/// Objects with keys sorted: protobuf maps (metadata, typed_per_filter_config) have no
/// order of their own, and `serde_json` here keeps insertion order.
fn sorted(v: Value) -> Value {
    match v {
        Value::Object(o) => {
            let mut entries: Vec<(String, Value)> = o.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(entries.into_iter().map(|(k, v)| (k, sorted(v))).collect())
        }
        Value::Array(a) => Value::Array(a.into_iter().map(sorted).collect()),
        other => other,
    }
}

fn render(g: &Generated) -> String {
    fn list<M: prost::Message + prost::Name>(items: &[M]) -> Value {
        Value::Array(
            items
                .iter()
                .map(|m| to_json(m).expect("Envoy's descriptor set is built in"))
                .collect(),
        )
    }
    let mut out = Map::new();
    out.insert("clusters".into(), list(&g.clusters));
    out.insert("endpoints".into(), list(&g.endpoints));
    out.insert("listeners".into(), list(&g.listeners));
    out.insert("routes".into(), list(&g.routes));
    let mut text = serde_json::to_string_pretty(&sorted(Value::Object(out))).expect("JSON");
    text.push('\n');
    text
}

/// The first differing line with a few lines of context on each side, numbered.
fn first_difference(expected: &str, actual: &str) -> String {
    let e: Vec<&str> = expected.lines().collect();
    let a: Vec<&str> = actual.lines().collect();
    let at = (0..e.len().max(a.len()))
        .find(|&i| e.get(i) != a.get(i))
        .unwrap_or(0);
    let from = at.saturating_sub(3);
    let mut out = format!("first difference at line {}:\n", at + 1);
    for i in from..(at + 6) {
        match (e.get(i), a.get(i)) {
            (Some(x), Some(y)) if x == y => out.push_str(&format!("  {:>5} {x}\n", i + 1)),
            (x, y) => {
                if let Some(x) = x {
                    out.push_str(&format!("- {:>5} {x}\n", i + 1));
                }
                if let Some(y) = y {
                    out.push_str(&format!("+ {:>5} {y}\n", i + 1));
                }
            }
        }
    }
    out
}

/// Runs one case; returns a description of the mismatch, if any.
fn check(case: &str) -> Option<String> {
    let dir = golden_dir().join(case);
    let actual = render(&translate::generate(
        &load_snapshot(&dir),
        &load_proxy(&dir),
    ));
    let path = dir.join("expected.json");
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, &actual).expect("expected.json is writable");
        return None;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_default();
    (expected != actual).then(|| {
        format!(
            "{case}: translation differs from {} (- expected, + actual)\n{}",
            path.display(),
            first_difference(&expected, &actual)
        )
    })
}

#[test]
fn translations_match_golden_files() {
    let mut cases: Vec<String> = std::fs::read_dir(golden_dir())
        .expect("tests/golden exists")
        .filter_map(Result::ok)
        .filter(|e| e.path().join("config.yaml").is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    cases.sort();
    assert!(cases.len() >= 8, "golden cases found: {cases:?}");
    let failures: Vec<String> = cases.iter().filter_map(|c| check(c)).collect();
    assert!(
        failures.is_empty(),
        "{} of {} golden cases differ; if the change is intended, run `{UPDATE_COMMAND}` \
         and review the diff.\n\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
fn the_diff_names_the_first_differing_line() {
    let text = first_difference("a\nb\nc\n", "a\nx\nc\n");
    assert!(text.starts_with("first difference at line 2"), "{text}");
    assert!(
        text.contains("-     2 b") && text.contains("+     2 x"),
        "{text}"
    );
}
