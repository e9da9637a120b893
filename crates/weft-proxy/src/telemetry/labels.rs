//! Istio's standard metric labels: the peer descriptions (source and destination) built
//! from node metadata and cluster names, with Istio's `unknown` where nothing is known.

use serde_json::{Map, Value};

/// Which side of the call this proxy reports (Istio's `reporter` label).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reporter {
    /// Outbound on a sidecar, and every gateway: the proxy next to the client.
    Source,
    /// Inbound on a sidecar: the proxy next to the server.
    Destination,
}

impl Reporter {
    pub fn as_str(self) -> &'static str {
        match self {
            Reporter::Source => "source",
            Reporter::Destination => "destination",
        }
    }

    /// Inbound clusters (`inbound|<port>||`) mean the destination side; without a cluster
    /// (no route), the connection manager's stat prefix tells (Istio names inbound ones
    /// `inbound_...`).
    pub fn of(cluster: Option<&str>, stat_prefix: &str) -> Reporter {
        let inbound = match cluster {
            Some(c) => c.starts_with("inbound|"),
            None => stat_prefix.starts_with("inbound"),
        };
        if inbound {
            Reporter::Destination
        } else {
            Reporter::Source
        }
    }
}

const UNKNOWN: &str = "unknown";

/// A workload's labels as Istio's stats plugin derives them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Workload {
    pub workload: String,
    pub namespace: String,
    pub principal: String,
    pub app: String,
    pub version: String,
    pub canonical_service: String,
    pub canonical_revision: String,
    pub cluster: String,
}

impl Workload {
    pub fn unknown() -> Workload {
        let u = || UNKNOWN.to_string();
        Workload {
            workload: u(),
            namespace: u(),
            principal: u(),
            app: u(),
            version: u(),
            canonical_service: u(),
            canonical_revision: u(),
            cluster: u(),
        }
    }

    /// The proxy's own workload from its node metadata (`WORKLOAD_NAME`, `NAMESPACE`,
    /// `LABELS`, `CLUSTER_ID`). The principal stays unknown: plaintext has no identity.
    pub fn from_metadata(m: &Map<String, Value>) -> Workload {
        let s = |k: &str| m.get(k).and_then(Value::as_str).map(str::to_string);
        let labels = m.get("LABELS").and_then(Value::as_object);
        let label = |keys: &[&str]| {
            keys.iter()
                .find_map(|k| labels?.get(*k)?.as_str().map(str::to_string))
        };
        let workload = s("WORKLOAD_NAME").unwrap_or_else(|| UNKNOWN.into());
        Workload {
            namespace: s("NAMESPACE").unwrap_or_else(|| "default".into()),
            principal: UNKNOWN.into(),
            app: label(&["app", "app.kubernetes.io/name"]).unwrap_or_else(|| UNKNOWN.into()),
            version: label(&["version", "app.kubernetes.io/version"])
                .unwrap_or_else(|| UNKNOWN.into()),
            // Istio's canonical service: the canonical-name label, else app, else workload.
            canonical_service: label(&[
                "service.istio.io/canonical-name",
                "app.kubernetes.io/name",
                "app",
            ])
            .unwrap_or_else(|| workload.clone()),
            canonical_revision: label(&[
                "service.istio.io/canonical-revision",
                "app.kubernetes.io/version",
                "version",
            ])
            .unwrap_or_else(|| "latest".into()),
            cluster: s("CLUSTER_ID").unwrap_or_else(|| UNKNOWN.into()),
            workload,
        }
    }
}

/// The destination service of a cluster: `outbound|9080|v1|reviews.default.svc.cluster.local`
/// gives `(reviews.default.svc.cluster.local, reviews, default)`; a host outside
/// `*.svc.*` keeps its whole name with an unknown namespace; other clusters
/// (`PassthroughCluster`, ...) are their own name.
pub fn service_of(cluster: &str) -> (String, String, String) {
    let host = match cluster.split('|').collect::<Vec<_>>().as_slice() {
        [dir, _port, _subset, host] if *dir == "outbound" && !host.is_empty() => *host,
        [dir, ..] if *dir == "inbound" => return (UNKNOWN.into(), UNKNOWN.into(), UNKNOWN.into()),
        _ => cluster,
    };
    let parts: Vec<&str> = host.split('.').collect();
    match parts.as_slice() {
        [name, ns, "svc", ..] => (host.to_string(), name.to_string(), ns.to_string()),
        _ => (host.to_string(), host.to_string(), UNKNOWN.into()),
    }
}

