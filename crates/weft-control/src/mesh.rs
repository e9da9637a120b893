//! Mesh-wide settings, read from a file shaped like Istio's MeshConfig (the `mesh` key of
//! the istio ConfigMap, or `meshConfig` of an IstioOperator): the root namespace, the trust
//! domain, the outbound traffic policy and auto mTLS. Defaults are Istio's.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;
use thiserror::Error;

/// The subset of Istio's MeshConfig weftd applies.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct MeshConfig {
    /// Where mesh-wide policies live (PeerAuthentication, AuthorizationPolicy, Sidecar...).
    pub root_namespace: String,
    /// The trust domain of workload identities: `spiffe://<trust domain>/ns/<ns>/sa/<sa>`.
    pub trust_domain: String,
    /// What sidecars do with traffic to hosts that are not in the registry.
    pub outbound_traffic_policy: OutboundTrafficPolicy,
    /// Send Istio mTLS to destinations that run a proxy, without a DestinationRule saying so.
    pub enable_auto_mtls: bool,
    /// Fields of MeshConfig weftd does not apply; kept so they can be named in a warning.
    #[serde(flatten)]
    pub ignored: BTreeMap<String, serde_json::Value>,
}

impl Default for MeshConfig {
    fn default() -> Self {
        MeshConfig {
            root_namespace: "istio-system".into(),
            trust_domain: "cluster.local".into(),
            outbound_traffic_policy: OutboundTrafficPolicy::default(),
            enable_auto_mtls: true,
            ignored: BTreeMap::new(),
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct OutboundTrafficPolicy {
    pub mode: OutboundMode,
}

/// Istio's `outboundTrafficPolicy.mode`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OutboundMode {
    /// Unknown hosts pass through (PassthroughCluster). Istio's default.
    #[default]
    AllowAny,
    /// Unknown hosts are refused (BlackHoleCluster).
    RegistryOnly,
}

#[derive(Debug, Error)]
pub enum MeshConfigError {
    #[error("cannot read mesh config {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("mesh config {path}: {message}")]
    Parse { path: String, message: String },
}

impl MeshConfig {
    /// Reads a MeshConfig YAML file. Fields weftd does not apply are logged, not refused:
    /// users bring the mesh config they already have.
    pub fn load(path: &Path) -> Result<MeshConfig, MeshConfigError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| MeshConfigError::Read {
            path: shown.clone(),
            source,
        })?;
        let config = MeshConfig::parse(&text).map_err(|message| MeshConfigError::Parse {
            path: shown,
            message,
        })?;
        for field in config.ignored.keys() {
            tracing::warn!(field, "mesh config field is not applied by weftd");
        }
        Ok(config)
    }

    /// Parses MeshConfig YAML; errors name the field path.
    pub fn parse(text: &str) -> Result<MeshConfig, String> {
        if text.trim().is_empty() {
            return Ok(MeshConfig::default());
        }
        let deserializer = serde_yaml::Deserializer::from_str(text);
        serde_path_to_error::deserialize(deserializer).map_err(|e| {
            let path = e.path().to_string();
            if path == "." || path.is_empty() {
                e.into_inner().to_string()
            } else {
                format!("{path}: {}", e.into_inner())
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn istio_defaults() {
        let mesh = MeshConfig::parse("").unwrap();
        assert_eq!(mesh.root_namespace, "istio-system");
        assert_eq!(mesh.trust_domain, "cluster.local");
        assert_eq!(mesh.outbound_traffic_policy.mode, OutboundMode::AllowAny);
        assert!(mesh.enable_auto_mtls);
    }

    #[test]
    fn reads_istio_field_names_and_keeps_unknown_ones_aside() {
        let mesh = MeshConfig::parse(
            "outboundTrafficPolicy: {mode: REGISTRY_ONLY}\ntrustDomain: example.org\naccessLogFile: /dev/stdout\n",
        )
        .unwrap();
        assert_eq!(
            mesh.outbound_traffic_policy.mode,
            OutboundMode::RegistryOnly
        );
        assert_eq!(mesh.trust_domain, "example.org");
        assert!(mesh.ignored.contains_key("accessLogFile"));
    }

    #[test]
    fn bad_value_names_the_field() {
        let err = MeshConfig::parse("outboundTrafficPolicy: {mode: SOMETIMES}\n").unwrap_err();
        assert!(err.contains("outboundTrafficPolicy.mode"), "{err}");
    }
}
