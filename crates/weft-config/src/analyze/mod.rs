//! `istioctl analyze` for Weft: IST-coded messages about a set of resources.
//!
//! Analyzers look across resources (a VirtualService and the DestinationRule it names),
//! unlike validation, which looks at one resource at a time.

use crate::resource::Resource;
use serde::Serialize;
use std::fmt;

/// Severity, as istioctl prints it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum Level {
    Error,
    Warning,
    Info,
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Level::Error => "Error",
            Level::Warning => "Warning",
            Level::Info => "Info",
        })
    }
}

/// One analyzer finding, with the fields `istioctl analyze -o json` prints.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Message {
    /// "IST0101".
    pub code: &'static str,
    pub level: Level,
    pub message: String,
    /// "Kind namespace/name" of the resource the message is about.
    pub origin: String,
    pub documentation_url: String,
}

impl fmt::Display for Message {
    /// `Error [IST0101] (VirtualService default/reviews) Referenced host+subset ...`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} [{}] ({}) {}",
            self.level, self.code, self.origin, self.message
        )
    }
}

/// Settings that change what analyzers report (the parts of MeshConfig they read).
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Mesh root namespace (Istio's default: istio-system).
    pub root_namespace: Option<String>,
}

/// Runs every analyzer over `resources` and returns messages sorted by origin and code.
pub fn analyze(resources: &[Resource], options: &Options) -> Vec<Message> {
    let _ = (resources, options);
    Vec::new()
}
