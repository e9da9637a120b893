//! The parts of Istio's MeshConfig that change what analyzers report.

use serde_json::Value;
use std::collections::BTreeMap;

/// Istio's default mesh root namespace, and the namespace its gateways live in.
pub const ISTIO_SYSTEM: &str = "istio-system";

/// Mesh-wide settings analyzers read. Everything else in a MeshConfig is ignored, so a
/// complete `istio` ConfigMap's `mesh` key can be passed as is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MeshConfig {
    /// `rootNamespace`: config here applies to the whole mesh.
    pub root_namespace: String,
    /// `ingressService`: the Kubernetes Service fronting the default ingress gateway.
    pub ingress_service: String,
    /// `ingressControllerMode: OFF` means there is no default ingress gateway to assume.
    pub ingress_controller_off: bool,
    /// `defaultConfig.proxyMetadata`, e.g. `ISTIO_META_DNS_AUTO_ALLOCATE: "true"`.
    pub proxy_metadata: BTreeMap<String, String>,
    /// `defaultProviders.accessLogging`: providers used when a Telemetry names none.
    pub default_access_logging: Vec<String>,
    /// `extensionProviders`, by name, with the kind of provider each one is.
    pub extension_providers: Vec<ExtensionProvider>,
}

/// One entry of `extensionProviders`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExtensionProvider {
    pub name: String,
    /// The provider's type, as its field is spelled: `lightstep`, `opentelemetry`,
    /// `envoyFileAccessLog`, ...
    pub kind: String,
}

impl Default for MeshConfig {
    fn default() -> Self {
        MeshConfig {
            root_namespace: ISTIO_SYSTEM.to_string(),
            ingress_service: "istio-ingressgateway".to_string(),
            ingress_controller_off: false,
            proxy_metadata: BTreeMap::new(),
            default_access_logging: Vec::new(),
            extension_providers: Vec::new(),
        }
    }
}

impl MeshConfig {
    /// Reads a MeshConfig document (YAML or JSON). Unknown fields are fine; a field
    /// Weft reads must have the right shape.
    pub fn from_yaml(text: &str) -> Result<MeshConfig, String> {
        let value: Value = serde_yaml::from_str(text).map_err(|e| format!("mesh config: {e}"))?;
        let mut mesh = MeshConfig::default();
        if value.is_null() {
            return Ok(mesh);
        }
        let obj = value.as_object().ok_or("mesh config: expected an object")?;
        if let Some(ns) = obj.get("rootNamespace").and_then(Value::as_str) {
            mesh.root_namespace = ns.to_string();
        }
        if let Some(svc) = obj.get("ingressService").and_then(Value::as_str) {
            mesh.ingress_service = svc.to_string();
        }
        mesh.ingress_controller_off = matches!(
            obj.get("ingressControllerMode"),
            Some(Value::String(m)) if m.eq_ignore_ascii_case("off")
        );
        if let Some(meta) = value.pointer("/defaultConfig/proxyMetadata") {
            let meta = meta
                .as_object()
                .ok_or("mesh config: defaultConfig.proxyMetadata: expected an object")?;
            for (k, v) in meta {
                let v = match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                mesh.proxy_metadata.insert(k.clone(), v);
            }
        }
        if let Some(list) = value.pointer("/defaultProviders/accessLogging") {
            mesh.default_access_logging = strings(list)
                .ok_or("mesh config: defaultProviders.accessLogging: expected a list of names")?;
        }
        if let Some(list) = obj.get("extensionProviders") {
            let list = list
                .as_array()
                .ok_or("mesh config: extensionProviders: expected a list")?;
            for p in list {
                let name = p.get("name").and_then(Value::as_str).unwrap_or_default();
                let kind = p
                    .as_object()
                    .and_then(|o| o.keys().find(|k| k.as_str() != "name"))
                    .cloned()
                    .unwrap_or_default();
                mesh.extension_providers.push(ExtensionProvider {
                    name: name.to_string(),
                    kind,
                });
            }
        }
        Ok(mesh)
    }

    /// Whether a proxy metadata flag is set to "true".
    pub fn proxy_flag(&self, key: &str) -> bool {
        self.proxy_metadata.get(key).map(String::as_str) == Some("true")
    }
}

fn strings(v: &Value) -> Option<Vec<String>> {
    v.as_array()?
        .iter()
        .map(|s| s.as_str().map(str::to_string))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_fields_analyzers_use() {
        let mesh = MeshConfig::from_yaml(
            "rootNamespace: mesh-root\n\
             accessLogFile: /dev/stdout\n\
             defaultConfig:\n  proxyMetadata:\n    ISTIO_META_DNS_CAPTURE: \"true\"\n\
             defaultProviders:\n  accessLogging: [envoy]\n\
             extensionProviders:\n- name: ls\n  lightstep:\n    service: x\n",
        )
        .unwrap();
        assert_eq!(mesh.root_namespace, "mesh-root");
        assert!(mesh.proxy_flag("ISTIO_META_DNS_CAPTURE"));
        assert!(!mesh.proxy_flag("ISTIO_META_DNS_AUTO_ALLOCATE"));
        assert_eq!(mesh.default_access_logging, vec!["envoy"]);
        assert_eq!(
            mesh.extension_providers,
            vec![ExtensionProvider {
                name: "ls".into(),
                kind: "lightstep".into()
            }]
        );
    }

    #[test]
    fn empty_document_is_the_default_mesh() {
        assert_eq!(MeshConfig::from_yaml("").unwrap(), MeshConfig::default());
        assert!(MeshConfig::from_yaml("defaultProviders: {accessLogging: 3}").is_err());
    }
}
