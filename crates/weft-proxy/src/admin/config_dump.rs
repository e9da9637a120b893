//! `/config_dump` in Envoy's shape: a `ConfigDump` of Bootstrap, Clusters, (with
//! `?include_eds`) Endpoints, Listeners, Routes and Secrets dumps, each resource the
//! protobuf weft-proxy accepted over xDS with its version and time of acceptance.
//!
//! The JSON is rendered only when asked, through a `DescriptorPool` of Envoy's protos that
//! is decoded per request and dropped afterwards, so an idle proxy holds only the encoded
//! resources. Sensitive fields (those Envoy's protos mark `udpa.annotations.sensitive`,
//! such as private keys) are replaced by `[redacted]` as Envoy's admin does.
//! `?resource=<field>` lists one repeated field of the dumps, `?mask=<paths>` trims them.

use crate::bootstrap::Settings;
use crate::state::Snapshot;
use crate::xds::store::Accepted;
use envoy_types::pb::envoy::admin::v3::{
    clusters_config_dump::{DynamicCluster, StaticCluster},
    endpoints_config_dump::{DynamicEndpointConfig, StaticEndpointConfig},
    listeners_config_dump::{DynamicListener, DynamicListenerState},
    routes_config_dump::DynamicRouteConfig,
    secrets_config_dump::DynamicSecret,
    BootstrapConfigDump, ClustersConfigDump, ConfigDump, EndpointsConfigDump, ListenersConfigDump,
    RoutesConfigDump, SecretsConfigDump,
};
use envoy_types::pb::envoy::config::bootstrap::v3::Bootstrap;
use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::config::listener::v3::Listener;
use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::Secret;
use envoy_types::pb::google::protobuf::{Any, Timestamp};
use prost::{Message, Name};
use prost_reflect::{
    DescriptorPool, DynamicMessage, ExtensionDescriptor, MessageDescriptor, ReflectMessage,
    SerializeOptions, Value as Field,
};
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::SystemTime;
use thiserror::Error;

/// Envoy's descriptor set, copied from the envoy-types package by build.rs (empty when it
/// was not found: the dump then lists names and versions only).
static DESCRIPTORS: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/envoy_descriptors.bin"));

/// What Envoy's admin shows in place of a sensitive string or bytes field.
pub const REDACTED: &str = "[redacted]";

/// The query of a `/config_dump` request.
#[derive(Debug, Default)]
pub struct Query {
    pub include_eds: bool,
    /// `?resource=`: a repeated field of the dumps (`dynamic_active_clusters`).
    pub resource: Option<String>,
    /// `?mask=`: comma-separated field paths (`name,active_state.version_info`).
    pub mask: Option<String>,
}

/// Why a dump could not be served; the admin answers 400 or 404 with it.
#[derive(Debug, Error, PartialEq)]
pub enum DumpError {
    #[error("{0} not found in config dump")]
    UnknownResource(String),
    #[error("resource= and mask= need Envoy's descriptor set, which this build lacks")]
    NoDescriptors,
}

/// The bootstrap and when the proxy started, for the Bootstrap dump and static clusters.
#[derive(Debug)]
pub struct Static {
    pub settings: Arc<Settings>,
    pub started: SystemTime,
}

/// The Envoy-shaped dump of `snapshot`, per `query`.
pub fn render(snapshot: &Snapshot, boot: &Static, query: &Query) -> Result<Value, DumpError> {
    let Some(pool) = pool() else {
        if query.resource.is_some() || query.mask.is_some() {
            return Err(DumpError::NoDescriptors);
        }
        return Ok(names_only(snapshot, query.include_eds));
    };
    let message = message(snapshot, boot, &pool, query.include_eds);
    let sensitive = Sensitive::new(&pool);
    let configs: Vec<Value> = message
        .configs
        .iter()
        .filter_map(|any| unpacked(&pool, &sensitive, any))
        .collect();
    let configs = match &query.resource {
        Some(field) => resources(&pool, configs, field)?,
        None => configs,
    };
    let configs = match &query.mask {
        Some(mask) => {
            let paths: Vec<Vec<&str>> = mask
                .split(',')
                .filter(|p| !p.is_empty())
                .map(|p| p.split('.').collect())
                .collect();
            configs.into_iter().map(|c| trim(c, &paths)).collect()
        }
        None => configs,
    };
    Ok(json!({ "configs": configs }))
}

