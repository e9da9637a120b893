//! Which sidecars see the same outbound configuration. A transparent sidecar's outbound
//! side (clusters, endpoints, outbound listeners and their routes) reads the proxy only
//! through its namespace and through label selectors (the Sidecar that applies, a
//! DestinationRule's `workloadSelector`, a route's `sourceLabels`). Two proxies in one
//! namespace whose labels agree on every label key such a selector names therefore get
//! identical outbound resources, which weftd translates and encodes once for all of them.

use crate::model::{CaptureMode, MeshSnapshot, Proxy, ProxyKind};
use serde_json::Value;
use std::collections::BTreeSet;
use weft_config::Kind;

/// Label keys that some selector able to shape outbound configuration reads.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SelectorKeys(BTreeSet<String>);

impl SelectorKeys {
    /// Every label key a selector of the snapshot names, except in the kinds that only
    /// select the workloads behind a service or configure a proxy's inbound side.
    pub fn of(snapshot: &MeshSnapshot) -> SelectorKeys {
        let mut keys = BTreeSet::new();
        for r in snapshot.resources.iter() {
            // Over-inclusion only costs sharing; leaving out a kind that shapes the outbound
            // side would be a bug, so only kinds known to select endpoints, or to apply
            // solely to inbound listeners and gateways, are skipped.
            let skipped = matches!(
                r.kind(),
                Kind::ServiceEntry
                    | Kind::WorkloadEntry
                    | Kind::WorkloadGroup
                    | Kind::PeerAuthentication
                    | Kind::AuthorizationPolicy
                    | Kind::RequestAuthentication
                    | Kind::Gateway
                    | Kind::Secret
            );
            if !skipped {
                collect(&r.spec_json, false, &mut keys);
            }
        }
        SelectorKeys(keys)
    }
}

/// Keys of every `sourceLabels`, `matchLabels` and `labels` map in a spec, at any depth.
fn collect(value: &Value, is_labels: bool, keys: &mut BTreeSet<String>) {
    match value {
        Value::Object(map) => {
            if is_labels {
                keys.extend(map.keys().cloned());
            }
            for (k, v) in map {
                // A DestinationRule's subset labels select endpoints, not the caller.
                if k == "subsets" {
                    continue;
                }
                let labels = matches!(k.as_str(), "sourceLabels" | "matchLabels" | "labels");
                collect(v, labels, keys);
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect(v, false, keys)),
        _ => {}
    }
}

/// What a transparent sidecar's outbound configuration depends on besides the snapshot.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ViewKey {
    namespace: String,
    /// The proxy's value (or absence) for each selector key, in key order.
    labels: Vec<Option<String>>,
}

impl ViewKey {
    /// The key of a proxy whose outbound side can be shared: transparent sidecars. Gateways
    /// and explicit-capture sidecars are translated whole, per proxy.
    pub fn of(keys: &SelectorKeys, proxy: &Proxy) -> Option<ViewKey> {
        if !shares_outbound(proxy) {
            return None;
        }
        Some(ViewKey {
            namespace: proxy.namespace.clone(),
            labels: keys
                .0
                .iter()
                .map(|k| proxy.labels.get(k).cloned())
                .collect(),
        })
    }
}

/// Whether the proxy's configuration splits into a shared outbound part and its own
/// inbound part ([`super::outbound`] and [`super::local`]).
pub fn shares_outbound(proxy: &Proxy) -> bool {
    proxy.kind == ProxyKind::Sidecar && proxy.capture == CaptureMode::Transparent
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn keys_of(spec: Value) -> BTreeSet<String> {
        let mut keys = BTreeSet::new();
        collect(&spec, false, &mut keys);
        keys
    }

    #[test]
    fn selector_keys_come_from_every_label_map_at_any_depth() {
        let vs = json!({"http": [{"match": [{"sourceLabels": {"app": "a", "track": "x"}}]}]});
        assert_eq!(keys_of(vs), ["app", "track"].map(String::from).into());
        let dr = json!({"host": "h", "workloadSelector": {"matchLabels": {"version": "v1"}},
            "subsets": [{"name": "v2", "labels": {"track": "v2"}}]});
        assert_eq!(keys_of(dr), ["version"].map(String::from).into());
        let sidecar = json!({"workloadSelector": {"labels": {"team": "t"}}, "egress": []});
        assert_eq!(keys_of(sidecar), ["team"].map(String::from).into());
        assert!(keys_of(json!({"hosts": ["a"], "http": [{"route": []}]})).is_empty());
    }

    fn proxy(ns: &str, labels: &[(&str, &str)]) -> Proxy {
        Proxy {
            namespace: ns.into(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..Proxy::default()
        }
    }

    #[test]
    fn proxies_differing_only_in_unselected_labels_share_a_view() {
        let keys = SelectorKeys(["version".to_string()].into());
        let a = ViewKey::of(&keys, &proxy("ns", &[("app", "a"), ("version", "v1")]));
        let b = ViewKey::of(&keys, &proxy("ns", &[("app", "b"), ("version", "v1")]));
        let c = ViewKey::of(&keys, &proxy("ns", &[("app", "a"), ("version", "v2")]));
        let d = ViewKey::of(&keys, &proxy("other", &[("app", "a"), ("version", "v1")]));
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_ne!(a, d);
        let gateway = Proxy {
            kind: ProxyKind::Router,
            ..proxy("ns", &[])
        };
        assert_eq!(ViewKey::of(&keys, &gateway), None);
    }
}
