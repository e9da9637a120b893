//! `weft apply`: validate every document locally, then create or replace each in weftd.

use super::{origin, Context, Error};
use crate::client::ClientError;
use crate::source::{documents, read_inputs, resource_type, Document};
use serde_json::{json, Value};
use std::io::Write;
use weft_config::Resource;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// File, directory (its *.yaml, *.yml, *.json) or "-" for stdin; repeatable.
    #[arg(short = 'f', long = "filename", required = true)]
    pub files: Vec<String>,
    /// Also read subdirectories of the directories given with -f.
    #[arg(short = 'R', long)]
    pub recursive: bool,
    /// Namespace for resources that do not name one [default: default].
    #[arg(short = 'n', long)]
    pub namespace: Option<String>,
}

/// Nothing is sent unless every document is valid, so a half-applied directory never
/// happens because of a typo in its last file.
pub fn run(
    args: &Args,
    ctx: &Context,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<u8, Error> {
    let inputs = read_inputs(&args.files, args.recursive)?;
    let mut resources = Vec::new();
    let mut invalid = 0;
    for input in &inputs {
        for doc in documents(&input.text) {
            match doc {
                Document::Istio { resource, warnings } => {
                    for w in warnings {
                        writeln!(err, "Warning: {}: {}: {w}", input.name, origin(&resource))?;
                    }
                    match place(*resource, args.namespace.as_deref()) {
                        Ok(r) => resources.push(r),
                        Err(msg) => {
                            invalid += 1;
                            writeln!(err, "{}: {msg}", input.name)?;
                        }
                    }
                }
                Document::Foreign {
                    document,
                    kind,
                    name,
                    ..
                } => writeln!(
                    err,
                    "Skipping {}: {kind} {name} (document {document}) is not an Istio resource; weftd stores Istio kinds only",
                    input.name
                )?,
                Document::Invalid(e) => {
                    invalid += 1;
                    writeln!(err, "{}: {e}", input.name)?;
                }
            }
        }
    }
    if invalid > 0 {
        writeln!(
            err,
            "error: nothing was applied: fix the {invalid} invalid document{} above",
            if invalid == 1 { "" } else { "s" }
        )?;
        return Ok(1);
    }
    if resources.is_empty() {
        writeln!(err, "error: no Istio resources found in the input")?;
        return Ok(1);
    }

    let client = ctx.client();
    let mut failed = 0;
    for r in &resources {
        let (kind, ns, name) = (r.kind(), &r.metadata.namespace, &r.metadata.name);
        let desired = r.to_json();
        let existing = match client.get(kind, ns, name) {
            Ok(obj) => Some(obj),
            Err(e) if e.is_not_found() => None,
            Err(e @ ClientError::Server(_)) => {
                failed += 1;
                writeln!(err, "{e}")?;
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        let verb = if existing.as_ref().is_some_and(|e| unchanged(e, &desired)) {
            "unchanged"
        } else {
            match client.put(&desired, ns) {
                Ok(w) => {
                    for warning in &w.warnings {
                        writeln!(err, "Warning: {warning}")?;
                    }
                    if w.created {
                        "created"
                    } else {
                        "configured"
                    }
                }
                Err(e @ ClientError::Server(_)) => {
                    failed += 1;
                    writeln!(err, "{e}")?;
                    continue;
                }
                Err(e) => return Err(e.into()),
            }
        };
        writeln!(out, "{}/{name} {verb}", resource_type(kind))?;
    }
    Ok(u8::from(failed > 0))
}

/// Sets the namespace: the document's own, else `-n`, else `default`; refuses a document
/// whose namespace contradicts `-n`, as kubectl does.
fn place(mut r: Resource, flag: Option<&str>) -> Result<Resource, String> {
    match (r.metadata.namespace.as_str(), flag) {
        ("", flag) => r.metadata.namespace = flag.unwrap_or("default").to_string(),
        (own, Some(flag)) if own != flag => {
            return Err(format!(
                "{}: the namespace from the provided object {own:?} does not match the namespace {flag:?}; pass --namespace={own} or drop it",
                origin(&r)
            ))
        }
        _ => {}
    }
    Ok(r)
}

/// Whether writing `desired` would change what a user configured: spec (or a Secret's
/// top-level `type`, `data` and `immutable`), labels and annotations. Server-set metadata
/// (resourceVersion, uid, ...) is not the user's.
fn unchanged(existing: &Value, desired: &Value) -> bool {
    let empty = json!({});
    let field = |v: &Value, p: &str| v.pointer(p).cloned().unwrap_or_else(|| empty.clone());
    [
        "/spec",
        "/type",
        "/data",
        "/immutable",
        "/metadata/labels",
        "/metadata/annotations",
    ]
    .iter()
    .all(|p| field(existing, p) == field(desired, p))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sidecar(ns: &str) -> Resource {
        let text = format!(
            "apiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {{name: s, namespace: \"{ns}\"}}\nspec: {{egress: [{{hosts: [\"./*\"]}}]}}\n"
        );
        let mut docs = documents(&text);
        match docs.remove(0) {
            Document::Istio { resource, .. } => *resource,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn namespace_comes_from_document_then_flag_then_default() {
        assert_eq!(
            place(sidecar(""), None).unwrap().metadata.namespace,
            "default"
        );
        assert_eq!(
            place(sidecar(""), Some("prod")).unwrap().metadata.namespace,
            "prod"
        );
        assert_eq!(
            place(sidecar("a"), Some("a")).unwrap().metadata.namespace,
            "a"
        );
        let e = place(sidecar("a"), Some("b")).unwrap_err();
        assert!(
            e.starts_with(
                "Sidecar a/s: the namespace from the provided object \"a\" does not match"
            ),
            "{e}"
        );
    }

    #[test]
    fn server_metadata_does_not_count_as_a_change() {
        let stored = json!({"metadata": {"name": "r", "resourceVersion": "7", "labels": {}},
                            "spec": {"hosts": ["r"]}});
        let same = json!({"metadata": {"name": "r"}, "spec": {"hosts": ["r"]}});
        let relabeled =
            json!({"metadata": {"name": "r", "labels": {"a": "b"}}, "spec": {"hosts": ["r"]}});
        let respecced = json!({"metadata": {"name": "r"}, "spec": {"hosts": ["s"]}});
        assert!(unchanged(&stored, &same));
        assert!(!unchanged(&stored, &relabeled));
        assert!(!unchanged(&stored, &respecced));
    }
}
