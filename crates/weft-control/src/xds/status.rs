//! Who is connected and how far each proxy is in sync, per xDS type: what
//! `/debug/proxies` and `/debug/config_dump` report.

use super::resources::{Resources, XdsType, TYPES};
use crate::model::{Proxy, ProxyKind};
use crate::store::rfc3339;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::SystemTime;

/// Which ADS variant a stream speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Sotw,
    Delta,
}

/// Sync state of one type on one stream.
#[derive(Clone, Debug, Default)]
pub struct TypeStatus {
    /// Version of the last response sent.
    pub sent: Option<String>,
    /// Last version the proxy accepted.
    pub acked: Option<String>,
    /// Envoy's error_detail message of the last NACK, until a later ACK.
    pub nack: Option<String>,
    /// What the proxy holds as far as weftd knows: everything sent and not removed.
    pub resources: Resources,
    /// The proxy watches no resource of this type since the last push (a non-wildcard type
    /// it unsubscribed from entirely): an unanswered push is not pending.
    pub unsubscribed: bool,
}

impl TypeStatus {
    /// `SYNCED`, `NOT SENT` or `STALE`, as docs/xds.md defines them.
    pub fn status(&self) -> &'static str {
        match (&self.sent, &self.acked, &self.nack) {
            (None, _, _) => "NOT SENT",
            (Some(sent), Some(acked), None) if sent == acked => "SYNCED",
            (Some(_), _, None) if self.unsubscribed => "SYNCED",
            _ => "STALE",
        }
    }
}

/// One connected stream.
#[derive(Clone, Debug)]
pub struct ConnectionStatus {
    pub proxy: Proxy,
    pub connected_at: SystemTime,
    pub mode: Mode,
    pub types: [TypeStatus; TYPES],
}

impl ConnectionStatus {
    pub fn new(proxy: Proxy, mode: Mode) -> Self {
        ConnectionStatus {
            proxy,
            connected_at: SystemTime::now(),
            mode,
            types: Default::default(),
        }
    }

    pub fn of(&mut self, t: XdsType) -> &mut TypeStatus {
        &mut self.types[t.index()]
    }

    /// The `/debug/proxies` entry.
    pub fn to_json(&self) -> Value {
        let xds: serde_json::Map<String, Value> = XdsType::ALL
            .iter()
            .map(|t| {
                let s = &self.types[t.index()];
                (
                    t.short().to_string(),
                    json!({"status": s.status(), "sent": s.sent, "acked": s.acked, "nack": s.nack}),
                )
            })
            .collect();
        json!({
            "proxy": self.proxy.id,
            "type": match self.proxy.kind { ProxyKind::Sidecar => "sidecar", ProxyKind::Router => "router" },
            "namespace": self.proxy.namespace,
            "workloadGroup": self.proxy.workload_group,
            "connectedAt": rfc3339(self.connected_at),
            "mode": match self.mode { Mode::Sotw => "sotw", Mode::Delta => "delta" },
            "xds": xds,
        })
    }
}

/// Every open stream by connection id.
#[derive(Debug, Default)]
pub struct Connections {
    streams: Mutex<BTreeMap<u64, ConnectionStatus>>,
}

impl Connections {
    pub fn insert(&self, id: u64, status: ConnectionStatus) {
        self.lock().insert(id, status);
    }

    pub fn remove(&self, id: u64) -> Option<ConnectionStatus> {
        self.lock().remove(&id)
    }

    /// Applies `change` to one stream's status (a no-op once it is gone).
    pub fn update(&self, id: u64, change: impl FnOnce(&mut ConnectionStatus)) {
        if let Some(status) = self.lock().get_mut(&id) {
            change(status);
        }
    }

    /// Every stream, oldest first.
    pub fn all(&self) -> Vec<ConnectionStatus> {
        self.lock().values().cloned().collect()
    }

    /// The newest stream of the proxy with this node id.
    pub fn find(&self, proxy_id: &str) -> Option<ConnectionStatus> {
        self.lock()
            .values()
            .rev()
            .find(|c| c.proxy.id == proxy_id)
            .cloned()
    }

    /// How many open streams this node id has.
    pub fn count_of(&self, proxy_id: &str) -> usize {
        self.lock()
            .values()
            .filter(|c| c.proxy.id == proxy_id)
            .count()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, ConnectionStatus>> {
        // A panic while holding the lock leaves plain data behind; keep serving it.
        self.streams.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_follows_sent_acked_and_nack() {
        let mut s = TypeStatus::default();
        assert_eq!(s.status(), "NOT SENT");
        s.sent = Some("1".into());
        assert_eq!(s.status(), "STALE");
        s.acked = Some("1".into());
        assert_eq!(s.status(), "SYNCED");
        s.sent = Some("2".into());
        s.nack = Some("bad cluster".into());
        assert_eq!(s.status(), "STALE");
        // A push the proxy will not answer, because it no longer watches the type.
        s.nack = None;
        s.sent = Some("3".into());
        assert_eq!(s.status(), "STALE");
        s.unsubscribed = true;
        assert_eq!(s.status(), "SYNCED");
    }
}
