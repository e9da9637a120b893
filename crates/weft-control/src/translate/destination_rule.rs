//! Which DestinationRule applies to a service for a proxy, and the traffic policy in force
//! for one of its ports and subsets.

use crate::model::{MeshSnapshot, Proxy};
use crate::registry::{resolve_short_name, Service};
use weft_config::networking::destination_rule::{
    ClientTlsSettings, ConnectionPoolSettings, DestinationRule, LoadBalancerSettings,
    OutlierDetection, Subset, TrafficPolicy,
};
use weft_config::{Resource, Spec};

/// Istio's root namespace: rules there apply mesh-wide as the last resort.
pub const ROOT_NAMESPACE: &str = "istio-system";

/// The four policies a cluster is built from, after subset and port-level merging.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Policy {
    pub load_balancer: Option<LoadBalancerSettings>,
    pub connection_pool: Option<ConnectionPoolSettings>,
    pub outlier_detection: Option<OutlierDetection>,
    pub tls: Option<ClientTlsSettings>,
}

/// Whether something exported with `export_to` from `namespace` is visible in `viewer`.
pub fn visible(export_to: &[String], namespace: &str, viewer: &str) -> bool {
    export_to.is_empty()
        || export_to
            .iter()
            .any(|e| e == "*" || e == viewer || (e == "." && namespace == viewer))
}

/// Istio's precedence: a rule in the proxy's namespace, then in the service's namespace, then
/// in the root namespace; within a namespace an exact host beats a wildcard, a longer wildcard
/// beats a shorter one, and the oldest rule wins a tie.
pub fn for_service<'a>(
    snapshot: &'a MeshSnapshot,
    proxy: &Proxy,
    service: &Service,
) -> Option<&'a DestinationRule> {
    snapshot
        .resources
        .iter()
        .filter_map(|r| match &r.spec {
            Spec::DestinationRule(dr) => Some((r, dr.as_ref())),
            _ => None,
        })
        .filter(|(r, dr)| visible(&dr.export_to, &r.metadata.namespace, &proxy.namespace))
        .filter(|(r, dr)| selects(r, dr, proxy))
        .filter_map(|(r, dr)| {
            let host = resolve_short_name(&dr.host, &r.metadata.namespace);
            let specificity = host_match(&host, &service.hostname)?;
            let ns = &r.metadata.namespace;
            let rank = if *ns == proxy.namespace {
                0
            } else if *ns == service.namespace {
                1
            } else if ns == ROOT_NAMESPACE {
                2
            } else {
                return None;
            };
            Some(((rank, specificity, age(r)), dr))
        })
        .min_by(|(a, _), (b, _)| a.cmp(b))
        .map(|(_, dr)| dr)
}

/// A rule with a `workloadSelector` only applies to the proxies it selects, in its namespace.
fn selects(r: &Resource, dr: &DestinationRule, proxy: &Proxy) -> bool {
    dr.workload_selector.as_ref().is_none_or(|s| {
        r.metadata.namespace == proxy.namespace
            && s.match_labels
                .iter()
                .all(|(k, v)| proxy.labels.get(k) == Some(v))
    })
}

/// `Some(0)` for an exact match, `Some(n)` for a wildcard (smaller n = more specific).
fn host_match(pattern: &str, host: &str) -> Option<usize> {
    if pattern == host {
        return Some(0);
    }
    let suffix = pattern.strip_prefix('*')?;
    host.ends_with(suffix).then(|| usize::MAX - suffix.len())
}

fn age(r: &Resource) -> (String, String, String) {
    (
        r.metadata.creation_timestamp.clone(),
        r.metadata.namespace.clone(),
        r.metadata.name.clone(),
    )
}

impl Policy {
    /// Istio's merge: port-level settings replace the top-level policy's four fields (they do
    /// not inherit field by field), the subset's policy overrides what it sets, and the
    /// subset's own port-level settings come last.
    pub fn merged(rule: Option<&DestinationRule>, subset: Option<&Subset>, port: u32) -> Policy {
        let mut policy = rule
            .and_then(|r| r.traffic_policy.as_ref())
            .map(|p| Policy::at_port(p, port))
            .unwrap_or_default();
        if let Some(sp) = subset.and_then(|s| s.traffic_policy.as_ref()) {
            let over = Policy::at_port(sp, port);
            policy.load_balancer = over.load_balancer.or(policy.load_balancer);
            policy.connection_pool = over.connection_pool.or(policy.connection_pool);
            policy.outlier_detection = over.outlier_detection.or(policy.outlier_detection);
            policy.tls = over.tls.or(policy.tls);
        }
        policy
    }

