//! `weft validate`: offline validation of files, one line per problem.

use super::{origin, Error};
use crate::source::{documents, read_inputs, Document};
use std::io::Write;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// File, directory (its *.yaml, *.yml, *.json) or "-" for stdin; repeatable.
    #[arg(short = 'f', long = "filename", required = true)]
    pub files: Vec<String>,
    /// Also read subdirectories of the directories given with -f.
    #[arg(short = 'R', long)]
    pub recursive: bool,
}

/// Exit 1 when any document is invalid; warnings and skipped non-Istio objects do not fail.
pub fn run(args: &Args, out: &mut dyn Write, err: &mut dyn Write) -> Result<u8, Error> {
    let inputs = read_inputs(&args.files, args.recursive)?;
    let mut invalid = 0;
    for input in &inputs {
        let mut file_invalid = 0;
        for doc in documents(&input.text) {
            match doc {
                Document::Istio { resource, warnings } => {
                    for w in warnings {
                        writeln!(err, "Warning: {}: {}: {w}", input.name, origin(&resource))?;
                    }
                }
                Document::Foreign {
                    document,
                    api_version,
                    kind,
                    name,
                } => writeln!(
                    err,
                    "Skipping {}: {kind} {name} (document {document}) is not an Istio resource ({api_version})",
                    input.name
                )?,
                Document::Invalid(e) => {
                    file_invalid += 1;
                    writeln!(err, "{}: {e}", input.name)?;
                }
            }
        }
        if file_invalid == 0 {
            writeln!(out, "{:?} is valid", input.name)?;
        }
        invalid += file_invalid;
    }
    if invalid > 0 {
        let s = if invalid == 1 { "" } else { "s" };
        writeln!(err, "error: {invalid} invalid document{s}")?;
        return Ok(1);
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn validate(files: &[(&str, &str)]) -> (u8, String, String) {
        let dir = tempfile::tempdir().unwrap();
        let mut args = Args {
            files: vec![],
            recursive: false,
        };
        for (name, text) in files {
            let p = dir.path().join(name);
            std::fs::write(&p, text).unwrap();
            args.files.push(p.display().to_string());
        }
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let code = run(&args, &mut out, &mut err).unwrap();
        let text = |b: Vec<u8>| {
            String::from_utf8(b)
                .unwrap()
                .replace(&format!("{}/", dir.path().display()), "")
        };
        (code, text(out), text(err))
    }

    #[test]
    fn valid_file_and_skipped_kubernetes_object() {
        let (code, out, err) = validate(&[(
            "ok.yaml",
            "apiVersion: v1\nkind: Service\nmetadata: {name: reviews}\n---\napiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {name: default}\nspec: {egress: [{hosts: [\"./*\"]}]}\n",
        )]);
        assert_eq!(code, 0, "{err}");
        assert_eq!(out, "\"ok.yaml\" is valid\n");
        assert_eq!(
            err,
            "Skipping ok.yaml: Service reviews (document 0) is not an Istio resource (v1)\n"
        );
    }

    #[test]
    fn invalid_document_names_file_resource_and_field() {
        let (code, out, err) = validate(&[
            (
                "bad.yaml",
                "apiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {name: s, namespace: ns}\nspec: {egress: 5}\n",
            ),
            (
                "good.yaml",
                "apiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {name: s}\nspec: {egress: [{hosts: [\"./*\"]}]}\n",
            ),
        ]);
        assert_eq!(code, 1);
        assert_eq!(out, "\"good.yaml\" is valid\n");
        let lines: Vec<&str> = err.lines().collect();
        assert_eq!(lines.len(), 2, "{err}");
        assert!(
            lines[0].starts_with("bad.yaml: Sidecar ns/s (document 0): spec.egress: "),
            "{err}"
        );
        assert_eq!(lines[1], "error: 1 invalid document");
    }
}
