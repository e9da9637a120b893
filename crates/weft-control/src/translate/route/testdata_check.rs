//! Every Istio test config with a VirtualService must translate into well-formed tables.

use super::tests::{http_service, sidecar, snapshot};
use super::*;
use crate::model::ProxyKind;
use crate::registry::Registry;
use envoy_types::pb::envoy::config::route::v3::route::Action;
use envoy_types::pb::envoy::config::route::v3::route_action::ClusterSpecifier;
use prost::Message;
use weft_config::Resource;

const TESTDATA: &str = "/work/shared/istio-testdata/tests/testdata/config";

/// Checks Envoy's structural rules and Istio's naming on a whole table.
fn assert_well_formed(rc: &RouteConfiguration, origin: &str) {
    let mut domains = std::collections::BTreeSet::new();
    for vh in &rc.virtual_hosts {
        assert!(
            !vh.domains.is_empty(),
            "{origin}: {} has no domains",
            vh.name
        );
        for d in &vh.domains {
            assert!(
                domains.insert(d.clone()),
                "{origin}: domain {d} twice in {}",
                rc.name
            );
        }
        for r in &vh.routes {
            assert!(
                r.r#match
                    .as_ref()
                    .and_then(|m| m.path_specifier.as_ref())
                    .is_some(),
                "{origin}: route without path"
            );
            let Some(Action::Route(a)) = &r.action else {
                assert!(
                    r.action.is_some(),
                    "{origin}: route {} without action",
                    r.name
                );
                continue;
            };
            let mut clusters: Vec<&str> = a
                .request_mirror_policies
                .iter()
                .map(|m| m.cluster.as_str())
                .collect();
            match &a.cluster_specifier {
                Some(ClusterSpecifier::Cluster(c)) => clusters.push(c),
                Some(ClusterSpecifier::WeightedClusters(w)) => {
                    assert!(!w.clusters.is_empty(), "{origin}: empty weighted clusters");
                    let total: u32 = w.clusters.iter().map(|c| c.weight.unwrap().value).sum();
                    assert!(total > 0, "{origin}: weights sum to 0");
                    clusters.extend(w.clusters.iter().map(|c| c.name.as_str()));
                }
                other => panic!("{origin}: no cluster: {other:?}"),
            }
            for c in clusters {
                let parts: Vec<&str> = c.split('|').collect();
                let istio_name = parts.len() == 4
                    && parts[0] == "outbound"
                    && parts[1].parse::<u32>().is_ok_and(|p| p > 0)
                    && !parts[3].is_empty();
                assert!(
                    istio_name || c == "PassthroughCluster",
                    "{origin}: cluster {c}"
                );
            }
        }
    }
    // Survives the wire.
    let bytes = rc.encode_to_vec();
    assert_eq!(&RouteConfiguration::decode(bytes.as_slice()).unwrap(), rc);
}

/// Every Istio test config with a VirtualService, for sidecars and gateways.
#[test]
fn istio_test_configs_translate_to_well_formed_tables() {
    let mut checked = 0;
    for entry in std::fs::read_dir(TESTDATA).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        if !text.contains("kind: VirtualService") {
            continue;
        }
        let origin = path.display().to_string();
        let resources: Vec<Resource> = weft_config::parse_documents(&text)
            .into_iter()
            .filter_map(Result::ok)
            .collect();
        // Every host named anywhere becomes a service on 80 and 9080, so that routes meet
        // registry services as well as external hosts.
        let mut registry = Registry::build(&resources);
        for r in &resources {
            if let Spec::VirtualService(vs) = &r.spec {
                let ns = &r.metadata.namespace;
                let dests = vs
                    .http
                    .iter()
                    .flat_map(|h| h.route.iter().map(|d| d.destination.host.clone()));
                for h in vs.hosts.iter().cloned().chain(dests) {
                    let fqdn = resolve_short_name(&h, if ns.is_empty() { "default" } else { ns });
                    if !fqdn.contains('*') && registry.service(&fqdn).is_none() {
                        registry.services.push(http_service(&fqdn, &[80, 9080]));
                    }
                }
            }
        }
        let s = snapshot(resources, registry);
        let mut names: Vec<String> = vec!["http_proxy".into(), "80".into(), "9080".into()];
        for r in s.of_kind(Kind::Gateway) {
            if let Spec::Gateway(gw) = &r.spec {
                for srv in &gw.servers {
                    let port = srv.port.as_ref().unwrap();
                    names.push(format!("http.{}", port.number));
                    names.push(format!(
                        "https.{}.{}.{}.{}",
                        port.number, port.name, r.metadata.name, r.metadata.namespace
                    ));
                }
            }
        }
        let gw_proxy = |labels: &std::collections::BTreeMap<String, String>| Proxy {
            kind: ProxyKind::Router,
            labels: labels.clone(),
            ..Default::default()
        };
        let mut proxies = vec![sidecar("default", &[]), sidecar("testns", &[("app", "a")])];
        for r in s.of_kind(Kind::Gateway) {
            if let Spec::Gateway(gw) = &r.spec {
                proxies.push(gw_proxy(&gw.selector));
            }
        }
        for p in &proxies {
            for rc in route_configs(&s, p, &names) {
                assert_well_formed(&rc, &origin);
            }
        }
        checked += 1;
    }
    assert!(
        checked >= 10,
        "only {checked} configs with VirtualServices found"
    );
}
