//! Counters served on the admin `/stats`, named like Envoy's.

use std::sync::atomic::{AtomicU64, Ordering};

/// One counter per line of `/stats`; all relaxed, they are only read for reporting.
#[derive(Debug, Default)]
pub struct Stats {
    pub downstream_rq_total: AtomicU64,
    pub downstream_cx_total: AtomicU64,
    pub upstream_rq_total: AtomicU64,
    /// Response flags (Envoy's short names) seen so far.
    pub rq_no_route: AtomicU64,
    pub rq_no_healthy_upstream: AtomicU64,
    pub rq_upstream_failure: AtomicU64,
    pub rq_timeout: AtomicU64,
    pub cds: UpdateStats,
    pub lds: UpdateStats,
    pub rds: UpdateStats,
    pub eds: UpdateStats,
}

/// Outcome of config updates of one resource type.
#[derive(Debug, Default)]
pub struct UpdateStats {
    pub update_success: AtomicU64,
    pub update_rejected: AtomicU64,
}

pub fn inc(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

impl Stats {
    /// `name: value` lines, sorted, as Envoy's `/stats` prints them.
    pub fn render(&self) -> String {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let mut lines = vec![
            (
                "http.downstream_rq_total".to_string(),
                get(&self.downstream_rq_total),
            ),
            (
                "http.downstream_cx_total".to_string(),
                get(&self.downstream_cx_total),
            ),
            (
                "cluster_manager.upstream_rq_total".to_string(),
                get(&self.upstream_rq_total),
            ),
            ("http.no_route".to_string(), get(&self.rq_no_route)),
            (
                "cluster_manager.upstream_rq_no_healthy_upstream".to_string(),
                get(&self.rq_no_healthy_upstream),
            ),
            (
                "cluster_manager.upstream_cx_connect_fail".to_string(),
                get(&self.rq_upstream_failure),
            ),
            (
                "cluster_manager.upstream_rq_timeout".to_string(),
                get(&self.rq_timeout),
            ),
        ];
        for (prefix, u) in [
            ("cluster_manager.cds", &self.cds),
            ("listener_manager.lds", &self.lds),
            ("http.rds", &self.rds),
            ("cluster.eds", &self.eds),
        ] {
            lines.push((format!("{prefix}.update_success"), get(&u.update_success)));
            lines.push((format!("{prefix}.update_rejected"), get(&u.update_rejected)));
        }
        lines.sort();
        lines.iter().map(|(k, v)| format!("{k}: {v}\n")).collect()
    }
}
