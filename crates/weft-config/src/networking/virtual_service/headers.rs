//! Header names and values, header edits and CORS of a VirtualService HTTP route.

use super::http::string_regexp;
use super::{CorsPolicy, HeaderOperations, Headers, HttpRoute};
use crate::networking::shared::check;
use crate::validate::common::validate_duration;
use crate::validate::Report;

const CORS_METHODS: &[&str] = &[
    "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "CONNECT", "OPTIONS", "TRACE", "*",
];

const PSEUDO_HEADERS: &[&str] = &[":method", ":scheme", ":authority", ":path", ":status"];

fn is_token(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

pub(crate) fn header_name_or_claim(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("header name cannot be empty".into());
    }
    if name.starts_with("@request.auth.claims") || PSEUDO_HEADERS.contains(&name) {
        return Ok(());
    }
    if !is_token(name) {
        return Err(format!("header name {name} is not a valid header name"));
    }
    Ok(())
}

fn is_internal_header(name: &str) -> bool {
    name.starts_with(':') || name.eq_ignore_ascii_case("host")
}

fn is_authority_header(name: &str) -> bool {
    name.eq_ignore_ascii_case(":authority") || name.eq_ignore_ascii_case("host")
}

fn request_set_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("header name cannot be empty".into());
    }
    if is_internal_header(name) && !is_authority_header(name) {
        return Err(format!(
            "invalid header {name:?}: header cannot have \":\" prefix"
        ));
    }
    Ok(())
}

fn operation_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("header name cannot be empty".into());
    }
    if name.eq_ignore_ascii_case("host") {
        return Err(format!("invalid header {name:?}: cannot set Host header"));
    }
    if is_internal_header(name) {
        return Err(format!(
            "invalid header {name:?}: header cannot have \":\" prefix"
        ));
    }
    Ok(())
}

fn header_value(value: &str) -> Result<(), String> {
    if value
        .chars()
        .any(|c| (c as u32) < 0x20 && c != '\t' || c as u32 == 0x7f)
    {
        return Err(format!("header value configuration {value} is invalid"));
    }
    let bytes = value.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            if i + 1 >= bytes.len() {
                return Err(
                    "header value configuration: invalid header configuration. Un-escaped %".into(),
                );
            }
            if bytes[i + 1] == b'%' {
                i += 2;
                continue;
            }
            match value[i + 1..].find('%') {
                Some(end) => i += end + 2,
                None => {
                    return Err("header value configuration: invalid header configuration. Un-terminated variable expression".into())
                }
            }
            continue;
        }
        i += 1;
    }
    Ok(())
}

fn validate_header_ops(report: &mut Report, path: &str, ops: &HeaderOperations, request: bool) {
    let name_check = if request {
        request_set_name
    } else {
        operation_name
    };
    for (field, map) in [("add", &ops.add), ("set", &ops.set)] {
        for (name, value) in map {
            let at = format!("{path}.{field}[{name}]");
            check(report, &at, name_check(name));
            check(report, &at, header_value(value));
        }
    }
    for (i, name) in ops.remove.iter().enumerate() {
        check(report, &format!("{path}.remove[{i}]"), operation_name(name));
    }
}

pub(crate) fn validate_headers(report: &mut Report, path: &str, h: &Headers) {
    if let Some(r) = &h.request {
        validate_header_ops(report, &format!("{path}.request"), r, true);
    }
    if let Some(r) = &h.response {
        validate_header_ops(report, &format!("{path}.response"), r, false);
    }
}

pub(crate) fn validate_authority_rewrite(report: &mut Report, path: &str, http: &HttpRoute) {
    let mut current = http
        .rewrite
        .as_ref()
        .and_then(|r| r.authority.clone())
        .unwrap_or_default();
    let Some(req) = http.headers.as_ref().and_then(|h| h.request.as_ref()) else {
        return;
    };
    for (k, v) in req.set.iter().chain(req.add.iter()) {
        if !is_authority_header(k) {
            continue;
        }
        if !current.is_empty() {
            report.error(
                format!("{path}.headers.request"),
                format!("authority header cannot be set multiple times: have {current:?}, attempting to set {v:?}"),
            );
            return;
        }
        current = v.clone();
    }
}

pub(crate) fn validate_cors(report: &mut Report, path: &str, cors: &CorsPolicy) {
    for (i, origin) in cors.allow_origins.iter().enumerate() {
        let at = format!("{path}.allowOrigins[{i}]");
        let value = origin
            .exact
            .as_deref()
            .or(origin.prefix.as_deref())
            .or(origin.regex.as_deref())
            .unwrap_or_default();
        if value.is_empty() {
            report.error(
                &at,
                format!("'{value}' is not a valid match type for CORS allow origins"),
            );
            continue;
        }
        if let Some(re) = &origin.regex {
            check(report, &at, string_regexp(re, "corsPolicy.allowOrigins"));
        }
    }
    for (i, m) in cors.allow_methods.iter().enumerate() {
        if !CORS_METHODS.contains(&m.as_str()) {
            report.error(
                format!("{path}.allowMethods[{i}]"),
                format!("{m:?} is not a supported HTTP method"),
            );
        }
    }
    for (field, names) in [
        ("allowHeaders", &cors.allow_headers),
        ("exposeHeaders", &cors.expose_headers),
    ] {
        for (i, name) in names.iter().enumerate() {
            let at = format!("{path}.{field}[{i}]");
            if name.is_empty() {
                report.error(&at, "header name cannot be empty");
            } else if name != "*" && !is_token(name) {
                report.error(
                    &at,
                    format!("header name {name} is not a valid header name"),
                );
            }
        }
    }
    if let Some(age) = cors.max_age {
        check(report, &format!("{path}.maxAge"), validate_duration(age));
        if age.nanos % 1_000_000_000 != 0 {
            report.error(
                format!("{path}.maxAge"),
                "max_age duration is accurate only to seconds precision",
            );
        }
    }
}
