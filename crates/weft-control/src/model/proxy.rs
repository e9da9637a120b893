//! A connected proxy as translation sees it, decoded from its xDS node (docs/xds.md).

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::google::protobuf::value::Kind;
use envoy_types::pb::google::protobuf::Value;
use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use thiserror::Error;

/// Sidecar next to a workload, or a gateway ("router" in Istio's node ids).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum ProxyKind {
    #[default]
    Sidecar,
    Router,
}

/// How traffic reaches the sidecar (DESIGN.md, "Capture modes").
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum CaptureMode {
    /// iptables REDIRECT; original destination from SO_ORIGINAL_DST.
    #[default]
    Transparent,
    /// No root: the app calls the sidecar as an HTTP proxy; inbound listeners bind the
    /// WorkloadEntry's address and ports.
    Explicit,
}

/// One proxy, as decoded from its node id and metadata.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Proxy {
    /// The node id (`sidecar~127.0.0.1~reviews-v1.default~default.svc.cluster.local`).
    pub id: String,
    pub kind: ProxyKind,
    /// The proxy's address: first of INSTANCE_IPS, else the id's ip part.
    pub ip: String,
    pub namespace: String,
    pub workload_name: String,
    pub labels: BTreeMap<String, String>,
    pub service_account: String,
    /// WorkloadGroup it registered through (AUTO_REGISTER_GROUP), if any.
    pub workload_group: Option<String>,
    pub capture: CaptureMode,
    /// Explicit mode: port name -> where the application listens on 127.0.0.1.
    pub app_ports: BTreeMap<String, u32>,
    /// Explicit mode: port of the outbound HTTP proxy listener on 127.0.0.1.
    pub outbound_port: u32,
    /// The bootstrap token the ADS stream carried (`authorization: Bearer ...` metadata):
    /// proof of identity for the workload certificate weftd serves as SDS `default`.
    pub bootstrap_token: Option<BearerToken>,
}

/// A bearer token kept out of logs and debug output.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct BearerToken(pub String);

impl std::fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BearerToken(<redacted>)")
    }
}

impl BearerToken {
    /// The token of an `authorization: Bearer <token>` value.
    pub fn from_authorization(value: &str) -> Option<BearerToken> {
        let token = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))?
            .trim();
        (!token.is_empty()).then(|| BearerToken(token.to_string()))
    }
}

/// Default port of the explicit-mode outbound HTTP proxy listener, Istio's outbound capture port.
pub const DEFAULT_OUTBOUND_PORT: u32 = 15001;

/// Why a node cannot join the mesh; the ADS stream is refused with this message.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum NodeError {
    #[error("the first xDS request carries no node; set node.id in the bootstrap")]
    MissingNode,
    #[error(
        "node id {0:?} is not <type>~<ip>~<workload>.<namespace>~<namespace>.svc.cluster.local"
    )]
    MalformedId(String),
    #[error("node id {id:?}: type {kind:?} is neither \"sidecar\" nor \"router\"")]
    UnknownType { id: String, kind: String },
    #[error("node {id:?}: {what} {value:?} is not an IP address")]
    BadAddress {
        id: String,
        what: &'static str,
        value: String,
    },
    #[error("node {id:?}: metadata {key} {problem}")]
    BadMetadata {
        id: String,
        key: &'static str,
        problem: String,
    },
}

