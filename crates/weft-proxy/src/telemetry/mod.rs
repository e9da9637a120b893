//! Telemetry as Istio's sidecars provide it: the standard `istio_*` metrics served on the
//! stats port (15090) at `/stats/prometheus`, and the access log on stdout.

pub mod access_log;
pub mod labels;
pub mod metrics;
pub mod server;
pub mod stream_info;

pub use stream_info::{Flags, Routed, StreamInfo};

use crate::bootstrap::Settings;
use std::sync::OnceLock;

/// Istio's Prometheus port.
pub const DEFAULT_STATS_PORT: u16 = 15090;

/// Node metadata key that sets the stats port (tests run many proxies on one host).
pub const STATS_PORT_KEY: &str = "WEFT_STATS_PORT";

/// Telemetry settings from the command line.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// `--stats-port`; node metadata `WEFT_STATS_PORT` wins over it.
    pub stats_port: Option<u16>,
    /// `--access-log off` makes this false.
    pub access_log: bool,
    pub access_log_format: access_log::Format,
}

/// The proxy's telemetry: metrics always, the access log once started.
#[derive(Debug, Default)]
pub struct Telemetry {
    pub metrics: metrics::Metrics,
    access_log: OnceLock<access_log::AccessLog>,
    gateway: OnceLock<bool>,
}

impl Telemetry {
    /// Takes the proxy's identity from the bootstrap and starts the access log.
    pub fn start(&self, settings: &Settings, options: &Options) {
        self.metrics
            .set_own(labels::Workload::from_metadata(&settings.metadata));
        let _ = self.gateway.set(settings.node_id.starts_with("router~"));
        if options.access_log {
            let _ = self.access_log.set(access_log::AccessLog::start(
                options.access_log_format,
                std::io::stdout(),
            ));
        }
    }

    /// A TCP proxy connection to `cluster` established: counted as opened now, as closed
    /// (with its bytes) when the returned guard is dropped. `downstream` and `upstream`:
    /// what the TLS handshakes of the two connections proved; the inbound side reports
    /// the downstream one, the outbound side the upstream one.
    pub fn tcp_opened(
        &self,
        cluster: &str,
        downstream: &labels::Security,
        upstream: &labels::Security,
    ) -> TcpConnection {
        let reporter = labels::Reporter::of(Some(cluster), "");
        let dest = self.metrics.destination(reporter, Some(cluster));
        let security = match reporter {
            labels::Reporter::Destination => downstream,
            labels::Reporter::Source => upstream,
        };
        let dest = self.metrics.secured(&dest, security);
        let series = self.metrics.tcp(&dest, "-");
        series.opened.inc();
        TcpConnection {
            series,
            sent: 0,
            received: 0,
        }
    }

    /// A TCP proxy connection to `cluster` that never reached an upstream (`flags`: UH,
    /// UF): opened and closed at once. Inbound, `downstream` (what its TLS handshake
    /// proved) is reported; outbound, no upstream handshake proved anything.
    pub fn tcp_failed(&self, cluster: &str, flags: &'static str, downstream: &labels::Security) {
        let reporter = labels::Reporter::of(Some(cluster), "");
        let dest = self.metrics.destination(reporter, Some(cluster));
        let dest = match reporter {
            labels::Reporter::Destination => self.metrics.secured(&dest, downstream),
            labels::Reporter::Source => dest,
        };
        let series = self.metrics.tcp(&dest, flags);
        series.opened.inc();
        series.closed.inc();
    }

    pub fn access_log(&self) -> Option<&access_log::AccessLog> {
        self.access_log.get()
    }

    /// A gateway (`router~` node): the edge of the mesh, which Istio configures with
    /// `use_remote_address`, so it appends the client to `x-forwarded-for`.
    pub fn is_gateway(&self) -> bool {
        self.gateway.get().copied().unwrap_or(false)
    }
}

/// An open TCP proxy connection's metrics; closes it in the metrics when dropped.
pub struct TcpConnection {
    series: std::sync::Arc<metrics::TcpSeries>,
    /// Bytes sent to the downstream (Istio's `istio_tcp_sent_bytes_total`).
    pub sent: u64,
    /// Bytes received from the downstream.
    pub received: u64,
}

impl Drop for TcpConnection {
    fn drop(&mut self) {
        self.series.sent.inc_by(self.sent);
        self.series.received.inc_by(self.received);
        self.series.closed.inc();
    }
}

/// The stats port: node metadata `WEFT_STATS_PORT` (string or number), else `flag`,
/// else 15090.
pub fn stats_port(metadata: &serde_json::Map<String, serde_json::Value>, flag: Option<u16>) -> u16 {
    let from_metadata = metadata.get(STATS_PORT_KEY).and_then(|v| match v {
        serde_json::Value::String(s) => s.parse().ok(),
        serde_json::Value::Number(n) => n.as_u64().and_then(|n| u16::try_from(n).ok()),
        _ => None,
    });
    from_metadata.or(flag).unwrap_or(DEFAULT_STATS_PORT)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(v: serde_json::Value) -> serde_json::Map<String, serde_json::Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn stats_port_metadata_then_flag_then_default() {
        let with = meta(serde_json::json!({"WEFT_STATS_PORT": "16000"}));
        assert_eq!(stats_port(&with, Some(17000)), 16000);
        let without = meta(serde_json::json!({}));
        assert_eq!(stats_port(&without, Some(17000)), 17000);
        assert_eq!(stats_port(&without, None), 15090);
    }
}
