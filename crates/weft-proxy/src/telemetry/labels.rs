//! Istio's standard metric labels: the peer descriptions (source and destination) built
//! from node metadata and cluster names, with Istio's `unknown` where nothing is known,
//! and the principals and connection security policy from what TLS handshakes proved.

use serde_json::{Map, Value};
use std::sync::Arc;

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
    /// `LABELS`, `CLUSTER_ID`). The principal stays unknown here: it is a fact of each
    /// connection, not of the node ([`apply_security`]).
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

impl Workload {
    /// The destination an endpoint's Istio metadata names
    /// (`<workload>;<namespace>;<canonical service>;<canonical revision>;<cluster>`, from
    /// EDS), as Istio's stats plugin reads it: fewer than five parts mean nothing; the
    /// encoding has no app, version or principal; an empty revision is `latest`.
    pub fn from_endpoint(encoded: &str) -> Option<Workload> {
        let parts: Vec<&str> = encoded.split(';').collect();
        let [workload, namespace, service, revision, cluster, ..] = parts[..] else {
            return None;
        };
        let known = |s: &str| if s.is_empty() { UNKNOWN } else { s }.to_string();
        Some(Workload {
            workload: known(workload),
            namespace: known(namespace),
            principal: UNKNOWN.into(),
            app: UNKNOWN.into(),
            version: UNKNOWN.into(),
            canonical_service: known(service),
            canonical_revision: if revision.is_empty() {
                "latest"
            } else {
                revision
            }
            .into(),
            cluster: known(cluster),
        })
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
    peer_labels_to(reporter, own, cluster, None)
}

/// [`peer_labels`] of a request that reached an endpoint: `upstream` is the endpoint's
/// Istio workload metadata ([`Workload::from_endpoint`]), which names the destination
/// workload on the source side. Without it, the source side knows no destination
/// workload, and reports its revision as `latest`, as Istio's client sidecar does.
pub fn peer_labels_to(
    reporter: Reporter,
    own: &Workload,
    cluster: Option<&str>,
    upstream: Option<&str>,
) -> Vec<(&'static str, String)> {
    let unknown = Workload::unknown();
    let endpoint = upstream.and_then(Workload::from_endpoint);
    let peer = endpoint.unwrap_or_else(|| Workload {
        canonical_revision: "latest".into(),
        ..Workload::unknown()
    });
    let (source, destination) = match reporter {
        Reporter::Source => (own, &peer),
        Reporter::Destination => (&unknown, own),
    };
    let (service, name, mut namespace) = match cluster {
        Some(c) => service_of(c),
        None => (UNKNOWN.into(), UNKNOWN.into(), UNKNOWN.into()),
    };
    // A service outside `*.svc.*` is in the namespace of the workload behind it.
    if namespace == UNKNOWN && reporter == Reporter::Source {
        namespace = destination.namespace.clone();
    }
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

/// What a request's connection proved about identities, for Istio's principal labels.
/// Only names a TLS handshake established belong here: `peer` is the verified
/// certificate of the other side, `own` the certificate this proxy presented on that
/// same connection (both by their first `spiffe://` URI SAN). Plaintext has neither.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Security {
    /// The other side's verified SPIFFE id: the client inbound, the server outbound.
    pub peer: Option<Arc<str>>,
    /// The SPIFFE id of the certificate this proxy presented on the connection.
    pub own: Option<Arc<str>>,
}

impl Security {
    /// Nothing proven (plaintext, or TLS without URI SANs): the labels keep their
    /// defaults.
    pub fn is_empty(&self) -> bool {
        self.peer.is_none() && self.own.is_none()
    }

