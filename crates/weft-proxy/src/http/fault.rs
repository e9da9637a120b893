//! The fault filter (`envoy.filters.http.fault`) with a route's `HTTPFault`: a delay, then
//! an abort, each on a percentage of requests, bounded by `max_active_faults`.

use super::local_reply::{grpc_local_reply, local_reply, ResponseFlag};
use super::routing::{self, RequestInfo};
use super::ResponseBody;
use crate::model::route::{AbortKind, Fault};
use http::{HeaderMap, Response, StatusCode};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Requests with a fault in progress, over all routes (Envoy's `fault.active_faults`).
static ACTIVE_FAULTS: AtomicU64 = AtomicU64::new(0);

const DELAY_HEADER: &str = "x-envoy-fault-delay-request";
const ABORT_HEADER: &str = "x-envoy-fault-abort-request";
const ABORT_GRPC_HEADER: &str = "x-envoy-fault-abort-grpc-request";

/// Counts one active fault until dropped.
struct Active;

impl Active {
    fn start(max: Option<u32>) -> Option<Active> {
        let max = max.map_or(u64::MAX, u64::from);
        ACTIVE_FAULTS
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()
            .map(|_| Active)
    }
}

impl Drop for Active {
    fn drop(&mut self) {
        ACTIVE_FAULTS.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Runs the fault: sleeps for a delay, then returns the abort reply if one is injected;
/// None lets the request continue.
pub async fn inject(f: &Fault, req: &RequestInfo<'_>) -> Option<Response<ResponseBody>> {
    let headers = req.headers;
    if !f.headers.iter().all(|m| routing::header_matches(m, req)) {
        return None;
    }
    let delay = f
        .delay
        .as_ref()
        .filter(|d| d.percentage.sample())
        .and_then(|d| d.fixed.or_else(|| header_millis(headers, DELAY_HEADER)))
        .filter(|d| !d.is_zero());
    let abort = f
        .abort
        .as_ref()
        .filter(|a| a.percentage.sample())
        .and_then(|a| abort_reply(a.kind, headers));
    if delay.is_none() && abort.is_none() {
        return None;
    }
    // Over the limit: no fault at all for this request.
    let _active = Active::start(f.max_active_faults)?;
    if let Some(d) = delay {
        tracing::debug!(delay_ms = d.as_millis() as u64, "fault filter delay");
        tokio::time::sleep(d).await;
    }
    abort.map(|reply| reply())
}

type Reply = Box<dyn FnOnce() -> Response<ResponseBody> + Send>;

fn abort_reply(kind: AbortKind, headers: &HeaderMap) -> Option<Reply> {
    const BODY: &str = "fault filter abort";
    let http = |code: u16| -> Option<Reply> {
        let status = StatusCode::from_u16(code).ok()?;
        Some(Box::new(move || {
            local_reply(status, ResponseFlag::FaultInjected, BODY)
        }))
    };
    let grpc = |code: u32| -> Option<Reply> {
        Some(Box::new(move || {
            grpc_local_reply(code, ResponseFlag::FaultInjected, BODY)
        }))
    };
    match kind {
        AbortKind::Http(code) => http(code),
        AbortKind::Grpc(code) => grpc(code),
        AbortKind::FromHeaders => {
            if let Some(code) =
                header_number(headers, ABORT_HEADER).filter(|c| (200..600).contains(c))
            {
                http(code as u16)
            } else {
                header_number(headers, ABORT_GRPC_HEADER).and_then(|c| grpc(c as u32))
            }
        }
    }
}

fn header_number(headers: &HeaderMap, name: &str) -> Option<u64> {
    headers.get(name)?.to_str().ok()?.trim().parse().ok()
}

fn header_millis(headers: &HeaderMap, name: &str) -> Option<Duration> {
    header_number(headers, name).map(Duration::from_millis)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::local_reply::LocalReply;
    use crate::model::route::{FaultAbort, FaultDelay, Fraction};
    use http::HeaderValue;
    use std::time::Instant;

    fn info(headers: &HeaderMap) -> RequestInfo<'_> {
        RequestInfo {
            method: "GET",
            authority: "reviews:9080",
            path_and_query: "/",
            scheme: "http",
            headers,
            metadata: None,
        }
    }

    const NONE: Fraction = Fraction {
        numerator: 0,
        denominator: 100,
    };

    fn fault(delay: Option<FaultDelay>, abort: Option<FaultAbort>) -> Fault {
        Fault {
            delay,
            abort,
            max_active_faults: None,
            headers: vec![],
        }
    }

    #[tokio::test]
    async fn abort_answers_with_envoys_body() {
        let f = fault(
            None,
            Some(FaultAbort {
                kind: AbortKind::Http(503),
                percentage: Fraction::ALL,
            }),
        );
        let resp = inject(&f, &info(&HeaderMap::new())).await.expect("aborted");
        assert_eq!(resp.status(), 503);
        assert_eq!(
            resp.extensions().get::<LocalReply>().unwrap().body,
            "fault filter abort"
        );
        let never = fault(
            None,
            Some(FaultAbort {
                kind: AbortKind::Http(503),
                percentage: NONE,
            }),
        );
        assert!(inject(&never, &info(&HeaderMap::new())).await.is_none());
    }

    #[tokio::test]
    async fn delay_then_continue_and_header_driven_faults() {
        let f = fault(
            Some(FaultDelay {
                fixed: Some(Duration::from_millis(60)),
                percentage: Fraction::ALL,
            }),
            None,
        );
        let t = Instant::now();
        assert!(inject(&f, &info(&HeaderMap::new())).await.is_none());
        assert!(t.elapsed() >= Duration::from_millis(60));

        let from_headers = fault(
            None,
            Some(FaultAbort {
                kind: AbortKind::FromHeaders,
                percentage: Fraction::ALL,
            }),
        );
        assert!(inject(&from_headers, &info(&HeaderMap::new()))
            .await
            .is_none());
        let mut h = HeaderMap::new();
        h.insert(ABORT_GRPC_HEADER, HeaderValue::from_static("14"));
        let resp = inject(&from_headers, &info(&h)).await.expect("aborted");
        assert_eq!(
            resp.extensions().get::<LocalReply>().unwrap().grpc_status,
            Some(14)
        );
    }

    #[tokio::test]
    async fn max_active_faults_zero_disables() {
        let mut f = fault(
            None,
            Some(FaultAbort {
                kind: AbortKind::Http(500),
                percentage: Fraction::ALL,
            }),
        );
        f.max_active_faults = Some(0);
        assert!(inject(&f, &info(&HeaderMap::new())).await.is_none());
    }
}
