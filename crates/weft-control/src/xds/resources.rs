//! The five xDS types weftd serves, and one proxy's generated resources encoded as `Any`
//! with a version per resource, shared by pointer between the proxies that hold it.

use crate::translate::{
    Generated, CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, ROUTE_TYPE, SECRET_TYPE,
};
use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::config::listener::v3::Listener;
use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::Secret;
use envoy_types::pb::google::protobuf::Any;
use prost::Message;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::sync::Arc;

/// An xDS resource type, in push order: clusters before their endpoints, secrets before
/// the listeners that wait for them, listeners before their routes, so a proxy never points
/// at something it has not received yet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum XdsType {
    Cluster,
    Endpoint,
    Secret,
    Listener,
    Route,
}

/// How many types there are: the length of per-type arrays.
pub const TYPES: usize = 5;

impl XdsType {
    /// Every type, in make-before-break push order: CDS, EDS, SDS, LDS, RDS.
    pub const ALL: [XdsType; TYPES] = [
        XdsType::Cluster,
        XdsType::Endpoint,
        XdsType::Secret,
        XdsType::Listener,
        XdsType::Route,
    ];

    pub fn url(self) -> &'static str {
        match self {
            XdsType::Cluster => CLUSTER_TYPE,
            XdsType::Endpoint => ENDPOINT_TYPE,
            XdsType::Secret => SECRET_TYPE,
            XdsType::Listener => LISTENER_TYPE,
            XdsType::Route => ROUTE_TYPE,
        }
    }

    pub fn from_url(url: &str) -> Option<XdsType> {
        XdsType::ALL.into_iter().find(|t| t.url() == url)
    }

    /// Istio's short name, used in metrics labels and the debug API.
    pub fn short(self) -> &'static str {
        match self {
            XdsType::Cluster => "cds",
            XdsType::Endpoint => "eds",
            XdsType::Secret => "sds",
            XdsType::Listener => "lds",
            XdsType::Route => "rds",
        }
    }

    /// CDS and LDS are wildcard types: an empty subscription means "everything".
    pub fn is_wildcard(self) -> bool {
        matches!(self, XdsType::Cluster | XdsType::Listener)
    }

    pub fn index(self) -> usize {
        self as usize
    }
}

/// One resource as sent: the `Any` and a version that changes when its content does.
#[derive(Clone, Debug, PartialEq)]
pub struct Encoded {
    pub any: Any,
    pub version: String,
}

/// Resources of one type by name. Shared: proxies with the same view point at the same
/// encoded resources, and the status table holds the same pointers.
pub type Resources = BTreeMap<String, Arc<Encoded>>;

/// A proxy's resources of every type, indexed by [`XdsType::index`].
#[derive(Clone, Debug, Default)]
pub struct Typed(pub [Resources; TYPES]);

impl Typed {
    pub fn of(&self, t: XdsType) -> &Resources {
        &self.0[t.index()]
    }

    /// A proxy's resources from its view's shared part and its own part. Of a cluster both
    /// hold, the shared one is kept (as [`crate::translate::merge`] keeps it); of other
    /// types a name in both cannot occur, and the own one would replace the shared one.
    pub fn merge(shared: &Typed, own: &Typed) -> Typed {
        Typed(std::array::from_fn(|i| {
            let (shared, own) = (&shared.0[i], &own.0[i]);
            if own.is_empty() {
                return shared.clone();
            }
            let mut all = shared.clone();
            for (name, encoded) in own {
                if i != XdsType::Cluster.index() || !all.contains_key(name) {
                    all.insert(name.clone(), encoded.clone());
                }
            }
            all
        }))
    }

    /// Whether both hold the same names with the same versions, type by type.
    pub fn same_versions(&self, other: &Typed) -> bool {
        self.0.iter().zip(&other.0).all(|(a, b)| {
            a.len() == b.len()
                && a.iter().zip(b).all(|((na, ea), (nb, eb))| {
                    na == nb && (Arc::ptr_eq(ea, eb) || ea.version == eb.version)
                })
        })
    }
}

/// A generated message with the name xDS addresses it by.
trait Named: Message + PartialEq + Sized {
    fn xds_name(&self) -> &str;
}

