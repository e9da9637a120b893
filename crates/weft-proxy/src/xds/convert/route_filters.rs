//! `typed_per_filter_config` of routes, virtual hosts and configurations: the fault
//! filter's `HTTPFault` and the CORS filter's `CorsPolicy`.

use super::super::{at, duration, invalid, reject_rest, type_name, unpack, unsupported, Result};
use super::headers::{fraction, runtime_fraction};
use super::{header_matcher, string_match};
use crate::model::route::{
    AbortKind, CorsPolicy, Fault, FaultAbort, FaultDelay, FilterConfigs, Fraction, OriginMatcher,
};
use envoy_types::pb::envoy::config::route::v3::FilterConfig;
use envoy_types::pb::envoy::extensions::filters::common::fault::v3::fault_delay::FaultDelaySecifier;
use envoy_types::pb::envoy::extensions::filters::http::cors::v3::CorsPolicy as CorsProto;
use envoy_types::pb::envoy::extensions::filters::http::fault::v3::{
    fault_abort::ErrorType, HttpFault,
};
use envoy_types::pb::google::protobuf::Any;
use std::collections::HashMap;
use std::sync::Arc;

pub const FAULT_TYPE: &str = "envoy.extensions.filters.http.fault.v3.HTTPFault";
pub const CORS_TYPE: &str = "envoy.extensions.filters.http.cors.v3.CorsPolicy";
const FILTER_CONFIG_TYPE: &str = "envoy.config.route.v3.FilterConfig";

const HTTP_FAULT: &[(u32, &str)] = &[
    (3, "upstream_cluster"),
    (5, "downstream_nodes"),
    (7, "response_rate_limit"),
    (16, "filter_metadata"),
];

const CORS_POLICY: &[(u32, &str)] = &[(8, "shadow_enabled")];

/// Reads the per-filter configs weft-proxy's filters understand, by config type (filter
/// names are the operator's choice); anything else is refused.
pub fn filter_configs(field: &str, map: &HashMap<String, Any>) -> Result<FilterConfigs> {
    let mut out = FilterConfigs::default();
    // Sorted so that an error always names the same entry.
    let mut names: Vec<&String> = map.keys().collect();
    names.sort();
    for name in names {
        let f = format!("{}[{name}]", at(field, "typed_per_filter_config"));
        let mut any = map[name].clone();
        if type_name(&any) == FILTER_CONFIG_TYPE {
            let wrapper: FilterConfig = unpack(&f, &any, FILTER_CONFIG_TYPE)?;
            if wrapper.disabled {
                return Err(unsupported(&f, "disabling a filter per route"));
            }
            match wrapper.config {
                Some(inner) => any = inner,
                None => continue,
            }
        }
        match type_name(&any) {
            FAULT_TYPE => out.fault = Some(Arc::new(fault(&f, &unpack(&f, &any, FAULT_TYPE)?)?)),
            CORS_TYPE => out.cors = Some(Arc::new(cors(&f, &unpack(&f, &any, CORS_TYPE)?)?)),
            other => return Err(unsupported(f, format!("per-filter config {other}"))),
        }
    }
    Ok(out)
}

