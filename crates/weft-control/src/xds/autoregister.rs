//! WorkloadGroup auto-registration: a proxy with AUTO_REGISTER_GROUP gets a WorkloadEntry
//! made from the group's template while it is connected, and loses it a grace period
//! after its last stream closes.

use crate::model::Proxy;
use crate::store::{rfc3339, ListOptions, ObjectKey, Store, StoreError};
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use thiserror::Error;
use weft_config::Kind;

/// Names the WorkloadGroup an entry was registered through (Istio's annotation).
pub const GROUP_ANNOTATION: &str = "istio.io/autoRegistrationGroup";
/// When the proxy behind the entry connected (Istio's annotation).
pub const CONNECTED_AT_ANNOTATION: &str = "istio.io/connectedAt";
/// Node id of the proxy behind the entry; node ids contain `~`, so not a label.
pub const PROXY_ANNOTATION: &str = "weft.io/proxy";
/// The request type istio-agent uses to report its WorkloadGroup probe's result on the
/// ADS stream: no error_detail = healthy, error_detail = unhealthy with the reason.
pub const HEALTH_TYPE: &str = "istio.io/health";

#[derive(Debug, Error)]
pub enum AutoRegisterError {
    #[error("AUTO_REGISTER_GROUP names WorkloadGroup {namespace}/{group}, which does not exist; create it or fix the proxy's metadata")]
    NoGroup { namespace: String, group: String },
    #[error("WorkloadGroup {namespace}/{group} has no usable template: {reason}")]
    BadGroup {
        namespace: String,
        group: String,
        reason: String,
    },
    #[error("cannot register the WorkloadEntry for {proxy}: {source}")]
    Store { proxy: String, source: StoreError },
}

/// Istio's entry name: the group name and the proxy's address with `.` and `:` as `-`.
pub fn entry_name(group: &str, ip: &str) -> String {
    format!("{group}-{}", ip.replace(['.', ':'], "-"))
}

/// Open streams per entry, and an epoch that cancels a pending deletion on reconnect.
#[derive(Debug, Default)]
struct Registration {
    streams: usize,
    epoch: u64,
}

pub struct AutoRegistrar {
    store: Arc<dyn Store>,
    grace: Duration,
    live: Mutex<HashMap<ObjectKey, Registration>>,
}

impl AutoRegistrar {
    pub fn new(store: Arc<dyn Store>, grace: Duration) -> Self {
        AutoRegistrar {
            store,
            grace,
            live: Mutex::new(HashMap::new()),
        }
    }

    fn live(&self) -> std::sync::MutexGuard<'_, HashMap<ObjectKey, Registration>> {
        self.live.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn key(proxy: &Proxy, group: &str) -> ObjectKey {
        ObjectKey::new(
            Kind::WorkloadEntry,
            &proxy.namespace,
            entry_name(group, &proxy.ip),
        )
    }

    /// Creates (or refreshes) the proxy's WorkloadEntry; returns the proxy with the
    /// template's labels merged under its own.
    pub async fn connected(&self, proxy: &Proxy) -> Result<Proxy, AutoRegisterError> {
        let Some(group) = proxy.workload_group.clone() else {
            return Ok(proxy.clone());
        };
        let store_err = |source| AutoRegisterError::Store {
            proxy: proxy.id.clone(),
            source,
        };
        let group_key = ObjectKey::new(Kind::WorkloadGroup, &proxy.namespace, &group);
        let stored = self
            .store
            .get(group_key)
            .await
            .map_err(store_err)?
            .ok_or_else(|| AutoRegisterError::NoGroup {
                namespace: proxy.namespace.clone(),
                group: group.clone(),
            })?;
        let (entry, labels) = workload_entry(&stored, proxy, &group).map_err(|reason| {
            AutoRegisterError::BadGroup {
                namespace: proxy.namespace.clone(),
                group: group.clone(),
                reason,
            }
        })?;
        let key = Self::key(proxy, &group);
        // Counted before the write, so a disconnect racing with it cannot delete the entry.
        {
            let mut live = self.live();
            let r = live.entry(key.clone()).or_default();
            r.streams += 1;
            r.epoch += 1;
        }
        if let Err(e) = self.store.put(entry, None).await {
            self.release(&key);
            return Err(store_err(e));
        }
        tracing::info!(proxy = %proxy.id, entry = %key, "WorkloadEntry auto-registered");
        let mut registered = proxy.clone();
        registered.labels = labels;
        Ok(registered)
    }

