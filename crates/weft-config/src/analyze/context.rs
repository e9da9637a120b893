//! What analyzers look at: the resources by kind and name, the mesh config, and the
//! workloads and Kubernetes Services Weft assumes exist.

use super::hosts::FullName;
use super::mesh::{MeshConfig, ISTIO_SYSTEM};
use crate::kind::Kind;
use crate::resource::{Resource, Spec};
use crate::{extensions, networking, security, telemetry};
use std::collections::BTreeMap;
use std::fmt;

/// A label selector built from a `matchLabels`-style map. Empty selects everything, as in
/// Kubernetes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Selector(pub BTreeMap<String, String>);

impl Selector {
    pub fn new(labels: &BTreeMap<String, String>) -> Self {
        Selector(labels.clone())
    }

    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.0.iter().all(|(k, v)| labels.get(k) == Some(v))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Reads Kubernetes' printed form back (`a=b,c=d`); pairs that are not `k=v` are
    /// dropped.
    pub fn parse(text: &str) -> Self {
        Selector(
            text.split(',')
                .filter_map(|pair| pair.split_once('='))
                .filter(|(k, _)| !k.contains('='))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }
}

impl fmt::Display for Selector {
    /// Kubernetes' form, keys sorted: `app=reviews,version=v1`. Users paste this into
    /// `kubectl get pods -l`, so it must stay in that syntax.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for (k, v) in &self.0 {
            if !first {
                f.write_str(",")?;
            }
            first = false;
            write!(f, "{k}={v}")?;
        }
        Ok(())
    }
}

/// Something that runs a proxy and carries labels: a Pod, or a WorkloadEntry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Workload {
    pub kind: &'static str,
    pub name: FullName,
    pub labels: BTreeMap<String, String>,
}

/// A port of a Kubernetes Service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServicePort {
    pub name: String,
    pub port: u32,
    /// The port on the selected workloads; 0 means "same as `port`".
    pub target_port: u32,
    pub protocol: String,
}

/// A Kubernetes Service: what selects gateway Pods and gives them ports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KubeService {
    pub name: FullName,
    pub selector: Selector,
    pub ports: Vec<ServicePort>,
}

/// Everything one analysis run sees. Resources are kept in a stable order (kind,
/// namespace, name) so that messages come out the same on every run.
pub struct Context<'a> {
    resources: Vec<&'a Resource>,
    pub mesh: &'a MeshConfig,
    pub root_namespace: &'a str,
    pub workloads: Vec<Workload>,
    pub services: Vec<KubeService>,
}

macro_rules! typed {
    ($($fn:ident => $kind:ident: $($ty:ident)::+;)*) => {
        $(
            #[doc = concat!("Every ", stringify!($kind), " with its typed spec.")]
            pub fn $fn(&self) -> impl Iterator<Item = (&'a Resource, &'a $($ty)::+)> + '_ {
                self.of_kind(Kind::$kind).filter_map(|r| match &r.spec {
                    Spec::$kind(s) => Some((r, &**s)),
                    _ => None,
                })
            }
        )*
    };
}

impl<'a> Context<'a> {
    pub fn new(resources: &'a [Resource], mesh: &'a MeshConfig, root_namespace: &'a str) -> Self {
        let mut sorted: Vec<&Resource> = resources.iter().collect();
        sorted.sort_by(|a, b| {
            (a.kind(), &a.metadata.namespace, &a.metadata.name).cmp(&(
                b.kind(),
                &b.metadata.namespace,
                &b.metadata.name,
            ))
        });
        let mut ctx = Context {
            resources: sorted,
            mesh,
            root_namespace,
            workloads: Vec::new(),
            services: Vec::new(),
        };
        if !mesh.ingress_controller_off {
            ctx.add_default_ingress_gateway();
        }
        let entries: Vec<Workload> = ctx
            .workload_entries()
            .map(|(r, we)| Workload {
                kind: "WorkloadEntry",
                name: full_name(r),
                labels: we.labels.clone(),
            })
            .collect();
        ctx.workloads.extend(entries);
        ctx
    }

