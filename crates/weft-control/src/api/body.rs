//! Request bodies of writes: JSON or YAML in, validated Kubernetes-shaped JSON out.

use super::ApiError;
use axum::http::header::{CONTENT_TYPE, WARNING};
use axum::http::{HeaderMap, HeaderValue};
use serde_json::{Map, Value};
use weft_config::{ConfigError, FieldError, Kind};

/// A write that passed every check, ready for the store.
#[derive(Debug)]
pub(super) struct ValidWrite {
    pub object: Value,
    /// `metadata.resourceVersion` from the body: the optimistic-concurrency precondition.
    pub expected: Option<u64>,
    pub warnings: Vec<FieldError>,
}

/// Where a write is going, from its path.
pub(super) struct Target<'a> {
    pub kind: Kind,
    pub api_version: String,
    pub namespace: &'a str,
    /// `None` for a create (POST), where the body names the object.
    pub name: Option<&'a str>,
}

/// Parses the body as YAML when the client says so, else as JSON.
pub(super) fn decode(headers: &HeaderMap, body: &[u8]) -> Result<Value, ApiError> {
    let content_type = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let text = std::str::from_utf8(body)
        .map_err(|_| ApiError::bad_request("the request body is not UTF-8"))?;
    if text.trim().is_empty() {
        return Err(ApiError::bad_request(
            "the request body is empty; send one resource",
        ));
    }
    if content_type.contains("yaml") {
        serde_yaml::from_str(text)
            .map_err(|e| ApiError::bad_request(format!("the request body is not valid YAML: {e}")))
    } else {
        serde_json::from_str(text).map_err(|e| {
            ApiError::bad_request(format!(
                "the request body is not valid JSON: {e} (send Content-Type: application/yaml for YAML)"
            ))
        })
    }
}

