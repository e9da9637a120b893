//! VirtualService `retries` -> Envoy `RetryPolicy`, with Istio's default policy when unset.

use super::proto::duration;
use envoy_types::pb::envoy::config::route::v3::retry_policy::{
    retry_host_predicate, retry_priority, RetryBackOff, RetryHostPredicate, RetryPriority,
};
use envoy_types::pb::envoy::config::route::v3::RetryPolicy;
use envoy_types::pb::envoy::extensions::retry::host::previous_hosts::v3::PreviousHostsPredicate;
use envoy_types::pb::envoy::extensions::retry::priority::previous_priorities::v3::PreviousPrioritiesConfig;
use envoy_types::pb::google::protobuf::UInt32Value;
use envoy_types::util::pack_any;
use weft_config::networking::virtual_service::HttpRetry;

/// What Istio retries on when the user says nothing: failures before any response bytes,
/// plus a 503 from the upstream.
pub const DEFAULT_RETRY_ON: &str =
    "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes";

fn previous_hosts() -> RetryHostPredicate {
    RetryHostPredicate {
        name: "envoy.retry_host_predicates.previous_hosts".into(),
        config_type: Some(retry_host_predicate::ConfigType::TypedConfig(pack_any(
            PreviousHostsPredicate {},
        ))),
    }
}

/// Istio's default: 2 retries, a different host each time (unless the destination uses
/// consistent hashing, where another host would break stickiness).
fn default_policy(consistent_hash: bool) -> RetryPolicy {
    RetryPolicy {
        retry_on: DEFAULT_RETRY_ON.into(),
        num_retries: Some(UInt32Value { value: 2 }),
        retriable_status_codes: vec![503],
        host_selection_retry_max_attempts: 5,
        retry_host_predicate: if consistent_hash {
            Vec::new()
        } else {
            vec![previous_hosts()]
        },
        ..Default::default()
    }
}

/// Splits `retryOn` into Envoy conditions and HTTP status codes (bare integers).
fn split_retry_on(retry_on: &str) -> (String, Vec<u32>) {
    let mut conditions = Vec::new();
    let mut codes = Vec::new();
    for part in retry_on.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part.parse::<u32>() {
            Ok(code) if (100..=599).contains(&code) => codes.push(code),
            _ => conditions.push(part),
        }
    }
    (conditions.join(","), codes)
}

/// The Envoy policy for a route; `None` when the user disabled retries (`attempts: 0`).
pub fn retry_policy(retries: Option<&HttpRetry>, consistent_hash: bool) -> Option<RetryPolicy> {
    let mut out = default_policy(consistent_hash);
    let Some(r) = retries else {
        return Some(out);
    };
    let attempts = r.attempts.unwrap_or(0);
    if attempts <= 0 {
        return None;
    }
    out.num_retries = Some(UInt32Value {
        value: attempts as u32,
    });
    if let Some(on) = r.retry_on.as_deref().filter(|s| !s.is_empty()) {
        let (mut conditions, codes) = split_retry_on(on);
        // Status codes alone retry nothing in Envoy unless retriable-status-codes is on.
        if !codes.is_empty() && !conditions.contains("retriable-status-codes") {
            if !conditions.is_empty() {
                conditions.push(',');
            }
            conditions.push_str("retriable-status-codes");
        }
        out.retry_on = conditions;
        out.retriable_status_codes = codes;
    }
    if let Some(t) = r.per_try_timeout {
        out.per_try_timeout = Some(duration(t));
    }
    if let Some(ignore) = r.retry_ignore_previous_hosts {
        out.retry_host_predicate = if ignore {
            vec![previous_hosts()]
        } else {
            Vec::new()
        };
    }
    if r.retry_remote_localities == Some(true) {
        out.retry_priority = Some(RetryPriority {
            name: "envoy.retry_priorities.previous_priorities".into(),
            config_type: Some(retry_priority::ConfigType::TypedConfig(pack_any(
                PreviousPrioritiesConfig {
                    update_frequency: 2,
                },
            ))),
        });
    }
    if let Some(b) = r.backoff {
        out.retry_back_off = Some(RetryBackOff {
            base_interval: Some(duration(b)),
            ..Default::default()
        });
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> HttpRetry {
        serde_yaml::from_str(yaml).unwrap()
    }

    #[test]
    fn unset_is_istio_default() {
        let p = retry_policy(None, false).unwrap();
        assert_eq!(p.retry_on, DEFAULT_RETRY_ON);
        assert_eq!(p.num_retries, Some(UInt32Value { value: 2 }));
        assert_eq!(p.retriable_status_codes, [503]);
        assert_eq!(p.host_selection_retry_max_attempts, 5);
        assert_eq!(
            p.retry_host_predicate[0].name,
            "envoy.retry_host_predicates.previous_hosts"
        );
        assert!(retry_policy(None, true)
            .unwrap()
            .retry_host_predicate
            .is_empty());
    }

    #[test]
    fn zero_attempts_disable() {
        assert_eq!(retry_policy(Some(&parse("attempts: 0")), false), None);
    }

    #[test]
    fn status_codes_become_retriable_codes() {
        let p = retry_policy(
            Some(&parse(
                "attempts: 3\nperTryTimeout: 2s\nretryOn: gateway-error,connect-failure,503,504\nretryRemoteLocalities: true",
            )),
            false,
        )
        .unwrap();
        assert_eq!(p.num_retries, Some(UInt32Value { value: 3 }));
        assert_eq!(
            p.retry_on,
            "gateway-error,connect-failure,retriable-status-codes"
        );
        assert_eq!(p.retriable_status_codes, [503, 504]);
        assert_eq!(p.per_try_timeout.unwrap().seconds, 2);
        assert_eq!(
            p.retry_priority.unwrap().name,
            "envoy.retry_priorities.previous_priorities"
        );
    }
}