/// Every label but the per-request ones (protocol, code, gRPC status, flags), in
/// Istio's order; `own` is the proxy's workload.
pub fn peer_labels(
    reporter: Reporter,
    own: &Workload,
    cluster: Option<&str>,
) -> Vec<(&'static str, String)> {
    let unknown = Workload::unknown();
    let (source, destination) = match reporter {
        Reporter::Source => (own, &unknown),
        Reporter::Destination => (&unknown, own),
    };
    let (service, name, namespace) = match cluster {
        Some(c) => service_of(c),
        None => (UNKNOWN.into(), UNKNOWN.into(), UNKNOWN.into()),
    };
    let policy = match reporter {
        // Plaintext inbound is "none"; the client side never knows.
        Reporter::Destination => "none",
        Reporter::Source => UNKNOWN,
    };
    vec![
        ("reporter", reporter.as_str().to_string()),
        ("source_workload", source.workload.clone()),
        ("source_workload_namespace", source.namespace.clone()),
        ("source_principal", source.principal.clone()),
        ("source_app", source.app.clone()),
        ("source_version", source.version.clone()),
        ("source_canonical_service", source.canonical_service.clone()),
        (
            "source_canonical_revision",
            source.canonical_revision.clone(),
        ),
        ("source_cluster", source.cluster.clone()),
        ("destination_workload", destination.workload.clone()),
        (
            "destination_workload_namespace",
            destination.namespace.clone(),
        ),
        ("destination_principal", destination.principal.clone()),
        ("destination_app", destination.app.clone()),
        ("destination_version", destination.version.clone()),
        ("destination_service", service),
        ("destination_service_name", name),
        ("destination_service_namespace", namespace),
        (
            "destination_canonical_service",
            destination.canonical_service.clone(),
        ),
        (
            "destination_canonical_revision",
            destination.canonical_revision.clone(),
        ),
        ("destination_cluster", destination.cluster.clone()),
        ("connection_security_policy", policy.to_string()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn services_come_from_cluster_names() {
        assert_eq!(
            service_of("outbound|9080|v1|reviews.default.svc.cluster.local"),
            (
                "reviews.default.svc.cluster.local".into(),
                "reviews".into(),
                "default".into()
            )
        );
        assert_eq!(
            service_of("outbound|443||api.example.com").2,
            "unknown".to_string()
        );
        assert_eq!(service_of("PassthroughCluster").0, "PassthroughCluster");
        assert_eq!(service_of("inbound|9080||").0, "unknown");
    }

    #[test]
    fn own_workload_from_node_metadata() {
        let m = json!({"NAMESPACE": "shop", "WORKLOAD_NAME": "sleep",
                       "LABELS": {"app": "sleep", "version": "v2"}});
        let w = Workload::from_metadata(m.as_object().unwrap());
        assert_eq!(w.workload, "sleep");
        assert_eq!(w.namespace, "shop");
        assert_eq!(w.canonical_service, "sleep");
        assert_eq!(w.canonical_revision, "v2");
        assert_eq!(w.cluster, "unknown");
        let bare = Workload::from_metadata(json!({"WORKLOAD_NAME": "x"}).as_object().unwrap());
        assert_eq!(
            (bare.app.as_str(), bare.canonical_service.as_str()),
            ("unknown", "x")
        );
        assert_eq!(bare.canonical_revision, "latest");
    }

    #[test]
    fn reporter_follows_direction() {
        assert_eq!(
            Reporter::of(Some("inbound|80||"), ""),
            Reporter::Destination
        );
        assert_eq!(
            Reporter::of(Some("outbound|80||a"), "inbound_x"),
            Reporter::Source
        );
        assert_eq!(
            Reporter::of(None, "inbound_0.0.0.0_80"),
            Reporter::Destination
        );
    }
}
