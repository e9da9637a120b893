//! The service registry without Kubernetes: services from ServiceEntries, their instances
//! from inline endpoints and WorkloadEntries (including auto-registered ones).

use std::collections::{BTreeMap, HashMap};
use std::sync::OnceLock;
use weft_config::Resource;

mod protocol;
mod service_entry;
#[cfg(test)]
mod tests;

/// Istio's protocol of a service port, from its `protocol` field or name prefix.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Protocol {
    Http,
    Http2,
    Grpc,
    Https,
    Tls,
    Tcp,
    /// Not declared: Istio sniffs the protocol; treated like TCP by explicit listeners.
    #[default]
    Unknown,
}

impl Protocol {
    /// HTTP/1.1, HTTP/2 and gRPC ports get an HTTP connection manager.
    pub fn is_http(self) -> bool {
        matches!(self, Protocol::Http | Protocol::Http2 | Protocol::Grpc)
    }
}

/// How the proxy finds a service's endpoints (ServiceEntry `resolution`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Resolution {
    #[default]
    None,
    Static,
    Dns,
    DnsRoundRobin,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct ServicePort {
    pub number: u32,
    pub name: String,
    pub protocol: Protocol,
    /// Port on the workload when the entry names no per-endpoint port.
    pub target_port: Option<u32>,
}

/// One service: a host name (FQDN) with ports.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Service {
    /// `reviews.default.svc.cluster.local`, or an external name such as `api.example.com`.
    pub hostname: String,
    /// Namespace of the ServiceEntry that declared it.
    pub namespace: String,
    pub ports: Vec<ServicePort>,
    pub addresses: Vec<String>,
    pub resolution: Resolution,
    /// `location: MESH_EXTERNAL`.
    pub mesh_external: bool,
    /// Namespaces that may see the service (`*` all, `.` its own); empty = everywhere.
    pub export_to: Vec<String>,
}

/// One running instance able to serve a service.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Instance {
    /// Name of the WorkloadEntry (or `<serviceentry>/<index>` for inline endpoints).
    pub name: String,
    pub namespace: String,
    pub address: String,
    /// Port name -> port on this instance.
    pub ports: BTreeMap<String, u32>,
    pub labels: BTreeMap<String, String>,
    pub service_account: String,
    pub locality: String,
    pub weight: u32,
    /// False when its WorkloadGroup probe reported it unhealthy.
    pub healthy: bool,
}

/// Every service and its instances, at one revision.
#[derive(Clone, Debug, Default)]
pub struct Registry {
    pub services: Vec<Service>,
    /// Service hostname -> instances that serve it.
    pub instances: BTreeMap<String, Vec<Instance>>,
    /// Hostname -> position in `services`, built on first lookup: translation looks
    /// services up per port per proxy, and a scan of 1,000 services each time was a third
    /// of weftd's CPU in the control-plane benchmark.
    by_host: OnceLock<HashMap<String, usize>>,
    /// (namespace, workload name) -> positions in `services` of the services it is an
    /// instance of, built on first lookup: every proxy's inbound side asks which services
    /// select its workload, and scanning every instance of 1,000 services for it was most
    /// of weftd's CPU per push once the outbound side was shared.
    by_workload: OnceLock<(usize, crate::model::snapshot::PositionIndex)>,
    /// Every PeerAuthentication, oldest first (Istio's precedence within a level). Each
    /// endpoint is checked against them for auto mTLS, so they are kept apart from the
    /// thousands of other resources.
    pub peer_authentications: Vec<Resource>,
}

impl Registry {
    /// Builds the registry from ServiceEntries and WorkloadEntries.
    pub fn build(resources: &[Resource]) -> Registry {
        let mut registry = service_entry::build(resources);
        // Building looks services up while it adds them, which froze the index over the
        // first few; index the finished list instead (else every later lookup scans).
        registry.by_host = OnceLock::new();
        registry.by_workload = OnceLock::new();
        let mut peers: Vec<Resource> = resources
            .iter()
            .filter(|r| matches!(r.spec, weft_config::Spec::PeerAuthentication(_)))
            .cloned()
            .collect();
        peers.sort_by(|a, b| {
            (&a.metadata.creation_timestamp, &a.metadata.name)
                .cmp(&(&b.metadata.creation_timestamp, &b.metadata.name))
        });
        registry.peer_authentications = peers;
        registry
    }

    /// The service with this exact hostname.
    pub fn service(&self, hostname: &str) -> Option<&Service> {
        let index = self.by_host.get_or_init(|| {
            let mut index = HashMap::with_capacity(self.services.len());
            for (i, service) in self.services.iter().enumerate() {
                // The first registration of a hostname wins, as a scan would find it.
                index.entry(service.hostname.clone()).or_insert(i);
            }
            index
        });
        match index.get(hostname).and_then(|&i| self.services.get(i)) {
            Some(service) if service.hostname == hostname => Some(service),
            // Services pushed after the index was built are still found.
            _ => self.services.iter().find(|s| s.hostname == hostname),
        }
    }

    /// The services that have the workload `namespace/name` among their instances, in
    /// registry order.
    pub fn services_of<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
    ) -> Box<dyn Iterator<Item = &'a Service> + 'a> {
        let (indexed, index) = self.by_workload.get_or_init(|| {
            let mut index = crate::model::snapshot::PositionIndex::new();
            for (i, service) in self.services.iter().enumerate() {
                for instance in self.instances.get(&service.hostname).into_iter().flatten() {
                    let at = index
                        .entry((instance.namespace.clone(), instance.name.clone()))
                        .or_default();
                    if at.last() != Some(&i) {
                        at.push(i);
                    }
                }
            }
            (self.services.len(), index)
        });
        if *indexed != self.services.len() {
            // Services added after the index was built: scan, as before the index.
            return Box::new(self.services.iter().filter(move |s| {
                self.instances.get(&s.hostname).is_some_and(|all| {
                    all.iter()
                        .any(|i| i.name == name && i.namespace == namespace)
                })
            }));
        }
        let found = index
            .get(&(namespace.to_string(), name.to_string()))
            .map(Vec::as_slice)
            .unwrap_or_default();
        Box::new(found.iter().filter_map(|&i| self.services.get(i)))
    }

    /// Instances of a service, with the port each listens on for service port `port`.
    /// The instance's port is, like Istio: its own port of that name, else the service
    /// port's `targetPort`, else the service port itself.
    pub fn endpoints(&self, hostname: &str, port: u32) -> Vec<(&Instance, u32)> {
        let Some(service_port) = self
            .service(hostname)
            .and_then(|s| s.ports.iter().find(|p| p.number == port))
        else {
            return Vec::new();
        };
        let fallback = service_port.target_port.unwrap_or(service_port.number);
        self.instances
            .get(hostname)
            .into_iter()
            .flatten()
            .map(|i| {
                (
                    i,
                    i.ports.get(&service_port.name).copied().unwrap_or(fallback),
                )
            })
            .collect()
    }
}

/// Istio's short-name rule: `reviews` seen from namespace `default` is
/// `reviews.default.svc.cluster.local`; names with a dot are taken as written... except
/// `reviews.default`, which Istio does not expand either.
pub fn resolve_short_name(host: &str, namespace: &str) -> String {
    if host.contains('.') || host.contains('*') {
        host.to_string()
    } else {
        format!("{host}.{namespace}.svc.cluster.local")
    }
}
