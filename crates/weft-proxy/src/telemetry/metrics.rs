//! Istio's standard metrics (`istio_requests_total`, ...) in a prometheus-client registry,
//! with label sets resolved once per (direction, cluster, outcome) and cached, so that
//! recording a request is a hash lookup and a few atomic adds.

use super::labels::{apply_security, peer_labels_to, Reporter, Security, Workload};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::collections::HashMap;
use std::sync::{Arc, OnceLock, RwLock};

type Labels = Vec<(&'static str, String)>;
type Histograms = Family<Labels, Histogram, fn() -> Histogram>;

/// Envoy's default histogram buckets, which Istio's standard histograms use.
const BUCKETS: [f64; 19] = [
    0.5, 1.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0, 30000.0,
    60000.0, 300000.0, 600000.0, 1800000.0, 3600000.0,
];

fn histogram() -> Histogram {
    Histogram::new(BUCKETS)
}

/// What a finished HTTP request adds to the metrics, besides its peers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Outcome {
    pub code: u16,
    pub flags: &'static str,
    /// `grpc-status` of a gRPC response; `None` for plain HTTP (label left empty).
    pub grpc_status: Option<u16>,
    pub grpc: bool,
}

/// The metric handles of one label set.
struct HttpSeries {
    requests: Counter,
    duration: Histogram,
    request_bytes: Histogram,
    response_bytes: Histogram,
}

/// The TCP handles of one label set.
pub struct TcpSeries {
    pub opened: Counter,
    pub closed: Counter,
    pub sent: Counter,
    pub received: Counter,
}

/// One destination as seen from one direction: its fixed labels and the series made so
/// far for each outcome.
pub struct Destination {
    cluster: Option<Box<str>>,
    reporter: Reporter,
    labels: Labels,
    http: RwLock<HashMap<Outcome, Arc<HttpSeries>>>,
    tcp: RwLock<HashMap<&'static str, Arc<TcpSeries>>>,
    /// The same destination reached over connections that proved identities, by what
    /// they proved (few: one per peer identity behind the cluster).
    secured: RwLock<HashMap<Security, Arc<Destination>>>,
}

impl Destination {
    fn new(reporter: Reporter, cluster: Option<&str>, labels: Labels) -> Destination {
        Destination {
            cluster: cluster.map(Into::into),
            reporter,
            labels,
            http: RwLock::default(),
            tcp: RwLock::default(),
            secured: RwLock::default(),
        }
    }

    /// The cluster's name; None when the request reached no cluster.
    pub fn cluster(&self) -> Option<&str> {
        self.cluster.as_deref()
    }

    /// Which side this destination is reported from.
    pub fn reporter(&self) -> Reporter {
        self.reporter
    }
}

/// The registry and the label-set caches.
pub struct Metrics {
    registry: Registry,
    requests: Family<Labels, Counter>,
    duration: Histograms,
    request_bytes: Histograms,
    response_bytes: Histograms,
    tcp_opened: Family<Labels, Counter>,
    tcp_closed: Family<Labels, Counter>,
    tcp_sent: Family<Labels, Counter>,
    tcp_received: Family<Labels, Counter>,
    own: OnceLock<Workload>,
    /// By reporter (source, destination), then cluster name ("" when there is none),
    /// then the upstream workload; nested so a lookup borrows its keys (no per-request
    /// key string).
    destinations: [RwLock<HashMap<Box<str>, ByWorkload>>; 2],
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Metrics {
        let mut registry = Registry::default();
        let h = || Histograms::new_with_constructor(histogram as fn() -> Histogram);
        let m = Metrics {
            requests: Family::default(),
            duration: h(),
            request_bytes: h(),
            response_bytes: h(),
            tcp_opened: Family::default(),
            tcp_closed: Family::default(),
            tcp_sent: Family::default(),
            tcp_received: Family::default(),
            own: OnceLock::new(),
            destinations: Default::default(),
            registry: Registry::default(),
        };
        // Counters are registered without `_total`: the encoder appends it.
        registry.register(
            "istio_requests",
            "Requests handled, by peers and outcome",
            m.requests.clone(),
        );
        registry.register(
            "istio_request_duration_milliseconds",
            "Time from the request's start to its response",
            m.duration.clone(),
        );
        registry.register(
            "istio_request_bytes",
            "Request body sizes",
            m.request_bytes.clone(),
        );
        registry.register(
            "istio_response_bytes",
            "Response body sizes",
            m.response_bytes.clone(),
        );
        registry.register(
            "istio_tcp_sent_bytes",
            "Bytes sent to the downstream on TCP connections",
            m.tcp_sent.clone(),
        );
        registry.register(
            "istio_tcp_received_bytes",
            "Bytes received from the downstream on TCP connections",
            m.tcp_received.clone(),
        );
        registry.register(
            "istio_tcp_connections_opened",
            "TCP connections opened",
            m.tcp_opened.clone(),
        );
        registry.register(
            "istio_tcp_connections_closed",
            "TCP connections closed",
            m.tcp_closed.clone(),
        );
        Metrics { registry, ..m }
    }
}