    fn at_port(p: &TrafficPolicy, port: u32) -> Policy {
        let level = p
            .port_level_settings
            .iter()
            .find(|s| s.port.as_ref().and_then(|s| s.number) == Some(port));
        match level {
            Some(l) => Policy {
                load_balancer: l.load_balancer.clone(),
                connection_pool: l.connection_pool.clone(),
                outlier_detection: l.outlier_detection.clone(),
                tls: l.tls.clone(),
            },
            None => Policy {
                load_balancer: p.load_balancer.clone(),
                connection_pool: p.connection_pool.clone(),
                outlier_detection: p.outlier_detection.clone(),
                tls: p.tls.clone(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot(yaml: &str) -> MeshSnapshot {
        let resources = weft_config::parse_documents(yaml)
            .into_iter()
            .map(|r| r.expect("valid test resource"))
            .collect();
        MeshSnapshot::build(1, resources)
    }

    fn dr(name: &str, ns: &str, host: &str) -> String {
        format!(
            "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {{name: {name}, namespace: {ns}}}\nspec:\n  host: \"{host}\"\n---\n"
        )
    }

    fn chosen(yaml: &str, proxy_ns: &str) -> Option<String> {
        let s = snapshot(yaml);
        let proxy = Proxy {
            namespace: proxy_ns.into(),
            ..Default::default()
        };
        let service = Service {
            hostname: "reviews.bookinfo.svc.cluster.local".into(),
            namespace: "bookinfo".into(),
            ..Default::default()
        };
        for_service(&s, &proxy, &service).map(|d| d.host.clone())
    }

    #[test]
    fn proxy_namespace_then_service_namespace_then_root() {
        let all = dr("a", "istio-system", "reviews.bookinfo.svc.cluster.local")
            + &dr("b", "bookinfo", "reviews")
            + &dr("c", "frontend", "reviews.bookinfo.svc.cluster.local");
        assert_eq!(
            chosen(&all, "frontend").as_deref(),
            Some("reviews.bookinfo.svc.cluster.local")
        );
        assert_eq!(chosen(&all, "bookinfo").as_deref(), Some("reviews"));
        assert_eq!(
            chosen(&all, "other").as_deref(),
            Some("reviews"),
            "service namespace beats root"
        );
        let root_only = dr("a", "istio-system", "*.svc.cluster.local");
        assert_eq!(
            chosen(&root_only, "other").as_deref(),
            Some("*.svc.cluster.local")
        );
        assert_eq!(
            chosen(
                &dr("z", "unrelated", "reviews.bookinfo.svc.cluster.local"),
                "x"
            ),
            None
        );
    }

    #[test]
    fn exact_host_beats_wildcard() {
        let both =
            dr("w", "bookinfo", "*.bookinfo.svc.cluster.local") + &dr("e", "bookinfo", "reviews");
        assert_eq!(chosen(&both, "bookinfo").as_deref(), Some("reviews"));
    }

    #[test]
    fn subset_and_port_level_policies_override() {
        let s = snapshot(
            r#"
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: r, namespace: default}
spec:
  host: reviews
  trafficPolicy:
    loadBalancer: {simple: RANDOM}
    outlierDetection: {consecutive5xxErrors: 3}
    portLevelSettings:
    - port: {number: 9090}
      loadBalancer: {simple: ROUND_ROBIN}
  subsets:
  - name: v1
    labels: {version: v1}
    trafficPolicy:
      connectionPool: {tcp: {maxConnections: 7}}
"#,
        );
        let rule = s.resources.iter().find_map(|r| match &r.spec {
            Spec::DestinationRule(d) => Some(d.as_ref()),
            _ => None,
        });
        let subset = rule.unwrap().subsets.first();
        let top = Policy::merged(rule, None, 9080);
        assert!(top.outlier_detection.is_some());
        let port = Policy::merged(rule, None, 9090);
        assert!(
            port.outlier_detection.is_none(),
            "port level does not inherit"
        );
        let sub = Policy::merged(rule, subset, 9080);
        assert!(sub.outlier_detection.is_some() && sub.connection_pool.is_some());
        assert_eq!(sub.load_balancer, top.load_balancer);
    }

    #[test]
    fn export_to_visibility() {
        assert!(visible(&[], "a", "b"));
        assert!(visible(&[".".into()], "a", "a"));
        assert!(!visible(&[".".into()], "a", "b"));
        assert!(visible(&["b".into()], "a", "b"));
        assert!(!visible(&["~".into()], "a", "a"));
    }
}