    /// Istio's inbound `mutual_tls`: both sides presented an identity.
    pub fn mutual_tls(&self) -> bool {
        self.peer.is_some() && self.own.is_some()
    }
}

/// The namespace of a SPIFFE id `spiffe://<trust domain>/ns/<namespace>/sa/<account>`.
pub fn spiffe_namespace(id: &str) -> Option<&str> {
    let path = id.strip_prefix("spiffe://")?.split_once('/')?.1;
    match path.split('/').collect::<Vec<_>>().as_slice() {
        ["ns", ns, "sa", _] if !ns.is_empty() => Some(ns),
        _ => None,
    }
}

/// Sets `connection_security_policy`, `source_principal` and `destination_principal` in
/// `labels` (as [`peer_labels_to`] made them) as Istio's stats filter fills them.
/// Inbound (destination reporter): the source is the verified client, the destination
/// this proxy's certificate, and the policy `mutual_tls` when both are known, else
/// `none`. Outbound (source reporter): the source is this proxy's client certificate, the
/// destination the verified server, and the policy stays `unknown` (a client cannot know
/// what the server enforces). The peer's namespace comes from its SPIFFE id when there is
/// one (Istio prefers it to peer metadata): the source workload namespace inbound, the
/// destination workload and service namespaces outbound.
pub fn apply_security(
    reporter: Reporter,
    security: &Security,
    labels: &mut [(&'static str, String)],
) {
    let name = |p: &Option<Arc<str>>| p.as_deref().unwrap_or(UNKNOWN).to_string();
    let peer_namespace = security.peer.as_deref().and_then(spiffe_namespace);
    let (source, destination, policy) = match reporter {
        Reporter::Destination => (
            name(&security.peer),
            name(&security.own),
            if security.mutual_tls() {
                "mutual_tls"
            } else {
                "none"
            },
        ),
        Reporter::Source => (name(&security.own), name(&security.peer), UNKNOWN),
    };
    let namespace_labels: &[&str] = match reporter {
        Reporter::Destination => &["source_workload_namespace"],
        Reporter::Source => &[
            "destination_workload_namespace",
            "destination_service_namespace",
        ],
    };
    for (label, value) in labels.iter_mut() {
        match *label {
            "source_principal" => *value = source.clone(),
            "destination_principal" => *value = destination.clone(),
            "connection_security_policy" => *value = policy.to_string(),
            l if namespace_labels.contains(&l) => {
                if let Some(ns) = peer_namespace {
                    *value = ns.to_string();
                }
            }
            _ => {}
        }
    }
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
    fn destination_workload_from_endpoint_metadata() {
        let w = Workload::from_endpoint("reviews-v2-10.0.0.1;bookinfo;reviews;;").unwrap();
        assert_eq!(w.workload, "reviews-v2-10.0.0.1");
        assert_eq!(w.namespace, "bookinfo");
        assert_eq!(w.canonical_service, "reviews");
        assert_eq!(w.canonical_revision, "latest");
        assert_eq!((w.app.as_str(), w.cluster.as_str()), ("unknown", "unknown"));
        assert_eq!(Workload::from_endpoint("a;b;c;d"), None);

        let own = Workload::from_metadata(json!({"WORKLOAD_NAME": "sleep"}).as_object().unwrap());
        let labels: std::collections::BTreeMap<_, _> = peer_labels_to(
            Reporter::Source,
            &own,
            Some("outbound|443||api.example.com"),
            Some("api-1;external;api;v3;east"),
        )
        .into_iter()
        .collect();
        assert_eq!(labels["destination_workload"], "api-1");
        assert_eq!(labels["destination_canonical_revision"], "v3");
        assert_eq!(labels["destination_cluster"], "east");
        // Outside `*.svc.*`, the service's namespace is the workload's.
        assert_eq!(labels["destination_service_namespace"], "external");
        assert_eq!(labels["source_workload"], "sleep");
        // Inbound, the proxy is the destination whatever the endpoint says.
        let inbound: std::collections::BTreeMap<_, _> =
            peer_labels_to(Reporter::Destination, &own, Some("inbound|80||"), None)
                .into_iter()
                .collect();
        assert_eq!(inbound["destination_workload"], "sleep");
    }

    #[test]
    fn principals_and_policy_as_istio_fills_them() {
        let own = Workload::from_metadata(json!({"WORKLOAD_NAME": "reviews"}).as_object().unwrap());
        let labels = |reporter, cluster, security: &Security| {
            let mut l = peer_labels_to(reporter, &own, Some(cluster), None);
            apply_security(reporter, security, &mut l);
            l.into_iter().collect::<std::collections::BTreeMap<_, _>>()
        };
        let id = |s: &str| Some(Arc::<str>::from(s));
        let inbound_mtls = Security {
            peer: id("spiffe://cluster.local/ns/shop/sa/productpage"),
            own: id("spiffe://cluster.local/ns/default/sa/reviews"),
        };
        let inbound = labels(Reporter::Destination, "inbound|9080||", &inbound_mtls);
        assert_eq!(inbound["connection_security_policy"], "mutual_tls");
        assert_eq!(
            inbound["source_principal"],
            "spiffe://cluster.local/ns/shop/sa/productpage"
        );
        assert_eq!(
            inbound["destination_principal"],
            "spiffe://cluster.local/ns/default/sa/reviews"
        );
        assert_eq!(inbound["source_workload_namespace"], "shop");

        let outbound_mtls = Security {
            peer: id("spiffe://cluster.local/ns/shop/sa/ratings"),
            own: id("spiffe://cluster.local/ns/default/sa/reviews"),
        };
        let cluster = "outbound|9080||ratings.shop.svc.cluster.local";
        let outbound = labels(Reporter::Source, cluster, &outbound_mtls);
        assert_eq!(outbound["connection_security_policy"], "unknown");
        assert_eq!(
            outbound["source_principal"],
            "spiffe://cluster.local/ns/default/sa/reviews"
        );
        assert_eq!(
            outbound["destination_principal"],
            "spiffe://cluster.local/ns/shop/sa/ratings"
        );
        assert_eq!(outbound["destination_workload_namespace"], "shop");
        assert_eq!(outbound["destination_service_namespace"], "shop");

        // Plain text proves nothing: Istio's defaults on both sides.
        let inbound = labels(
            Reporter::Destination,
            "inbound|9080||",
            &Security::default(),
        );
        assert_eq!(inbound["connection_security_policy"], "none");
        assert_eq!(inbound["source_principal"], "unknown");
        assert_eq!(inbound["destination_principal"], "unknown");
        assert_eq!(inbound["source_workload_namespace"], "unknown");
        let outbound = labels(Reporter::Source, cluster, &Security::default());
        assert_eq!(outbound["connection_security_policy"], "unknown");
        assert_eq!(outbound["source_principal"], "unknown");
        assert_eq!(outbound["destination_principal"], "unknown");
        // A client without a certificate (one-way TLS): no mutual TLS, but the server's
        // own certificate still names the destination, as in Istio.
        let one_way = Security {
            peer: None,
            ..inbound_mtls
        };
        let inbound = labels(Reporter::Destination, "inbound|9080||", &one_way);
        assert_eq!(inbound["connection_security_policy"], "none");
        assert_eq!(inbound["source_principal"], "unknown");
        assert_eq!(
            inbound["destination_principal"],
            "spiffe://cluster.local/ns/default/sa/reviews"
        );
    }

    #[test]
    fn spiffe_namespaces() {
        assert_eq!(
            spiffe_namespace("spiffe://cluster.local/ns/shop/sa/x"),
            Some("shop")
        );
        assert_eq!(spiffe_namespace("spiffe://td/ns//sa/x"), None);
        assert_eq!(spiffe_namespace("spiffe://td/other/path"), None);
        assert_eq!(spiffe_namespace("https://td/ns/a/sa/b"), None);
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
