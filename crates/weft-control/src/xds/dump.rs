//! `/debug/config_dump`: what weftd last sent to one proxy, as Envoy's admin `/config_dump`
//! JSON (`ConfigDump` with Clusters/Endpoints/Listeners/Routes/SecretsConfigDump), private
//! keys redacted.

use super::resources::{Resources, XdsType};
use super::status::ConnectionStatus;
use envoy_types::pb::envoy::admin::v3::{
    clusters_config_dump::DynamicCluster, endpoints_config_dump::DynamicEndpointConfig,
    listeners_config_dump::DynamicListener, listeners_config_dump::DynamicListenerState,
    routes_config_dump::DynamicRouteConfig, secrets_config_dump::DynamicSecret, ClustersConfigDump,
    ConfigDump, EndpointsConfigDump, ListenersConfigDump, RoutesConfigDump, SecretsConfigDump,
};
use envoy_types::pb::google::protobuf::Any;
use prost::{Message, Name};
use prost_reflect::{DescriptorPool, DynamicMessage, SerializeOptions};
use serde_json::{json, Value};
use std::sync::OnceLock;

/// Envoy's descriptor set, copied from the envoy-types package by build.rs (empty when it
/// could not be found; the dump then lists names and versions only).
static DESCRIPTORS: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/envoy_types.bin"));

fn pool() -> Option<&'static DescriptorPool> {
    static POOL: OnceLock<Option<DescriptorPool>> = OnceLock::new();
    POOL.get_or_init(|| match DescriptorPool::decode(DESCRIPTORS) {
        Ok(pool) if pool.get_message_by_name(&ConfigDump::full_name()).is_some() => Some(pool),
        Ok(_) => None,
        Err(e) => {
            tracing::warn!(error = %e, "Envoy descriptor set does not decode; config_dump lists names only");
            None
        }
    })
    .as_ref()
}

fn any<M: Message + Name>(message: &M) -> Any {
    Any {
        type_url: M::type_url(),
        value: message.encode_to_vec(),
    }
}

/// The proxy's config as Envoy's `ConfigDump` message.
pub fn config_dump_message(c: &ConnectionStatus) -> ConfigDump {
    let of = |t: XdsType| &c.types[t.index()];
    let version = |t: XdsType| of(t).sent.clone().unwrap_or_default();
    let items = |t: XdsType| of(t).resources.clone();
    let clusters = ClustersConfigDump {
        version_info: version(XdsType::Cluster),
        dynamic_active_clusters: items(XdsType::Cluster)
            .into_values()
            .map(|e| DynamicCluster {
                version_info: e.version.clone(),
                cluster: Some(e.any.clone()),
                ..DynamicCluster::default()
            })
            .collect(),
        ..ClustersConfigDump::default()
    };
    let endpoints = EndpointsConfigDump {
        dynamic_endpoint_configs: items(XdsType::Endpoint)
            .into_values()
            .map(|e| DynamicEndpointConfig {
                version_info: e.version.clone(),
                endpoint_config: Some(e.any.clone()),
                ..DynamicEndpointConfig::default()
            })
            .collect(),
        ..EndpointsConfigDump::default()
    };
    let listeners = ListenersConfigDump {
        version_info: version(XdsType::Listener),
        dynamic_listeners: items(XdsType::Listener)
            .into_iter()
            .map(|(name, e)| DynamicListener {
                name,
                active_state: Some(DynamicListenerState {
                    version_info: e.version.clone(),
                    listener: Some(e.any.clone()),
                    ..DynamicListenerState::default()
                }),
                ..DynamicListener::default()
            })
            .collect(),
        ..ListenersConfigDump::default()
    };
    let routes = RoutesConfigDump {
        dynamic_route_configs: items(XdsType::Route)
            .into_values()
            .map(|e| DynamicRouteConfig {
                version_info: e.version.clone(),
                route_config: Some(e.any.clone()),
                ..DynamicRouteConfig::default()
            })
            .collect(),
        ..RoutesConfigDump::default()
    };
    let secrets = SecretsConfigDump {
        dynamic_active_secrets: items(XdsType::Secret)
            .into_iter()
            .map(|(name, e)| DynamicSecret {
                name,
                version_info: e.version.clone(),
                secret: Some(e.any.clone()),
                ..DynamicSecret::default()
            })
            .collect(),
        ..SecretsConfigDump::default()
    };
    ConfigDump {
        configs: vec![
            any(&clusters),
            any(&endpoints),
            any(&listeners),
            any(&routes),
            any(&secrets),
        ],
    }
}

/// What Envoy's admin prints instead of a private key.
pub const REDACTED: &str = "[redacted]";

/// Replaces every `private_key` DataSource in Envoy JSON with `"[redacted]"`, as Envoy's
/// admin does, so the debug API never shows a key.
pub fn redact(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (key, v) in map.iter_mut() {
                if key == "private_key" && v.is_object() {
                    *v = Value::String(REDACTED.to_string());
                } else {
                    redact(v);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact),
        _ => {}
    }
}

/// The proxy's config as Envoy's admin JSON (proto field names, defaults omitted).
pub fn config_dump(c: &ConnectionStatus) -> Value {
    let mut dump = to_json(&config_dump_message(c)).unwrap_or_else(|| names_only(c));
    redact(&mut dump);
    dump
}

