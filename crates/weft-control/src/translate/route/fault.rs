//! VirtualService `fault` -> the fault filter's per-route `HTTPFault`.

use super::proto::{duration, integer_percent, percent};
use envoy_types::pb::envoy::extensions::filters::common::fault::v3::{
    fault_delay::FaultDelaySecifier, FaultDelay,
};
use envoy_types::pb::envoy::extensions::filters::http::fault::v3::{
    fault_abort::ErrorType, FaultAbort, HttpFault,
};
use weft_config::networking::virtual_service::HttpFaultInjection;

/// gRPC status names (the ones Istio accepts) to their codes.
fn grpc_code(name: &str) -> Option<u32> {
    const CODES: [&str; 17] = [
        "OK",
        "CANCELLED",
        "UNKNOWN",
        "INVALID_ARGUMENT",
        "DEADLINE_EXCEEDED",
        "NOT_FOUND",
        "ALREADY_EXISTS",
        "PERMISSION_DENIED",
        "RESOURCE_EXHAUSTED",
        "FAILED_PRECONDITION",
        "ABORTED",
        "OUT_OF_RANGE",
        "UNIMPLEMENTED",
        "INTERNAL",
        "UNAVAILABLE",
        "DATA_LOSS",
        "UNAUTHENTICATED",
    ];
    CODES.iter().position(|c| *c == name).map(|i| i as u32)
}

/// The per-route fault config, or `None` when nothing Envoy can inject is left
/// (exponential delays and HTTP/2 errors are not supported, as in Istio).
pub fn http_fault(f: &HttpFaultInjection) -> Option<HttpFault> {
    let delay = f.delay.as_ref().and_then(|d| {
        let fixed = d.fixed_delay?;
        let pct = match (&d.percentage, d.percent) {
            (Some(p), _) => percent(p),
            (None, Some(p)) => integer_percent(p.max(0) as u32),
            // Unset means every request, as the API documents.
            (None, None) => integer_percent(100),
        };
        Some(FaultDelay {
            percentage: Some(pct),
            fault_delay_secifier: Some(FaultDelaySecifier::FixedDelay(duration(fixed))),
        })
    });
    let abort = f.abort.as_ref().and_then(|a| {
        let error = if let Some(status) = a.http_status {
            ErrorType::HttpStatus(status.max(0) as u32)
        } else {
            ErrorType::GrpcStatus(grpc_code(a.grpc_status.as_deref()?)?)
        };
        Some(FaultAbort {
            percentage: Some(a.percentage.as_ref().map_or(integer_percent(100), percent)),
            error_type: Some(error),
            ..Default::default()
        })
    });
    if delay.is_none() && abort.is_none() {
        return None;
    }
    Some(HttpFault {
        delay,
        abort,
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delay_and_abort() {
        let f: HttpFaultInjection = serde_yaml::from_str(
            "delay: {fixedDelay: 7s, percentage: {value: 100}}\nabort: {httpStatus: 500, percentage: {value: 10.5}}",
        )
        .unwrap();
        let out = http_fault(&f).unwrap();
        let d = out.delay.unwrap();
        assert_eq!(d.percentage.unwrap().numerator, 1_000_000);
        match d.fault_delay_secifier {
            Some(FaultDelaySecifier::FixedDelay(t)) => assert_eq!(t.seconds, 7),
            other => panic!("expected a fixed delay, got {other:?}"),
        }
        let a = out.abort.unwrap();
        assert_eq!(a.error_type, Some(ErrorType::HttpStatus(500)));
        assert_eq!(a.percentage.unwrap().numerator, 105_000);
    }

    #[test]
    fn grpc_abort_uses_status_code() {
        let f: HttpFaultInjection =
            serde_yaml::from_str("abort: {grpcStatus: UNAVAILABLE}").unwrap();
        let a = http_fault(&f).unwrap().abort.unwrap();
        assert_eq!(a.error_type, Some(ErrorType::GrpcStatus(14)));
        let exp: HttpFaultInjection =
            serde_yaml::from_str("delay: {exponentialDelay: 1s}").unwrap();
        assert!(http_fault(&exp).is_none());
    }
}
