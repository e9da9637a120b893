//! WasmPlugin (extensions.istio.io): spec types and validation.

use crate::common::{PolicyTargetReference, PortSelector, WorkloadSelector};
use crate::meta::ObjectMeta;
use crate::security::is_default;
use crate::validate::common::{
    check_max_length, check_min_length, check_pattern, validate_policy_attachment,
};
use crate::validate::Report;
use serde::{Deserialize, Deserializer, Serialize};
use std::collections::BTreeSet;

/// A WebAssembly module the selected proxies load as an HTTP or network filter.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WasmPlugin {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<WorkloadSelector>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_ref: Option<PolicyTargetReference>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub target_refs: Vec<PolicyTargetReference>,
    /// Where the module lives: `oci://`, `http(s)://` or `file://`; no scheme means OCI.
    /// Required: None only in a spec that failed validation (see [`WasmPlugin::url`]).
    #[serde(
        default,
        deserialize_with = "url_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub url: Option<String>,
    /// Expected SHA-256 of the module (or image), lowercase hex.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub sha256: String,
    #[serde(default, skip_serializing_if = "is_default")]
    pub image_pull_policy: PullPolicy,
    /// Name of a Kubernetes pull secret in the plugin's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_pull_secret: Option<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub verification_key: String,
    /// Passed to the plugin as is (any JSON object).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plugin_config: Option<serde_json::Map<String, serde_json::Value>>,
    /// The plugin's root id in Envoy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plugin_name: Option<String>,
    #[serde(default, skip_serializing_if = "is_default")]
    pub phase: PluginPhase,
    /// Order within a phase: higher runs first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<i32>,
    #[serde(default, skip_serializing_if = "is_default")]
    pub fail_strategy: FailStrategy,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vm_config: Option<VmConfig>,
    /// Traffic the plugin applies to; none means all.
    #[serde(rename = "match", default, skip_serializing_if = "Vec::is_empty")]
    pub match_: Vec<TrafficSelector>,
    #[serde(rename = "type", default, skip_serializing_if = "is_default")]
    pub type_: PluginType,
}

impl WasmPlugin {
    /// The module's URL ("" if missing, which validation rejects).
    pub fn url(&self) -> &str {
        self.url.as_deref().unwrap_or_default()
    }
}

/// The API server rejects `url: null` before Istio sees it; say so in its words.
/// A missing `url` is left to `validate`, so that its other errors are reported too.
fn url_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Option::<String>::deserialize(d)?.map(Some).ok_or_else(|| {
        serde::de::Error::custom(
            "Invalid value: \"null\": spec.url in body must be of type string: \"null\"",
        )
    })
}

/// `WasmPlugin.TrafficSelector`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TrafficSelector {
    #[serde(default, skip_serializing_if = "is_default")]
    pub mode: WorkloadMode,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<PortSelector>,
}

/// `istio.type.v1beta1.WorkloadMode`: traffic direction.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum WorkloadMode {
    /// Treated as CLIENT_AND_SERVER.
    #[default]
    Undefined,
    Client,
    Server,
    ClientAndServer,
}

/// `PluginType`: which filter chain the module joins.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PluginType {
    /// Treated as HTTP.
    #[default]
    UnspecifiedPluginType,
    Http,
    Network,
}

/// `PluginPhase`: where in the filter chain the plugin goes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PluginPhase {
    /// Just before the router.
    #[default]
    UnspecifiedPhase,
    /// Before Istio's authentication filters.
    Authn,
    /// Before Istio's authorization filters, after authentication.
    Authz,
    /// Before Istio's stats filters, after authorization.
    Stats,
}

/// `PullPolicy`: Kubernetes' spelling, not SCREAMING_SNAKE_CASE.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum PullPolicy {
    /// IfNotPresent, except Always for an OCI `latest` tag.
    #[default]
    #[serde(rename = "UNSPECIFIED_POLICY")]
    UnspecifiedPolicy,
    IfNotPresent,
    Always,
}

/// `FailStrategy`: what a fatal plugin error does to traffic.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum FailStrategy {
    /// Requests fail with 503.
    #[default]
    FailClose,
    /// The plugin is skipped.
    FailOpen,
    /// The VM is reloaded.
    FailReload,
}

/// Settings for the plugin's VM.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VmConfig {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<EnvVar>,
}

/// An environment variable for the VM, given inline or copied from the proxy's.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EnvVar {
    pub name: String,
    #[serde(default, skip_serializing_if = "is_default")]
    pub value_from: EnvValueSource,
    /// Only with `valueFrom: INLINE`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

/// `EnvValueSource`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum EnvValueSource {
    #[default]
    Inline,
    /// From the proxy's own environment.
    Host,
}

const SHA256_PATTERN: &str = "(^$|^[a-f0-9]{64}$)";
const URL_SCHEMES: &[&str] = &["http", "https", "oci", "file"];

/// Istio's webhook and CRD rules for WasmPlugin.
/// Why a WasmPlugin changes nothing in Weft today.
pub const NOT_APPLIED: &str = "stored and validated, but not applied: weftd does not configure Wasm plugins for Envoy, and weft-proxy does not run them";

