//! The CA's metrics with istiod's citadel names, in Prometheus text for weftd's /metrics.

use crate::xds::metrics::IstioCounter;
use prometheus_client::encoding::{EncodeLabelSet, EncodeMetric, MetricEncoder};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::{MetricType, TypedMetric};
use prometheus_client::registry::Registry;
use std::sync::Arc;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorType {
    pub error_type: String,
}

pub struct CaMetrics {
    registry: Registry,
    pub csr: IstioCounterHandle,
    pub success: IstioCounterHandle,
    pub authentication_failure: IstioCounterHandle,
    pub csr_parsing_err: IstioCounterHandle,
    pub id_extraction_err: IstioCounterHandle,
    pub csr_sign_err: Family<ErrorType, IstioCounter>,
    pub root_cert_expiry: Gauge,
}

/// A counter shared between the registry and the code that increments it.
#[derive(Clone, Debug, Default)]
pub struct IstioCounterHandle(Arc<IstioCounter>);

impl IstioCounterHandle {
    pub fn inc(&self) {
        self.0.inc();
    }

    pub fn get(&self) -> u64 {
        self.0.get()
    }
}

impl TypedMetric for IstioCounterHandle {
    const TYPE: MetricType = MetricType::Counter;
}

impl EncodeMetric for IstioCounterHandle {
    fn encode(&self, encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        self.0.encode(encoder)
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Counter
    }
}

impl std::fmt::Debug for CaMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CaMetrics")
    }
}

impl Default for CaMetrics {
    fn default() -> Self {
        let mut registry = Registry::default();
        let mut counter = |name: &str, help: &str| {
            let c = IstioCounterHandle::default();
            registry.register(name, help, c.clone());
            c
        };
        let csr = counter(
            "citadel_server_csr_count",
            "The number of CSRs received by Citadel server.",
        );
        let success = counter(
            "citadel_server_success_cert_issuance_count",
            "The number of certificates issuances that have succeeded.",
        );
        let authentication_failure = counter(
            "citadel_server_authentication_failure_count",
            "The number of authentication failures.",
        );
        let csr_parsing_err = counter(
            "citadel_server_csr_parsing_err_count",
            "The number of errors occurred when parsing the CSR.",
        );
        let id_extraction_err = counter(
            "citadel_server_id_extraction_err_count",
            "The number of errors occurred when extracting the ID from CSR.",
        );
        let csr_sign_err = Family::<ErrorType, IstioCounter>::default();
        registry.register(
            "citadel_server_csr_sign_err_count",
            "The number of errors occurred when signing the CSR.",
            csr_sign_err.clone(),
        );
        let root_cert_expiry = Gauge::default();
        registry.register(
            "citadel_server_root_cert_expiry_timestamp",
            "The unix timestamp, in seconds, when Citadel root cert will expire.",
            root_cert_expiry.clone(),
        );
        CaMetrics {
            registry,
            csr,
            success,
            authentication_failure,
            csr_parsing_err,
            id_extraction_err,
            csr_sign_err,
            root_cert_expiry,
        }
    }
}

impl CaMetrics {
    pub fn sign_error(&self, error_type: &str) {
        self.csr_sign_err
            .get_or_create(&ErrorType {
                error_type: error_type.to_string(),
            })
            .inc();
    }

    /// The Prometheus text exposition, without the trailing `# EOF` so it can follow the
    /// xDS metrics in one response.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out.trim_end()
            .strip_suffix("# EOF")
            .unwrap_or(&out)
            .to_string()
    }
}
