//! Istio's own validation corpora, read by path from ../shared/istio-testdata:
//! every valid document must be accepted, every `_err:` document rejected, and we count how
//! many of our errors contain Istio's expected message.
//!
//! `WEFT_CORPUS_FILTER=wasm` limits the run to files whose name contains the word.

use std::path::{Path, PathBuf};

fn testdata() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/istio-testdata");
    assert!(
        dir.is_dir(),
        "{} not found: the corpus lives beside the checkout",
        dir.display()
    );
    dir
}

fn yaml_files(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let filter = std::env::var("WEFT_CORPUS_FILTER").unwrap_or_default();
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(suffix))
        .filter(|p| p.file_name().unwrap().to_string_lossy().contains(&filter))
        .collect();
    files.sort();
    files
}

/// Splits a file into its documents' text, so each can be fed and reported alone.
fn documents(text: &str) -> Vec<String> {
    let mut docs = vec![String::new()];
    for line in text.lines() {
        if line.trim_end() == "---" {
            docs.push(String::new());
        } else {
            let doc = docs.last_mut().unwrap();
            doc.push_str(line);
            doc.push('\n');
        }
    }
    docs.retain(|d| {
        d.lines()
            .any(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
    });
    docs
}

/// Kubernetes kinds that appear in Istio's samples beside Istio kinds; not ours to validate.
fn is_kubernetes_kind(doc: &str) -> bool {
    [
        "kind: Service\n",
        "kind: Deployment\n",
        "kind: ServiceAccount\n",
        "kind: Secret\n",
    ]
    .iter()
    .any(|k| doc.contains(k))
}

fn check_valid(files: &[PathBuf]) -> (usize, Vec<String>) {
    let (mut accepted, mut failures) = (0, Vec::new());
    for file in files {
        let text = std::fs::read_to_string(file).unwrap();
        for (i, doc) in documents(&text).iter().enumerate() {
            if is_kubernetes_kind(doc) {
                continue;
            }
            for result in weft_config::parse_and_validate(doc) {
                match result {
                    Ok(_) => accepted += 1,
                    Err(e) => failures.push(format!("{} doc {i}: {e}", file.display())),
                }
            }
        }
    }
    (accepted, failures)
}

#[test]
fn valid_corpora_are_accepted() {
    let root = testdata();
    let mut files = yaml_files(
        &root.join("pkg/config/validation/testdata/crds"),
        "-valid.yaml",
    );
    files.extend(yaml_files(&root.join("tests/testdata/config"), ".yaml"));
    files.extend(yaml_files(
        &root.join("samples/bookinfo/networking"),
        ".yaml",
    ));
    let (accepted, failures) = check_valid(&files);
    println!(
        "valid corpus: {accepted} accepted, {} rejected",
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "valid documents rejected:\n{}",
        failures.join("\n")
    );
}

#[test]
fn invalid_corpus_is_rejected_with_istios_message() {
    let files = yaml_files(
        &testdata().join("pkg/config/validation/testdata/crds"),
        "-invalid.yaml",
    );
    let (mut total, mut rejected, mut matching) = (0, 0, 0);
    let (mut accepted, mut other_message) = (Vec::new(), Vec::new());
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        for doc in documents(&text) {
            let Some(expected) = doc.lines().find_map(|l| l.strip_prefix("_err:")) else {
                continue;
            };
            let expected = expected
                .trim()
                .trim_matches(|c| c == '"' || c == '\'')
                .to_string();
            let body: String = doc
                .lines()
                .filter(|l| !l.starts_with("_err:"))
                .map(|l| format!("{l}\n"))
                .collect();
            let name = body
                .lines()
                .find_map(|l| l.trim().strip_prefix("name:"))
                .unwrap_or("?")
                .trim()
                .to_string();
            total += 1;
            let errors: Vec<String> = weft_config::parse_and_validate(&body)
                .into_iter()
                .filter_map(Result::err)
                .map(|e| e.to_string())
                .collect();
            if errors.is_empty() {
                accepted.push(format!(
                    "{} {name}: accepted, expected {expected:?}",
                    file.display()
                ));
                continue;
            }
            rejected += 1;
            let all = errors.join("; ");
            if all.contains(&expected) {
                matching += 1;
            } else {
                other_message.push(format!(
                    "{} {name}: expected {expected:?}, got {all}",
                    file.display()
                ));
            }
        }
    }
    println!(
        "invalid corpus: {total} documents, {rejected} rejected, {matching} with Istio's message"
    );
    for m in &other_message {
        println!("  different message: {m}");
    }
    assert!(
        accepted.is_empty(),
        "invalid documents accepted:\n{}",
        accepted.join("\n")
    );
    assert!(
        other_message.is_empty(),
        "{} errors differ from Istio's message",
        other_message.len()
    );
}