pub fn validate(spec: &WasmPlugin, _meta: &ObjectMeta, report: &mut Report) {
    // Said on every write so that nobody believes a plugin runs when it does not.
    report.warn("spec", NOT_APPLIED);
    validate_policy_attachment(
        spec.selector.as_ref(),
        spec.target_ref.as_ref(),
        &spec.target_refs,
        report,
    );
    match spec.url.as_deref() {
        None => report.error("spec.url", "Required value"),
        Some(url) => {
            check_min_length(report, "spec.url", url, 1);
            let checked = if url.is_empty() {
                Ok(())
            } else {
                check_url(url)
            };
            if let Err(e) = checked {
                report.error(
                    "spec.url",
                    format!("Invalid value: {url:?}: url must have schema one of [http, https, file, oci]; {e}"),
                );
            }
        }
    }
    static SHA: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    let sha_re = SHA.get_or_init(|| regex::Regex::new(SHA256_PATTERN).expect("valid pattern"));
    check_pattern(report, "spec.sha256", &spec.sha256, sha_re, SHA256_PATTERN);
    if let Some(secret) = &spec.image_pull_secret {
        check_min_length(report, "spec.imagePullSecret", secret, 1);
        check_max_length(report, "spec.imagePullSecret", secret, 253);
    }
    if let Some(name) = &spec.plugin_name {
        check_min_length(report, "spec.pluginName", name, 1);
        check_max_length(report, "spec.pluginName", name, 256);
    }
    if let Some(vm) = &spec.vm_config {
        validate_vm_config(vm, report);
    }
    validate_match(&spec.match_, report);
}

/// The CRD's rule: an absolute URL with an allowed scheme, or something that becomes
/// one with `http://` in front (a bare OCI reference such as `ghcr.io/org/plugin:1`).
fn check_url(url: &str) -> Result<(), String> {
    let scheme = url.split_once("://").map(|(s, _)| s).filter(|s| {
        let mut chars = s.chars();
        chars.next().is_some_and(|c| c.is_ascii_alphabetic())
            && chars.all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
    });
    let rest = match scheme {
        Some(s) if !URL_SCHEMES.contains(&s.to_ascii_lowercase().as_str()) => {
            return Err(format!("url contains unsupported scheme: {s}"));
        }
        Some(s) => &url[s.len() + 3..],
        None => url,
    };
    // What Go's URL parser refuses: control characters, spaces and broken escapes.
    if let Some(c) = rest.chars().find(|c| c.is_control() || *c == ' ') {
        return Err(format!(
            "failed to parse url: invalid character {c:?} in URL"
        ));
    }
    let bytes = rest.as_bytes();
    for (i, b) in bytes.iter().enumerate() {
        if *b == b'%'
            && !(bytes.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                && bytes.get(i + 2).is_some_and(u8::is_ascii_hexdigit))
        {
            let end = (i + 3).min(rest.len());
            return Err(format!(
                "failed to parse url: invalid URL escape {:?}",
                rest.get(i..end).unwrap_or("%")
            ));
        }
    }
    Ok(())
}

fn validate_vm_config(vm: &VmConfig, report: &mut Report) {
    if vm.env.len() > 256 {
        report.error(
            "spec.vmConfig.env",
            format!("Too many: {}: must have at most 256 items", vm.env.len()),
        );
    }
    let mut seen = BTreeSet::new();
    for (i, env) in vm.env.iter().enumerate() {
        let path = format!("spec.vmConfig.env[{i}]");
        check_min_length(report, &format!("{path}.name"), &env.name, 1);
        check_max_length(report, &format!("{path}.name"), &env.name, 256);
        // env is a list-map keyed by name: Kubernetes rejects a repeated key.
        if !seen.insert(env.name.as_str()) {
            report.error(
                &path,
                format!("Duplicate value: {{\"name\":{:?}}}", env.name),
            );
        }
        if let Some(value) = &env.value {
            check_max_length(report, &format!("{path}.value"), value, 2048);
            if env.value_from == EnvValueSource::Host {
                report.error(
                    &path,
                    "Invalid value: \"object\": value may only be set when valueFrom is INLINE",
                );
            }
        }
    }
}

fn validate_match(selectors: &[TrafficSelector], report: &mut Report) {
    for (i, sel) in selectors.iter().enumerate() {
        let mut seen = BTreeSet::new();
        for (j, port) in sel.ports.iter().enumerate() {
            let path = format!("spec.match[{i}].ports[{j}]");
            let Some(number) = port.number else {
                report.error(format!("{path}.number"), "Required value");
                continue;
            };
            if !(1..=65535).contains(&number) {
                report.error(
                    format!("{path}.number"),
                    format!("Invalid value: {number}: spec.match[{i}].ports[{j}].number in body should be between 1 and 65535; port {number} is out of range"),
                );
            }
            if !seen.insert(number) {
                report.error(&path, format!("Duplicate value: {{\"number\":{number}}}"));
            }
        }
    }
}

#[cfg(test)]
#[path = "wasm_plugin_tests.rs"]
mod tests;