impl Named for Cluster {
    fn xds_name(&self) -> &str {
        &self.name
    }
}
impl Named for ClusterLoadAssignment {
    fn xds_name(&self) -> &str {
        &self.cluster_name
    }
}
impl Named for Secret {
    fn xds_name(&self) -> &str {
        &self.name
    }
}
impl Named for Listener {
    fn xds_name(&self) -> &str {
        &self.name
    }
}
impl Named for RouteConfiguration {
    fn xds_name(&self) -> &str {
        &self.name
    }
}

/// Encodes `new`, keeping the previous version of every resource equal to its previous
/// message. Messages are compared, not bytes: prost encodes map fields in hash order, so
/// equal messages may encode differently and would otherwise cause needless pushes.
pub fn encode(previous: Option<(&Generated, &Typed)>, new: &Generated) -> Typed {
    let prev_typed = previous.map(|(_, t)| t);
    let prev = previous.map(|(g, _)| g);
    Typed([
        encode_type(
            prev.map(|g| &g.clusters[..]),
            prev_typed.map(|t| t.of(XdsType::Cluster)),
            &new.clusters,
            XdsType::Cluster,
        ),
        encode_type(
            prev.map(|g| &g.endpoints[..]),
            prev_typed.map(|t| t.of(XdsType::Endpoint)),
            &new.endpoints,
            XdsType::Endpoint,
        ),
        encode_type(
            prev.map(|g| &g.secrets[..]),
            prev_typed.map(|t| t.of(XdsType::Secret)),
            &new.secrets,
            XdsType::Secret,
        ),
        encode_type(
            prev.map(|g| &g.listeners[..]),
            prev_typed.map(|t| t.of(XdsType::Listener)),
            &new.listeners,
            XdsType::Listener,
        ),
        encode_type(
            prev.map(|g| &g.routes[..]),
            prev_typed.map(|t| t.of(XdsType::Route)),
            &new.routes,
            XdsType::Route,
        ),
    ])
}

fn encode_type<T: Named>(
    prev: Option<&[T]>,
    prev_encoded: Option<&Resources>,
    new: &[T],
    t: XdsType,
) -> Resources {
    let old: BTreeMap<&str, &T> = prev
        .unwrap_or_default()
        .iter()
        .map(|m| (m.xds_name(), m))
        .collect();
    new.iter()
        .map(|message| {
            let name = message.xds_name();
            let kept = old
                .get(name)
                .filter(|o| **o == message)
                .and_then(|_| prev_encoded?.get(name));
            let encoded = kept.cloned().unwrap_or_else(|| {
                let value = message.encode_to_vec();
                let version = hex::encode(&Sha256::digest(&value)[..8]);
                Arc::new(Encoded {
                    any: Any {
                        type_url: t.url().to_string(),
                        value,
                    },
                    version,
                })
            });
            (name.to_string(), encoded)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster(name: &str, limit: u32) -> Cluster {
        Cluster {
            name: name.to_string(),
            per_connection_buffer_limit_bytes: Some(
                envoy_types::pb::google::protobuf::UInt32Value { value: limit },
            ),
            ..Cluster::default()
        }
    }

    #[test]
    fn unchanged_resources_keep_their_version_and_changed_ones_get_a_new_one() {
        let first = Generated {
            clusters: vec![cluster("a", 1), cluster("b", 1)],
            ..Generated::default()
        };
        let first_typed = encode(None, &first);
        let second = Generated {
            clusters: vec![cluster("a", 1), cluster("b", 2)],
            ..Generated::default()
        };
        let second_typed = encode(Some((&first, &first_typed)), &second);
        let (c1, c2) = (
            first_typed.of(XdsType::Cluster),
            second_typed.of(XdsType::Cluster),
        );
        assert_eq!(c1["a"].version, c2["a"].version);
        assert_ne!(c1["b"].version, c2["b"].version);
        assert_eq!(c2["b"].any.type_url, CLUSTER_TYPE);
        assert_eq!(
            Cluster::decode(&c2["b"].any.value[..]).unwrap(),
            cluster("b", 2)
        );
    }

    #[test]
    fn type_urls_round_trip_in_push_order() {
        let shorts: Vec<_> = XdsType::ALL.iter().map(|t| t.short()).collect();
        assert_eq!(shorts, ["cds", "eds", "sds", "lds", "rds"]);
        for t in XdsType::ALL {
            assert_eq!(XdsType::from_url(t.url()), Some(t));
        }
        assert_eq!(XdsType::from_url("type.googleapis.com/x"), None);
    }
}
