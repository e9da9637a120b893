//! The mesh's own mutual TLS: Istio's SDS names (`default`, `ROOTCA`), auto mTLS and
//! DestinationRule ISTIO_MUTUAL on outbound clusters, and PeerAuthentication on inbound
//! ports (STRICT, PERMISSIVE, DISABLE).
//!
//! Inbound TLS is only generated for a workload that will have a certificate: one labelled
//! `security.istio.io/tlsMode: istio`, or one a PeerAuthentication applies to. Others keep
//! plain text chains, so a mesh without certificates behaves as before.

use super::cluster::OutboundKey;
use super::listener::own_workload;
use super::proto::any;
use super::tls;
use crate::model::{MeshSnapshot, Proxy};
use crate::registry::Instance;
use envoy_types::pb::envoy::config::cluster::v3::cluster::TransportSocketMatch;
use envoy_types::pb::envoy::config::core::v3::{transport_socket, TransportSocket};
use envoy_types::pb::envoy::config::listener::v3::{
    listener_filter, FilterChain, Listener, ListenerFilter,
};
use envoy_types::pb::envoy::extensions::filters::listener::tls_inspector::v3::TlsInspector;
use envoy_types::pb::envoy::extensions::transport_sockets::raw_buffer::v3::RawBuffer;
use envoy_types::pb::google::protobuf::{value::Kind, Struct, Value};
use std::collections::{BTreeMap, BTreeSet};
use weft_config::networking::destination_rule::ClientTlsMode;
use weft_config::security::peer_authentication::{MtlsMode, PeerAuthentication};
use weft_config::{Resource, Spec};

/// Istio's SDS name of the workload's own certificate and key.
pub const WORKLOAD_SECRET: &str = "default";
/// Istio's SDS name of the mesh trust bundle.
pub const ROOT_SECRET: &str = "ROOTCA";
/// The label that says a workload runs a sidecar which accepts mesh mTLS.
pub const TLS_MODE_LABEL: &str = "security.istio.io/tlsMode";
/// Endpoint metadata namespace Envoy matches `transport_socket_matches` against.
pub const TRANSPORT_SOCKET_MATCH: &str = "envoy.transport_socket_match";
/// ALPN a client sidecar offers (Istio's ALPNInMeshWithMxc), `h2` added for HTTP/2 upstreams.
pub const ALPN_IN_MESH: [&str; 2] = ["istio-peer-exchange", "istio"];
/// ALPN values an inbound mTLS chain recognises as a mesh peer's (Istio's inbound
/// `application_protocols`).
pub const ALPN_MESH_PEERS: [&str; 5] = [
    "istio-peer-exchange",
    "istio",
    "istio-http/1.0",
    "istio-http/1.1",
    "istio-h2",
];
/// What the server side negotiates for HTTP ports (Istio's ALPNDownstream).
pub const ALPN_DOWNSTREAM_HTTP: [&str; 2] = ["h2", "http/1.1"];
const TLS_INSPECTOR: &str = "envoy.filters.listener.tls_inspector";
const RAW_BUFFER: &str = "envoy.transport_sockets.raw_buffer";

/// `outbound_.<port>_.<subset>_.<host>`: the SNI a client sidecar sends, Istio's form.
pub fn outbound_sni(port: u32, subset: &str, host: &str) -> String {
    format!("outbound_.{port}_.{subset}_.{host}")
}

/// Whether an instance's labels say its workload runs a sidecar taking mesh mTLS.
pub fn is_mesh_workload(labels: &BTreeMap<String, String>) -> bool {
    labels.get(TLS_MODE_LABEL).map(String::as_str) == Some("istio")
}

/// `envoy.transport_socket_match: {tlsMode: istio}` for an endpoint that takes mesh mTLS at
/// `port`: its workload runs a sidecar (Istio's label) and no PeerAuthentication disables
/// mTLS there. Istio's EDS makes the same check, so auto mTLS sends plain text to a port
/// whose server expects it instead of failing the handshake.
pub fn endpoint_metadata(
    snapshot: &MeshSnapshot,
    instance: &Instance,
    port: u32,
) -> Option<(String, Struct)> {
    if !is_mesh_workload(&instance.labels) {
        return None;
    }
    let disabled = !snapshot.registry.peer_authentications.is_empty()
        && PeerPolicies::for_workload(snapshot, &instance.namespace, &instance.labels).mode(port)
            == Some(MtlsMode::Disable);
    if disabled {
        return None;
    }
    let mut fields = BTreeMap::new();
    fields.insert("tlsMode".to_string(), string("istio"));
    Some((
        TRANSPORT_SOCKET_MATCH.to_string(),
        Struct {
            fields: fields.into_iter().collect(),
        },
    ))
}