fn fault(field: &str, h: &HttpFault) -> Result<Fault> {
    let delay = match &h.delay {
        None => None,
        Some(d) => {
            let f = at(field, "delay");
            let fixed = match &d.fault_delay_secifier {
                Some(FaultDelaySecifier::FixedDelay(t)) => {
                    Some(duration(&at(&f, "fixed_delay"), t)?)
                }
                Some(FaultDelaySecifier::HeaderDelay(_)) => None,
                None => return Err(invalid(f, "no fixed_delay or header_delay")),
            };
            Some(FaultDelay {
                fixed,
                percentage: percentage(&at(&f, "percentage"), d.percentage.as_ref())?,
            })
        }
    };
    let abort = match &h.abort {
        None => None,
        Some(a) => {
            let f = at(field, "abort");
            let kind = match a.error_type {
                Some(ErrorType::HttpStatus(s)) => AbortKind::Http(
                    u16::try_from(s)
                        .ok()
                        .filter(|s| (200..600).contains(s))
                        .ok_or_else(|| invalid(at(&f, "http_status"), s.to_string()))?,
                ),
                Some(ErrorType::GrpcStatus(s)) => AbortKind::Grpc(s),
                Some(ErrorType::HeaderAbort(_)) => AbortKind::FromHeaders,
                None => return Err(invalid(f, "no error type")),
            };
            Some(FaultAbort {
                kind,
                percentage: percentage(&at(&f, "percentage"), a.percentage.as_ref())?,
            })
        }
    };
    let headers = h
        .headers
        .iter()
        .enumerate()
        .map(|(i, m)| header_matcher(&format!("{field}.headers[{i}]"), m))
        .collect::<Result<_>>()?;
    let mut rest = h.clone();
    rest.delay = None;
    rest.abort = None;
    rest.headers.clear();
    rest.max_active_faults = None;
    // Runtime keys only name overrides; weft-proxy has no runtime, so the config's own
    // values apply, as in an Envoy whose runtime does not set those keys.
    rest.delay_percent_runtime.clear();
    rest.abort_percent_runtime.clear();
    rest.delay_duration_runtime.clear();
    rest.abort_http_status_runtime.clear();
    rest.max_active_faults_runtime.clear();
    rest.response_rate_limit_percent_runtime.clear();
    rest.abort_grpc_status_runtime.clear();
    rest.disable_downstream_cluster_stats = false;
    reject_rest(field, &rest, HTTP_FAULT)?;
    Ok(Fault {
        delay,
        abort,
        max_active_faults: h.max_active_faults.map(|m| m.value),
        headers,
    })
}

/// A fault's `percentage`; unset is 0% in Envoy (the proto default).
fn percentage(
    field: &str,
    p: Option<&envoy_types::pb::envoy::r#type::v3::FractionalPercent>,
) -> Result<Fraction> {
    match p {
        Some(p) => fraction(field, p),
        None => Ok(Fraction {
            numerator: 0,
            denominator: 100,
        }),
    }
}

fn cors(field: &str, c: &CorsProto) -> Result<CorsPolicy> {
    let allow_origins = c
        .allow_origin_string_match
        .iter()
        .enumerate()
        .map(|(i, m)| {
            Ok(OriginMatcher {
                matcher: string_match(&format!("{field}.allow_origin_string_match[{i}]"), m)?,
                ignore_case: m.ignore_case,
            })
        })
        .collect::<Result<_>>()?;
    let enabled = match &c.filter_enabled {
        None => None,
        Some(r) => Some(runtime_fraction(&at(field, "filter_enabled"), Some(r))?),
    };
    let mut rest = c.clone();
    rest.allow_origin_string_match.clear();
    rest.allow_methods.clear();
    rest.allow_headers.clear();
    rest.expose_headers.clear();
    rest.max_age.clear();
    rest.allow_credentials = None;
    rest.filter_enabled = None;
    rest.allow_private_network_access = None;
    rest.forward_not_matching_preflights = None;
    // Shadow mode only counts origins in stats; with the filter enabled it changes nothing.
    if c.filter_enabled.is_none() {
        rest.shadow_enabled = None;
    }
    reject_rest(field, &rest, CORS_POLICY)?;
    Ok(CorsPolicy {
        allow_origins,
        allow_methods: c.allow_methods.clone(),
        allow_headers: c.allow_headers.clone(),
        expose_headers: c.expose_headers.clone(),
        max_age: c.max_age.clone(),
        allow_credentials: c.allow_credentials.map(|b| b.value),
        allow_private_network_access: c.allow_private_network_access.map(|b| b.value),
        forward_not_matching_preflights: c.forward_not_matching_preflights.map(|b| b.value),
        enabled,
    })
}
