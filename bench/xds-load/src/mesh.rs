//! The synthetic mesh: ~1,000 services and 5,000 endpoints as ServiceEntries and
//! WorkloadEntries, spread over team namespaces of uneven size plus one `shared` namespace
//! of platform services every team calls, the way a multi-team cluster looks.

use serde_json::{json, Value};

/// Namespace of the platform services every workload depends on.
pub const SHARED: &str = "shared";

/// Shape of the generated mesh.
#[derive(Clone, Copy, Debug)]
pub struct Shape {
    pub services: usize,
    pub endpoints: usize,
    pub namespaces: usize,
    /// Services in the `shared` namespace (part of `services`).
    pub shared_services: usize,
    /// Replicas of each shared service (part of `endpoints`).
    pub shared_replicas: usize,
}

impl Default for Shape {
    fn default() -> Self {
        Shape {
            services: 1000,
            endpoints: 5000,
            namespaces: 50,
            shared_services: 20,
            shared_replicas: 20,
        }
    }
}

/// One service and its replicas.
#[derive(Clone, Debug)]
pub struct Service {
    pub namespace: String,
    pub name: String,
    /// A second, gRPC port (about one service in five has one).
    pub grpc: bool,
    pub endpoints: Vec<Endpoint>,
}

impl Service {
    pub fn host(&self) -> String {
        format!("{}.{}.svc.cluster.local", self.name, self.namespace)
    }
}

/// One workload instance: a WorkloadEntry, and the proxy that runs next to it.
#[derive(Clone, Debug)]
pub struct Endpoint {
    pub name: String,
    pub address: String,
}

/// The whole registry, deterministic for a shape.
#[derive(Clone, Debug)]
pub struct Mesh {
    pub services: Vec<Service>,
}

/// The `n`-th unique pod address, 10.0.0.0/8 from 10.1.0.1 on.
pub fn address(n: usize) -> String {
    let n = n + (1 << 16) + 1;
    format!("10.{}.{}.{}", (n >> 16) & 255, (n >> 8) & 255, n & 255)
}

impl Mesh {
    pub fn generate(shape: Shape) -> Mesh {
        let teams = shape.namespaces.saturating_sub(1).max(1);
        let team_services = shape.services.saturating_sub(shape.shared_services);
        // Uneven team sizes (weights 1..=5 cycling): a few large teams, many small ones.
        let weights: Vec<usize> = (0..teams).map(|t| 1 + (t * 7) % 5).collect();
        let total_weight: usize = weights.iter().sum();
        let mut per_team: Vec<usize> = weights
            .iter()
            .map(|w| team_services * w / total_weight)
            .collect();
        let missing = team_services - per_team.iter().sum::<usize>();
        for n in per_team.iter_mut().take(missing) {
            *n += 1;
        }

        let mut services = Vec::with_capacity(shape.services);
        for i in 0..shape.shared_services {
            services.push((
                SHARED.to_string(),
                format!("platform-{i:02}"),
                shape.shared_replicas,
            ));
        }
        for (t, count) in per_team.iter().enumerate() {
            for s in 0..*count {
                // 1 to 9 replicas, 5 on average.
                let replicas = 1 + (s * 3 + t) % 9;
                services.push((format!("team-{t:02}"), format!("svc-{s:03}"), replicas));
            }
        }
        // Bring the replica total to exactly `endpoints`.
        let mut total: usize = services.iter().map(|s| s.2).sum();
        let mut i = shape.shared_services;
        while total != shape.endpoints && services.len() > shape.shared_services {
            let svc = &mut services[i];
            if total < shape.endpoints {
                svc.2 += 1;
                total += 1;
            } else if svc.2 > 1 {
                svc.2 -= 1;
                total -= 1;
            }
            i += 1;
            if i == services.len() {
                i = shape.shared_services;
            }
        }
        let mut next = 0;
        let services = services
            .into_iter()
            .enumerate()
            .map(|(i, (namespace, name, replicas))| Service {
                grpc: i % 5 == 0,
                endpoints: (0..replicas)
                    .map(|r| {
                        next += 1;
                        Endpoint {
                            name: format!("{name}-{r}"),
                            address: address(next - 1),
                        }
                    })
                    .collect(),
                namespace,
                name,
            })
            .collect();
        Mesh { services }
    }

