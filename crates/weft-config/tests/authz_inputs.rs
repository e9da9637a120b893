//! Istio's authorization builder inputs (pilot/pkg/security/authz/builder/testdata) and its
//! authentication samples, read by path from ../shared/istio-testdata: every security
//! policy among them must parse and pass validation, except the ones listed in
//! `ISTIO_REJECTS` with the reason Istio's own webhook gives.

use std::path::{Path, PathBuf};

fn testdata() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/istio-testdata");
    assert!(dir.is_dir(), "{} not found", dir.display());
    dir
}

/// Inputs that Istio's validation webhook itself refuses, as (file, resource name, a
/// substring of the reason). The builder tests feed them straight to the builder,
/// skipping validation, to check how the data plane copes.
const ISTIO_REJECTS: &[(&str, &str, &str)] = &[];

const SECURITY_KINDS: &[&str] = &[
    "AuthorizationPolicy",
    "RequestAuthentication",
    "PeerAuthentication",
];

fn input_files() -> Vec<PathBuf> {
    let root = testdata();
    let mut files = Vec::new();
    for dir in ["http", "tcp"] {
        let dir = root
            .join("pilot/pkg/security/authz/builder/testdata")
            .join(dir);
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.unwrap().path();
            if path.to_string_lossy().ends_with("-in.yaml") {
                files.push(path);
            }
        }
    }
    for name in ["authn.yaml", "peer-authn-strict.yaml"] {
        files.push(root.join("tests/testdata/config").join(name));
    }
    // The corpus harness skips this one: its targetRef names `kind: Service`, which
    // the harness takes for a Kubernetes Service document.
    files.push(root.join("pkg/config/validation/testdata/crds/reqauth-valid.yaml"));
    files.sort();
    files
}

#[test]
fn security_policies_in_istio_inputs_are_accepted() {
    let (mut total, mut accepted) = (0, 0);
    let mut rejected = Vec::new();
    let mut unexpected = Vec::new();
    for file in input_files() {
        let short = file.file_name().unwrap().to_string_lossy().to_string();
        let text = std::fs::read_to_string(&file).unwrap();
        for result in weft_config::parse_and_validate(&text) {
            match result {
                Ok((res, _warnings)) => {
                    if !SECURITY_KINDS.contains(&res.kind().name()) {
                        continue;
                    }
                    total += 1;
                    accepted += 1;
                    if ISTIO_REJECTS
                        .iter()
                        .any(|(f, n, _)| *f == short && *n == res.metadata.name)
                    {
                        unexpected.push(format!(
                            "{short} {}: accepted, Istio rejects it",
                            res.metadata.name
                        ));
                    }
                }
                Err(weft_config::ConfigError::Invalid { origin, errors }) => {
                    if !SECURITY_KINDS.contains(&origin.kind.as_str()) {
                        continue;
                    }
                    total += 1;
                    let all: Vec<String> = errors.iter().map(ToString::to_string).collect();
                    let all = all.join("; ");
                    let listed = ISTIO_REJECTS
                        .iter()
                        .find(|(f, n, _)| *f == short && *n == origin.name);
                    match listed {
                        Some((_, _, reason)) if all.contains(reason) => {
                            rejected.push(format!("{short} {}: {all}", origin.name));
                        }
                        _ => unexpected.push(format!("{short} {}: {all}", origin.name)),
                    }
                }
                Err(e) => unexpected.push(format!("{short}: {e}")),
            }
        }
    }
    println!(
        "security inputs: {total} policies, {accepted} accepted, {} rejected as Istio does",
        rejected.len()
    );
    for r in &rejected {
        println!("  rejected as expected: {r}");
    }
    assert!(
        total >= 40,
        "expected the builder inputs to hold 40+ policies, found {total}"
    );
    assert!(
        unexpected.is_empty(),
        "unexpected results:\n{}",
        unexpected.join("\n")
    );
}
