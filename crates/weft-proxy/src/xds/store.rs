//! Resources accepted so far, per type, and the snapshot they make. Survives reconnects,
//! so the last good config stays in force while weftd is away.
//!
//! Besides the converted model, each accepted resource is kept as the protobuf bytes it
//! arrived in, with its version and the time it was accepted ([`Accepted`]): the admin
//! `/config_dump` renders those to Envoy's JSON on request, and the delta client reports
//! their versions when it resumes.

use super::convert::{self, ResourceError};
use super::{CDS, EDS, LDS, RDS, SDS};
use crate::cluster::Upstream;
use crate::listener::tls::Termination;
use crate::model::{
    Cluster, Discovery, Listener, LoadAssignment, RouteConfig, RouteSource, Secret,
};
use crate::state::{Snapshot, Versions};
use crate::stats::Stats;
use envoy_types::pb::google::protobuf::Any;
use prost::Message;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::SystemTime;

/// One resource as accepted over xDS: its encoding as received (`Any.value`; decoded again
/// only for `/config_dump`, so no second copy of the config lives in memory), the version
/// it came with and when it was last changed.
#[derive(Debug, PartialEq, Eq)]
pub struct Accepted {
    pub version: String,
    pub encoded: Vec<u8>,
    pub last_updated: SystemTime,
}

/// Accepted resources by type and name, as the admin dumps them.
#[derive(Clone, Debug, Default)]
pub struct AcceptedResources {
    pub clusters: BTreeMap<String, Arc<Accepted>>,
    pub listeners: BTreeMap<String, Arc<Accepted>>,
    pub routes: BTreeMap<String, Arc<Accepted>>,
    pub assignments: BTreeMap<String, Arc<Accepted>>,
    pub secrets: BTreeMap<String, Arc<Accepted>>,
}

/// One resource of a response with the version it is accepted under: the response's
/// `version_info` in state-of-the-world, the resource's own `version` in delta xDS.
#[derive(Clone, Copy, Debug)]
pub struct Incoming<'a> {
    pub resource: &'a Any,
    pub version: &'a str,
}

#[derive(Debug, Default)]
pub struct Store {
    pub listeners: BTreeMap<String, Arc<Listener>>,
    pub routes: BTreeMap<String, Arc<RouteConfig>>,
    pub clusters: BTreeMap<String, Cluster>,
    pub assignments: BTreeMap<String, LoadAssignment>,
    /// SDS secrets by name, as clusters' and listeners' TLS contexts name them.
    pub secrets: BTreeMap<String, Arc<Secret>>,
    pub versions: Versions,
    pub lds_applied: bool,
    /// What was accepted, as received.
    pub accepted: AcceptedResources,
}

/// One xDS resource type as the store keeps it: how a resource is decoded, named and
/// converted, and where it goes. Implemented for [`Clusters`], [`Listeners`], [`Routes`],
/// [`Assignments`] and [`Secrets`]; [`Store::apply_kind`] applies any of them.
///
/// For the delta client: apply a `DeltaDiscoveryResponse` of, say, SDS with
/// `store.apply_kind::<Secrets>(&resp.system_version_info, Change::Update { resources:
/// &anys, removed: &resp.removed_resources })` (`anys`: each `Resource.resource`); on
/// `Err` NACK the response whole. Subscribe SDS to [`Store::sds_names`] after every CDS or
/// LDS change, as EDS to [`Store::eds_names`] and RDS to [`Store::rds_names`].
pub trait ResourceKind {
    const TYPE_URL: &'static str;
    /// Proto message name, for NACK messages (`Cluster x: ...`).
    const KIND: &'static str;
    type Proto: Message + Default;
    type Stored;
    fn name(p: &Self::Proto) -> String;
    fn convert(p: &Self::Proto) -> convert::Result<Self::Stored>;
    /// The store's map of this type.
    fn map(store: &mut Store) -> &mut BTreeMap<String, Self::Stored>;
    /// The store's accepted version of this type.
    fn version(store: &mut Store) -> &mut String;
    /// The encoded resources of this type, as received.
    fn accepted(store: &mut Store) -> &mut BTreeMap<String, Arc<Accepted>>;
}

