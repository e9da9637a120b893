//! Counters served on the admin `/stats`, named like Envoy's (`cluster.<name>.<stat>`).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

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
    pub sds: UpdateStats,
    /// Per-cluster counters by cluster name, created on first use and kept when a
    /// cluster goes (Envoy keeps a removed cluster's stats too).
    clusters: RwLock<BTreeMap<String, Arc<ClusterStats>>>,
}

/// Outcome of config updates of one resource type.
#[derive(Debug, Default)]
pub struct UpdateStats {
    pub update_success: AtomicU64,
    pub update_rejected: AtomicU64,
}

/// Envoy's per-cluster counters (`cluster.<name>.<field>`), same meaning as Envoy's.
#[derive(Debug, Default)]
pub struct ClusterStats {
    /// Requests sent upstream, each retry included.
    pub upstream_rq_total: AtomicU64,
    /// Requests that ran out of their route timeout (504 UT).
    pub upstream_rq_timeout: AtomicU64,
    /// Tries that ran out of their per-try timeout.
    pub upstream_rq_per_try_timeout: AtomicU64,
    /// Retries sent.
    pub upstream_rq_retry: AtomicU64,
    /// Requests refused because the pending queue was full (503 UO).
    pub upstream_rq_pending_overflow: AtomicU64,
    /// Connections refused by the max connections circuit breaker.
    pub upstream_cx_overflow: AtomicU64,
    /// Connections opened upstream.
    pub upstream_cx_total: AtomicU64,
    /// Connect attempts that failed (refused, timed out, TLS handshake).
    pub upstream_cx_connect_fail: AtomicU64,
    /// Requests with no healthy host to send to (503 UH).
    pub upstream_cx_none_healthy: AtomicU64,
    /// Retries refused by the max retries circuit breaker.
    pub upstream_rq_retry_overflow: AtomicU64,
    /// Hosts ejected by outlier detection (`outlier_detection.ejections_enforced_total`).
    pub outlier_ejections_enforced_total: AtomicU64,
}

impl ClusterStats {
    fn lines(&self, cluster: &str, out: &mut Vec<(String, u64)>) {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        for (name, c) in [
            ("upstream_rq_total", &self.upstream_rq_total),
            ("upstream_rq_timeout", &self.upstream_rq_timeout),
            (
                "upstream_rq_per_try_timeout",
                &self.upstream_rq_per_try_timeout,
            ),
            ("upstream_rq_retry", &self.upstream_rq_retry),
            (
                "upstream_rq_pending_overflow",
                &self.upstream_rq_pending_overflow,
            ),
            ("upstream_cx_overflow", &self.upstream_cx_overflow),
            (
                "upstream_rq_retry_overflow",
                &self.upstream_rq_retry_overflow,
            ),
            ("upstream_cx_total", &self.upstream_cx_total),
            ("upstream_cx_connect_fail", &self.upstream_cx_connect_fail),
            ("upstream_cx_none_healthy", &self.upstream_cx_none_healthy),
            (
                "outlier_detection.ejections_enforced_total",
                &self.outlier_ejections_enforced_total,
            ),
        ] {
            out.push((format!("cluster.{cluster}.{name}"), get(c)));
        }
    }
}

pub fn inc(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

impl Stats {
    /// The counters of cluster `name`, created at zero on first use.
    pub fn cluster(&self, name: &str) -> Arc<ClusterStats> {
        if let Some(s) = self
            .clusters
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
        {
            return s.clone();
        }
        self.clusters
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .entry(name.to_string())
            .or_default()
            .clone()
    }

    /// Every counter as `(name, value)`, sorted by name.
    pub fn counters(&self) -> Vec<(String, u64)> {
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
            ("http.no_route".to_string(), get(&self.rq_no_route)),
        ];
        for (prefix, u) in [
            ("cluster_manager.cds", &self.cds),
            ("listener_manager.lds", &self.lds),
            ("http.rds", &self.rds),
            ("cluster.eds", &self.eds),
            ("sds", &self.sds),
        ] {
            lines.push((format!("{prefix}.update_success"), get(&u.update_success)));
            lines.push((format!("{prefix}.update_rejected"), get(&u.update_rejected)));
        }
        for (name, s) in self
            .clusters
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            s.lines(name, &mut lines);
        }
        lines.sort();
        lines
    }

    /// `name: value` lines, sorted, as Envoy's `/stats` prints them; `filter` (a regex,
    /// searched in the name as Envoy's `?filter=` does) keeps only the lines it matches.
    pub fn render(&self, filter: Option<&regex::Regex>) -> String {
        self.counters()
            .iter()
            .filter(|(k, _)| filter.is_none_or(|f| f.is_match(k)))
            .map(|(k, v)| format!("{k}: {v}\n"))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_counters_are_named_like_envoys_and_filtered_by_regex() {
        let stats = Stats::default();
        inc(&stats.cluster("outbound|80||a.example").upstream_rq_total);
        inc(&stats.cluster("outbound|80||a.example").upstream_rq_total);
        inc(&stats.lds.update_rejected);
        let all = stats.render(None);
        assert!(all.contains("cluster.outbound|80||a.example.upstream_rq_total: 2\n"));
        assert!(all.contains("listener_manager.lds.update_rejected: 1\n"));
        let f = regex::Regex::new(r"outbound\|80\|\|a\.example\.upstream_rq_total").unwrap();
        assert_eq!(
            stats.render(Some(&f)),
            "cluster.outbound|80||a.example.upstream_rq_total: 2\n"
        );
        let f = regex::Regex::new("update_rejected").unwrap();
        let sum: u64 = stats
            .render(Some(&f))
            .lines()
            .filter_map(|l| l.rsplit_once(": ")?.1.parse::<u64>().ok())
            .sum();
        assert_eq!(sum, 1);
    }
}
