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
