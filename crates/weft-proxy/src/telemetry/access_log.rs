//! The access log: one line per request on stdout in Istio's default text format (or as
//! JSON), handed to a writer thread through a bounded queue so that logging never blocks
//! a request; lines that do not fit in the queue are dropped and counted.

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};

/// `--access-log-format`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Istio's default text format.
    #[default]
    Text,
    /// The same fields as a JSON object (Istio's JSON encoding).
    Json,
}

/// What one log line says, in Envoy's command names.
#[derive(Debug, Default)]
pub struct Entry<'a> {
    /// `%START_TIME%`, RFC 3339 with milliseconds, UTC.
    pub start_time: String,
    pub method: &'a str,
    pub path: &'a str,
    pub protocol: &'a str,
    pub response_code: u16,
    pub response_flags: &'a str,
    pub response_code_details: &'a str,
    pub bytes_received: u64,
    pub bytes_sent: u64,
    pub duration_ms: u64,
    pub upstream_service_time: Option<&'a str>,
    pub x_forwarded_for: Option<&'a str>,
    pub user_agent: Option<&'a str>,
    pub request_id: Option<&'a str>,
    pub authority: &'a str,
    pub upstream_host: Option<&'a str>,
    pub upstream_cluster: Option<&'a str>,
    pub downstream_local_address: Option<String>,
    pub downstream_remote_address: Option<String>,
    pub route_name: Option<&'a str>,
}

impl Entry<'_> {
    /// Istio's default text format (`[%START_TIME%] "%REQ(:METHOD)% ..." ... %ROUTE_NAME%`).
    pub fn text(&self) -> String {
        let o = |v: Option<&str>| v.filter(|s| !s.is_empty()).unwrap_or("-").to_string();
        format!(
            "[{}] \"{} {} {}\" {} {} {} - \"-\" {} {} {} {} \"{}\" \"{}\" \"{}\" \"{}\" \"{}\" {} - {} {} - {}\n",
            self.start_time,
            self.method,
            self.path,
            self.protocol,
            self.response_code,
            self.response_flags,
            self.response_code_details,
            self.bytes_received,
            self.bytes_sent,
            self.duration_ms,
            o(self.upstream_service_time),
            o(self.x_forwarded_for),
            o(self.user_agent),
            o(self.request_id),
            o(Some(self.authority)),
            o(self.upstream_host),
            o(self.upstream_cluster),
            o(self.downstream_local_address.as_deref()),
            o(self.downstream_remote_address.as_deref()),
            o(self.route_name),
        )
    }

    /// The same fields under Istio's JSON keys; absent values are null.
    pub fn json(&self) -> String {
        let v = serde_json::json!({
            "start_time": self.start_time,
            "method": self.method,
            "path": self.path,
            "protocol": self.protocol,
            "response_code": self.response_code,
            "response_flags": self.response_flags,
            "response_code_details": self.response_code_details,
            "connection_termination_details": null,
            "upstream_transport_failure_reason": null,
            "bytes_received": self.bytes_received,
            "bytes_sent": self.bytes_sent,
            "duration": self.duration_ms,
            "upstream_service_time": self.upstream_service_time,
            "x_forwarded_for": self.x_forwarded_for,
            "user_agent": self.user_agent,
            "request_id": self.request_id,
            "authority": self.authority,
            "upstream_host": self.upstream_host,
            "upstream_cluster": self.upstream_cluster,
            "upstream_local_address": null,
            "downstream_local_address": self.downstream_local_address,
            "downstream_remote_address": self.downstream_remote_address,
            "requested_server_name": null,
            "route_name": self.route_name,
        });
        format!("{v}\n")
    }
}

/// Lines waiting for the writer thread at most; beyond, lines are dropped.
const QUEUE: usize = 16 * 1024;

/// The sending side; the writer thread ends when this is dropped.
#[derive(Debug)]
pub struct AccessLog {
    format: Format,
    queue: SyncSender<String>,
    pub dropped: AtomicU64,
}

impl AccessLog {
    /// Starts the writer thread on `out` (stdout in the proxy).
    pub fn start<W: Write + Send + 'static>(format: Format, out: W) -> AccessLog {
        let (queue, lines) = sync_channel::<String>(QUEUE);
        let spawned = std::thread::Builder::new()
            .name("access-log".into())
            .spawn(move || {
                let mut out = std::io::BufWriter::with_capacity(64 * 1024, out);
                // Flush whenever the queue runs dry, so lines show up promptly yet a
                // burst is written in few syscalls.
                while let Ok(line) = lines.recv() {
                    let _ = out.write_all(line.as_bytes());
                    while let Ok(more) = lines.try_recv() {
                        let _ = out.write_all(more.as_bytes());
                    }
                    let _ = out.flush();
                }
            });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "cannot start the access log writer");
        }
        AccessLog {
            format,
            queue,
            dropped: AtomicU64::new(0),
        }
    }

    pub fn log(&self, entry: &Entry<'_>) {
        let line = match self.format {
            Format::Text => entry.text(),
            Format::Json => entry.json(),
        };
        match self.queue.try_send(line) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// `%START_TIME%` for `t`: `2026-11-22T02:00:00.123Z`.
pub fn start_time(t: std::time::SystemTime) -> String {
    let d = t.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, day) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_millis()
    )
}

/// Days since 1970-01-01 -> (year, month, day) in the proleptic Gregorian calendar
/// (Howard Hinnant's civil-from-days algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    fn entry() -> Entry<'static> {
        Entry {
            start_time: start_time(UNIX_EPOCH + Duration::from_millis(1_795_831_200_123)),
            method: "GET",
            path: "/ratings/1",
            protocol: "HTTP/1.1",
            response_code: 200,
            response_flags: "-",
            response_code_details: "via_upstream",
            bytes_received: 0,
            bytes_sent: 17,
            duration_ms: 3,
            upstream_service_time: Some("2"),
            user_agent: Some("curl/8"),
            request_id: Some("abc"),
            authority: "ratings:9080",
            upstream_cluster: Some("outbound|9080||ratings.default.svc.cluster.local"),
            downstream_remote_address: Some("127.0.0.1:5000".into()),
            ..Entry::default()
        }
    }

    #[test]
    fn text_lines_follow_istios_default_format() {
        assert_eq!(
            entry().text(),
            "[2026-11-28T02:00:00.123Z] \"GET /ratings/1 HTTP/1.1\" 200 - via_upstream - \"-\" 0 17 3 2 \
             \"-\" \"curl/8\" \"abc\" \"ratings:9080\" \"-\" outbound|9080||ratings.default.svc.cluster.local \
             - - 127.0.0.1:5000 - -\n"
        );
        let j: serde_json::Value = serde_json::from_str(&entry().json()).unwrap();
        assert_eq!(j["response_code"], 200);
        assert_eq!(j["upstream_host"], serde_json::Value::Null);
    }

    #[test]
    fn lines_reach_the_writer() {
        #[derive(Clone, Default)]
        struct Shared(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
        impl Write for Shared {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let out = Shared::default();
        let log = AccessLog::start(Format::Text, out.clone());
        log.log(&entry());
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while out.0.lock().unwrap().is_empty() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        let written = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        assert!(
            written.starts_with("[2026-11-28T02:00:00.123Z] \"GET"),
            "{written}"
        );
    }
}