fn string(s: &str) -> Value {
    Value {
        kind: Some(Kind::StringValue(s.to_string())),
    }
}

/// The SPIFFE identities a client expects of a service's servers: one per service account
/// of its instances (`default` when an instance names none) and the ServiceEntry's own
/// `subjectAltNames`.
pub fn service_identities(snapshot: &MeshSnapshot, host: &str) -> Vec<String> {
    let td = &snapshot.mesh.trust_domain;
    let mut out = BTreeSet::new();
    for instance in snapshot.registry.instances.get(host).into_iter().flatten() {
        let sa = if instance.service_account.is_empty() {
            "default"
        } else {
            &instance.service_account
        };
        out.insert(format!("spiffe://{td}/ns/{}/sa/{sa}", instance.namespace));
    }
    for r in snapshot.resources.iter() {
        if let Spec::ServiceEntry(se) = &r.spec {
            if se.hosts.iter().any(|h| h == host) {
                out.extend(se.subject_alt_names.iter().cloned());
            }
        }
    }
    out.into_iter().collect()
}

/// Mesh mTLS on an outbound cluster: DestinationRule ISTIO_MUTUAL always; without a
/// DestinationRule `tls`, auto mTLS (meshConfig `enableAutoMtls`) for services inside the
/// mesh some of whose endpoints run a sidecar, chosen per endpoint by its tlsMode.
pub fn apply_outbound(
    snapshot: &MeshSnapshot,
    key: &OutboundKey,
    cluster: &mut envoy_types::pb::envoy::config::cluster::v3::Cluster,
) {
    let host = &key.service.hostname;
    let subset = key.subset.map(|s| s.name.as_str()).unwrap_or_default();
    let alpn: Vec<&str> = if key.port.protocol.is_http2() {
        ALPN_IN_MESH.iter().copied().chain(["h2"]).collect()
    } else {
        ALPN_IN_MESH.to_vec()
    };
    match &key.policy.tls {
        Some(settings) if settings.mode == ClientTlsMode::IstioMutual => {
            let sni = settings
                .sni
                .clone()
                .unwrap_or_else(|| outbound_sni(key.port.number, subset, host));
            let sans = if settings.subject_alt_names.is_empty() {
                service_identities(snapshot, host)
            } else {
                settings.subject_alt_names.clone()
            };
            cluster.transport_socket = Some(tls::istio_mutual_upstream(sni, &sans, &alpn));
        }
        Some(_) => {}
        None => {
            let has_sidecars = snapshot
                .registry
                .instances
                .get(host)
                .is_some_and(|all| all.iter().any(|i| is_mesh_workload(&i.labels)));
            if !snapshot.mesh.enable_auto_mtls || key.service.mesh_external || !has_sidecars {
                return;
            }
            let sni = outbound_sni(key.port.number, subset, host);
            let sans = service_identities(snapshot, host);
            let mut tls_match = BTreeMap::new();
            tls_match.insert("tlsMode".to_string(), string("istio"));
            cluster.transport_socket_matches = vec![
                TransportSocketMatch {
                    name: "tlsMode-istio".into(),
                    r#match: Some(Struct {
                        fields: tls_match.into_iter().collect(),
                    }),
                    transport_socket: Some(tls::istio_mutual_upstream(sni, &sans, &alpn)),
                },
                TransportSocketMatch {
                    name: "tlsMode-disabled".into(),
                    r#match: Some(Struct::default()),
                    transport_socket: Some(raw_buffer()),
                },
            ];
        }
    }
}

fn raw_buffer() -> TransportSocket {
    TransportSocket {
        name: RAW_BUFFER.into(),
        config_type: Some(transport_socket::ConfigType::TypedConfig(any(
            "envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer",
            &RawBuffer::default(),
        ))),
    }
}

/// The PeerAuthentications that apply to one workload: mesh (root namespace, no
/// selector), namespace (no selector) and workload (selector matching its labels); the
/// oldest wins within a level, as in Istio.
#[derive(Debug, Default)]
pub struct PeerPolicies<'a> {
    mesh: Option<&'a PeerAuthentication>,
    namespace: Option<&'a PeerAuthentication>,
    workload: Option<&'a PeerAuthentication>,
    /// Whether the workload is labelled to take mesh mTLS.
    labelled: bool,
}