    pub fn namespaces(&self) -> Vec<String> {
        let mut all: Vec<String> = self.services.iter().map(|s| s.namespace.clone()).collect();
        all.sort();
        all.dedup();
        all
    }

    /// Every endpoint with its service, in an order that interleaves namespaces, so the
    /// first N are spread over the whole mesh.
    pub fn spread(&self) -> Vec<(&Service, &Endpoint)> {
        let mut all: Vec<(usize, &Service, &Endpoint)> = self
            .services
            .iter()
            .flat_map(|s| s.endpoints.iter().enumerate().map(move |(r, e)| (r, s, e)))
            .collect();
        // Replica index first: every service gets its first proxy before any its second.
        all.sort_by_key(|(r, s, _)| (*r, s.namespace.clone(), s.name.clone()));
        all.into_iter().map(|(_, s, e)| (s, e)).collect()
    }
}

pub fn service_entry(s: &Service) -> Value {
    let mut ports = vec![json!({"number": 8080, "name": "http", "protocol": "HTTP"})];
    if s.grpc {
        ports.push(json!({"number": 9090, "name": "grpc", "protocol": "GRPC"}));
    }
    json!({
        "apiVersion": "networking.istio.io/v1",
        "kind": "ServiceEntry",
        "metadata": {"name": s.name, "namespace": s.namespace},
        "spec": {
            "hosts": [s.host()],
            "location": "MESH_INTERNAL",
            "resolution": "STATIC",
            "ports": ports,
            "workloadSelector": {"labels": {"app": s.name}},
        }
    })
}

pub fn workload_entry(s: &Service, e: &Endpoint) -> Value {
    json!({
        "apiVersion": "networking.istio.io/v1",
        "kind": "WorkloadEntry",
        "metadata": {"name": e.name, "namespace": s.namespace},
        "spec": {
            "address": e.address,
            "labels": {"app": s.name, "version": "v1"},
            "serviceAccount": s.name,
        }
    })
}

/// Istio's root namespace, where a Sidecar is the mesh-wide default.
pub const ROOT: &str = "istio-system";

/// The mesh-wide default Sidecar Istio recommends for large meshes: every proxy imports
/// its own namespace and the shared services.
pub fn sidecar() -> Value {
    json!({
        "apiVersion": "networking.istio.io/v1",
        "kind": "Sidecar",
        "metadata": {"name": "default", "namespace": ROOT},
        "spec": {"egress": [{"hosts": ["./*", format!("{SHARED}/*")]}]}
    })
}

/// A VirtualService on `s` that stamps requests with `x-bench-rev: <rev>`; a new `rev`
/// changes the route configuration of every proxy that sees `s`.
pub fn virtual_service(s: &Service, rev: &str) -> Value {
    json!({
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": {"name": s.name, "namespace": s.namespace},
        "spec": {
            "hosts": [s.host()],
            "http": [{
                "headers": {"request": {"set": {"x-bench-rev": rev}}},
                "route": [{"destination": {"host": s.host(), "port": {"number": 8080}}}],
                "timeout": "10s",
            }]
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_shape_has_the_requested_totals_and_unique_addresses() {
        let mesh = Mesh::generate(Shape::default());
        assert_eq!(mesh.services.len(), 1000);
        let endpoints: Vec<&Endpoint> = mesh.services.iter().flat_map(|s| &s.endpoints).collect();
        assert_eq!(endpoints.len(), 5000);
        let mut addresses: Vec<&str> = endpoints.iter().map(|e| e.address.as_str()).collect();
        addresses.sort();
        addresses.dedup();
        assert_eq!(addresses.len(), 5000);
        assert_eq!(mesh.namespaces().len(), 50);
        assert!(mesh.services.iter().all(|s| !s.endpoints.is_empty()));
    }

    #[test]
    fn spread_puts_every_namespace_in_the_first_thousand() {
        let mesh = Mesh::generate(Shape::default());
        let mut first: Vec<&str> = mesh.spread()[..1000]
            .iter()
            .map(|(s, _)| s.namespace.as_str())
            .collect();
        first.sort();
        first.dedup();
        assert_eq!(first.len(), 50);
    }
}
