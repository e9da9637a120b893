//! Semantic validation, as strict as Istio's validation webhook and CRD rules.
//!
//! Structural checks (unknown fields, wrong types) happen while parsing; this module checks
//! meaning: hosts, weights, ranges, mutually exclusive fields. Each kind has a `validate`
//! function next to its types; they report into a [`Report`] with field paths.

pub mod common;

use crate::error::FieldError;

/// Errors and warnings collected while validating one resource.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Report {
    pub errors: Vec<FieldError>,
    /// Accepted, but worth telling the user (deprecated fields, ignored settings).
    pub warnings: Vec<FieldError>,
}

impl Report {
    pub fn error(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.errors.push(FieldError::new(path, message));
    }

    pub fn warn(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.warnings.push(FieldError::new(path, message));
    }

    pub fn is_ok(&self) -> bool {
        self.errors.is_empty()
    }
}

/// Helpers for the validation unit tests of every kind.
#[cfg(test)]
pub(crate) mod testing {
    use crate::Kind;

    /// Validates a resource of `kind` (preferred version, namespace `ns`) whose spec is
    /// `spec`, YAML already indented under `spec:`. Ok carries the warnings.
    pub fn check(kind: Kind, spec: &str) -> Result<Vec<String>, String> {
        let doc = format!(
            "apiVersion: {}\nkind: {kind}\nmetadata: {{name: x, namespace: ns}}\nspec:\n{spec}",
            kind.preferred_api_version()
        );
        match crate::parse_and_validate(&doc).remove(0) {
            Ok((_, warnings)) => Ok(warnings.iter().map(ToString::to_string).collect()),
            Err(e) => Err(e.to_string()),
        }
    }

    /// Asserts that the spec is refused with a message containing `expected`.
    pub fn rejected(kind: Kind, spec: &str, expected: &str) {
        let err = check(kind, spec).expect_err(expected);
        assert!(err.contains(expected), "expected {expected:?} in {err}");
    }
}
