//! Errors from reading and validating configuration, each naming where it came from.

use crate::kind::Kind;
use std::fmt;
use thiserror::Error;

/// One problem at one place in a resource: `spec.http[0].route[1].weight: expected integer`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct FieldError {
    /// Dotted path from the top of the resource (`spec.hosts[0]`), or empty for the whole.
    pub path: String,
    pub message: String,
}

impl FieldError {
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        FieldError {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// Which resource a problem belongs to: kind, namespace/name and its place in the input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Origin {
    /// 0-based index of the YAML/JSON document in its input.
    pub document: usize,
    pub kind: String,
    pub namespace: String,
    pub name: String,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.kind.is_empty(), self.name.is_empty()) {
            (true, _) => write!(f, "document {}", self.document),
            (false, true) => write!(f, "{} (document {})", self.kind, self.document),
            (false, false) if self.namespace.is_empty() => {
                write!(
                    f,
                    "{} {} (document {})",
                    self.kind, self.name, self.document
                )
            }
            (false, false) => write!(
                f,
                "{} {}/{} (document {})",
                self.kind, self.namespace, self.name, self.document
            ),
        }
    }
}

/// Why a document could not become a valid resource.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum ConfigError {
    /// The text is not YAML/JSON, or not an object with apiVersion and kind.
    #[error("document {document}: {message}")]
    Syntax { document: usize, message: String },
    /// A well-formed object of a kind Weft does not serve (e.g. a Kubernetes Pod).
    #[error("document {document}: unknown kind \"{kind}\" in apiVersion \"{api_version}\"")]
    UnknownKind {
        document: usize,
        api_version: String,
        kind: String,
    },
    /// A known kind whose content is wrong; every problem is listed.
    #[error("{origin}: {}", join(.errors))]
    Invalid {
        origin: Origin,
        errors: Vec<FieldError>,
    },
}

fn join(errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

impl ConfigError {
    /// The field errors, if this is a validation failure.
    pub fn field_errors(&self) -> &[FieldError] {
        match self {
            ConfigError::Invalid { errors, .. } => errors,
            _ => &[],
        }
    }

    pub(crate) fn invalid(
        document: usize,
        kind: Kind,
        meta: &crate::ObjectMeta,
        errors: Vec<FieldError>,
    ) -> Self {
        ConfigError::Invalid {
            origin: Origin {
                document,
                kind: kind.name().to_string(),
                namespace: meta.namespace.clone(),
                name: meta.name.clone(),
            },
            errors,
        }
    }
}
