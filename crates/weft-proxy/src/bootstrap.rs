//! The bootstrap file: the same YAML/JSON `weft bootstrap envoy` writes for Envoy. Only the
//! node, the admin address and the ADS server are read; other parts are warned about.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum BootstrapError {
    #[error("cannot read bootstrap {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("bootstrap {path} is not valid YAML/JSON for an Envoy bootstrap: {source}")]
    Parse {
        path: String,
        source: serde_yaml::Error,
    },
    #[error("bootstrap: {0}")]
    Invalid(String),
}

#[derive(Debug, Deserialize)]
pub struct Bootstrap {
    pub node: Node,
    pub admin: Option<Admin>,
    #[serde(default)]
    pub dynamic_resources: DynamicResources,
    #[serde(default)]
    pub static_resources: StaticResources,
}

#[derive(Debug, Deserialize)]
pub struct Node {
    pub id: String,
    #[serde(default)]
    pub cluster: String,
    #[serde(default)]
    pub metadata: serde_json::Map<String, serde_json::Value>,
}

#[derive(Debug, Deserialize)]
pub struct Admin {
    pub address: Address,
}

#[derive(Debug, Deserialize)]
pub struct Address {
    pub socket_address: SocketAddress,
}

#[derive(Debug, Deserialize)]
pub struct SocketAddress {
    pub address: String,
    pub port_value: u16,
}

#[derive(Debug, Default, Deserialize)]
pub struct DynamicResources {
    pub ads_config: Option<AdsConfig>,
    #[serde(flatten)]
    pub other: BTreeMap<String, serde_yaml::Value>,
}

#[derive(Debug, Deserialize)]
pub struct AdsConfig {
    #[serde(default)]
    pub api_type: String,
    #[serde(default)]
    pub grpc_services: Vec<GrpcService>,
}

#[derive(Debug, Deserialize)]
pub struct GrpcService {
    pub envoy_grpc: Option<EnvoyGrpc>,
}

#[derive(Debug, Deserialize)]
pub struct EnvoyGrpc {
    pub cluster_name: String,
}

#[derive(Debug, Default, Deserialize)]
pub struct StaticResources {
    #[serde(default)]
    pub clusters: Vec<StaticCluster>,
    #[serde(flatten)]
    pub other: BTreeMap<String, serde_yaml::Value>,
}

#[derive(Debug, Deserialize)]
pub struct StaticCluster {
    pub name: String,
    pub load_assignment: Option<StaticAssignment>,
}

#[derive(Debug, Deserialize)]
pub struct StaticAssignment {
    #[serde(default)]
    pub endpoints: Vec<StaticLocality>,
}

#[derive(Debug, Deserialize)]
pub struct StaticLocality {
    #[serde(default)]
    pub lb_endpoints: Vec<StaticLbEndpoint>,
}

#[derive(Debug, Deserialize)]
pub struct StaticLbEndpoint {
    pub endpoint: StaticEndpoint,
}

#[derive(Debug, Deserialize)]
pub struct StaticEndpoint {
    pub address: Address,
}

/// `--drain-time-s` when not given.
pub const DEFAULT_DRAIN_TIME: std::time::Duration = std::time::Duration::from_secs(5);

/// What weft-proxy takes from the bootstrap.
#[derive(Debug)]
pub struct Settings {
    pub node_id: String,
    pub node_cluster: String,
    pub metadata: serde_json::Map<String, serde_json::Value>,
    pub admin: Option<SocketAddr>,
    /// `host:port` of the ADS server (the first endpoint of the ADS cluster).
    pub xds: String,
    /// `DELTA_GRPC`: the incremental ADS client ([`crate::xds::delta`]); else
    /// state-of-the-world.
    pub delta: bool,
    /// How long `/drain` lets open connections finish (`--drain-time-s`, default 5 s).
    pub drain_time: std::time::Duration,
    /// The bootstrap file as JSON (Null when built in code): the admin `/config_dump`
    /// shows it and the ADS cluster, as Envoy does.
    pub bootstrap: serde_json::Value,
}

impl Bootstrap {
    pub fn load(path: &Path) -> Result<Settings, BootstrapError> {
        let text = std::fs::read_to_string(path).map_err(|source| BootstrapError::Read {
            path: path.display().to_string(),
            source,
        })?;
        let parse = |source| BootstrapError::Parse {
            path: path.display().to_string(),
            source,
        };
        let b: Bootstrap = serde_yaml::from_str(&text).map_err(parse)?;
        let json: serde_json::Value = serde_yaml::from_str(&text).map_err(parse)?;
        Ok(Settings {
            bootstrap: json,
            ..b.settings()?
        })
    }

