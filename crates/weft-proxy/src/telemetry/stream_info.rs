//! What is known about one HTTP request from its start to its response's last byte
//! (Envoy's stream info), and the response body that reports it to the metrics and the
//! access log when it ends.

use super::access_log::{start_time, Entry};
use super::labels::{Reporter, Security};
use super::metrics::{Destination, Outcome};
use super::Telemetry;
use bytes::Bytes;
use http::{HeaderMap, Request, Response};
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, SizeHint};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Instant, SystemTime};

/// Response extension set by the router: the destination the request was sent to.
#[derive(Clone)]
pub struct Routed(pub Arc<Destination>);

/// Response extension on local replies: Envoy's response flag and code details.
#[derive(Clone, Copy, Debug)]
pub struct Flags {
    pub flags: &'static str,
    pub details: &'static str,
}

impl Flags {
    /// The flag's Envoy response code details (`%RESPONSE_CODE_DETAILS%`).
    pub fn of(flags: &'static str) -> Flags {
        let details = match flags {
            "NR" => "route_not_found",
            "NC" => "cluster_not_found",
            "UH" => "no_healthy_upstream",
            "UF" => "upstream_reset_before_response_started{connection_failure}",
            "UC" => "upstream_reset_before_response_started{connection_termination}",
            "UO" => "upstream_reset_before_response_started{overflow}",
            "UT" => "response_timeout",
            "FI" => "fault_filter_abort",
            _ => "local_reply",
        };
        Flags { flags, details }
    }
}

/// The request side, captured when it arrives. Strings for the access log are copied
/// only when there is an access log.
pub struct StreamInfo {
    started: Instant,
    stat_prefix_inbound: bool,
    /// What the downstream connection's TLS handshake proved (reported inbound).
    downstream: Security,
    request_bytes: u64,
    grpc: bool,
    log: Option<Box<LogFacts>>,
}

struct LogFacts {
    start_time: SystemTime,
    method: String,
    path: String,
    protocol: &'static str,
    authority: String,
    x_forwarded_for: Option<String>,
    user_agent: Option<String>,
    request_id: Option<String>,
    peer: Option<SocketAddr>,
}

fn header(h: &HeaderMap, name: &str) -> Option<String> {
    h.get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

impl StreamInfo {
    /// `grpc`: the request had a gRPC content type; `stat_prefix`: the connection
    /// manager's, which tells inbound from outbound when no cluster is reached;
    /// `downstream`: the connection it came on.
    pub fn begin<B>(
        t: &Telemetry,
        req: &Request<B>,
        stat_prefix: &str,
        downstream: &crate::listener::Downstream,
        grpc: bool,
    ) -> StreamInfo {
        let peer = downstream.remote;
        // Request bodies are streamed to the upstream; their declared length is used.
        let request_bytes = req
            .headers()
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse().ok())
            .unwrap_or(0);
        let log = t.access_log().map(|_| {
            let h = req.headers();
            let authority = req
                .uri()
                .authority()
                .map(|a| a.as_str().to_string())
                .or_else(|| header(h, "host"))
                .unwrap_or_default();
            Box::new(LogFacts {
                start_time: SystemTime::now(),
                method: req.method().as_str().to_string(),
                path: req
                    .uri()
                    .path_and_query()
                    .map_or("/", |p| p.as_str())
                    .to_string(),
                protocol: match req.version() {
                    http::Version::HTTP_2 => "HTTP/2",
                    http::Version::HTTP_10 => "HTTP/1.0",
                    _ => "HTTP/1.1",
                },
                authority,
                x_forwarded_for: header(h, "x-forwarded-for"),
                user_agent: header(h, "user-agent"),
                request_id: header(h, "x-request-id"),
                peer,
            })
        });
        StreamInfo {
            started: Instant::now(),
            stat_prefix_inbound: stat_prefix.starts_with("inbound"),
            downstream: if downstream.tls {
                downstream.security()
            } else {
                Security::default()
            },
            request_bytes,
            grpc,
            log,
        }
    }

    /// Reports the request once `resp`'s body has ended (at once when its size is known
    /// and there is no access log, so that the common case allocates nothing).
    pub fn finish<E>(
        self,
        t: &Arc<Telemetry>,
        resp: Response<http_body_util::combinators::BoxBody<Bytes, E>>,
    ) -> Response<http_body_util::combinators::BoxBody<Bytes, E>>
    where
        E: Send + Sync + 'static,
    {
        let dest = match resp.extensions().get::<Routed>() {
            Some(r) => r.0.clone(),
            None => {
                let reporter = if self.stat_prefix_inbound {
                    Reporter::Destination
                } else {
                    Reporter::Source
                };
                t.metrics.destination(reporter, None)
            }
        };
        // Istio's principals: inbound, the downstream connection's; outbound, those of the
        // upstream connection that answered (none for local replies).
        let dest = match dest.reporter() {
            Reporter::Destination => t.metrics.secured(&dest, &self.downstream),
            Reporter::Source => match resp.extensions().get::<crate::cluster::UpstreamHost>() {
                Some(host) => t.metrics.secured(&dest, &host.security),
                None => dest,
            },
        };
        let flags = resp.extensions().get::<Flags>().copied();
        let grpc_status = resp
            .headers()
            .get("grpc-status")
            .and_then(|v| v.to_str().ok()?.parse().ok());
        let outcome = Outcome {
            code: resp.status().as_u16(),
            flags: flags.map_or("-", |f| f.flags),
            grpc_status: if self.grpc { grpc_status } else { None },
            grpc: self.grpc,
        };
        let details = match flags {
            Some(f) => f.details,
            None if resp.extensions().get::<Routed>().is_some() => "via_upstream",
            None => "direct_response",
        };
        let report = Report {
            telemetry: t.clone(),
            info: self,
            dest,
            outcome,
            details,
            upstream_service_time: header(resp.headers(), "x-envoy-upstream-service-time"),
            sent: 0,
        };
        match resp.body().size_hint().exact() {
            Some(n) if report.info.log.is_none() => {
                let mut report = report;
                report.sent = n;
                drop(report);
                resp
            }
            _ => resp.map(|body| {
                Reporting {
                    inner: body,
                    report: Some(report),
                }
                .boxed()
            }),
        }
    }
}