/// What one response changes in a type's resources.
#[derive(Clone, Copy, Debug)]
pub enum Change<'a> {
    /// The complete set (state-of-the-world CDS and LDS): whatever is not in it goes.
    Replace(&'a [Incoming<'a>]),
    /// Resources added or updated, and names removed (state-of-the-world RDS, EDS and
    /// SDS, where a response need not repeat every name; delta xDS for every type).
    Update {
        resources: &'a [Incoming<'a>],
        removed: &'a [String],
    },
}

macro_rules! kind {
    ($(#[$doc:meta])* $kind:ident, $type_url:expr, $proto:ty, $stored:ty, $field:ident, $version:ident,
     |$p:ident| $name:expr, $convert:expr) => {
        $(#[$doc])*
        pub struct $kind;
        impl ResourceKind for $kind {
            const TYPE_URL: &'static str = $type_url;
            const KIND: &'static str = stringify!($proto);
            type Proto = $proto;
            type Stored = $stored;
            fn name($p: &$proto) -> String {
                $name
            }
            fn convert(p: &$proto) -> convert::Result<$stored> {
                $convert(p)
            }
            fn map(store: &mut Store) -> &mut BTreeMap<String, $stored> {
                &mut store.$field
            }
            fn version(store: &mut Store) -> &mut String {
                &mut store.versions.$version
            }
            fn accepted(store: &mut Store) -> &mut BTreeMap<String, Arc<Accepted>> {
                &mut store.accepted.$field
            }
        }
    };
}

use envoy_types::pb::envoy::config::cluster::v3::Cluster as ClusterProto;
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::config::listener::v3::Listener as ListenerProto;
use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::Secret as SecretProto;

kind!(
    /// CDS.
    Clusters, CDS, ClusterProto, Cluster, clusters, cds, |c| c.name.clone(),
    convert::cluster::cluster
);
kind!(
    /// LDS.
    Listeners, LDS, ListenerProto, Arc<Listener>, listeners, lds, |l| l.name.clone(),
    |l| convert::listener::listener(l).map(Arc::new)
);
kind!(
    /// RDS.
    Routes, RDS, RouteConfiguration, Arc<RouteConfig>, routes, rds, |r| r.name.clone(),
    |r| convert::route::route_configuration(r).map(Arc::new)
);
kind!(
    /// EDS.
    Assignments, EDS, ClusterLoadAssignment, LoadAssignment, assignments, eds,
    |c| c.cluster_name.clone(), convert::endpoint::load_assignment
);
kind!(
    /// SDS.
    Secrets, SDS, SecretProto, Arc<Secret>, secrets, sds, |s| s.name.clone(),
    |s| convert::tls::secret(s).map(Arc::new)
);

/// A resource decoded and converted, with what the admin dumps of it.
struct Converted<'a, S> {
    name: String,
    stored: S,
    incoming: Incoming<'a>,
}

/// Decodes and converts every resource of a response; all or nothing, as a SotW ACK is.
fn convert_all<'a, K: ResourceKind>(
    resources: &[Incoming<'a>],
) -> Result<Vec<Converted<'a, K::Stored>>, Vec<ResourceError>> {
    let kind = K::KIND;
    let mut out = Vec::new();
    let mut errors = Vec::new();
    for (i, incoming) in resources.iter().enumerate() {
        let any = incoming.resource;
        if any.type_url != K::TYPE_URL {
            errors.push(ResourceError {
                kind,
                name: format!("#{i}"),
                error: convert::unsupported("type_url", any.type_url.clone()),
            });
            continue;
        }
        let proto = match K::Proto::decode(any.value.as_slice()) {
            Ok(p) => p,
            Err(e) => {
                errors.push(ResourceError {
                    kind,
                    name: format!("#{i}"),
                    error: convert::ConvertError::Decode {
                        field: String::new(),
                        type_url: any.type_url.clone(),
                        reason: e.to_string(),
                    },
                });
                continue;
            }
        };
        match K::convert(&proto) {
            Ok(stored) => out.push(Converted {
                name: K::name(&proto),
                stored,
                incoming: *incoming,
            }),
            Err(error) => errors.push(ResourceError {
                kind,
                name: K::name(&proto),
                error,
            }),
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

impl Store {
    /// Applies one state-of-the-world response of `type_url`; on any error nothing
    /// changes. CDS and LDS responses are complete sets; RDS, EDS and SDS ones update the
    /// names they carry.
    pub fn apply(
        &mut self,
        type_url: &str,
        version: &str,
        resources: &[Any],
    ) -> Result<(), Vec<ResourceError>> {
        let resources: Vec<Incoming<'_>> = resources
            .iter()
            .map(|resource| Incoming { resource, version })
            .collect();
        let resources = &resources[..];
        let update = Change::Update {
            resources,
            removed: &[],
        };
        match type_url {
            CDS => self.apply_kind::<Clusters>(version, Change::Replace(resources)),
            LDS => self.apply_kind::<Listeners>(version, Change::Replace(resources)),
            RDS => self.apply_kind::<Routes>(version, update),
            EDS => self.apply_kind::<Assignments>(version, update),
            SDS => self.apply_kind::<Secrets>(version, update),
            other => Err(vec![ResourceError {
                kind: "resource",
                name: String::new(),
                error: convert::unsupported("type_url", other.to_string()),
            }]),
        }
    }

    /// Applies `change` to the resources of kind `K` and records `version`; all or
    /// nothing. Afterwards, route configurations, load assignments and secrets that no
    /// listener or cluster references any more are dropped (Envoy forgets them too), so
    /// the next snapshot never serves a stale one. Shared by the state-of-the-world and
    /// the delta clients: a delta response is `Change::Update` with its removed names.
    pub fn apply_kind<K: ResourceKind>(
        &mut self,
        version: &str,
        change: Change<'_>,
    ) -> Result<(), Vec<ResourceError>> {
        let all = match change {
            Change::Replace(resources) => {
                let all = convert_all::<K>(resources)?;
                let names: BTreeSet<&str> = all.iter().map(|c| c.name.as_str()).collect();
                K::map(self).retain(|name, _| names.contains(name.as_str()));
                K::accepted(self).retain(|name, _| names.contains(name.as_str()));
                all
            }
            Change::Update { resources, removed } => {
                let all = convert_all::<K>(resources)?;
                for name in removed {
                    K::map(self).remove(name);
                    K::accepted(self).remove(name);
                }
                all
            }
        };
        let now = SystemTime::now();
        for c in all {
            K::map(self).insert(c.name.clone(), c.stored);
            let encoded = &c.incoming.resource.value;
            let accepted = K::accepted(self);
            // Resent unchanged, a resource keeps the version and time it was accepted
            // under, as Envoy skips an update whose content did not change.
            if accepted.get(&c.name).is_some_and(|a| a.encoded == *encoded) {
                continue;
            }
            let entry = Accepted {
                version: c.incoming.version.to_string(),
                encoded: encoded.clone(),
                last_updated: now,
            };
            accepted.insert(c.name, Arc::new(entry));
        }
        *K::version(self) = version.to_string();
        if K::TYPE_URL == LDS {
            self.lds_applied = true;
        }
        self.prune();
        Ok(())
    }

    /// Drops what nothing references (see [`Store::apply_kind`]).
    fn prune(&mut self) {
        let eds = self.eds_names();
        self.assignments.retain(|k, _| eds.contains(k));
        self.accepted.assignments.retain(|k, _| eds.contains(k));
        let rds = self.rds_names();
        self.routes.retain(|k, _| rds.contains(k));
        self.accepted.routes.retain(|k, _| rds.contains(k));
        let sds = self.sds_names();
        self.secrets.retain(|k, _| sds.contains(k));
        self.accepted.secrets.retain(|k, _| sds.contains(k));
    }

    /// SDS secret names the clusters' and listeners' TLS contexts reference.
    pub fn sds_names(&self) -> BTreeSet<String> {
        let clusters = self
            .clusters
            .values()
            .flat_map(|c| c.tls_contexts())
            .flat_map(|t| t.secret_names());
        let listeners = self
            .listeners
            .values()
            .flat_map(|l| l.filter_chains.iter())
            .filter_map(|c| c.tls.as_ref())
            .flat_map(|t| t.secret_names());
        clusters
            .chain(listeners)
            // The workload certificate is the proxy's own (crate::identity), never asked for.
            .filter(|n| !crate::identity::is_local_secret(n))
            .cloned()
            .collect()
    }

    /// EDS service names the clusters need.
    pub fn eds_names(&self) -> BTreeSet<String> {
        self.clusters
            .values()
            .filter_map(|c| match &c.discovery {
                Discovery::Eds { service_name } => Some(service_name.clone()),
                _ => None,
            })
            .collect()
    }

    /// Route configuration names the listeners fetch over RDS.
    pub fn rds_names(&self) -> BTreeSet<String> {
        self.listeners
            .values()
            .flat_map(|l| l.http_connection_managers())
            .filter_map(|h| match &h.routes {
                RouteSource::Rds(name) => Some(name.clone()),
                RouteSource::Inline(_) => None,
            })
            .collect()
    }

    /// TLS termination for each distinct downstream context of the listeners.
    fn tls_servers(
        &self,
        previous: &Snapshot,
        secrets: &BTreeMap<String, Arc<Secret>>,
    ) -> Vec<Arc<Termination>> {
        let mut out: Vec<Arc<Termination>> = Vec::new();
        for context in self
            .listeners
            .values()
            .flat_map(|l| l.filter_chains.iter())
            .filter_map(|c| c.tls.as_ref())
        {
            if out.iter().any(|t| t.config == *context) {
                continue;
            }
            let kept = previous
                .tls_servers
                .iter()
                .find(|t| t.is_for(context, secrets));
            out.push(match kept {
                Some(t) => t.clone(),
                None => Arc::new(Termination::new(context, secrets)),
            });
        }
        out
    }

    /// The snapshot of everything accepted; connection pools carry over from `previous`.
    pub fn snapshot(&self, previous: &Snapshot, stats: &Stats) -> Snapshot {
        // SDS secrets and the proxy's own workload certificate (`default`).
        let secrets =
            crate::identity::with_local_secrets(&self.secrets, previous.identity.as_ref());
        let clusters = self
            .clusters
            .iter()
            .map(|(name, c)| {
                let endpoints = match &c.discovery {
                    Discovery::Eds { service_name } => self
                        .assignments
                        .get(service_name)
                        .map(|la| la.endpoints.clone())
                        .unwrap_or_default(),
                    Discovery::OriginalDst { .. } => Vec::new(),
                    Discovery::Static
                    | Discovery::StrictDns { .. }
                    | Discovery::LogicalDns { .. } => c
                        .load_assignment
                        .as_ref()
                        .map(|la| la.endpoints.clone())
                        .unwrap_or_default(),
                };
                let prev = previous.clusters.get(name).map(|u| u.as_ref());
                (
                    name.clone(),
                    Arc::new(Upstream::with_secrets(
                        c.clone(),
                        endpoints,
                        prev,
                        stats.cluster(name),
                        &secrets,
                    )),
                )
            })
            .collect();
        Snapshot {
            listeners: self.listeners.clone(),
            routes: self.routes.clone(),
            clusters,
            versions: self.versions.clone(),
            lds_applied: self.lds_applied,
            tls_servers: self.tls_servers(previous, &secrets),
            accepted: self.accepted.clone(),
            identity: previous.identity.clone(),
        }
    }
}