    pub fn settings(self) -> Result<Settings, BootstrapError> {
        let ads = self.dynamic_resources.ads_config.ok_or_else(|| {
            BootstrapError::Invalid("dynamic_resources.ads_config is required".into())
        })?;
        for k in self.dynamic_resources.other.keys() {
            // cds_config / lds_config pointing at ADS is what weft-proxy does anyway.
            if k != "cds_config" && k != "lds_config" {
                tracing::warn!("bootstrap: dynamic_resources.{k} is not honoured");
            }
        }
        for k in self.static_resources.other.keys() {
            tracing::warn!("bootstrap: static_resources.{k} is not honoured");
        }
        let cluster = ads
            .grpc_services
            .iter()
            .find_map(|g| g.envoy_grpc.as_ref())
            .map(|g| g.cluster_name.clone())
            .ok_or_else(|| {
                BootstrapError::Invalid("ads_config.grpc_services[].envoy_grpc is required".into())
            })?;
        let xds = self
            .static_resources
            .clusters
            .iter()
            .filter(|c| c.name == cluster)
            .flat_map(|c| c.load_assignment.iter())
            .flat_map(|la| la.endpoints.iter())
            .flat_map(|l| l.lb_endpoints.iter())
            .map(|e| {
                let sa = &e.endpoint.address.socket_address;
                if sa.address.contains(':') {
                    format!("[{}]:{}", sa.address, sa.port_value)
                } else {
                    format!("{}:{}", sa.address, sa.port_value)
                }
            })
            .next()
            .ok_or_else(|| {
                BootstrapError::Invalid(format!(
                    "static cluster {cluster:?} with an endpoint is required"
                ))
            })?;
        for c in &self.static_resources.clusters {
            if c.name != cluster {
                tracing::warn!("bootstrap: static cluster {} is not honoured", c.name);
            }
        }
        let delta = match ads.api_type.as_str() {
            "GRPC" | "" => false,
            "DELTA_GRPC" => true,
            other => {
                return Err(BootstrapError::Invalid(format!(
                    "ads_config.api_type {other} is not supported"
                )))
            }
        };
        let admin = match self.admin {
            None => None,
            Some(a) => {
                let sa = a.address.socket_address;
                let ip = sa.address.parse().map_err(|_| {
                    BootstrapError::Invalid(format!("admin address {:?} is not an IP", sa.address))
                })?;
                Some(SocketAddr::new(ip, sa.port_value))
            }
        };
        Ok(Settings {
            node_id: self.node.id,
            node_cluster: self.node.cluster,
            metadata: self.node.metadata,
            admin,
            xds,
            delta,
            drain_time: DEFAULT_DRAIN_TIME,
            bootstrap: serde_json::Value::Null,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const YAML: &str = r#"
node:
  id: sidecar~127.0.0.1~sleep.default~default.svc.cluster.local
  cluster: sleep.default
  metadata: {NAMESPACE: default, LABELS: {app: sleep}, WEFT_OUTBOUND_PORT: "15001"}
admin:
  address: {socket_address: {address: 127.0.0.1, port_value: 15000}}
dynamic_resources:
  ads_config:
    api_type: GRPC
    transport_api_version: V3
    grpc_services: [{envoy_grpc: {cluster_name: xds-grpc}}]
  cds_config: {ads: {}, resource_api_version: V3}
  lds_config: {ads: {}, resource_api_version: V3}
static_resources:
  clusters:
  - name: xds-grpc
    type: STATIC
    load_assignment:
      cluster_name: xds-grpc
      endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: 15010}}}}]}]
"#;

    #[test]
    fn weft_bootstrap_output_is_understood() {
        let b: Bootstrap = serde_yaml::from_str(YAML).unwrap();
        let s = b.settings().unwrap();
        assert_eq!(
            s.node_id,
            "sidecar~127.0.0.1~sleep.default~default.svc.cluster.local"
        );
        assert_eq!(s.xds, "127.0.0.1:15010");
        assert_eq!(s.admin, Some("127.0.0.1:15000".parse().unwrap()));
        assert!(!s.delta);
        assert_eq!(s.metadata["LABELS"]["app"], "sleep");
    }

    #[test]
    fn missing_ads_cluster_is_an_error() {
        let text = YAML.replace("cluster_name: xds-grpc}", "cluster_name: other}");
        let b: Bootstrap = serde_yaml::from_str(&text).unwrap();
        let err = b.settings().unwrap_err().to_string();
        assert!(err.contains("static cluster \"other\""), "{err}");
    }
}
