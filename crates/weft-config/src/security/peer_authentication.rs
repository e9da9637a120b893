//! PeerAuthentication (security.istio.io): spec types and validation.

use crate::common::WorkloadSelector;
use crate::meta::ObjectMeta;
use crate::security::is_default;
use crate::validate::common::validate_workload_selector;
use crate::validate::Report;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Which mutual TLS a workload's inbound side requires, mesh-wide (in the root
/// namespace), per namespace, per workload, or per port.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PeerAuthentication {
    /// Workloads it applies to; none means the whole namespace (or mesh).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<WorkloadSelector>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtls: Option<MutualTls>,
    /// Per-port overrides, keyed by the workload's port number written as a string
    /// (JSON map keys always are); `validate` checks that each key is a port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port_level_mtls: Option<BTreeMap<String, MutualTls>>,
}

impl PeerAuthentication {
    /// The per-port modes with numeric ports; keys that are not ports are skipped
    /// (validation has already rejected them).
    pub fn port_modes(&self) -> impl Iterator<Item = (u16, MtlsMode)> + '_ {
        self.port_level_mtls
            .iter()
            .flatten()
            .filter_map(|(k, v)| Some((k.parse().ok()?, v.mode)))
    }
}

/// `PeerAuthentication.MutualTLS`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MutualTls {
    #[serde(default, skip_serializing_if = "is_default")]
    pub mode: MtlsMode,
}

/// `PeerAuthentication.MutualTLS.Mode`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum MtlsMode {
    /// Inherit from the parent scope (namespace, then mesh); PERMISSIVE at the top.
    #[default]
    Unset,
    /// Plain text only.
    Disable,
    /// Both mutual TLS and plain text.
    Permissive,
    /// Mutual TLS only.
    Strict,
}

/// Istio's webhook and CRD rules for PeerAuthentication.
pub fn validate(spec: &PeerAuthentication, _meta: &ObjectMeta, report: &mut Report) {
    validate_workload_selector(spec.selector.as_ref(), "spec.selector", report);
    let Some(ports) = &spec.port_level_mtls else {
        return;
    };
    // A port only means something on a known workload, so port-level settings need
    // a selector with labels.
    if spec
        .selector
        .as_ref()
        .is_none_or(|s| s.match_labels.is_empty())
    {
        report.error(
            "spec",
            "Invalid value: \"object\": portLevelMtls requires selector",
        );
    }
    if ports.is_empty() {
        report.error(
            "spec.portLevelMtls",
            "Invalid value: 0: spec.portLevelMtls in body should have at least 1 properties",
        );
    }
    for key in ports.keys() {
        let path = format!("spec.portLevelMtls[{key}]");
        match key.parse::<i64>() {
            Err(_) => report.error(
                path,
                format!("Invalid value: {key:?}: type conversion error from 'string' to 'int'"),
            ),
            Ok(port) if !(1..=65535).contains(&port) => {
                report.error(path, "port must be between 1-65535")
            }
            Ok(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(spec: &str) -> Result<Vec<String>, String> {
        crate::validate::testing::check(crate::Kind::PeerAuthentication, spec)
    }

    #[test]
    fn port_level_needs_selector_and_valid_ports() {
        let ok = check("  selector: {matchLabels: {app: a}}\n  mtls: {mode: PERMISSIVE}\n  portLevelMtls:\n    \"8080\": {mode: DISABLE}\n");
        assert_eq!(ok, Ok(vec![]));
        let err = check("  portLevelMtls:\n    \"80\": {mode: STRICT}\n").unwrap_err();
        assert!(err.contains("portLevelMtls requires selector"), "{err}");
        let err =
            check("  selector: {}\n  portLevelMtls:\n    \"80\": {mode: STRICT}\n").unwrap_err();
        assert!(err.contains("portLevelMtls requires selector"), "{err}");
        let err = check("  selector: {matchLabels: {app: a}}\n  portLevelMtls:\n    \"65536\": {mode: STRICT}\n").unwrap_err();
        assert!(
            err.contains("spec.portLevelMtls[65536]: port must be between 1-65535"),
            "{err}"
        );
        let err = check(
            "  selector: {matchLabels: {app: a}}\n  portLevelMtls:\n    http: {mode: STRICT}\n",
        )
        .unwrap_err();
        assert!(
            err.contains("type conversion error from 'string' to 'int'"),
            "{err}"
        );
    }

    #[test]
    fn empty_selector_warns_and_modes_are_checked() {
        let warnings = check("  selector: {}\n").unwrap();
        assert_eq!(
            warnings,
            vec!["spec.selector: workload selector specified without labels"]
        );
        let err = check("  mtls: {mode: strict}\n").unwrap_err();
        assert!(err.contains("Unsupported value: \"strict\""), "{err}");
    }

    #[test]
    fn port_modes_are_numeric() {
        let spec = PeerAuthentication {
            port_level_mtls: Some(BTreeMap::from([(
                "9080".to_string(),
                MutualTls {
                    mode: MtlsMode::Disable,
                },
            )])),
            ..Default::default()
        };
        assert_eq!(
            spec.port_modes().collect::<Vec<_>>(),
            vec![(9080, MtlsMode::Disable)]
        );
    }
}