impl Proxy {
    /// Decodes a proxy from its node id and metadata (docs/xds.md, "Who a proxy is").
    pub fn from_node(node: &Node) -> Result<Proxy, NodeError> {
        let id = node.id.clone();
        let parts: Vec<&str> = id.split('~').collect();
        let [kind, id_ip, workload, _domain] = parts[..] else {
            return Err(NodeError::MalformedId(id));
        };
        let kind = match kind {
            "sidecar" => ProxyKind::Sidecar,
            "router" => ProxyKind::Router,
            other => {
                return Err(NodeError::UnknownType {
                    kind: other.to_string(),
                    id,
                })
            }
        };
        let meta = Metadata {
            id: &id,
            fields: node.metadata.as_ref().map(|s| &s.fields),
        };
        let address = |what, value: &str| {
            value
                .trim()
                .parse::<IpAddr>()
                .map(|ip| ip.to_string())
                .map_err(|_| NodeError::BadAddress {
                    id: id.clone(),
                    what,
                    value: value.to_string(),
                })
        };
        let ip = match meta.string("INSTANCE_IPS")? {
            Some(ips) if !ips.trim().is_empty() => {
                let mut first = None;
                for one in ips.split(',') {
                    let parsed = address("INSTANCE_IPS entry", one)?;
                    first.get_or_insert(parsed);
                }
                first.unwrap_or_default()
            }
            _ => address("ip part of the id", id_ip)?,
        };
        let capture = match meta.string("INTERCEPTION_MODE")?.as_deref() {
            None | Some("REDIRECT") | Some("TPROXY") => CaptureMode::Transparent,
            Some("NONE") => CaptureMode::Explicit,
            Some(other) => {
                return Err(meta.bad(
                    "INTERCEPTION_MODE",
                    format!("{other:?} is not REDIRECT, TPROXY or NONE"),
                ))
            }
        };
        let outbound_port = match meta.string("WEFT_OUTBOUND_PORT")? {
            None => DEFAULT_OUTBOUND_PORT,
            Some(p) => parse_port(&p)
                .ok_or_else(|| meta.bad("WEFT_OUTBOUND_PORT", format!("{p:?} is not a port")))?,
        };
        let mut app_ports = BTreeMap::new();
        if let Some(list) = meta.string("WEFT_APP_PORTS")? {
            for entry in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
                let parsed = entry
                    .split_once('=')
                    .and_then(|(name, port)| Some((name.trim(), parse_port(port)?)))
                    .filter(|(name, _)| !name.is_empty());
                let Some((name, port)) = parsed else {
                    return Err(meta.bad(
                        "WEFT_APP_PORTS",
                        format!("entry {entry:?} is not name=port"),
                    ));
                };
                app_ports.insert(name.to_string(), port);
            }
        }
        let workload_name = match meta.string("WORKLOAD_NAME")? {
            Some(name) => name,
            None => workload.split('.').next().unwrap_or_default().to_string(),
        };
        Ok(Proxy {
            kind,
            ip,
            namespace: meta
                .string("NAMESPACE")?
                .filter(|ns| !ns.is_empty())
                .unwrap_or_else(|| "default".to_string()),
            workload_name,
            labels: meta.labels()?,
            service_account: meta.string("SERVICE_ACCOUNT")?.unwrap_or_default(),
            workload_group: meta
                .string("AUTO_REGISTER_GROUP")?
                .filter(|g| !g.is_empty()),
            capture,
            app_ports,
            outbound_port,
            id,
            bootstrap_token: None,
        })
    }
}

fn parse_port(text: &str) -> Option<u32> {
    text.trim()
        .parse::<u16>()
        .ok()
        .filter(|p| *p != 0)
        .map(u32::from)
}

/// Typed access to the node's metadata struct.
struct Metadata<'a> {
    id: &'a str,
    fields: Option<&'a HashMap<String, Value>>,
}

