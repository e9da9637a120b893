//! What one proxy may see, like Istio's SidecarScope: services, VirtualServices and
//! DestinationRules exported to its namespace (`exportTo`), narrowed by the Sidecar resource
//! that applies to it (`egress[].hosts`).

use super::destination_rule::{visible, ROOT_NAMESPACE};
use crate::mesh;
use crate::model::{MeshSnapshot, Proxy, ProxyKind};
use crate::registry::{resolve_short_name, Service};
use std::collections::{BTreeMap, BTreeSet};
use weft_config::networking::shared::{host_subset_of, hosts_overlap};
use weft_config::networking::sidecar::{OutboundMode, Sidecar};
use weft_config::networking::virtual_service::{VirtualService, MESH_GATEWAY};
use weft_config::{Resource, Spec};

/// Ports of a service a proxy imports: `None` is every port.
type Ports = Option<BTreeSet<u32>>;

/// The visibility of the mesh from one proxy, computed once per (snapshot, proxy).
#[derive(Clone, Debug, Default)]
pub struct Scope {
    /// The proxy's namespace (`default` when unset).
    namespace: String,
    /// `namespace/name` of the Sidecar in force, if any.
    sidecar: Option<String>,
    /// Hostname -> imported ports, for every service the proxy sees.
    services: BTreeMap<String, Ports>,
    /// `namespace/name` of every root VirtualService the proxy sees.
    virtual_services: BTreeSet<String>,
    /// The Sidecar's `outboundTrafficPolicy`, else the mesh config's (ALLOW_ANY by default).
    allow_any: bool,
}

/// One `egress` listener of a Sidecar: namespace -> imported host patterns.
struct Egress {
    /// A listener bound to a port imports only that port of each service.
    port: Option<u32>,
    hosts: BTreeMap<String, Vec<String>>,
}

impl Egress {
    /// `ns/host` entries, `.` being the namespace the Sidecar takes effect in (for a root
    /// namespace Sidecar, the proxy's own). An entry without `/` is ignored, as Istio does.
    fn new(port: Option<u32>, hosts: &[String], namespace: &str) -> Egress {
        let mut by_ns: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for h in hosts {
            let Some((ns, host)) = h.split_once('/') else {
                continue;
            };
            let ns = if ns == "." { namespace } else { ns };
            by_ns
                .entry(ns.to_string())
                .or_default()
                .push(host.to_string());
        }
        Egress { port, hosts: by_ns }
    }

    /// An explicit `ns/...` import for the service's namespace wins over `*/...`.
    fn imports_service(&self, s: &Service) -> bool {
        let patterns = self.hosts.get(&s.namespace).or_else(|| self.hosts.get("*"));
        patterns.is_some_and(|ps| ps.iter().any(|p| host_subset_of(&s.hostname, p)))
    }

    /// VirtualServices match `ns/host` for their own namespace and `*/host`, both ways.
    fn imports_virtual_service(&self, namespace: &str, hosts: &[String]) -> bool {
        [namespace, "*"]
            .iter()
            .filter_map(|ns| self.hosts.get(*ns))
            .flatten()
            .any(|p| hosts.iter().any(|h| hosts_overlap(h, p)))
    }

    fn ports(&self, s: &Service) -> Ports {
        self.port.map(|p| {
            s.ports
                .iter()
                .map(|sp| sp.number)
                .filter(|n| *n == p)
                .collect()
        })
    }
}

impl Scope {
    pub fn new(snapshot: &MeshSnapshot, proxy: &Proxy) -> Scope {
        let namespace = if proxy.namespace.is_empty() {
            "default".to_string()
        } else {
            proxy.namespace.clone()
        };
        let exported: Vec<&Service> = snapshot
            .registry
            .services
            .iter()
            .filter(|s| visible(&s.export_to, &s.namespace, &namespace))
            .collect();
        let mesh_vss: Vec<(&Resource, &VirtualService)> = snapshot
            .resources
            .iter()
            .filter_map(|r| match &r.spec {
                Spec::VirtualService(vs) if !vs.hosts.is_empty() => Some((r, vs.as_ref())),
                _ => None,
            })
            .filter(|(r, vs)| visible(&vs.export_to, &r.metadata.namespace, &namespace))
            .collect();
        let sidecar = match proxy.kind {
            // Sidecar resources configure sidecars only.
            ProxyKind::Router => None,
            ProxyKind::Sidecar => sidecar_for(snapshot, proxy, &namespace),
        };
        let mut scope = Scope {
            sidecar: sidecar.map(|(r, _)| key(r)),
            allow_any: allow_any(snapshot, sidecar.map(|(_, s)| s)),
            ..Scope::default()
        };
        let egress: Vec<Egress> = match sidecar {
            None => {
                scope.services = exported
                    .iter()
                    .map(|s| (s.hostname.clone(), None))
                    .collect();
                scope.virtual_services = mesh_vss.iter().map(|(r, _)| key(r)).collect();
                scope.namespace = namespace;
                return scope;
            }
            Some((_, spec)) if spec.egress.is_empty() => {
                vec![Egress::new(None, &["*/*".into()], &namespace)]
            }
            Some((_, spec)) => spec
                .egress
                .iter()
                .map(|e| Egress::new(e.port.as_ref().map(|p| p.number), &e.hosts, &namespace))
                .collect(),
        };
        for e in &egress {
            for s in exported.iter().filter(|s| e.imports_service(s)) {
                scope.import(s, e.ports(s));
            }
            for (r, vs) in &mesh_vss {
                let ns = &r.metadata.namespace;
                let hosts: Vec<String> =
                    vs.hosts.iter().map(|h| resolve_short_name(h, ns)).collect();
                let bound_to_mesh = vs.effective_gateways().contains(&MESH_GATEWAY);
                if !bound_to_mesh || !e.imports_virtual_service(ns, &hosts) {
                    continue;
                }
                scope.virtual_services.insert(key(r));
                // Istio also imports the services an imported VirtualService routes to, as
                // long as they are exported to the proxy's namespace.
                for dest in destinations(vs) {
                    let host = resolve_short_name(dest, ns);
                    if let Some(s) = exported.iter().find(|s| s.hostname == host) {
                        scope.import(s, e.ports(s));
                    }
                }
            }
        }
        scope.namespace = namespace;
        scope
    }