/// The destinations of one cluster: without workload metadata on the endpoint, and by
/// the endpoint's workload.
#[derive(Default)]
struct ByWorkload {
    any: Option<Arc<Destination>>,
    workloads: HashMap<Box<str>, Arc<Destination>>,
}

impl ByWorkload {
    fn get(&self, upstream: Option<&str>) -> Option<&Arc<Destination>> {
        match upstream {
            None => self.any.as_ref(),
            Some(w) => self.workloads.get(w),
        }
    }
}

impl Metrics {
    /// Sets the proxy's own workload (once, at start); until then it is unknown.
    pub fn set_own(&self, own: Workload) {
        let _ = self.own.set(own);
    }

    /// The destination `cluster` (None: no route) as `reporter` sees it; allocates only
    /// the first time.
    pub fn destination(&self, reporter: Reporter, cluster: Option<&str>) -> Arc<Destination> {
        self.destination_to(reporter, cluster, None)
    }

    /// [`Metrics::destination`] for a request that reached an endpoint with Istio's
    /// workload metadata (`upstream`), which names the destination workload.
    pub fn destination_to(
        &self,
        reporter: Reporter,
        cluster: Option<&str>,
        upstream: Option<&str>,
    ) -> Arc<Destination> {
        let map = &self.destinations[reporter as usize];
        let name = cluster.unwrap_or("");
        if let Some(d) = map
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .and_then(|w| w.get(upstream))
        {
            return d.clone();
        }
        let unknown;
        let own = match self.own.get() {
            Some(o) => o,
            None => {
                unknown = Workload::unknown();
                &unknown
            }
        };
        let d = Arc::new(Destination::new(
            reporter,
            cluster,
            peer_labels_to(reporter, own, cluster, upstream),
        ));
        let mut map = map.write().unwrap_or_else(|e| e.into_inner());
        let by_workload = map.entry(name.into()).or_default();
        match upstream {
            None => by_workload.any.get_or_insert(d).clone(),
            Some(w) => by_workload.workloads.entry(w.into()).or_insert(d).clone(),
        }
    }

    /// `dest` as reached over a connection that proved `security` (Istio's principal
    /// and connection security labels); `dest` itself when it proved nothing, so
    /// plaintext costs no lookup.
    pub fn secured(&self, dest: &Arc<Destination>, security: &Security) -> Arc<Destination> {
        if security.is_empty() {
            return dest.clone();
        }
        if let Some(d) = dest
            .secured
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(security)
        {
            return d.clone();
        }
        let mut labels = dest.labels.clone();
        apply_security(dest.reporter, security, &mut labels);
        let d = Arc::new(Destination::new(dest.reporter, dest.cluster(), labels));
        dest.secured
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .entry(security.clone())
            .or_insert(d)
            .clone()
    }