    /// The proxy closed a stream; after its last one, the entry goes once the grace
    /// period passes without a reconnect.
    pub fn disconnected(self: &Arc<Self>, proxy: &Proxy) {
        let Some(group) = proxy.workload_group.clone() else {
            return;
        };
        let key = Self::key(proxy, &group);
        if let Some(epoch) = self.release(&key) {
            self.delete_later(key, group, epoch);
        }
    }

    /// Drops one stream; the epoch to delete at when it was the last.
    fn release(&self, key: &ObjectKey) -> Option<u64> {
        let mut live = self.live();
        let r = live.get_mut(key)?;
        r.streams = r.streams.saturating_sub(1);
        (r.streams == 0).then(|| {
            r.epoch += 1;
            r.epoch
        })
    }

    fn delete_later(self: &Arc<Self>, key: ObjectKey, group: String, epoch: u64) {
        let this = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(this.grace).await;
            {
                let mut live = this.live();
                match live.get(&key) {
                    Some(r) if r.epoch == epoch && r.streams == 0 => {
                        live.remove(&key);
                    }
                    // Reconnected (or reconnected and left again: a newer timer owns it).
                    _ => return,
                }
            }
            this.delete_if_ours(&key, &group).await;
        });
    }

    /// Deletes the entry unless someone took it over (its group annotation changed).
    async fn delete_if_ours(&self, key: &ObjectKey, group: &str) {
        let ours = match self.store.get(key.clone()).await {
            Ok(Some(object)) => {
                object["metadata"]["annotations"][GROUP_ANNOTATION].as_str() == Some(group)
            }
            Ok(None) => false,
            Err(e) => {
                tracing::warn!(entry = %key, error = %e, "cannot read an auto-registered WorkloadEntry");
                false
            }
        };
        if !ours {
            return;
        }
        match self.store.delete(key.clone(), None).await {
            Ok(_) => {
                tracing::info!(entry = %key, "auto-registered WorkloadEntry removed: its proxy is gone")
            }
            Err(StoreError::NotFound(_)) => {}
            Err(e) => {
                tracing::warn!(entry = %key, error = %e, "cannot remove an auto-registered WorkloadEntry")
            }
        }
    }

    /// Writes the probe result as the entry's `Healthy` condition (read by the registry);
    /// unchanged results write nothing, so a steady proxy causes no pushes.
    pub async fn report_health(&self, proxy: &Proxy, unhealthy: Option<String>) {
        let Some(group) = proxy.workload_group.as_deref() else {
            return;
        };
        let key = Self::key(proxy, group);
        let Ok(Some(mut entry)) = self.store.get(key.clone()).await else {
            return;
        };
        if entry["metadata"]["annotations"][GROUP_ANNOTATION].as_str() != Some(group) {
            return;
        }
        let status = if unhealthy.is_some() { "False" } else { "True" };
        let current = entry["status"]["conditions"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["type"] == "Healthy"))
            .cloned();
        let message = unhealthy.unwrap_or_default();
        if current.as_ref().is_some_and(|c| {
            c["status"] == status && c["message"].as_str().unwrap_or_default() == message
        }) {
            return;
        }
        let now = rfc3339(SystemTime::now());
        let mut condition = json!({"type": "Healthy", "status": status,
                                   "lastProbeTime": now, "lastTransitionTime": now});
        if !message.is_empty() {
            condition["message"] = json!(message);
        }
        entry["status"] = json!({"conditions": [condition]});
        match self.store.put(entry, None).await {
            Ok(_) => tracing::info!(entry = %key, healthy = status, "workload health recorded"),
            Err(e) => tracing::warn!(entry = %key, error = %e, "cannot record workload health"),
        }
    }

    /// Entries registered before weftd restarted: each gets the grace period to see its
    /// proxy reconnect, then goes.
    pub async fn adopt_orphans(self: &Arc<Self>) {
        let options = ListOptions {
            kind: Some(Kind::WorkloadEntry),
            ..ListOptions::default()
        };
        let listing = match self.store.list(options).await {
            Ok(listing) => listing,
            Err(e) => {
                tracing::warn!(error = %e, "cannot list WorkloadEntries to clean up");
                return;
            }
        };
        for object in listing.items {
            let Some(group) = object["metadata"]["annotations"][GROUP_ANNOTATION].as_str() else {
                continue;
            };
            let Ok(key) = ObjectKey::of(&object) else {
                continue;
            };
            let epoch = {
                let mut live = self.live();
                let r = live.entry(key.clone()).or_default();
                if r.streams > 0 {
                    continue;
                }
                r.epoch += 1;
                r.epoch
            };
            self.delete_later(key, group.to_string(), epoch);
        }
    }
}