    fn import(&mut self, s: &Service, ports: Ports) {
        let entry = self
            .services
            .entry(s.hostname.clone())
            .or_insert(Some(BTreeSet::new()));
        match (entry.as_mut(), ports) {
            (Some(have), Some(more)) => have.extend(more),
            _ => *entry = None,
        }
    }

    /// Whether the proxy gets clusters, endpoints and virtual hosts for the service.
    pub fn sees_service(&self, s: &Service) -> bool {
        self.services
            .get(&s.hostname)
            .is_some_and(|p| p.as_ref().is_none_or(|p| !p.is_empty()))
    }

    /// Whether the proxy sees this port of the service (a port-bound egress listener
    /// imports only its port).
    pub fn sees_port(&self, s: &Service, port: u32) -> bool {
        self.services
            .get(&s.hostname)
            .is_some_and(|p| p.as_ref().is_none_or(|p| p.contains(&port)))
    }

    /// Whether a VirtualService (by namespace and name) applies to this proxy's mesh traffic.
    pub fn sees_virtual_service(&self, namespace: &str, name: &str) -> bool {
        self.virtual_services
            .contains(&format!("{namespace}/{name}"))
    }

    /// Config visibility: VirtualServices as imported above (delegates by their own
    /// `exportTo`), DestinationRules by `exportTo`; other kinds are not scoped here.
    pub fn sees_config(&self, r: &Resource) -> bool {
        let ns = &r.metadata.namespace;
        match &r.spec {
            Spec::VirtualService(vs) if vs.hosts.is_empty() => {
                visible(&vs.export_to, ns, &self.namespace)
            }
            Spec::VirtualService(_) => self.sees_virtual_service(ns, &r.metadata.name),
            Spec::DestinationRule(dr) => visible(&dr.export_to, ns, &self.namespace),
            _ => true,
        }
    }

    /// ALLOW_ANY (the mesh default) forwards unknown destinations; REGISTRY_ONLY drops them.
    pub fn allow_any(&self) -> bool {
        self.allow_any
    }

    /// `namespace/name` of the Sidecar resource in force, for debugging.
    pub fn sidecar(&self) -> Option<&str> {
        self.sidecar.as_deref()
    }
}

/// A Sidecar's `outboundTrafficPolicy` overrides the mesh-wide one, as in Istio.
fn allow_any(snapshot: &MeshSnapshot, sidecar: Option<&Sidecar>) -> bool {
    match sidecar.and_then(|s| s.outbound_traffic_policy.as_ref()) {
        Some(policy) => policy.mode == OutboundMode::AllowAny,
        None => snapshot.mesh.outbound_traffic_policy.mode == mesh::OutboundMode::AllowAny,
    }
}

fn key(r: &Resource) -> String {
    format!("{}/{}", r.metadata.namespace, r.metadata.name)
}

/// Every destination host a VirtualService routes or mirrors to, as written.
fn destinations(vs: &VirtualService) -> impl Iterator<Item = &str> {
    let http = vs.http.iter().flat_map(|h| {
        h.route
            .iter()
            .map(|d| d.destination.host.as_str())
            .chain(h.mirror.iter().map(|m| m.host.as_str()))
            .chain(h.mirrors.iter().map(|m| m.destination.host.as_str()))
    });
    let tcp = vs
        .tcp
        .iter()
        .flat_map(|t| &t.route)
        .map(|d| d.destination.host.as_str());
    let tls = vs
        .tls
        .iter()
        .flat_map(|t| &t.route)
        .map(|d| d.destination.host.as_str());
    http.chain(tcp).chain(tls)
}

/// Istio's choice: the oldest Sidecar in the proxy's namespace whose workloadSelector the
/// proxy's labels satisfy, else the namespace's one without selector, else the root
/// namespace's one without selector.
fn sidecar_for<'a>(
    snapshot: &'a MeshSnapshot,
    proxy: &Proxy,
    namespace: &str,
) -> Option<(&'a Resource, &'a Sidecar)> {
    let mut all: Vec<(&Resource, &Sidecar)> = snapshot
        .resources
        .iter()
        .filter_map(|r| match &r.spec {
            Spec::Sidecar(s) => Some((r, s.as_ref())),
            _ => None,
        })
        .collect();
    all.sort_by(|(a, _), (b, _)| {
        (&a.metadata.creation_timestamp, &a.metadata.name)
            .cmp(&(&b.metadata.creation_timestamp, &b.metadata.name))
    });
    let find = |ns: &str, want: &dyn Fn(&Sidecar) -> bool| {
        all.iter()
            .copied()
            .find(|(r, s)| r.metadata.namespace == ns && want(s))
    };
    let selects = |s: &Sidecar| {
        s.workload_selector.as_ref().is_some_and(|sel| {
            sel.labels
                .iter()
                .all(|(k, v)| proxy.labels.get(k) == Some(v))
        })
    };
    let namespace_wide = |s: &Sidecar| s.workload_selector.is_none();
    find(namespace, &selects)
        .or_else(|| find(namespace, &namespace_wide))
        .or_else(|| find(ROOT_NAMESPACE, &namespace_wide))
}

#[cfg(test)]
#[path = "scope_tests.rs"]
mod tests;