    /// Records one HTTP request to `dest`.
    pub fn record_http(
        &self,
        dest: &Destination,
        outcome: Outcome,
        duration_ms: f64,
        request_bytes: u64,
        response_bytes: u64,
    ) {
        let cached = dest
            .http
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&outcome)
            .cloned();
        let series = match cached {
            Some(s) => s,
            None => self.http_series(dest, outcome),
        };
        series.requests.inc();
        series.duration.observe(duration_ms);
        series.request_bytes.observe(request_bytes as f64);
        series.response_bytes.observe(response_bytes as f64);
    }

    fn http_series(&self, dest: &Destination, o: Outcome) -> Arc<HttpSeries> {
        let mut labels = dest.labels.clone();
        let protocol = if o.grpc { "grpc" } else { "http" };
        labels.push(("request_protocol", protocol.into()));
        labels.push(("response_code", o.code.to_string()));
        let grpc = o.grpc_status.map(|s| s.to_string()).unwrap_or_default();
        labels.push(("grpc_response_status", grpc));
        labels.push(("response_flags", o.flags.into()));
        let series = Arc::new(HttpSeries {
            requests: self.requests.get_or_create_owned(&labels),
            duration: self.duration.get_or_create_owned(&labels),
            request_bytes: self.request_bytes.get_or_create_owned(&labels),
            response_bytes: self.response_bytes.get_or_create_owned(&labels),
        });
        dest.http
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .entry(o)
            .or_insert(series)
            .clone()
    }

    /// The TCP series of `dest` for connections ending with `flags` (`-` when none).
    pub fn tcp(&self, dest: &Destination, flags: &'static str) -> Arc<TcpSeries> {
        if let Some(s) = dest
            .tcp
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(flags)
        {
            return s.clone();
        }
        let mut labels = dest.labels.clone();
        labels.push(("request_protocol", "tcp".into()));
        labels.push(("response_flags", flags.into()));
        let s = Arc::new(TcpSeries {
            opened: self.tcp_opened.get_or_create_owned(&labels),
            closed: self.tcp_closed.get_or_create_owned(&labels),
            sent: self.tcp_sent.get_or_create_owned(&labels),
            received: self.tcp_received.get_or_create_owned(&labels),
        });
        dest.tcp
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .entry(flags)
            .or_insert(s)
            .clone()
    }

    /// The Prometheus text exposition (format 0.0.4, what Envoy's `/stats/prometheus`
    /// serves and promtool checks).
    pub fn encode(&self) -> String {
        let mut open_metrics = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut open_metrics, &self.registry)
        {
            tracing::warn!(error = %e, "cannot encode metrics");
        }
        to_prometheus_text(&open_metrics)
    }
}

