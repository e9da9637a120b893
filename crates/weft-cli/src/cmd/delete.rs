//! `weft delete`: remove resources named in files or on the command line.

use super::{lookup_kind, Context, Error};
use crate::client::ClientError;
use crate::source::{read_inputs, resource_type};
use serde_json::Value;
use std::io::Write;
use weft_config::parse::split_documents;
use weft_config::Kind;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Kind (vs, dr, gw, ...) when deleting by name.
    pub kind: Option<String>,
    /// Names of the resources to delete.
    pub names: Vec<String>,
    /// File, directory or "-" naming the resources to delete; repeatable.
    #[arg(short = 'f', long = "filename")]
    pub files: Vec<String>,
    #[arg(short = 'R', long)]
    pub recursive: bool,
    /// Namespace for resources that do not name one [default: default].
    #[arg(short = 'n', long)]
    pub namespace: Option<String>,
    /// Treat "not found" as success.
    #[arg(long)]
    pub ignore_not_found: bool,
}

/// A resource to delete.
#[derive(Debug, PartialEq)]
struct Target {
    kind: Kind,
    namespace: String,
    name: String,
}

pub fn run(
    args: &Args,
    ctx: &Context,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<u8, Error> {
    let default_ns = args.namespace.as_deref().unwrap_or("default");
    let mut failed = false;
    let mut targets = Vec::new();
    match (&args.kind, args.files.is_empty()) {
        (Some(_), false) => {
            return Err(Error::Usage(
                "give either -f FILE or KIND NAME..., not both".into(),
            ))
        }
        (None, true) => {
            return Err(Error::Usage(
                "nothing to delete: give -f FILE or KIND NAME... (e.g. \"weft delete vs reviews\")"
                    .into(),
            ))
        }
        (Some(word), true) => {
            let kind = lookup_kind(word)?;
            if args.names.is_empty() {
                return Err(Error::Usage(format!(
                    "a name is required: weft delete {word} NAME"
                )));
            }
            targets.extend(args.names.iter().map(|name| Target {
                kind,
                namespace: default_ns.to_string(),
                name: name.clone(),
            }));
        }
        (None, false) => {
            for input in read_inputs(&args.files, args.recursive)? {
                for t in targets_in(&input.text, default_ns) {
                    match t {
                        Ok(Some(t)) => targets.push(t),
                        Ok(None) => {}
                        Err(msg) => {
                            failed = true;
                            writeln!(err, "{}: {msg}", input.name)?;
                        }
                    }
                }
            }
        }
    }

    let client = ctx.client();
    for t in &targets {
        match client.delete(t.kind, &t.namespace, &t.name) {
            Ok(()) => writeln!(out, "{} {:?} deleted", resource_type(t.kind), t.name)?,
            Err(e) if e.is_not_found() && args.ignore_not_found => {}
            Err(e @ ClientError::Server(_)) => {
                failed = true;
                writeln!(err, "{e}")?;
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(u8::from(failed))
}

/// What each document names. Only kind, name and namespace are read, so a resource that
/// no longer validates (an older schema) can still be deleted. Non-Istio objects are
/// skipped (`Ok(None)`).
fn targets_in(text: &str, default_ns: &str) -> Vec<Result<Option<Target>, String>> {
    let values = match split_documents(text) {
        Ok(v) => v,
        Err(e) => return vec![Err(e.to_string())],
    };
    values
        .into_iter()
        .map(|(document, v)| {
            let s = |p: &str| v.pointer(p).and_then(Value::as_str).unwrap_or_default();
            let Some(kind) = Kind::from_kind_name(s("/kind")) else {
                return if s("/apiVersion").contains("istio.io") {
                    Err(format!(
                        "document {document}: unknown kind {:?} in apiVersion {:?}",
                        s("/kind"),
                        s("/apiVersion")
                    ))
                } else {
                    Ok(None)
                };
            };
            if s("/metadata/name").is_empty() {
                return Err(format!(
                    "{kind} (document {document}): metadata.name: Required value"
                ));
            }
            let ns = match s("/metadata/namespace") {
                "" => default_ns,
                ns => ns,
            };
            Ok(Some(Target {
                kind,
                namespace: ns.to_string(),
                name: s("/metadata/name").to_string(),
            }))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_name_targets_even_when_the_spec_is_invalid() {
        let text = "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: reviews}\nspec: {hosts: 5}\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\n---\napiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: deny, namespace: prod}\nspec: {}\n---\napiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {}\nspec: {}\n";
        let got = targets_in(text, "dev");
        assert_eq!(got.len(), 4);
        assert_eq!(
            got[0],
            Ok(Some(Target {
                kind: Kind::VirtualService,
                namespace: "dev".into(),
                name: "reviews".into()
            }))
        );
        assert_eq!(got[1], Ok(None));
        assert_eq!(
            got[2],
            Ok(Some(Target {
                kind: Kind::AuthorizationPolicy,
                namespace: "prod".into(),
                name: "deny".into()
            }))
        );
        assert_eq!(
            got[3],
            Err("Gateway (document 3): metadata.name: Required value".into())
        );
    }
}
