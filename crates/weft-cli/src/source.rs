//! Reading `-f` inputs (files, directories, stdin) into Istio resources, as kubectl does.

use serde_json::Value;
use std::io::Read;
use std::path::{Path, PathBuf};
use thiserror::Error;
use weft_config::parse::split_documents;
use weft_config::{validate_value, ConfigError, FieldError, Kind, Resource};

/// One file's text and the name problems are reported under.
#[derive(Debug)]
pub struct Input {
    pub name: String,
    pub text: String,
}

#[derive(Debug, Error)]
pub enum InputError {
    #[error("the path \"{0}\" does not exist")]
    Missing(String),
    #[error("{path}: {reason}")]
    Io { path: String, reason: String },
    #[error("no input given: pass -f FILE, -f DIR or -f - (stdin)")]
    Empty,
    #[error("error reading [{0}]: recognized file extensions are [.json .yaml .yml]")]
    NoFiles(String),
}

/// Reads every `-f` argument: `-` is stdin, a directory gives its `.yaml`, `.yml` and
/// `.json` files in name order (descending into subdirectories only when `recursive`).
pub fn read_inputs(args: &[String], recursive: bool) -> Result<Vec<Input>, InputError> {
    if args.is_empty() {
        return Err(InputError::Empty);
    }
    let mut out = Vec::new();
    for arg in args {
        if arg == "-" {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .map_err(|e| io_error("<stdin>", &e))?;
            out.push(Input {
                name: "<stdin>".into(),
                text,
            });
            continue;
        }
        let path = Path::new(arg);
        if !path.exists() {
            return Err(InputError::Missing(arg.clone()));
        }
        if path.is_dir() {
            let mut files = Vec::new();
            collect_dir(path, recursive, &mut files)?;
            if files.is_empty() {
                return Err(InputError::NoFiles(arg.clone()));
            }
            for f in files {
                out.push(read_file(&f)?);
            }
        } else {
            out.push(read_file(path)?);
        }
    }
    Ok(out)
}

fn collect_dir(dir: &Path, recursive: bool, out: &mut Vec<PathBuf>) -> Result<(), InputError> {
    let entries = std::fs::read_dir(dir).map_err(|e| io_error(&dir.display().to_string(), &e))?;
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    for p in paths {
        if p.is_dir() {
            if recursive {
                collect_dir(&p, recursive, out)?;
            }
        } else if matches!(
            p.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml" | "json")
        ) {
            out.push(p);
        }
    }
    Ok(())
}

fn read_file(path: &Path) -> Result<Input, InputError> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| io_error(&name, &e))?;
    Ok(Input { name, text })
}

fn io_error(path: &str, e: &std::io::Error) -> InputError {
    InputError::Io {
        path: path.to_string(),
        reason: e.to_string(),
    }
}

/// What one document turned out to be.
#[derive(Debug)]
pub enum Document {
    /// A valid Istio resource, with validation warnings.
    Istio {
        resource: Box<Resource>,
        warnings: Vec<FieldError>,
    },
    /// A well-formed object outside Istio's groups (a Kubernetes Service, Deployment...).
    Foreign {
        document: usize,
        api_version: String,
        kind: String,
        name: String,
    },
    Invalid(ConfigError),
}

/// Parses and validates every document of one input.
pub fn documents(text: &str) -> Vec<Document> {
    let values = match split_documents(text) {
        Ok(v) => v,
        Err(e) => return vec![Document::Invalid(e)],
    };
    values
        .into_iter()
        .map(|(document, value)| {
            if let Some(foreign) = foreign(document, &value) {
                return foreign;
            }
            match validate_value(document, value) {
                Ok((resource, warnings)) => Document::Istio {
                    resource: Box::new(resource),
                    warnings,
                },
                Err(e) => Document::Invalid(e),
            }
        })
        .collect()
}

/// A kind Weft does not serve in a group that is not Istio's. A misspelt kind in an
/// `*.istio.io` group stays an error: that is a typo, not someone else's resource.
fn foreign(document: usize, value: &Value) -> Option<Document> {
    let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
    let api_version = text(&value["apiVersion"]);
    let kind = text(&value["kind"]);
    if api_version.is_empty() || kind.is_empty() || Kind::from_kind_name(&kind).is_some() {
        return None;
    }
    let group = api_version.rsplit_once('/').map_or("", |(g, _)| g);
    if group == "istio.io" || group.ends_with(".istio.io") {
        return None;
    }
    Some(Document::Foreign {
        document,
        api_version,
        kind,
        name: text(&value["metadata"]["name"]),
    })
}

/// `virtualservice.networking.istio.io` (or `secret` in the core group), the resource name
/// kubectl prints.
pub fn resource_type(kind: Kind) -> String {
    let name = kind.name().to_ascii_lowercase();
    match kind.info().group {
        "" => name,
        group => format!("{name}.{group}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VS: &str = "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: reviews\nspec:\n  hosts: [reviews]\n  http:\n  - route:\n    - destination:\n        host: reviews\n";

    #[test]
    fn kubernetes_objects_are_foreign_and_istio_typos_are_errors() {
        let text = format!(
            "apiVersion: v1\nkind: Service\nmetadata:\n  name: reviews\n---\n{VS}---\napiVersion: networking.istio.io/v1\nkind: VirtualServce\nmetadata:\n  name: x\nspec: {{}}\n"
        );
        let docs = documents(&text);
        assert_eq!(docs.len(), 3);
        assert!(
            matches!(&docs[0], Document::Foreign { kind, name, .. } if kind == "Service" && name == "reviews")
        );
        assert!(
            matches!(&docs[1], Document::Istio { resource, .. } if resource.metadata.name == "reviews")
        );
        assert!(
            matches!(&docs[2], Document::Invalid(e) if e.to_string().contains("VirtualServce"))
        );
    }

    #[test]
    fn directories_give_config_files_in_order() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("b.yaml"), VS).unwrap();
        std::fs::write(dir.path().join("a.json"), "{}").unwrap();
        std::fs::write(dir.path().join("notes.txt"), "x").unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub/c.yml"), VS).unwrap();
        let arg = dir.path().display().to_string();
        let names = |recursive| {
            read_inputs(std::slice::from_ref(&arg), recursive)
                .unwrap()
                .into_iter()
                .map(|i| i.name.rsplit('/').next().unwrap().to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(names(false), ["a.json", "b.yaml"]);
        assert_eq!(names(true), ["a.json", "b.yaml", "c.yml"]);
    }

    #[test]
    fn missing_path_is_named() {
        let err = read_inputs(&["/no/such.yaml".into()], false).unwrap_err();
        assert_eq!(err.to_string(), "the path \"/no/such.yaml\" does not exist");
    }

    #[test]
    fn resource_type_is_kind_dot_group() {
        assert_eq!(
            resource_type(Kind::AuthorizationPolicy),
            "authorizationpolicy.security.istio.io"
        );
    }
}
