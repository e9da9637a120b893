//! Resources accepted so far, per type, and the snapshot they make. Survives reconnects,
//! so the last good config stays in force while weftd is away.

use super::convert::{self, ResourceError};
use super::{CDS, EDS, LDS, RDS};
use crate::cluster::Upstream;
use crate::model::{
    Cluster, Discovery, Listener, LoadAssignment, NetworkFilter, RouteConfig, RouteSource,
};
use crate::state::{Snapshot, Versions};
use envoy_types::pb::google::protobuf::Any;
use prost::Message;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

#[derive(Debug, Default)]
pub struct Store {
    pub listeners: BTreeMap<String, Arc<Listener>>,
    pub routes: BTreeMap<String, Arc<RouteConfig>>,
    pub clusters: BTreeMap<String, Cluster>,
    pub assignments: BTreeMap<String, LoadAssignment>,
    pub versions: Versions,
    pub lds_applied: bool,
}

/// Decodes and converts every resource of a response; all or nothing, as a SotW ACK is.
fn convert_all<P, M>(
    kind: &'static str,
    type_url: &str,
    resources: &[Any],
    name: impl Fn(&P) -> String,
    conv: impl Fn(&P) -> convert::Result<M>,
) -> Result<Vec<(String, M)>, Vec<ResourceError>>
where
    P: Message + Default,
{
    let mut out = Vec::new();
    let mut errors = Vec::new();
    for (i, any) in resources.iter().enumerate() {
        if any.type_url != type_url {
            errors.push(ResourceError {
                kind,
                name: format!("#{i}"),
                error: convert::unsupported("type_url", any.type_url.clone()),
            });
            continue;
        }
        let proto = match P::decode(any.value.as_slice()) {
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
        match conv(&proto) {
            Ok(m) => out.push((name(&proto), m)),
            Err(error) => errors.push(ResourceError {
                kind,
                name: name(&proto),
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
    /// Applies one response of `type_url`; on any error nothing changes.
    pub fn apply(
        &mut self,
        type_url: &str,
        version: &str,
        resources: &[Any],
    ) -> Result<(), Vec<ResourceError>> {
        match type_url {
            CDS => {
                let all = convert_all(
                    "Cluster",
                    CDS,
                    resources,
                    |c: &envoy_types::pb::envoy::config::cluster::v3::Cluster| c.name.clone(),
                    convert::cluster::cluster,
                )?;
                self.clusters = all.into_iter().collect();
                let wanted = self.eds_names();
                self.assignments.retain(|k, _| wanted.contains(k));
                self.versions.cds = version.to_string();
            }
            LDS => {
                let all = convert_all(
                    "Listener",
                    LDS,
                    resources,
                    |l: &envoy_types::pb::envoy::config::listener::v3::Listener| l.name.clone(),
                    convert::listener::listener,
                )?;
                self.listeners = all.into_iter().map(|(k, v)| (k, Arc::new(v))).collect();
                let wanted = self.rds_names();
                self.routes.retain(|k, _| wanted.contains(k));
                self.versions.lds = version.to_string();
                self.lds_applied = true;
            }
            RDS => {
                let all = convert_all(
                    "RouteConfiguration",
                    RDS,
                    resources,
                    |r: &envoy_types::pb::envoy::config::route::v3::RouteConfiguration| {
                        r.name.clone()
                    },
                    convert::route::route_configuration,
                )?;
                self.routes
                    .extend(all.into_iter().map(|(k, v)| (k, Arc::new(v))));
                self.versions.rds = version.to_string();
            }
            EDS => {
                let all = convert_all(
                    "ClusterLoadAssignment",
                    EDS,
                    resources,
                    |c: &envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment| {
                        c.cluster_name.clone()
                    },
                    convert::endpoint::load_assignment,
                )?;
                self.assignments.extend(all);
                self.versions.eds = version.to_string();
            }
            other => {
                return Err(vec![ResourceError {
                    kind: "resource",
                    name: String::new(),
                    error: convert::unsupported("type_url", other.to_string()),
                }])
            }
        }
        Ok(())
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
            .filter_map(|l| match &l.filter {
                NetworkFilter::Http(h) => match &h.routes {
                    RouteSource::Rds(name) => Some(name.clone()),
                    RouteSource::Inline(_) => None,
                },
                NetworkFilter::TcpProxy { .. } => None,
            })
            .collect()
    }

    /// The snapshot of everything accepted; connection pools carry over from `previous`.
    pub fn snapshot(&self, previous: &Snapshot) -> Snapshot {
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
                    Discovery::OriginalDst => Vec::new(),
                    Discovery::Static | Discovery::StrictDns => c
                        .load_assignment
                        .as_ref()
                        .map(|la| la.endpoints.clone())
                        .unwrap_or_default(),
                };
                let prev = previous.clusters.get(name).map(|u| u.as_ref());
                (
                    name.clone(),
                    Arc::new(Upstream::new(c.clone(), endpoints, prev)),
                )
            })
            .collect();
        Snapshot {
            listeners: self.listeners.clone(),
            routes: self.routes.clone(),
            clusters,
            versions: self.versions.clone(),
            lds_applied: self.lds_applied,
        }
    }
}
