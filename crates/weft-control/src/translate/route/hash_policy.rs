//! `consistentHash` of a destination's DestinationRule -> `RouteAction.hash_policy`, so that
//! Envoy's ring-hash/maglev load balancer has a key to hash on.

use super::proto::duration;
use crate::model::MeshSnapshot;
use crate::registry::resolve_short_name;
use envoy_types::pb::envoy::config::route::v3::route_action::hash_policy::{
    ConnectionProperties, Cookie, CookieAttribute, Header, PolicySpecifier, QueryParameter,
};
use envoy_types::pb::envoy::config::route::v3::route_action::HashPolicy;
use weft_config::networking::destination_rule::{
    ConsistentHashLb, DestinationRule, PortTrafficPolicy, TrafficPolicy,
};
use weft_config::networking::shared::host_subset_of;
use weft_config::{Kind, Spec};

/// The DestinationRule that applies to `host` for a proxy in `proxy_ns`: Istio prefers
/// the proxy's own namespace, then the host's; exact hosts beat wildcards.
pub fn destination_rule<'a>(
    snapshot: &'a MeshSnapshot,
    proxy_ns: &str,
    host: &str,
) -> Option<&'a DestinationRule> {
    let mut best: Option<(u8, &DestinationRule)> = None;
    for r in snapshot.of_kind(Kind::DestinationRule) {
        let Spec::DestinationRule(dr) = &r.spec else {
            continue;
        };
        if dr.workload_selector.is_some() {
            continue;
        }
        let ns = &r.metadata.namespace;
        let visible = dr.export_to.is_empty()
            || dr
                .export_to
                .iter()
                .any(|e| e == "*" || e == proxy_ns || (e == "." && ns == proxy_ns));
        if !visible {
            continue;
        }
        let dr_host = resolve_short_name(&dr.host, ns);
        if !host_subset_of(host, &dr_host) {
            continue;
        }
        let host_ns = host.split('.').nth(1).unwrap_or_default();
        let rank = match (ns == proxy_ns, ns == host_ns, dr_host == host) {
            (true, _, true) => 0,
            (true, _, false) => 1,
            (false, true, true) => 2,
            (false, true, false) => 3,
            (false, false, true) => 4,
            (false, false, false) => 5,
        };
        if best.is_none_or(|(b, _)| rank < b) {
            best = Some((rank, dr));
        }
    }
    best.map(|(_, dr)| dr)
}

fn port_hash(policy: Option<&TrafficPolicy>, port: u32) -> Option<&ConsistentHashLb> {
    policy?
        .port_level_settings
        .iter()
        .find(|p: &&PortTrafficPolicy| p.port.as_ref().and_then(|s| s.number) == Some(port))?
        .load_balancer
        .as_ref()?
        .consistent_hash
        .as_ref()
}

fn top_hash(policy: Option<&TrafficPolicy>) -> Option<&ConsistentHashLb> {
    policy?.load_balancer.as_ref()?.consistent_hash.as_ref()
}

/// The consistent-hash settings for a destination: a subset's port-level setting wins over
/// the subset's, then the rule's port-level, then the rule's own.
pub fn consistent_hash<'a>(
    dr: &'a DestinationRule,
    subset: Option<&str>,
    port: u32,
) -> Option<&'a ConsistentHashLb> {
    let rule = dr.traffic_policy.as_ref();
    let sub = subset
        .and_then(|s| dr.subset(s))
        .and_then(|s| s.traffic_policy.as_ref());
    port_hash(sub, port)
        .or_else(|| top_hash(sub))
        .or_else(|| port_hash(rule, port))
        .or_else(|| top_hash(rule))
}

/// Envoy's hash policy for Istio's hash key; `None` when the key is unset (e.g. only ring
/// sizing given).
pub fn hash_policy(h: &ConsistentHashLb) -> Option<HashPolicy> {
    let specifier = if let Some(name) = &h.http_header_name {
        PolicySpecifier::Header(Header {
            header_name: name.clone(),
            ..Default::default()
        })
    } else if let Some(c) = &h.http_cookie {
        PolicySpecifier::Cookie(Cookie {
            name: c.name.clone(),
            ttl: c.ttl.map(duration),
            path: c.path.clone().unwrap_or_default(),
            attributes: c
                .attributes
                .iter()
                .map(|a| CookieAttribute {
                    name: a.name.clone(),
                    value: a.value.clone().unwrap_or_default(),
                })
                .collect(),
        })
    } else if h.use_source_ip == Some(true) {
        PolicySpecifier::ConnectionProperties(ConnectionProperties { source_ip: true })
    } else if let Some(name) = &h.http_query_parameter_name {
        PolicySpecifier::QueryParameter(QueryParameter { name: name.clone() })
    } else {
        return None;
    };
    Some(HashPolicy {
        terminal: false,
        policy_specifier: Some(specifier),
    })
}

/// The hash policy for traffic to `host` (an FQDN) on `port`, to `subset` if any.
pub fn for_destination(
    snapshot: &MeshSnapshot,
    proxy_ns: &str,
    host: &str,
    subset: Option<&str>,
    port: u32,
) -> Option<HashPolicy> {
    let dr = destination_rule(snapshot, proxy_ns, host)?;
    hash_policy(consistent_hash(dr, subset, port)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dr(yaml: &str) -> DestinationRule {
        serde_yaml::from_str(yaml).unwrap()
    }

    #[test]
    fn every_hash_key() {
        let cases = [
            ("httpHeaderName: x-user", "header"),
            ("httpCookie: {name: user, path: /, ttl: 10s}", "cookie"),
            ("useSourceIp: true", "source"),
            ("httpQueryParameterName: u", "query"),
        ];
        for (yaml, kind) in cases {
            let h: ConsistentHashLb = serde_yaml::from_str(yaml).unwrap();
            let p = hash_policy(&h).unwrap().policy_specifier.unwrap();
            match (kind, p) {
                ("header", PolicySpecifier::Header(h)) => assert_eq!(h.header_name, "x-user"),
                ("cookie", PolicySpecifier::Cookie(c)) => {
                    assert_eq!((c.name.as_str(), c.path.as_str()), ("user", "/"));
                    assert_eq!(c.ttl.unwrap().seconds, 10);
                }
                ("source", PolicySpecifier::ConnectionProperties(c)) => assert!(c.source_ip),
                ("query", PolicySpecifier::QueryParameter(q)) => assert_eq!(q.name, "u"),
                (k, p) => panic!("{k}: unexpected {p:?}"),
            }
        }
    }

    #[test]
    fn subset_overrides_rule() {
        let rule = dr("host: reviews
trafficPolicy: {loadBalancer: {consistentHash: {httpHeaderName: a}}}
subsets:
- name: v1
  labels: {version: v1}
  trafficPolicy: {loadBalancer: {consistentHash: {httpHeaderName: b}}}
- name: v2
  labels: {version: v2}");
        let name = |s| {
            consistent_hash(&rule, s, 9080)
                .and_then(|h| h.http_header_name.clone())
                .unwrap()
        };
        assert_eq!(name(Some("v1")), "b");
        assert_eq!(name(Some("v2")), "a");
        assert_eq!(name(None), "a");
    }
}