/// Everything reported when the response ends; reports on drop, so a client that goes
/// away mid-body is still counted.
struct Report {
    telemetry: Arc<Telemetry>,
    info: StreamInfo,
    dest: Arc<Destination>,
    outcome: Outcome,
    details: &'static str,
    upstream_service_time: Option<String>,
    sent: u64,
}

impl Drop for Report {
    fn drop(&mut self) {
        let elapsed = self.info.started.elapsed();
        let ms = elapsed.as_secs_f64() * 1000.0;
        self.telemetry.metrics.record_http(
            &self.dest,
            self.outcome,
            ms,
            self.info.request_bytes,
            self.sent,
        );
        let (Some(log), Some(facts)) = (self.telemetry.access_log(), self.info.log.as_deref())
        else {
            return;
        };
        let cluster = self.dest.cluster();
        log.log(&Entry {
            start_time: start_time(facts.start_time),
            method: &facts.method,
            path: &facts.path,
            protocol: facts.protocol,
            response_code: self.outcome.code,
            response_flags: self.outcome.flags,
            response_code_details: self.details,
            bytes_received: self.info.request_bytes,
            bytes_sent: self.sent,
            duration_ms: elapsed.as_millis() as u64,
            upstream_service_time: self.upstream_service_time.as_deref(),
            x_forwarded_for: facts.x_forwarded_for.as_deref(),
            user_agent: facts.user_agent.as_deref(),
            request_id: facts.request_id.as_deref(),
            authority: &facts.authority,
            upstream_host: None,
            upstream_cluster: cluster,
            downstream_local_address: None,
            downstream_remote_address: facts.peer.map(|p| p.to_string()),
            route_name: None,
        });
    }
}

/// A response body counting the bytes it passes; reports when it ends or is dropped.
struct Reporting<B> {
    inner: B,
    report: Option<Report>,
}

impl<B> Body for Reporting<B>
where
    B: Body<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                let n = frame.data_ref().map_or(0, |d| d.len() as u64);
                if let Some(r) = self.report.as_mut() {
                    r.sent += n;
                }
                if self.inner.is_end_stream() {
                    self.report = None;
                }
            }
            Poll::Ready(None) | Poll::Ready(Some(Err(_))) => self.report = None,
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