fn pool() -> Option<DescriptorPool> {
    let pool = DescriptorPool::decode(DESCRIPTORS)
        .map_err(|e| tracing::warn!(error = %e, "Envoy descriptor set does not decode"))
        .ok()?;
    pool.get_message_by_name(&ConfigDump::full_name())
        .is_some()
        .then_some(pool)
}

fn timestamp(t: SystemTime) -> Timestamp {
    let since = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    Timestamp {
        seconds: since.as_secs() as i64,
        nanos: since.subsec_nanos() as i32,
    }
}

fn pack<M: Name>(encoded: Vec<u8>) -> Any {
    Any {
        type_url: M::type_url(),
        value: encoded,
    }
}

fn any<M: Message + Name>(m: &M) -> Any {
    pack::<M>(m.encode_to_vec())
}

/// An accepted resource as the `Any` Envoy's dumps hold.
fn resource<M: Name>(a: &Accepted) -> Any {
    pack::<M>(a.encoded.clone())
}

/// The bootstrap file through Envoy's `Bootstrap` message (so it prints as Envoy would),
/// with the user agent weft-proxy gives in its xDS node.
fn bootstrap(pool: &DescriptorPool, settings: &Settings) -> Option<Bootstrap> {
    if settings.bootstrap.is_null() {
        return None;
    }
    let decoded: Bootstrap = from_json(pool, &settings.bootstrap)?;
    let mut b = decoded;
    if let Some(node) = b.node.as_mut() {
        node.user_agent_name = "weft-proxy".into();
    }
    Some(b)
}

/// A JSON document as the Envoy message `M`; None (and a warning) if it is not one.
fn from_json<M: Message + Name + Default>(pool: &DescriptorPool, v: &Value) -> Option<M> {
    let desc = pool.get_message_by_name(&M::full_name())?;
    let dynamic = DynamicMessage::deserialize(desc, v)
        .map_err(|e| tracing::warn!(error = %e, message = %M::full_name(), "bootstrap part does not parse"))
        .ok()?;
    M::decode(dynamic.encode_to_vec().as_slice()).ok()
}

/// The ADS cluster of the bootstrap: the one static cluster weft-proxy uses.
fn static_clusters(b: &Bootstrap) -> Vec<&Cluster> {
    let ads: Vec<&str> = b
        .dynamic_resources
        .iter()
        .filter_map(|d| d.ads_config.as_ref())
        .flat_map(|a| a.grpc_services.iter())
        .filter_map(|g| match &g.target_specifier {
            Some(
                envoy_types::pb::envoy::config::core::v3::grpc_service::TargetSpecifier::EnvoyGrpc(
                    e,
                ),
            ) => Some(e.cluster_name.as_str()),
            _ => None,
        })
        .collect();
    b.static_resources
        .iter()
        .flat_map(|s| s.clusters.iter())
        .filter(|c| ads.contains(&c.name.as_str()))
        .collect()
}

