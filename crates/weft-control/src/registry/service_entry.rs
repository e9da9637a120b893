//! ServiceEntry -> services, and their instances from inline endpoints or selected
//! WorkloadEntries.

use super::{Instance, Protocol, Registry, Resolution, Service, ServicePort};
use serde_json::Value;
use weft_config::networking::service_entry::{self as se, Location, ServiceEntry};
use weft_config::networking::workload_entry::WorkloadEntry;
use weft_config::{Resource, Spec};

/// A WorkloadEntry with where it lives, ready to be matched against selectors.
struct Workload<'a> {
    resource: &'a Resource,
    spec: &'a WorkloadEntry,
}

pub(super) fn build(resources: &[Resource]) -> Registry {
    // Istio lets the oldest ServiceEntry win a contested host; sort so that the outcome does
    // not depend on the store's iteration order.
    let mut entries: Vec<(&Resource, &ServiceEntry)> = resources
        .iter()
        .filter_map(|r| match &r.spec {
            Spec::ServiceEntry(s) => Some((r, s.as_ref())),
            _ => None,
        })
        .collect();
    entries.sort_by(|(a, _), (b, _)| age_key(a).cmp(&age_key(b)));
    let workloads: Vec<Workload> = resources
        .iter()
        .filter_map(|r| match &r.spec {
            Spec::WorkloadEntry(s) => Some(Workload {
                resource: r,
                spec: s.as_ref(),
            }),
            _ => None,
        })
        .collect();

    let mut registry = Registry::default();
    for (resource, entry) in entries {
        let instances = instances_of(resource, entry, &workloads);
        for host in &entry.hosts {
            if registry.service(host).is_some() {
                continue;
            }
            registry.services.push(service(resource, entry, host));
            registry.instances.insert(host.clone(), instances.clone());
        }
    }
    registry
        .services
        .sort_by(|a, b| a.hostname.cmp(&b.hostname));
    registry
}

fn age_key(r: &Resource) -> (&str, &str, &str) {
    (
        &r.metadata.creation_timestamp,
        &r.metadata.namespace,
        &r.metadata.name,
    )
}

fn service(resource: &Resource, entry: &ServiceEntry, host: &str) -> Service {
    Service {
        hostname: host.to_string(),
        namespace: resource.metadata.namespace.clone(),
        ports: entry.ports.iter().map(port).collect(),
        addresses: entry.addresses.clone(),
        resolution: match entry.resolution {
            se::Resolution::None => Resolution::None,
            se::Resolution::Static => Resolution::Static,
            // DYNAMIC_DNS resolves per request in Istio's ambient mode; a sidecar treats it
            // as plain DNS.
            se::Resolution::Dns | se::Resolution::DynamicDns => Resolution::Dns,
            se::Resolution::DnsRoundRobin => Resolution::DnsRoundRobin,
        },
        mesh_external: entry.location == Location::MeshExternal,
        export_to: entry.export_to.clone(),
    }
}

fn port(p: &se::ServicePort) -> ServicePort {
    ServicePort {
        number: p.number,
        name: p.name.clone(),
        protocol: Protocol::of_port(&p.protocol, &p.name),
        target_port: p.target_port,
    }
}

fn instances_of(
    resource: &Resource,
    entry: &ServiceEntry,
    workloads: &[Workload],
) -> Vec<Instance> {
    let namespace = &resource.metadata.namespace;
    if let Some(selector) = &entry.workload_selector {
        // A selector picks WorkloadEntries of the entry's own namespace whose labels hold
        // every selector label.
        return workloads
            .iter()
            .filter(|w| &w.resource.metadata.namespace == namespace)
            .filter(|w| {
                let labels = workload_labels(w);
                selector
                    .labels
                    .iter()
                    .all(|(k, v)| labels.get(k) == Some(v))
            })
            .map(|w| {
                let mut instance = instance(&w.resource.metadata.name, namespace, w.spec);
                instance.labels = workload_labels(w);
                instance.healthy = is_healthy(w.resource.status.as_ref());
                instance
            })
            .collect();
    }
    entry
        .endpoints
        .iter()
        .enumerate()
        .map(|(i, e)| instance(&format!("{}/{i}", resource.metadata.name), namespace, e))
        .collect()
}

/// Istio matches selectors against the entry's spec labels merged over its metadata labels.
fn workload_labels(w: &Workload) -> std::collections::BTreeMap<String, String> {
    let mut labels = w.resource.metadata.labels.clone();
    labels.extend(w.spec.labels.clone());
    labels
}

fn instance(name: &str, namespace: &str, spec: &WorkloadEntry) -> Instance {
    Instance {
        name: name.to_string(),
        namespace: namespace.to_string(),
        address: spec.address.clone().unwrap_or_default(),
        ports: spec.ports.clone(),
        labels: spec.labels.clone(),
        service_account: spec.service_account.clone().unwrap_or_default(),
        locality: spec.locality.clone().unwrap_or_default(),
        weight: spec.weight.filter(|w| *w > 0).unwrap_or(1),
        healthy: true,
    }
}

/// Istio's health checking of WorkloadEntries writes a `Healthy` condition; only an explicit
/// `False` takes an instance out of rotation, so entries never probed stay healthy.
pub(super) fn is_healthy(status: Option<&Value>) -> bool {
    let conditions = status
        .and_then(|s| s.get("conditions"))
        .and_then(Value::as_array);
    !conditions.is_some_and(|cs| {
        cs.iter().any(|c| {
            c.get("type").and_then(Value::as_str) == Some("Healthy")
                && c.get("status").and_then(Value::as_str) == Some("False")
        })
    })
}
