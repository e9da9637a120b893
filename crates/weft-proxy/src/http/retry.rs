//! Retry decisions of Envoy's router: which outcomes `retry_on` retries, the back-off
//! between tries, and the request body kept for replays.

use crate::cluster::UpstreamBody;
use crate::model::route::RetryPolicy;
use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use http::HeaderMap;
use http_body_util::{BodyExt, BodyStream, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use rand::Rng;
use std::time::Duration;

/// Request bodies up to this size are kept for retries and mirrors; a larger body is
/// streamed and the request is not retried (Envoy's buffer limit plays this role).
pub const REPLAY_LIMIT: usize = 64 * 1024;

/// What one try ended with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Response headers with this status (and `grpc-status` when it is in the headers).
    Status(u16, Option<u32>),
    ConnectFailure,
    /// Disconnect or reset before response headers.
    Reset,
    PerTryTimeout,
}

/// Whether `retry_on` covers the outcome (Envoy's `wouldRetryFromHeaders` / `FromReset`).
pub fn retriable(p: &RetryPolicy, outcome: Outcome) -> bool {
    let on = &p.retry_on;
    match outcome {
        Outcome::Status(status, grpc) => {
            (on.status_5xx && status >= 500)
                || (on.gateway_error && matches!(status, 502..=504))
                || (on.retriable_4xx && status == 409)
                || (on.retriable_status_codes && p.retriable_status_codes.contains(&status))
                || grpc.is_some_and(|g| {
                    (on.grpc_cancelled && g == 1)
                        || (on.grpc_deadline_exceeded && g == 4)
                        || (on.grpc_resource_exhausted && g == 8)
                        || (on.grpc_unavailable && g == 14)
                        || (on.grpc_internal && g == 13)
                })
        }
        Outcome::ConnectFailure => {
            on.connect_failure || on.status_5xx || on.gateway_error || on.reset
        }
        Outcome::Reset | Outcome::PerTryTimeout => on.status_5xx || on.gateway_error || on.reset,
    }
}

/// The `grpc-status` of a trailers-only response.
pub fn grpc_status(headers: &HeaderMap) -> Option<u32> {
    headers.get("grpc-status")?.to_str().ok()?.parse().ok()
}

/// Fully jittered exponential back-off before retry `n` (1-based), as Envoy's.
pub fn backoff(p: &RetryPolicy, n: u32) -> Duration {
    let ceiling = p
        .backoff_base
        .saturating_mul(1u32 << (n.saturating_sub(1)).min(16))
        .min(p.backoff_max);
    let ms = ceiling.as_millis() as u64;
    if ms == 0 {
        return Duration::ZERO;
    }
    Duration::from_millis(rand::rng().random_range(0..ms))
}

/// The downstream request body, kept whole when small enough to send again.
pub enum RequestBody {
    Buffered(Bytes),
    /// Too large (or with trailers) to keep: sent once.
    Streaming(UpstreamBody),
}

impl RequestBody {
    /// Reads up to [`REPLAY_LIMIT`] bytes; the body ends within it or is streamed on.
    pub async fn read(mut body: Incoming) -> Result<RequestBody, hyper::Error> {
        let mut frames: Vec<Frame<Bytes>> = Vec::new();
        let mut size = 0;
        loop {
            match body.frame().await {
                None => {
                    let mut all = BytesMut::with_capacity(size);
                    for f in &frames {
                        if let Some(d) = f.data_ref() {
                            all.extend_from_slice(d);
                        }
                    }
                    return Ok(RequestBody::Buffered(all.freeze()));
                }
                Some(Err(e)) => return Err(e),
                Some(Ok(frame)) => {
                    let keep_going = match frame.data_ref() {
                        Some(d) => {
                            size += d.len();
                            size <= REPLAY_LIMIT
                        }
                        None => false,
                    };
                    frames.push(frame);
                    if !keep_going {
                        break;
                    }
                }
            }
        }
        let read = futures::stream::iter(frames.into_iter().map(Ok));
        let rest = BodyStream::new(body);
        Ok(RequestBody::Streaming(BodyExt::boxed(StreamBody::new(
            read.chain(rest),
        ))))
    }

    /// The body for one try: a copy when buffered, else the stream (once; afterwards
    /// the body is no longer replayable).
    pub fn take(&mut self) -> UpstreamBody {
        match std::mem::replace(self, RequestBody::Streaming(full_bytes(Bytes::new()))) {
            RequestBody::Buffered(b) => {
                *self = RequestBody::Buffered(b.clone());
                full_bytes(b)
            }
            RequestBody::Streaming(s) => s,
        }
    }

    pub fn replayable(&self) -> bool {
        matches!(self, RequestBody::Buffered(_))
    }

    pub fn buffered(&self) -> Option<&Bytes> {
        match self {
            RequestBody::Buffered(b) => Some(b),
            RequestBody::Streaming(_) => None,
        }
    }
}

pub fn full_bytes(b: Bytes) -> UpstreamBody {
    Full::new(b).map_err(|never| match never {}).boxed()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::route::RetryOn;

    fn policy(on: RetryOn, codes: &[u16]) -> RetryPolicy {
        RetryPolicy {
            retry_on: on,
            num_retries: 2,
            per_try_timeout: None,
            retriable_status_codes: codes.to_vec(),
            previous_hosts: false,
            host_selection_max_attempts: 1,
            backoff_base: Duration::from_millis(25),
            backoff_max: Duration::from_millis(250),
        }
    }

    #[test]
    fn conditions() {
        let five = policy(
            RetryOn {
                status_5xx: true,
                ..Default::default()
            },
            &[],
        );
        assert!(retriable(&five, Outcome::Status(503, None)));
        assert!(retriable(&five, Outcome::Status(500, None)));
        assert!(!retriable(&five, Outcome::Status(404, None)));
        assert!(retriable(&five, Outcome::PerTryTimeout));
        assert!(retriable(&five, Outcome::ConnectFailure));
        let gw = policy(
            RetryOn {
                gateway_error: true,
                ..Default::default()
            },
            &[],
        );
        assert!(!retriable(&gw, Outcome::Status(500, None)));
        assert!(retriable(&gw, Outcome::Status(504, None)));
        // Istio's default.
        let istio = policy(
            RetryOn {
                connect_failure: true,
                refused_stream: true,
                grpc_unavailable: true,
                grpc_cancelled: true,
                retriable_status_codes: true,
                ..Default::default()
            },
            &[503],
        );
        assert!(retriable(&istio, Outcome::Status(503, None)));
        assert!(!retriable(&istio, Outcome::Status(502, None)));
        assert!(retriable(&istio, Outcome::Status(200, Some(14))));
        assert!(retriable(&istio, Outcome::ConnectFailure));
        assert!(!retriable(&istio, Outcome::PerTryTimeout));
        assert!(!retriable(&istio, Outcome::Reset));
    }

    #[test]
    fn backoff_is_bounded() {
        let p = policy(RetryOn::default(), &[]);
        for n in 1..10 {
            assert!(backoff(&p, n) < Duration::from_millis(250));
        }
        assert!(backoff(&p, 1) < Duration::from_millis(25));
    }
}