/// The dump as Envoy's `ConfigDump` message, in Envoy's order.
fn message(snapshot: &Snapshot, boot: &Static, pool: &DescriptorPool, eds: bool) -> ConfigDump {
    let a = &snapshot.accepted;
    let v = &snapshot.versions;
    let ts = |x: &Accepted| Some(timestamp(x.last_updated));
    let bootstrap = bootstrap(pool, &boot.settings);
    // Borrowed from `bootstrap`, which is moved into the dump last.
    let statics = bootstrap.as_ref().map(static_clusters).unwrap_or_default();
    let started = Some(timestamp(boot.started));
    let clusters = ClustersConfigDump {
        version_info: v.cds.clone(),
        static_clusters: statics
            .iter()
            .map(|c| StaticCluster {
                cluster: Some(any(*c)),
                last_updated: started,
            })
            .collect(),
        dynamic_active_clusters: a
            .clusters
            .values()
            .map(|x| DynamicCluster {
                version_info: x.version.clone(),
                cluster: Some(resource::<Cluster>(x)),
                last_updated: ts(x),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    };
    let endpoints = EndpointsConfigDump {
        static_endpoint_configs: statics
            .iter()
            .filter_map(|c| c.load_assignment.as_ref())
            .map(|la| StaticEndpointConfig {
                endpoint_config: Some(any(la)),
                last_updated: started,
            })
            .collect(),
        dynamic_endpoint_configs: a
            .assignments
            .values()
            .map(|x| DynamicEndpointConfig {
                version_info: x.version.clone(),
                endpoint_config: Some(resource::<ClusterLoadAssignment>(x)),
                last_updated: ts(x),
                ..Default::default()
            })
            .collect(),
    };
    let listeners = ListenersConfigDump {
        version_info: v.lds.clone(),
        dynamic_listeners: a
            .listeners
            .iter()
            .map(|(name, x)| DynamicListener {
                name: name.clone(),
                active_state: Some(DynamicListenerState {
                    version_info: x.version.clone(),
                    listener: Some(resource::<Listener>(x)),
                    last_updated: ts(x),
                }),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    };
    let routes = RoutesConfigDump {
        dynamic_route_configs: a
            .routes
            .values()
            .map(|x| DynamicRouteConfig {
                version_info: x.version.clone(),
                route_config: Some(resource::<RouteConfiguration>(x)),
                last_updated: ts(x),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    };
    let own = snapshot.identity.as_ref().and_then(|i| i.current());
    let secrets = SecretsConfigDump {
        dynamic_active_secrets: own
            .as_deref()
            .map(workload_secret)
            .into_iter()
            .chain(a.secrets.iter().map(|(name, x)| DynamicSecret {
                name: name.clone(),
                version_info: x.version.clone(),
                last_updated: ts(x),
                secret: Some(resource::<Secret>(x)),
                ..Default::default()
            }))
            .collect(),
        ..Default::default()
    };
    let mut configs = Vec::new();
    if let Some(b) = bootstrap {
        configs.push(any(&BootstrapConfigDump {
            bootstrap: Some(b),
            last_updated: Some(timestamp(boot.started)),
        }));
    }
    configs.push(any(&clusters));
    if eds {
        configs.push(any(&endpoints));
    }
    configs.extend([any(&listeners), any(&routes), any(&secrets)]);
    ConfigDump { configs }
}

/// The workload certificate `default`, held here rather than received over SDS, listed
/// as Envoy lists the `default` its SDS server sent: an active secret whose chain is PEM
/// and whose private key is redacted (the key itself is never put in the dump). The
/// version is the leaf's serial number, so it changes at every renewal.
fn workload_secret(issued: &crate::identity::Issued) -> DynamicSecret {
    use envoy_types::pb::envoy::config::core::v3::{data_source::Specifier, DataSource};
    use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{secret, TlsCertificate};
    let inline = |bytes: Vec<u8>| DataSource {
        specifier: Some(Specifier::InlineBytes(bytes)),
        ..Default::default()
    };
    let chain: String = issued
        .key
        .cert
        .iter()
        .map(|c| crate::http::xfcc::certificate_pem(c))
        .collect();
    let secret = Secret {
        name: crate::identity::DEFAULT_SECRET.to_string(),
        r#type: Some(secret::Type::TlsCertificate(TlsCertificate {
            certificate_chain: Some(inline(chain.into_bytes())),
            private_key: Some(inline(REDACTED.as_bytes().to_vec())),
            ..Default::default()
        })),
    };
    DynamicSecret {
        name: crate::identity::DEFAULT_SECRET.to_string(),
        version_info: issued.serial.clone(),
        last_updated: Some(timestamp(issued.received)),
        secret: Some(any(&secret)),
        ..Default::default()
    }
}

/// Which fields Envoy's protos mark sensitive, looked up once per field per dump.
struct Sensitive {
    extension: Option<ExtensionDescriptor>,
    seen: std::cell::RefCell<HashMap<String, bool>>,
}

impl Sensitive {
    fn new(pool: &DescriptorPool) -> Sensitive {
        Sensitive {
            extension: pool.get_extension_by_name("udpa.annotations.sensitive"),
            seen: Default::default(),
        }
    }

    fn is(&self, field: &prost_reflect::FieldDescriptor) -> bool {
        let Some(ext) = &self.extension else {
            return field.name() == "private_key";
        };
        let mut seen = self.seen.borrow_mut();
        *seen
            .entry(field.full_name().to_string())
            .or_insert_with(|| {
                let options = field.options();
                options.has_extension(ext)
                    && matches!(*options.get_extension(ext), Field::Bool(true))
            })
    }
}

/// Redacts the sensitive fields of `m` (every string and bytes under them), looking into
/// `Any`s, as Envoy's admin does before printing.
fn redact(pool: &DescriptorPool, s: &Sensitive, m: &mut DynamicMessage, all: bool) {
    if m.descriptor().full_name() == "google.protobuf.Any" {
        redact_any(pool, s, m, all);
        return;
    }
    for (field, value) in m.fields_mut() {
        let under = all || s.is(&field);
        redact_value(pool, s, value, under);
    }
}

fn redact_value(pool: &DescriptorPool, s: &Sensitive, v: &mut Field, sensitive: bool) {
    match v {
        Field::String(text) if sensitive => *text = REDACTED.to_string(),
        Field::Bytes(bytes) if sensitive => *bytes = REDACTED.as_bytes().to_vec().into(),
        Field::Message(m) => redact(pool, s, m, sensitive),
        Field::List(items) => items
            .iter_mut()
            .for_each(|i| redact_value(pool, s, i, sensitive)),
        Field::Map(entries) => entries
            .values_mut()
            .for_each(|i| redact_value(pool, s, i, sensitive)),
        _ => {}
    }
}

fn redact_any(pool: &DescriptorPool, s: &Sensitive, any: &mut DynamicMessage, all: bool) {
    let type_url = match any.get_field_by_name("type_url").as_deref() {
        Some(Field::String(t)) => t.clone(),
        _ => return,
    };
    let Some(desc) = pool.get_message_by_name(type_url.rsplit('/').next().unwrap_or_default())
    else {
        return;
    };
    let Some(Field::Bytes(bytes)) = any.get_field_by_name_mut("value") else {
        return;
    };
    let Ok(mut inner) = DynamicMessage::decode(desc, bytes.as_ref()) else {
        return;
    };
    redact(pool, s, &mut inner, all);
    *bytes = inner.encode_to_vec().into();
}

/// One `Any` of `configs[]` as Envoy's JSON, redacted.
fn unpacked(pool: &DescriptorPool, s: &Sensitive, any: &Any) -> Option<Value> {
    let desc: MessageDescriptor = pool.get_message_by_name("google.protobuf.Any")?;
    let mut m = DynamicMessage::decode(desc, any.encode_to_vec().as_slice()).ok()?;
    redact(pool, s, &mut m, false);
    let options = SerializeOptions::new().use_proto_field_name(true);
    m.serialize_with_options(serde_json::value::Serializer, &options)
        .map_err(|e| tracing::warn!(error = %e, type_url = %any.type_url, "does not print as JSON"))
        .ok()
}

/// `?resource=`: the elements of that repeated field of every dump that has one, each
/// with the `@type` of its element message, as Envoy lists them.
fn resources(
    pool: &DescriptorPool,
    configs: Vec<Value>,
    field: &str,
) -> Result<Vec<Value>, DumpError> {
    let mut out = Vec::new();
    let mut known = false;
    for mut c in configs {
        let Some(Value::String(type_url)) = c.get("@type").cloned() else {
            continue;
        };
        let element = pool
            .get_message_by_name(type_url.rsplit('/').next().unwrap_or_default())
            .and_then(|d| d.get_field_by_name(field))
            .filter(|f| f.is_list())
            .and_then(|f| f.kind().as_message().map(|m| m.full_name().to_string()));
        let Some(element) = element else { continue };
        known = true;
        let items = match c.get_mut(field).map(Value::take) {
            Some(Value::Array(items)) => items,
            _ => Vec::new(),
        };
        for item in items {
            let mut typed = Map::new();
            typed.insert(
                "@type".into(),
                Value::String(format!("type.googleapis.com/{element}")),
            );
            if let Value::Object(fields) = item {
                typed.extend(fields);
            }
            out.push(Value::Object(typed));
        }
    }
    if known {
        Ok(out)
    } else {
        Err(DumpError::UnknownResource(field.to_string()))
    }
}

/// `?mask=`: keeps only the given field paths (and `@type`) of a dump or resource; a path
/// through a list applies to each element, as a field mask over repeated messages does.
pub fn trim(v: Value, paths: &[Vec<&str>]) -> Value {
    match v {
        Value::Array(items) => Value::Array(items.into_iter().map(|i| trim(i, paths)).collect()),
        Value::Object(fields) => {
            let mut kept = Map::new();
            for (key, value) in fields {
                if key == "@type" {
                    kept.insert(key, value);
                    continue;
                }
                let deeper: Vec<Vec<&str>> = paths
                    .iter()
                    .filter(|p| p.first() == Some(&key.as_str()))
                    .map(|p| p[1..].to_vec())
                    .collect();
                if deeper.is_empty() {
                    continue;
                }
                if deeper.iter().any(Vec::is_empty) {
                    kept.insert(key, value);
                } else {
                    let inner = trim(value, &deeper);
                    // An object left with nothing (but its `@type`) is left out.
                    let empty = matches!(&inner, Value::Object(m)
                        if m.keys().all(|k| k == "@type"));
                    if !empty {
                        kept.insert(key, inner);
                    }
                }
            }
            Value::Object(kept)
        }
        other => other,
    }
}

/// Without descriptors: the same shape, each resource reduced to its name and version.
fn names_only(snapshot: &Snapshot, eds: bool) -> Value {
    let list = |m: &BTreeMap<String, Arc<Accepted>>| -> Vec<Value> {
        m.iter()
            .map(|(n, a)| json!({"name": n, "version_info": a.version}))
            .collect()
    };
    let a = &snapshot.accepted;
    let v = &snapshot.versions;
    let own = snapshot
        .identity
        .as_ref()
        .and_then(|i| i.current())
        .map(|c| json!({"name": crate::identity::DEFAULT_SECRET, "version_info": c.serial}));
    let mut configs = vec![json!({"@type": ClustersConfigDump::type_url(),
        "version_info": v.cds, "dynamic_active_clusters": list(&a.clusters)})];
    if eds {
        configs.push(json!({"@type": EndpointsConfigDump::type_url(),
            "dynamic_endpoint_configs": list(&a.assignments)}));
    }
    configs.extend([
        json!({"@type": ListenersConfigDump::type_url(), "version_info": v.lds,
            "dynamic_listeners": list(&a.listeners)}),
        json!({"@type": RoutesConfigDump::type_url(),
            "dynamic_route_configs": list(&a.routes)}),
        json!({"@type": SecretsConfigDump::type_url(),
            "dynamic_active_secrets": own.into_iter().chain(list(&a.secrets)).collect::<Vec<_>>()}),
    ]);
    json!({ "configs": configs })
}

#[cfg(test)]
#[path = "config_dump_tests.rs"]
mod tests;
