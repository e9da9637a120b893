//! Istio's analyzer test grid, run against Weft's analyzers: every case that needs only
//! Istio kinds must yield exactly the (code, resource) pairs istioctl's own tests expect.

use serde_json::Value;
use std::path::{Path, PathBuf};
use weft_config::analyze::{analyze_only, MeshConfig, Options};
use weft_config::ConfigError;

fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/istio-testdata")
}

/// Files in the grid are relative to Istio's analyzers package directory.
fn analyzers_dir() -> PathBuf {
    testdata().join("pkg/config/analysis/analyzers")
}

struct Case {
    name: String,
    analyzer: String,
    files: Vec<String>,
    mesh: Option<String>,
    expected: Vec<(String, String)>,
}

fn istio_only_cases() -> Vec<Case> {
    let text = std::fs::read_to_string(testdata().join("analyzers_testgrid_extracted.json"))
        .expect("grid JSON is readable");
    let grid: Value = serde_json::from_str(&text).expect("grid JSON parses");
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s.as_str().map(str::to_string))
            .collect()
    };
    grid.as_array()
        .expect("grid is a list")
        .iter()
        .filter(|c| strings(&c["nonistio"]).is_empty())
        .map(|c| Case {
            name: c["name"].as_str().unwrap_or_default().to_string(),
            analyzer: c["analyzer"].as_str().unwrap_or_default().to_string(),
            files: strings(&c["files"]),
            mesh: c["mesh"].as_str().map(str::to_string),
            expected: c["expected"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|e| {
                    (
                        e[0].as_str().unwrap_or_default().to_string(),
                        e[2].as_str().unwrap_or_default().to_string(),
                    )
                })
                .collect(),
        })
        .collect()
}

/// Runs one case; `Err` describes the difference the way a reviewer needs to see it.
fn run_case(case: &Case) -> Result<(), String> {
    let mut resources = Vec::new();
    for file in &case.files {
        let text = std::fs::read_to_string(analyzers_dir().join(file))
            .map_err(|e| format!("reading {file}: {e}"))?;
        // Read like istioctl reads files: unknown fields are pruned, not fatal.
        for doc in weft_config::parse_documents_lenient(&text) {
            match doc {
                Ok((r, _pruned)) => resources.push(r),
                // Kubernetes kinds (Pods, Services) are outside Weft's config model.
                Err(ConfigError::UnknownKind { .. }) => {}
                Err(e) => return Err(format!("parsing {file}: {e}")),
            }
        }
    }
    let mut options = Options::default();
    if let Some(mesh) = &case.mesh {
        let text = std::fs::read_to_string(analyzers_dir().join(mesh))
            .map_err(|e| format!("reading {mesh}: {e}"))?;
        options.mesh = MeshConfig::from_yaml(&text)?;
    }
    let messages = analyze_only(&resources, &options, &case.analyzer)
        .ok_or_else(|| format!("no analyzer named {}", case.analyzer))?;
    let mut got: Vec<(String, String)> = messages
        .iter()
        .map(|m| (m.code.to_string(), m.origin.clone()))
        .collect();
    let mut expected = case.expected.clone();
    got.sort();
    expected.sort();
    if got == expected {
        Ok(())
    } else {
        let text: Vec<String> = messages.iter().map(|m| format!("    {m}")).collect();
        Err(format!(
            "expected {expected:?}\n  got      {got:?}\n{}",
            text.join("\n")
        ))
    }
}

#[test]
fn istio_analyzer_grid() {
    let cases = istio_only_cases();
    assert_eq!(cases.len(), 49, "the grid has 49 Istio-only cases");
    let mut failures = Vec::new();
    for case in &cases {
        if let Err(why) = run_case(case) {
            failures.push(format!("FAIL {} [{}]\n  {why}", case.name, case.analyzer));
        }
    }
    for f in &failures {
        eprintln!("{f}");
    }
    eprintln!(
        "analyzer grid: {} of {} cases pass",
        cases.len() - failures.len(),
        cases.len()
    );
    assert!(failures.is_empty(), "{} grid cases fail", failures.len());
}