/// Checks the body against its path, fills what the path implies, and validates it.
pub(super) fn check(target: &Target<'_>, body: Value) -> Result<ValidWrite, ApiError> {
    let Value::Object(mut obj) = body else {
        return Err(ApiError::bad_request("the request body must be one object"));
    };
    let kind_name = target.kind.name();
    match obj.get("kind") {
        None | Some(Value::Null) => {
            obj.insert("kind".into(), kind_name.into());
        }
        Some(Value::String(k)) if k == kind_name => {}
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "the body's kind {other} does not match the path's {kind_name}"
            )))
        }
    }
    if obj.get("apiVersion").is_none_or(Value::is_null) {
        obj.insert("apiVersion".into(), target.api_version.clone().into());
    }
    let meta = obj
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    let mut expected = None;
    if let Value::Object(meta) = meta {
        fill_or_match(meta, "namespace", target.namespace)?;
        if let Some(name) = target.name {
            fill_or_match(meta, "name", name)?;
        }
        if let Some(rv) = meta.get("resourceVersion").and_then(Value::as_str) {
            if !rv.is_empty() {
                expected = Some(rv.parse::<u64>().map_err(|_| {
                    ApiError::bad_request(format!(
                        "metadata.resourceVersion {rv:?} is not one this server issued"
                    ))
                })?);
            }
        }
    }
    let name_of = |obj: &Map<String, Value>| {
        obj.get("metadata")
            .and_then(|m| m.get("name"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let name = name_of(&obj);
    match weft_config::validate_value(0, Value::Object(obj)) {
        Ok((resource, warnings)) => Ok(ValidWrite {
            object: resource.to_json(),
            expected,
            warnings,
        }),
        Err(ConfigError::Invalid { errors, .. }) => Err(ApiError::invalid(
            kind_name,
            target.namespace,
            &name,
            &errors,
        )),
        Err(e @ (ConfigError::Syntax { .. } | ConfigError::UnknownKind { .. })) => {
            Err(ApiError::bad_request(e.to_string()))
        }
    }
}

/// The path's namespace or name wins when the body has none; a different one is an error
/// because the client is confused about what it is writing.
fn fill_or_match(
    meta: &mut Map<String, Value>,
    field: &str,
    from_path: &str,
) -> Result<(), ApiError> {
    match meta.get(field) {
        None | Some(Value::Null) => {
            meta.insert(field.into(), from_path.into());
            Ok(())
        }
        Some(Value::String(s)) if s.is_empty() => {
            meta.insert(field.into(), from_path.into());
            Ok(())
        }
        Some(Value::String(s)) if s == from_path => Ok(()),
        Some(other) => Err(ApiError::bad_request(format!(
            "metadata.{field} {other} in the body does not match {from_path:?} in the path"
        ))),
    }
}

/// Validation warnings as `Warning: 299 - "..."` headers (RFC 7234), as kubectl shows them.
pub(super) fn warning_headers(warnings: &[FieldError]) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for w in warnings {
        let text: String = w
            .to_string()
            .chars()
            .map(|c| {
                if c.is_ascii_graphic() || c == ' ' {
                    c
                } else {
                    '?'
                }
            })
            .collect();
        let escaped = text.replace('\\', "\\\\").replace('"', "\\\"");
        if let Ok(value) = HeaderValue::from_str(&format!("299 - \"{escaped}\"")) {
            headers.append(WARNING, value);
        }
    }
    headers
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The smallest Sidecar Istio accepts: egress to its own namespace.
    fn egress() -> Value {
        json!({"egress": [{"hosts": ["./*"]}]})
    }

    fn target(name: Option<&'static str>) -> Target<'static> {
        Target {
            kind: Kind::Sidecar,
            api_version: "networking.istio.io/v1beta1".into(),
            namespace: "default",
            name,
        }
    }

    #[test]
    fn path_fills_namespace_name_kind_and_version() {
        let ok = check(&target(Some("s")), json!({"spec": egress()})).unwrap();
        assert_eq!(ok.object["metadata"]["namespace"], "default");
        assert_eq!(ok.object["metadata"]["name"], "s");
        assert_eq!(ok.object["kind"], "Sidecar");
        assert_eq!(ok.expected, None);
    }

    #[test]
    fn mismatches_are_bad_requests() {
        let other_ns = json!({"metadata": {"name": "s", "namespace": "prod"}, "spec": egress()});
        assert_eq!(check(&target(Some("s")), other_ns).unwrap_err().code, 400);
        let other_name = json!({"metadata": {"name": "t"}, "spec": egress()});
        assert_eq!(check(&target(Some("s")), other_name).unwrap_err().code, 400);
        let other_kind = json!({"kind": "Gateway", "metadata": {"name": "s"}, "spec": egress()});
        assert_eq!(check(&target(None), other_kind).unwrap_err().code, 400);
    }

    #[test]
    fn resource_version_is_the_precondition() {
        let body = json!({"metadata": {"name": "s", "resourceVersion": "7"}, "spec": egress()});
        assert_eq!(check(&target(Some("s")), body).unwrap().expected, Some(7));
        let body = json!({"metadata": {"name": "s", "resourceVersion": "abc"}, "spec": egress()});
        assert_eq!(check(&target(Some("s")), body).unwrap_err().code, 400);
    }

    #[test]
    fn invalid_lists_every_cause() {
        let body =
            json!({"metadata": {"name": "Bad_Name"}, "spec": egress(), "extra": 1, "more": 2});
        let err = check(&target(None), body).unwrap_err();
        assert_eq!(err.code, 422);
        let status = err.status();
        let fields: Vec<&str> = status["details"]["causes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["field"].as_str().unwrap())
            .collect();
        assert_eq!(fields, ["extra", "more"]);
        assert!(status["message"]
            .as_str()
            .unwrap()
            .starts_with("Sidecar default/Bad_Name: extra: unknown field"));
    }

    #[test]
    fn warnings_become_299_headers() {
        let h = warning_headers(&[FieldError::new("spec.x", "deprecated \"x\"")]);
        assert_eq!(
            h.get(WARNING).unwrap(),
            "299 - \"spec.x: deprecated \\\"x\\\"\""
        );
    }
}