    /// Without a cluster to ask, assume the ingress gateway every Istio install has: a
    /// Pod labelled `istio: ingressgateway` and its Service with the usual four ports.
    /// Otherwise every Gateway in a files-only analysis would look orphaned.
    fn add_default_ingress_gateway(&mut self) {
        let service = &self.mesh.ingress_service;
        let labels: BTreeMap<String, String> =
            [("istio".to_string(), "ingressgateway".to_string())].into();
        self.workloads.push(Workload {
            kind: "Pod",
            name: FullName::new(ISTIO_SYSTEM, &format!("{service}-dummypod")),
            labels: labels.clone(),
        });
        let port = |name: &str, port: u32| ServicePort {
            name: name.to_string(),
            port,
            target_port: port,
            protocol: "TCP".to_string(),
        };
        self.services.push(KubeService {
            name: FullName::new(ISTIO_SYSTEM, service),
            selector: Selector(labels),
            ports: vec![
                port("http2", 80),
                port("https", 443),
                port("tcp", 31400),
                port("tls", 15443),
            ],
        });
    }

    /// Resources of one kind, in namespace/name order.
    pub fn of_kind(&self, kind: Kind) -> impl Iterator<Item = &'a Resource> + '_ {
        self.resources
            .iter()
            .copied()
            .filter(move |r| r.kind() == kind)
    }

    pub fn find(&self, kind: Kind, name: &FullName) -> Option<&'a Resource> {
        self.of_kind(kind)
            .find(|r| r.metadata.namespace == name.namespace && r.metadata.name == name.name)
    }

    typed! {
        virtual_services => VirtualService: networking::virtual_service::VirtualService;
        destination_rules => DestinationRule: networking::destination_rule::DestinationRule;
        gateways => Gateway: networking::gateway::Gateway;
        service_entries => ServiceEntry: networking::service_entry::ServiceEntry;
        workload_entries => WorkloadEntry: networking::workload_entry::WorkloadEntry;
        envoy_filters => EnvoyFilter: networking::envoy_filter::EnvoyFilter;
        request_authentications => RequestAuthentication: security::request_authentication::RequestAuthentication;
        telemetries => Telemetry: telemetry::Telemetry;
        wasm_plugins => WasmPlugin: extensions::wasm_plugin::WasmPlugin;
    }
}

/// `namespace/name` of a resource.
pub fn full_name(r: &Resource) -> FullName {
    FullName::new(&r.metadata.namespace, &r.metadata.name)
}

/// How istioctl names a resource in messages: `Kind namespace/name`, or `Kind name` when
/// it has no namespace.
pub fn origin(r: &Resource) -> String {
    format!("{} {}", r.kind(), full_name(r))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn selector_prints_and_parses_like_kubernetes() {
        let s = Selector::new(&labels(&[("version", "v1"), ("app", "reviews")]));
        assert_eq!(s.to_string(), "app=reviews,version=v1");
        assert_eq!(Selector::parse(&s.to_string()), s);
        assert!(s.matches(&labels(&[
            ("app", "reviews"),
            ("version", "v1"),
            ("x", "y")
        ])));
        assert!(!s.matches(&labels(&[("app", "reviews")])));
        assert!(Selector::default().matches(&labels(&[])));
    }

    #[test]
    fn default_ingress_gateway_is_assumed_unless_mesh_turns_it_off() {
        let mesh = MeshConfig::default();
        let ctx = Context::new(&[], &mesh, "istio-system");
        assert_eq!(ctx.workloads.len(), 1);
        assert_eq!(
            ctx.workloads[0].name.to_string(),
            "istio-system/istio-ingressgateway-dummypod"
        );
        let ports: Vec<u32> = ctx.services[0].ports.iter().map(|p| p.port).collect();
        assert_eq!(ports, vec![80, 443, 31400, 15443]);

        let off = MeshConfig {
            ingress_controller_off: true,
            ..MeshConfig::default()
        };
        let ctx = Context::new(&[], &off, "istio-system");
        assert!(ctx.workloads.is_empty() && ctx.services.is_empty());
    }
}
