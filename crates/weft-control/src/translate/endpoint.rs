//! Endpoints (EDS): one ClusterLoadAssignment per EDS cluster, from the registry's instances
//! of the service, filtered by the subset's labels and grouped by locality.

use super::cluster::OutboundKey;
use super::proto::{socket, u32v};
use crate::model::MeshSnapshot;
use envoy_types::pb::envoy::config::core::v3::{HealthStatus, Locality};
use envoy_types::pb::envoy::config::endpoint::v3::{
    lb_endpoint::HostIdentifier, ClusterLoadAssignment, Endpoint, LbEndpoint, LocalityLbEndpoints,
};
use std::collections::BTreeMap;
use std::net::IpAddr;

/// The assignment for one cluster. `ip_only` drops instances addressed by host name, which
/// only DNS clusters can resolve.
pub fn load_assignment(
    snapshot: &MeshSnapshot,
    key: &OutboundKey,
    ip_only: bool,
) -> ClusterLoadAssignment {
    let registry = &snapshot.registry;
    let labels = key.subset.map(|s| &s.labels);
    let mut by_locality: BTreeMap<&str, Vec<LbEndpoint>> = BTreeMap::new();
    for (instance, port) in registry.endpoints(&key.service.hostname, key.port.number) {
        if labels.is_some_and(|l| l.iter().any(|(k, v)| instance.labels.get(k) != Some(v))) {
            continue;
        }
        if instance.address.is_empty() || (ip_only && instance.address.parse::<IpAddr>().is_err()) {
            continue;
        }
        let mut lb = lb_endpoint(&instance.address, port, instance.weight, instance.healthy);
        add_istio_workload(&mut lb, instance);
        // Sidecar endpoints are reached with mesh mTLS (auto mTLS's transport socket match).
        if let Some((key, value)) = super::mtls::endpoint_metadata(snapshot, instance, port) {
            let metadata = lb.metadata.get_or_insert_with(Default::default);
            metadata.filter_metadata.insert(key, value);
        }
        by_locality.entry(&instance.locality).or_default().push(lb);
    }
    ClusterLoadAssignment {
        cluster_name: key.name.clone(),
        endpoints: by_locality
            .into_iter()
            .map(|(locality, lb_endpoints)| locality_endpoints(locality, lb_endpoints))
            .collect(),
        ..Default::default()
    }
}

/// Istio's telemetry metadata on an endpoint: `filter_metadata.istio.workload` =
/// `<workload>;<namespace>;<canonical service>;<canonical revision>;<cluster>`, which the
/// client proxy reports as the destination workload when the server's own metadata is
/// not exchanged. Canonical service and revision default as Istio's do (revision
/// `latest` is left empty, the proxy's default); weft has no multi-cluster ID.
fn add_istio_workload(lb: &mut LbEndpoint, instance: &crate::registry::Instance) {
    // Inline ServiceEntry endpoints (`<serviceentry>/<index>`) belong to no workload.
    let workload = if instance.name.contains('/') {
        ""
    } else {
        instance.name.as_str()
    };
    let label = |keys: &[&str]| keys.iter().find_map(|k| instance.labels.get(*k));
    let service = label(&[
        "service.istio.io/canonical-name",
        "app.kubernetes.io/name",
        "app",
    ])
    .map_or(workload, String::as_str);
    let revision = label(&[
        "service.istio.io/canonical-revision",
        "app.kubernetes.io/version",
        "version",
    ])
    .map_or("", String::as_str);
    let revision = if revision == "latest" { "" } else { revision };
    let value = format!("{workload};{};{service};{revision};", instance.namespace);
    let metadata = lb.metadata.get_or_insert_with(Default::default);
    let istio = metadata.filter_metadata.entry("istio".into()).or_default();
    istio.fields.insert("workload".into(), string_value(value));
}

fn string_value(s: String) -> envoy_types::pb::google::protobuf::Value {
    use envoy_types::pb::google::protobuf::{value::Kind, Value};
    Value {
        kind: Some(Kind::StringValue(s)),
    }
}

pub fn lb_endpoint(address: &str, port: u32, weight: u32, healthy: bool) -> LbEndpoint {
    LbEndpoint {
        health_status: if healthy {
            HealthStatus::Healthy
        } else {
            HealthStatus::Unhealthy
        } as i32,
        load_balancing_weight: Some(u32v(weight.max(1))),
        host_identifier: Some(HostIdentifier::Endpoint(Endpoint {
            address: Some(socket(address, port)),
            ..Default::default()
        })),
        ..Default::default()
    }
}

/// `region/zone/subzone`, as Istio writes localities; the locality's weight is the sum of its
/// endpoints' weights so that weighted endpoints keep their share across localities.
pub fn locality_endpoints(locality: &str, lb_endpoints: Vec<LbEndpoint>) -> LocalityLbEndpoints {
    let mut parts = locality.splitn(3, '/').map(str::to_string);
    let weight: u32 = lb_endpoints
        .iter()
        .filter_map(|e| e.load_balancing_weight.as_ref())
        .map(|w| w.value)
        .fold(0u32, u32::saturating_add);
    LocalityLbEndpoints {
        locality: (!locality.is_empty()).then(|| Locality {
            region: parts.next().unwrap_or_default(),
            zone: parts.next().unwrap_or_default(),
            sub_zone: parts.next().unwrap_or_default(),
        }),
        load_balancing_weight: Some(u32v(weight.max(1))),
        lb_endpoints,
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Instance;

    fn workload_of(instance: &Instance) -> String {
        let mut lb = lb_endpoint("10.0.0.1", 9080, 1, true);
        add_istio_workload(&mut lb, instance);
        let istio = &lb.metadata.unwrap().filter_metadata["istio"];
        match &istio.fields["workload"].kind {
            Some(envoy_types::pb::google::protobuf::value::Kind::StringValue(s)) => s.clone(),
            other => panic!("workload is a string: {other:?}"),
        }
    }

    #[test]
    fn endpoints_carry_istios_workload_metadata() {
        let labelled = Instance {
            name: "reviews-v2-10.0.0.1".into(),
            namespace: "bookinfo".into(),
            labels: [("app", "reviews"), ("version", "v2")]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..Default::default()
        };
        assert_eq!(
            workload_of(&labelled),
            "reviews-v2-10.0.0.1;bookinfo;reviews;v2;"
        );
        // No labels: the workload names the service, and `latest` is left to the proxy.
        let bare = Instance {
            name: "db".into(),
            namespace: "default".into(),
            ..Default::default()
        };
        assert_eq!(workload_of(&bare), "db;default;db;;");
        let inline = Instance {
            name: "external/0".into(),
            namespace: "default".into(),
            ..Default::default()
        };
        assert_eq!(workload_of(&inline), ";default;;;");
    }
}
