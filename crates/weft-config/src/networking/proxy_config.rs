//! ProxyConfig (networking.istio.io/v1beta1): per-workload proxy settings.

use crate::common::WorkloadSelector;
use crate::meta::ObjectMeta;
use crate::validate::common::validate_workload_selector;
use crate::validate::Report;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// `istio.networking.v1beta1.ProxyConfig`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProxyConfig {
    /// Workloads this applies to; the whole namespace (or mesh, in the root) when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<WorkloadSelector>,
    /// Worker threads; 0 means one per core. Unset keeps the mesh default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<i32>,
    /// Extra environment variables for the proxy.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub environment_variables: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<ProxyImage>,
}

/// The proxy image flavour.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProxyImage {
    /// `default`, `debug` or `distroless`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub image_type: String,
}

/// Checks a ProxyConfig like Istio's CRD rules and validation webhook.
pub fn validate(spec: &ProxyConfig, _meta: &ObjectMeta, report: &mut Report) {
    validate_workload_selector(spec.selector.as_ref(), "spec.selector", report);
    if let Some(c) = spec.concurrency.filter(|c| *c < 0) {
        report.error(
            "spec.concurrency",
            format!(
                "Invalid value: {c}: spec.concurrency in body should be greater than or equal to 0"
            ),
        );
    }
    for (k, v) in &spec.environment_variables {
        if v.len() > 2048 {
            report.error(
                format!("spec.environmentVariables.{k}"),
                "Too long: may not be more than 2048 bytes",
            );
        }
    }
}