impl Metadata<'_> {
    fn bad(&self, key: &'static str, problem: String) -> NodeError {
        NodeError::BadMetadata {
            id: self.id.to_string(),
            key,
            problem,
        }
    }

    fn get(&self, key: &str) -> Option<&Kind> {
        self.fields?.get(key)?.kind.as_ref()
    }

    /// A string field; absent or null is `None`, any other type is an error.
    fn string(&self, key: &'static str) -> Result<Option<String>, NodeError> {
        match self.get(key) {
            None | Some(Kind::NullValue(_)) => Ok(None),
            Some(Kind::StringValue(s)) => Ok(Some(s.clone())),
            Some(_) => Err(self.bad(key, "must be a string".to_string())),
        }
    }

    fn labels(&self) -> Result<BTreeMap<String, String>, NodeError> {
        match self.get("LABELS") {
            None | Some(Kind::NullValue(_)) => Ok(BTreeMap::new()),
            Some(Kind::StructValue(s)) => s
                .fields
                .iter()
                .map(|(k, v)| match &v.kind {
                    Some(Kind::StringValue(s)) => Ok((k.clone(), s.clone())),
                    _ => Err(self.bad("LABELS", format!("value of {k:?} must be a string"))),
                })
                .collect(),
            Some(_) => Err(self.bad("LABELS", "must be a struct of strings".to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use envoy_types::pb::google::protobuf::Struct;

    fn text(s: &str) -> Value {
        Value {
            kind: Some(Kind::StringValue(s.to_string())),
        }
    }

    fn node(id: &str, meta: &[(&str, Value)]) -> Node {
        Node {
            id: id.to_string(),
            metadata: Some(Struct {
                fields: meta
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.clone()))
                    .collect(),
            }),
            ..Node::default()
        }
    }

    const ID: &str = "sidecar~10.0.0.7~reviews-v1.bookinfo~bookinfo.svc.cluster.local";

    #[test]
    fn decodes_explicit_sidecar() {
        let labels = Value {
            kind: Some(Kind::StructValue(Struct {
                fields: [("app".to_string(), text("reviews"))].into(),
            })),
        };
        let proxy = Proxy::from_node(&node(
            ID,
            &[
                ("NAMESPACE", text("bookinfo")),
                ("LABELS", labels),
                ("INSTANCE_IPS", text("127.0.0.2,::1")),
                ("INTERCEPTION_MODE", text("NONE")),
                ("WEFT_APP_PORTS", text("http=8080, grpc=9090")),
                ("WEFT_OUTBOUND_PORT", text("16001")),
                ("AUTO_REGISTER_GROUP", text("reviews")),
                ("SERVICE_ACCOUNT", text("bookinfo-reviews")),
            ],
        ))
        .unwrap();
        assert_eq!(proxy.kind, ProxyKind::Sidecar);
        assert_eq!(proxy.ip, "127.0.0.2");
        assert_eq!(proxy.namespace, "bookinfo");
        assert_eq!(proxy.workload_name, "reviews-v1");
        assert_eq!(proxy.labels["app"], "reviews");
        assert_eq!(proxy.capture, CaptureMode::Explicit);
        assert_eq!(proxy.app_ports["grpc"], 9090);
        assert_eq!(proxy.outbound_port, 16001);
        assert_eq!(proxy.workload_group.as_deref(), Some("reviews"));
        assert_eq!(proxy.service_account, "bookinfo-reviews");
    }

    #[test]
    fn defaults_apply_to_a_bare_node() {
        let proxy = Proxy::from_node(&node("router~10.1.2.3~gw.istio-system~x", &[])).unwrap();
        assert_eq!(proxy.kind, ProxyKind::Router);
        assert_eq!(proxy.ip, "10.1.2.3");
        assert_eq!(proxy.namespace, "default");
        assert_eq!(proxy.workload_name, "gw");
        assert_eq!(proxy.capture, CaptureMode::Transparent);
        assert_eq!(proxy.outbound_port, DEFAULT_OUTBOUND_PORT);
        assert_eq!(proxy.workload_group, None);
    }

    #[test]
    fn malformed_nodes_are_refused_with_the_reason() {
        let err = |id: &str, meta: &[(&str, Value)]| {
            Proxy::from_node(&node(id, meta)).unwrap_err().to_string()
        };
        assert!(err("envoy-1", &[]).contains("is not <type>~<ip>"));
        assert!(err("gateway~1.2.3.4~a.b~c", &[]).contains("neither \"sidecar\""));
        assert!(err("sidecar~nope~a.b~c", &[]).contains("\"nope\" is not an IP"));
        assert!(err(ID, &[("WEFT_APP_PORTS", text("http:80"))]).contains("WEFT_APP_PORTS"));
        assert!(err(ID, &[("LABELS", text("app=x"))]).contains("struct of strings"));
        assert!(err(ID, &[("INTERCEPTION_MODE", text("MAGIC"))]).contains("\"MAGIC\""));
    }
}
