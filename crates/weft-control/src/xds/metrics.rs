//! weftd's xDS metrics in Prometheus text, with Istio's names (`pilot_xds_pushes`, ...).

use prometheus_client::encoding::{EncodeLabelSet, EncodeMetric, MetricEncoder};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::{MetricType, TypedMetric};
use prometheus_client::registry::Registry;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TypeLabel {
    pub r#type: String,
}

/// A counter exposed without the `_total` suffix, the way istiod exposes its counters, so
/// Istio's dashboards and alerts work unchanged.
#[derive(Debug, Default)]
pub struct IstioCounter(AtomicU64);

impl IstioCounter {
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

impl TypedMetric for IstioCounter {
    const TYPE: MetricType = MetricType::Counter;
}

impl EncodeMetric for IstioCounter {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        encoder.encode_gauge(&self.get())
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Counter
    }
}

/// Every metric the ADS server updates.
pub struct Metrics {
    registry: Registry,
    /// Connected proxies (streams).
    pub connected: Gauge,
    pub pushes: Family<TypeLabel, IstioCounter>,
    pub rejects: Family<TypeLabel, IstioCounter>,
    /// Seconds from a config change to a proxy receiving the push it caused.
    pub convergence: Histogram,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        let connected = Gauge::default();
        let pushes = Family::<TypeLabel, IstioCounter>::default();
        let rejects = Family::<TypeLabel, IstioCounter>::default();
        // Istio's buckets for pilot_proxy_convergence_time.
        let convergence = Histogram::new([0.1, 0.5, 1.0, 3.0, 5.0, 10.0, 20.0, 30.0]);
        let mut registry = Registry::default();
        registry.register(
            "pilot_xds",
            "Number of endpoints connected to this pilot using XDS",
            connected.clone(),
        );
        registry.register(
            "pilot_xds_pushes",
            "Pilot build and send errors for lds, rds, cds and eds",
            pushes.clone(),
        );
        registry.register(
            "pilot_total_xds_rejects",
            "Total number of XDS responses from pilot rejected by proxy",
            rejects.clone(),
        );
        registry.register("pilot_proxy_convergence_time", "Delay in seconds between config change and a proxy receiving all required configuration", convergence.clone());
        Metrics {
            registry,
            connected,
            pushes,
            rejects,
            convergence,
        }
    }
}

impl Metrics {
    pub fn label(kind: &str) -> TypeLabel {
        TypeLabel {
            r#type: kind.to_string(),
        }
    }

    /// The Prometheus text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}

/// Shared by the ADS server and the debug API.
pub type SharedMetrics = Arc<Metrics>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_use_istio_names_without_total_suffix() {
        let m = Metrics::default();
        m.pushes.get_or_create(&Metrics::label("cds")).inc();
        m.pushes.get_or_create(&Metrics::label("cds")).inc();
        m.rejects.get_or_create(&Metrics::label("lds")).inc();
        m.connected.set(3);
        let text = m.encode();
        assert!(text.contains("pilot_xds_pushes{type=\"cds\"} 2"), "{text}");
        assert!(
            text.contains("pilot_total_xds_rejects{type=\"lds\"} 1"),
            "{text}"
        );
        assert!(text.contains("pilot_xds 3"), "{text}");
        assert!(text.contains("# TYPE pilot_xds_pushes counter"), "{text}");
    }
}
