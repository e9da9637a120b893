//! Secrets served over SDS: the certificates that TLS contexts name (Istio's SDS names),
//! read from stored Kubernetes Secrets or from files weftd can read itself.

use super::gateway;
use super::tls::{
    Secrets, DOWNSTREAM_TLS_CONTEXT, FILE_CERT_PREFIX, FILE_ROOT_PREFIX, KUBERNETES_PREFIX,
    UPSTREAM_TLS_CONTEXT,
};
use crate::model::{MeshSnapshot, Proxy, ProxyKind};
use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::core::v3::{data_source, transport_socket, DataSource};
use envoy_types::pb::envoy::config::listener::v3::Listener;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
    common_tls_context::ValidationContextType, secret, CertificateValidationContext,
    CommonTlsContext, DownstreamTlsContext, Secret, TlsCertificate, UpstreamTlsContext,
};
use prost::Message;
use std::collections::BTreeSet;
use std::sync::Mutex;
use weft_config::kubernetes::secret::CA_SECRET_SUFFIX;

fn inline(pem: Vec<u8>) -> DataSource {
    DataSource {
        specifier: Some(data_source::Specifier::InlineBytes(pem)),
        ..Default::default()
    }
}

fn tls_certificate(name: &str, chain: Vec<u8>, key: Vec<u8>) -> Secret {
    Secret {
        name: name.to_string(),
        r#type: Some(secret::Type::TlsCertificate(TlsCertificate {
            certificate_chain: Some(inline(chain)),
            private_key: Some(inline(key)),
            ..Default::default()
        })),
    }
}

fn validation_context(name: &str, ca: Vec<u8>) -> Secret {
    Secret {
        name: name.to_string(),
        r#type: Some(secret::Type::ValidationContext(
            CertificateValidationContext {
                trusted_ca: Some(inline(ca)),
                ..Default::default()
            },
        )),
    }
}

/// The secrets among `names` that weftd can supply for this proxy, in the order asked.
/// A name it cannot supply is left out: the proxy's listener or cluster that needs it
/// waits (warms) until it appears, as with Istio.
///
/// `kubernetes://X` is Secret `X` (certificate and key) and `kubernetes://X-cacert` the CA
/// of credential `X` (Secret `X-cacert` first, then `X`'s own CA). They are looked up in the
/// namespaces of the Gateways that select a router proxy, then in the proxy's namespace
/// (DestinationRule credentials). `file-cert:<cert>~<key>` and `file-root:<ca>` are read
/// from weftd's own filesystem (relative paths from its working directory), which is the
/// proxy's too in single-host deployments.
pub fn secrets(snapshot: &MeshSnapshot, proxy: &Proxy, names: &[String]) -> Vec<Secret> {
    let namespaces = namespaces(snapshot, proxy);
    names
        .iter()
        .filter_map(|name| {
            if let Some(credential) = name.strip_prefix(KUBERNETES_PREFIX) {
                from_kubernetes(snapshot, &namespaces, name, credential)
            } else if let Some(paths) = name.strip_prefix(FILE_CERT_PREFIX) {
                let (chain, key) = paths.split_once('~')?;
                Some(tls_certificate(name, read(chain)?, read(key)?))
            } else if let Some(path) = name.strip_prefix(FILE_ROOT_PREFIX) {
                Some(validation_context(name, read(path)?))
            } else {
                None
            }
        })
        .collect()
}

fn namespaces(snapshot: &MeshSnapshot, proxy: &Proxy) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    if proxy.kind == ProxyKind::Router {
        for (gw, _) in gateway::selected(snapshot, proxy) {
            out.push(gw.metadata.namespace.clone());
        }
    }
    out.push(if proxy.namespace.is_empty() {
        "default".to_string()
    } else {
        proxy.namespace.clone()
    });
    let mut seen = BTreeSet::new();
    out.retain(|ns| seen.insert(ns.clone()));
    out
}

fn from_kubernetes(
    snapshot: &MeshSnapshot,
    namespaces: &[String],
    name: &str,
    credential: &str,
) -> Option<Secret> {
    namespaces.iter().find_map(|ns| {
        let secrets = Secrets::new(snapshot, ns);
        if credential.ends_with(CA_SECRET_SUFFIX) {
            let ca = secrets.ca(credential).ok()?;
            Some(validation_context(name, ca))
        } else {
            let kc = secrets.key_and_cert(credential).ok()?;
            Some(tls_certificate(name, kc.certificate_chain, kc.private_key))
        }
    })
}

/// Reads a certificate file; an unreadable one is logged once per path, since every
/// regeneration asks again.
fn read(path: &str) -> Option<Vec<u8>> {
    static REPORTED: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());
    match std::fs::read(path) {
        Ok(bytes) => Some(bytes),
        Err(e) => {
            let mut reported = REPORTED.lock().unwrap_or_else(|e| e.into_inner());
            if reported.insert(path.to_string()) {
                tracing::debug!(
                    path,
                    error = %e,
                    "weftd cannot read this certificate file; its SDS secret is not sent and \
                     the proxy's listener or cluster waits for it"
                );
            }
            None
        }
    }
}

/// SDS names the TLS contexts of these listeners and clusters refer to, sorted.
pub fn referenced_secrets(listeners: &[Listener], clusters: &[Cluster]) -> Vec<String> {
    let mut names = BTreeSet::new();
    let listener_sockets = listeners.iter().flat_map(|l| {
        l.filter_chains
            .iter()
            .chain(l.default_filter_chain.as_ref())
            .filter_map(|c| c.transport_socket.as_ref())
    });
    for socket in listener_sockets {
        if let Some(common) = common_context(socket, DOWNSTREAM_TLS_CONTEXT) {
            collect(&common, &mut names);
        }
    }
    let cluster_sockets = clusters.iter().flat_map(|c| {
        c.transport_socket.iter().chain(
            c.transport_socket_matches
                .iter()
                .filter_map(|m| m.transport_socket.as_ref()),
        )
    });
    for socket in cluster_sockets {
        if let Some(common) = common_context(socket, UPSTREAM_TLS_CONTEXT) {
            collect(&common, &mut names);
        }
    }
    names.into_iter().collect()
}

fn common_context(
    socket: &envoy_types::pb::envoy::config::core::v3::TransportSocket,
    type_name: &str,
) -> Option<CommonTlsContext> {
    let Some(transport_socket::ConfigType::TypedConfig(any)) = &socket.config_type else {
        return None;
    };
    if any.type_url.strip_prefix("type.googleapis.com/") != Some(type_name) {
        return None;
    }
    if type_name == DOWNSTREAM_TLS_CONTEXT {
        DownstreamTlsContext::decode(any.value.as_slice())
            .ok()?
            .common_tls_context
    } else {
        UpstreamTlsContext::decode(any.value.as_slice())
            .ok()?
            .common_tls_context
    }
}

fn collect(common: &CommonTlsContext, names: &mut BTreeSet<String>) {
    for c in &common.tls_certificate_sds_secret_configs {
        names.insert(c.name.clone());
    }
    match &common.validation_context_type {
        Some(ValidationContextType::ValidationContextSdsSecretConfig(c)) => {
            names.insert(c.name.clone());
        }
        Some(ValidationContextType::CombinedValidationContext(c)) => {
            if let Some(c) = &c.validation_context_sds_secret_config {
                names.insert(c.name.clone());
            }
        }
        _ => {}
    }
}

#[cfg(test)]
#[path = "sds_tests.rs"]
mod tests;