/// Any Envoy message as Envoy's JSON (proto field names, defaults omitted, nested `Any`s
/// expanded with their `@type`); None when the descriptor set is missing. The config dump
/// and the golden tests of translation both print resources this way.
pub fn to_json<M: Message + Name>(message: &M) -> Option<Value> {
    let descriptor = pool()?.get_message_by_name(&M::full_name())?;
    let dynamic = DynamicMessage::decode(descriptor, &message.encode_to_vec()[..]).ok()?;
    let options = SerializeOptions::new().use_proto_field_name(true);
    dynamic
        .serialize_with_options(serde_json::value::Serializer, &options)
        .map_err(
            |e| tracing::warn!(error = %e, message = %M::full_name(), "does not serialize as JSON"),
        )
        .ok()
}

/// Fallback without descriptors: the same shape, each resource reduced to name + version.
fn names_only(c: &ConnectionStatus) -> Value {
    let list = |r: &Resources| -> Vec<Value> {
        r.iter()
            .map(|(n, e)| json!({"name": n, "version_info": e.version}))
            .collect()
    };
    let of = |t: XdsType| &c.types[t.index()];
    json!({"configs": [
        {"@type": ClustersConfigDump::type_url(), "version_info": of(XdsType::Cluster).sent,
         "dynamic_active_clusters": list(&of(XdsType::Cluster).resources)},
        {"@type": EndpointsConfigDump::type_url(),
         "dynamic_endpoint_configs": list(&of(XdsType::Endpoint).resources)},
        {"@type": ListenersConfigDump::type_url(), "version_info": of(XdsType::Listener).sent,
         "dynamic_listeners": list(&of(XdsType::Listener).resources)},
        {"@type": RoutesConfigDump::type_url(),
         "dynamic_route_configs": list(&of(XdsType::Route).resources)},
        {"@type": SecretsConfigDump::type_url(),
         "dynamic_active_secrets": list(&of(XdsType::Secret).resources)},
    ]})
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Proxy;
    use crate::xds::resources::Encoded;
    use crate::xds::status::Mode;
    use envoy_types::pb::envoy::config::cluster::v3::Cluster;

    #[test]
    fn dump_is_envoy_shaped_json_with_the_sent_cluster() {
        assert!(pool().is_some(), "build.rs found Envoy's descriptor set");
        let mut c = ConnectionStatus::new(Proxy::default(), Mode::Sotw);
        let cluster = Cluster {
            name: "outbound|9080||reviews.default.svc.cluster.local".into(),
            ..Cluster::default()
        };
        let s = c.of(XdsType::Cluster);
        s.sent = Some("3".into());
        s.resources.insert(
            cluster.name.clone(),
            std::sync::Arc::new(Encoded {
                any: any(&cluster),
                version: "abc".into(),
            }),
        );
        let dump = config_dump(&c);
        let clusters = &dump["configs"][0];
        assert_eq!(
            clusters["@type"],
            "type.googleapis.com/envoy.admin.v3.ClustersConfigDump"
        );
        assert_eq!(clusters["version_info"], "3");
        let active = &clusters["dynamic_active_clusters"][0];
        assert_eq!(active["version_info"], "abc");
        assert_eq!(
            active["cluster"]["@type"],
            "type.googleapis.com/envoy.config.cluster.v3.Cluster"
        );
        assert_eq!(active["cluster"]["name"], cluster.name);
        assert_eq!(
            dump["configs"][2]["@type"],
            "type.googleapis.com/envoy.admin.v3.ListenersConfigDump"
        );
    }

    #[test]
    fn secrets_are_dumped_with_their_private_keys_redacted() {
        use envoy_types::pb::envoy::config::core::v3::{data_source::Specifier, DataSource};
        use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
            secret, Secret, TlsCertificate,
        };
        let pem = |text: &str| DataSource {
            specifier: Some(Specifier::InlineBytes(text.as_bytes().to_vec())),
            ..DataSource::default()
        };
        let s = Secret {
            name: "kubernetes://bookinfo-cred".into(),
            r#type: Some(secret::Type::TlsCertificate(TlsCertificate {
                certificate_chain: Some(pem("CERT PEM")),
                private_key: Some(pem("SECRET KEY PEM")),
                ..TlsCertificate::default()
            })),
        };
        let mut c = ConnectionStatus::new(Proxy::default(), Mode::Sotw);
        let status = c.of(XdsType::Secret);
        status.sent = Some("1".into());
        status.resources.insert(
            s.name.clone(),
            std::sync::Arc::new(Encoded {
                any: any(&s),
                version: "v1".into(),
            }),
        );
        let dump = config_dump(&c);
        let secrets = &dump["configs"][4];
        assert_eq!(
            secrets["@type"],
            "type.googleapis.com/envoy.admin.v3.SecretsConfigDump"
        );
        let active = &secrets["dynamic_active_secrets"][0];
        assert_eq!(active["name"], "kubernetes://bookinfo-cred");
        let cert = &active["secret"]["tls_certificate"];
        assert_eq!(cert["private_key"], REDACTED);
        // The certificate is public and stays (base64, as Envoy prints bytes).
        assert!(cert["certificate_chain"]["inline_bytes"].is_string());
        let text = dump.to_string();
        assert!(!text.contains("U0VDUkVUIEtFWSBQRU0"), "{text}");
    }
}