/// The WorkloadEntry for `proxy` from the stored WorkloadGroup, and the merged labels.
fn workload_entry(
    group_object: &Value,
    proxy: &Proxy,
    group: &str,
) -> Result<(Value, BTreeMap<String, String>), String> {
    let spec = &group_object["spec"];
    let mut template = match spec.get("template") {
        Some(Value::Object(t)) => t.clone(),
        _ => return Err("spec.template is missing".to_string()),
    };
    let strings = |v: &Value| -> BTreeMap<String, String> {
        v.as_object()
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                    .collect()
            })
            .unwrap_or_default()
    };
    // Group metadata, then the template, then the proxy's own labels: the most specific wins.
    let mut labels = strings(&spec["metadata"]["labels"]);
    labels.extend(strings(
        &template.get("labels").cloned().unwrap_or_default(),
    ));
    labels.extend(proxy.labels.clone());
    let mut annotations: Map<String, Value> = spec["metadata"]["annotations"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    annotations.insert(GROUP_ANNOTATION.into(), json!(group));
    annotations.insert(PROXY_ANNOTATION.into(), json!(proxy.id));
    annotations.insert(
        CONNECTED_AT_ANNOTATION.into(),
        json!(rfc3339(SystemTime::now())),
    );
    template.insert("address".into(), json!(proxy.ip));
    template.insert("labels".into(), json!(labels));
    if !template.contains_key("serviceAccount") && !proxy.service_account.is_empty() {
        template.insert("serviceAccount".into(), json!(proxy.service_account));
    }
    let entry = json!({
        "apiVersion": "networking.istio.io/v1",
        "kind": "WorkloadEntry",
        "metadata": {
            "name": entry_name(group, &proxy.ip),
            "namespace": proxy.namespace,
            "labels": labels,
            "annotations": annotations,
        },
        "spec": template,
    });
    Ok((entry, labels))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_names_follow_istio() {
        assert_eq!(entry_name("reviews", "10.0.0.7"), "reviews-10-0-0-7");
        assert_eq!(entry_name("reviews", "fd00::1"), "reviews-fd00--1");
    }

    #[test]
    fn entry_comes_from_the_template_with_the_proxy_address_and_labels() {
        let group = json!({"spec": {
            "metadata": {"labels": {"team": "a"}, "annotations": {"note": "x"}},
            "template": {"ports": {"http": 8080}, "serviceAccount": "reviews",
                         "network": "vm", "locality": "eu/1", "weight": 3,
                         "labels": {"app": "reviews", "version": "v1"}}}});
        let proxy = Proxy {
            id: "sidecar~10.0.0.7~r.default~default.svc.cluster.local".into(),
            ip: "10.0.0.7".into(),
            namespace: "default".into(),
            labels: [("version".to_string(), "v2".to_string())].into(),
            ..Proxy::default()
        };
        let (entry, labels) = workload_entry(&group, &proxy, "reviews").unwrap();
        assert_eq!(entry["metadata"]["name"], "reviews-10-0-0-7");
        assert_eq!(entry["spec"]["address"], "10.0.0.7");
        assert_eq!(entry["spec"]["ports"]["http"], 8080);
        assert_eq!(entry["spec"]["serviceAccount"], "reviews");
        assert_eq!(entry["spec"]["network"], "vm");
        assert_eq!(entry["spec"]["locality"], "eu/1");
        assert_eq!(entry["spec"]["weight"], 3);
        assert_eq!(
            entry["metadata"]["annotations"][GROUP_ANNOTATION],
            "reviews"
        );
        assert_eq!(entry["metadata"]["annotations"][PROXY_ANNOTATION], proxy.id);
        assert_eq!(labels["team"], "a");
        assert_eq!(labels["app"], "reviews");
        assert_eq!(labels["version"], "v2", "the proxy's own label wins");
        assert_eq!(entry["spec"]["labels"]["version"], "v2");
        // The stored entry must be a valid WorkloadEntry.
        let parsed = weft_config::parse_value(0, entry).unwrap();
        assert!(
            parsed.validate().errors.is_empty(),
            "{:?}",
            parsed.validate()
        );
    }
}