impl<'a> PeerPolicies<'a> {
    pub fn for_proxy(snapshot: &'a MeshSnapshot, proxy: &Proxy) -> PeerPolicies<'a> {
        let mut labels = proxy.labels.clone();
        if let Some((_, entry)) = own_workload(snapshot, proxy) {
            for (k, v) in &entry.labels {
                labels.entry(k.clone()).or_insert_with(|| v.clone());
            }
        }
        Self::for_workload(snapshot, &proxy.namespace, &labels)
    }

    /// The policies of a workload known by its namespace and labels (a service endpoint).
    pub fn for_workload(
        snapshot: &'a MeshSnapshot,
        namespace: &str,
        labels: &BTreeMap<String, String>,
    ) -> PeerPolicies<'a> {
        let root = &snapshot.mesh.root_namespace;
        // Oldest first (the registry keeps them sorted): the first match wins a level.
        let all = || {
            snapshot
                .registry
                .peer_authentications
                .iter()
                .filter_map(|r| match &r.spec {
                    Spec::PeerAuthentication(pa) => Some((r, pa.as_ref())),
                    _ => None,
                })
        };
        let unselected = |pa: &PeerAuthentication| {
            pa.selector
                .as_ref()
                .is_none_or(|s| s.match_labels.is_empty())
        };
        let find = |pred: &dyn Fn(&Resource, &PeerAuthentication) -> bool| {
            all().find(|(r, pa)| pred(r, pa)).map(|(_, pa)| pa)
        };
        PeerPolicies {
            mesh: find(&|r, pa| &r.metadata.namespace == root && unselected(pa)),
            namespace: find(&|r, pa| r.metadata.namespace == namespace && unselected(pa)),
            workload: find(&|r, pa| {
                r.metadata.namespace == namespace
                    && !unselected(pa)
                    && pa.selector.as_ref().is_some_and(|s| {
                        s.match_labels.iter().all(|(k, v)| labels.get(k) == Some(v))
                    })
            }),
            labelled: is_mesh_workload(labels),
        }
    }

    /// The mode for one inbound port; `None` when no policy applies and the workload is
    /// not labelled for mTLS (plain text as before).
    pub fn mode(&self, port: u32) -> Option<MtlsMode> {
        let set = |m: MtlsMode| (m != MtlsMode::Unset).then_some(m);
        let level = |pa: Option<&PeerAuthentication>| {
            pa.and_then(|pa| pa.mtls.as_ref()).and_then(|m| set(m.mode))
        };
        let port_level = self.workload.and_then(|pa| {
            pa.port_modes()
                .find(|(p, _)| u32::from(*p) == port)
                .and_then(|(_, m)| set(m))
        });
        let any_policy = self.mesh.is_some() || self.namespace.is_some() || self.workload.is_some();
        if !any_policy && !self.labelled {
            return None;
        }
        Some(
            port_level
                .or(level(self.workload))
                .or(level(self.namespace))
                .or(level(self.mesh))
                .unwrap_or(MtlsMode::Permissive),
        )
    }
}

/// Rewrites an inbound port's plain text chain for `mode`: STRICT replaces it with an mTLS
/// chain, PERMISSIVE adds the mTLS chain beside it (TLS with a mesh ALPN goes to the first,
/// anything else to the second), DISABLE keeps it.
pub fn secure_inbound_chain(plain: FilterChain, mode: MtlsMode, http: bool) -> Vec<FilterChain> {
    let alpn: &[&str] = if http { &ALPN_DOWNSTREAM_HTTP } else { &[] };
    let mut secure = plain.clone();
    let matcher = secure
        .filter_chain_match
        .get_or_insert_with(Default::default);
    matcher.transport_protocol = "tls".into();
    secure.transport_socket = Some(tls::istio_mutual_downstream(alpn));
    match mode {
        MtlsMode::Strict => vec![secure],
        MtlsMode::Disable => vec![plain],
        MtlsMode::Permissive | MtlsMode::Unset => {
            matcher.application_protocols = ALPN_MESH_PEERS.iter().map(|s| s.to_string()).collect();
            vec![secure, plain]
        }
    }
}

/// Adds the TLS inspector (needed to match `transport_protocol`) once.
pub fn ensure_tls_inspector(listener: &mut Listener) {
    let needed = listener.filter_chains.iter().any(|c| {
        c.filter_chain_match
            .as_ref()
            .is_some_and(|m| !m.transport_protocol.is_empty())
    });
    if needed
        && !listener
            .listener_filters
            .iter()
            .any(|f| f.name == TLS_INSPECTOR)
    {
        listener.listener_filters.push(ListenerFilter {
            name: TLS_INSPECTOR.into(),
            config_type: Some(listener_filter::ConfigType::TypedConfig(any(
                "envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector",
                &TlsInspector::default(),
            ))),
            ..Default::default()
        });
    }
}

#[cfg(test)]
#[path = "mtls_tests.rs"]
mod tests;