/// OpenMetrics text -> Prometheus text 0.0.4: counters' HELP and TYPE name the `_total`
/// series, and the OpenMetrics-only `# UNIT` and `# EOF` lines go.
fn to_prometheus_text(open_metrics: &str) -> String {
    let lines: Vec<&str> = open_metrics.lines().collect();
    let counters: std::collections::HashSet<&str> = lines
        .iter()
        .filter_map(|l| l.strip_prefix("# TYPE ")?.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(open_metrics.len());
    for line in lines {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let meta = ["# HELP ", "# TYPE "]
            .into_iter()
            .find_map(|p| Some((p, line.strip_prefix(p)?)));
        match meta {
            Some((prefix, rest)) => {
                let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
                let total = if counters.contains(name) {
                    "_total"
                } else {
                    ""
                };
                out.push_str(&format!("{prefix}{name}{total} {tail}\n"));
            }
            None => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn metrics() -> Metrics {
        let m = Metrics::default();
        let meta =
            json!({"NAMESPACE": "default", "WORKLOAD_NAME": "sleep", "LABELS": {"app": "sleep"}});
        m.set_own(Workload::from_metadata(meta.as_object().unwrap()));
        m
    }

    const OK: Outcome = Outcome {
        code: 200,
        flags: "-",
        grpc_status: None,
        grpc: false,
    };

    #[test]
    fn requests_are_counted_per_label_set_in_prometheus_text() {
        let m = metrics();
        let d = m.destination(
            Reporter::Source,
            Some("outbound|9080||ratings.default.svc.cluster.local"),
        );
        for _ in 0..3 {
            m.record_http(&d, OK, 2.0, 0, 10);
        }
        let none = m.destination(Reporter::Source, None);
        m.record_http(
            &none,
            Outcome {
                code: 404,
                flags: "NR",
                ..OK
            },
            0.1,
            0,
            0,
        );
        let text = m.encode();
        assert!(
            text.contains("# TYPE istio_requests_total counter\n"),
            "{text}"
        );
        assert!(!text.contains("# EOF"));
        let line = text
            .lines()
            .find(|l| l.starts_with("istio_requests_total{") && l.contains("response_code=\"200\""))
            .expect("a 200 series");
        assert!(line.ends_with(" 3"), "{line}");
        for label in [
            "reporter=\"source\"",
            "source_workload=\"sleep\"",
            "source_app=\"sleep\"",
            "destination_service=\"ratings.default.svc.cluster.local\"",
            "destination_service_name=\"ratings\"",
            "destination_workload=\"unknown\"",
            "request_protocol=\"http\"",
            "grpc_response_status=\"\"",
            "response_flags=\"-\"",
        ] {
            assert!(line.contains(label), "{label} missing in {line}");
        }
        assert!(text.contains("response_flags=\"NR\""));
        assert!(text.contains("istio_response_bytes_sum{"));
        assert!(text.contains("le=\"3600000.0\""));
    }

    #[test]
    fn tcp_series_count_connections_and_bytes() {
        let m = metrics();
        let d = m.destination(Reporter::Destination, Some("inbound|9000||"));
        let s = m.tcp(&d, "-");
        s.opened.inc();
        s.sent.inc_by(42);
        let text = m.encode();
        assert!(text.contains("# TYPE istio_tcp_sent_bytes_total counter"));
        let line = text
            .lines()
            .find(|l| l.starts_with("istio_tcp_sent_bytes_total{"))
            .unwrap();
        assert!(line.contains("reporter=\"destination\""), "{line}");
        assert!(line.contains("destination_workload=\"sleep\""), "{line}");
        assert!(line.ends_with(" 42"), "{line}");
    }

    #[test]
    fn secured_destinations_carry_principals_and_are_cached() {
        let m = metrics();
        let inbound = m.destination(Reporter::Destination, Some("inbound|9080||"));
        assert!(Arc::ptr_eq(
            &m.secured(&inbound, &Security::default()),
            &inbound
        ));
        let mtls = Security {
            peer: Some("spiffe://cluster.local/ns/shop/sa/productpage".into()),
            own: Some("spiffe://cluster.local/ns/default/sa/sleep".into()),
        };
        let secured = m.secured(&inbound, &mtls);
        assert!(Arc::ptr_eq(&secured, &m.secured(&inbound, &mtls)));
        m.record_http(&secured, OK, 1.0, 0, 1);
        m.record_http(&inbound, OK, 1.0, 0, 1);
        let text = m.encode();
        let requests: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("istio_requests_total{"))
            .collect();
        assert_eq!(requests.len(), 2, "{text}");
        assert!(requests.iter().any(|l| l
            .contains("source_principal=\"spiffe://cluster.local/ns/shop/sa/productpage\"")
            && l.contains("connection_security_policy=\"mutual_tls\"")
            && l.contains("source_workload_namespace=\"shop\"")));
        assert!(requests
            .iter()
            .any(|l| l.contains("connection_security_policy=\"none\"")
                && l.contains("source_principal=\"unknown\"")));
    }

    /// Prints (does not assert) the cost of recording into an existing label set.
    #[test]
    fn recording_cost() {
        let m = metrics();
        let cluster = "outbound|9080||ratings.default.svc.cluster.local";
        let n = 1_000_000u32;
        m.record_http(
            &m.destination(Reporter::Source, Some(cluster)),
            OK,
            1.0,
            0,
            1,
        );
        let start = std::time::Instant::now();
        for i in 0..n {
            let d = m.destination(Reporter::Source, Some(cluster));
            m.record_http(&d, OK, f64::from(i % 100), 0, 100);
        }
        let per = start.elapsed() / n;
        println!("record_http (lookup + counter + 3 histograms): {per:?} per call over {n} calls");
    }
}
