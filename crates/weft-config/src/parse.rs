//! Reading multi-document YAML or JSON into resources, with field paths in every error.

use crate::error::{ConfigError, FieldError, Origin};
use crate::kind::Kind;
use crate::meta::ObjectMeta;
use crate::resource::{Resource, Spec};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::Value;

/// Parses every document in `text` (YAML with `---` separators, a JSON object, or a
/// Kubernetes `List`). Empty documents are skipped; each result carries its document index.
pub fn parse_documents(text: &str) -> Vec<Result<Resource, ConfigError>> {
    let values = match split_documents(text) {
        Ok(values) => values,
        Err(e) => return vec![Err(e)],
    };
    let mut out = Vec::new();
    for (document, value) in values {
        out.push(parse_value(document, value));
    }
    out
}

/// Splits text into JSON values, one per document, expanding `kind: List` items.
/// A syntax error ends the input: YAML gives no reliable way to resume after one.
pub fn split_documents(text: &str) -> Result<Vec<(usize, Value)>, ConfigError> {
    let mut out = Vec::new();
    let trimmed = text.trim_start();
    if trimmed.starts_with('{') || trimmed.starts_with('[') {
        let stream = serde_json::Deserializer::from_str(text).into_iter::<Value>();
        for (document, value) in stream.enumerate() {
            let value = value.map_err(|e| ConfigError::Syntax {
                document,
                message: e.to_string(),
            })?;
            push_document(&mut out, document, value);
        }
        return Ok(out);
    }
    for (document, de) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let yaml = serde_yaml::Value::deserialize(de).map_err(|e| ConfigError::Syntax {
            document,
            message: format!("invalid YAML: {e}"),
        })?;
        let value = serde_json::to_value(yaml).map_err(|e| ConfigError::Syntax {
            document,
            message: format!("invalid YAML: {e}"),
        })?;
        push_document(&mut out, document, value);
    }
    Ok(out)
}

fn push_document(out: &mut Vec<(usize, Value)>, document: usize, value: Value) {
    match value {
        Value::Null => {}
        Value::Array(items) => out.extend(items.into_iter().map(|v| (document, v))),
        Value::Object(ref obj) if obj.get("kind").and_then(Value::as_str) == Some("List") => {
            if let Some(Value::Array(items)) = obj.get("items") {
                out.extend(items.iter().cloned().map(|v| (document, v)));
            }
        }
        other => out.push((document, other)),
    }
}

/// Turns one JSON object into a resource: envelope, metadata and typed spec.
pub fn parse_value(document: usize, value: Value) -> Result<Resource, ConfigError> {
    let Value::Object(mut obj) = value else {
        return Err(ConfigError::Syntax {
            document,
            message: format!(
                "expected an object with apiVersion and kind, got {}",
                type_name(&value)
            ),
        });
    };
    let text = |obj: &serde_json::Map<String, Value>, key: &str| -> Result<String, ConfigError> {
        match obj.get(key) {
            Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
            Some(v) if !v.is_null() => Err(ConfigError::Syntax {
                document,
                message: format!("{key}: expected string, got {}", type_name(v)),
            }),
            _ => Err(ConfigError::Syntax {
                document,
                message: format!("{key}: Required value"),
            }),
        }
    };
    let api_version = text(&obj, "apiVersion")?;
    let kind_name = text(&obj, "kind")?;
    let Some(kind) = Kind::from_kind_name(&kind_name) else {
        return Err(ConfigError::UnknownKind {
            document,
            api_version,
            kind: kind_name,
        });
    };

    let mut errors = Vec::new();
    let metadata: ObjectMeta = match obj.remove("metadata") {
        None | Some(Value::Null) => ObjectMeta::default(),
        Some(v) => strict(v.clone(), "metadata").unwrap_or_else(|e| {
            errors.push(e);
            // Keep the name so the error still says which resource it is.
            let field = |k: &str| {
                v.get(k)
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string()
            };
            ObjectMeta {
                name: field("name"),
                namespace: field("namespace"),
                ..Default::default()
            }
        }),
    };
    let fail = |errors| Err(ConfigError::invalid(document, kind, &metadata, errors));
    if !kind.serves(&api_version) {
        let served: Vec<String> = kind
            .info()
            .versions
            .iter()
            .map(|v| format!("{}/{v}", kind.info().group))
            .collect();
        errors.push(FieldError::new(
            "apiVersion",
            format!(
                "{kind} is not served in {api_version:?}; served versions: {}",
                served.join(", ")
            ),
        ));
    }
    // Kinds without a `spec` (a Secret) carry their content in top-level fields instead.
    let body_fields = kind.top_level_fields().unwrap_or(&["spec", "status"]);
    for key in obj.keys() {
        if !matches!(key.as_str(), "apiVersion" | "kind") && !body_fields.contains(&key.as_str()) {
            errors.push(FieldError::new(key.clone(), "unknown field"));
        }
    }
    let status = obj.remove("status").filter(|v| !v.is_null());
    let spec_json = match kind.top_level_fields() {
        Some(fields) => Some(top_level_spec(kind, fields, &mut obj)),
        None => obj.remove("spec"),
    };
    let spec_json = match spec_json {
        None => {
            errors.push(FieldError::new("spec", "Required value"));
            return fail(errors);
        }
        Some(Value::Null) => {
            errors.push(FieldError::new(
                "spec",
                "spec in body must be of type object: \"null\"",
            ));
            return fail(errors);
        }
        Some(v) => v,
    };
    match Spec::from_json(kind, spec_json.clone()) {
        Ok(spec) if errors.is_empty() => Ok(Resource {
            api_version,
            metadata,
            spec,
            spec_json,
            status,
        }),
        Ok(_) => fail(errors),
        Err(e) => {
            errors.push(e);
            fail(errors)
        }
    }
}

/// Gathers the top-level fields of a kind without `spec` into one object that serves as its
/// spec, normalized as the Kubernetes API server would store it.
fn top_level_spec(kind: Kind, fields: &[&str], obj: &mut serde_json::Map<String, Value>) -> Value {
    let mut spec = serde_json::Map::new();
    for field in fields {
        if let Some(v) = obj.remove(*field) {
            spec.insert((*field).to_string(), v);
        }
    }
    if kind == Kind::Secret {
        crate::kubernetes::secret::normalize(&mut spec);
    }
    Value::Object(spec)
}

/// Reads documents the way `istioctl analyze` reads files: fields the schema does not know
/// are pruned (as the Kubernetes API server prunes them) and reported back as warnings,
/// instead of failing the whole resource. Used for analysis only; writes stay strict.
pub fn parse_documents_lenient(
    text: &str,
) -> Vec<Result<(Resource, Vec<FieldError>), ConfigError>> {
    let values = match split_documents(text) {
        Ok(values) => values,
        Err(e) => return vec![Err(e)],
    };
    values
        .into_iter()
        .map(|(doc, value)| parse_value_lenient(doc, value))
        .collect()
}

/// [`parse_value`], pruning unknown fields and returning what was pruned.
pub fn parse_value_lenient(
    document: usize,
    mut value: Value,
) -> Result<(Resource, Vec<FieldError>), ConfigError> {
    let mut pruned = Vec::new();
    // Each round prunes what serde reported; serde stops at the first unknown field of a
    // struct, so a deeply wrong document needs several rounds. Bounded to stay linear.
    for _ in 0..64 {
        match parse_value(document, value.clone()) {
            Ok(res) => return Ok((res, pruned)),
            Err(ConfigError::Invalid { origin, errors }) => {
                let unknown: Vec<FieldError> = errors
                    .iter()
                    .filter(|e| e.message == "unknown field")
                    .cloned()
                    .collect();
                if unknown.is_empty() || !unknown.iter().all(|e| remove_path(&mut value, &e.path)) {
                    return Err(ConfigError::Invalid { origin, errors });
                }
                pruned.extend(
                    unknown
                        .into_iter()
                        .map(|e| FieldError::new(e.path, "unknown field, ignored")),
                );
            }
            Err(e) => return Err(e),
        }
    }
    parse_value(document, value).map(|res| (res, pruned))
}

/// Removes the field at a path such as `spec.http[0].match[1].app`; false if absent.
fn remove_path(value: &mut Value, path: &str) -> bool {
    let mut segments = Vec::new();
    for part in path.split('.') {
        let (key, indexes) = part
            .split_once('[')
            .map_or((part, ""), |(k, rest)| (k, rest));
        if !key.is_empty() {
            segments.push(Err(key));
        }
        for idx in indexes.split('[').filter(|s| !s.is_empty()) {
            match idx.trim_end_matches(']').parse::<usize>() {
                Ok(i) => segments.push(Ok(i)),
                Err(_) => return false,
            }
        }
    }
    let Some((Err(last), parents)) = segments.split_last() else {
        return false;
    };
    let mut cur = value;
    for seg in parents {
        let next = match seg {
            Ok(i) => cur.get_mut(*i),
            Err(k) => cur.get_mut(*k),
        };
        match next {
            Some(v) => cur = v,
            None => return false,
        }
    }
    cur.as_object_mut()
        .is_some_and(|o| o.remove(*last).is_some())
}

/// Deserializes `value` into `T`, rejecting unknown fields, and reports the first problem
/// with its path below `prefix` in words a user understands ("expected integer").
pub(crate) fn strict<T: DeserializeOwned>(value: Value, prefix: &str) -> Result<T, FieldError> {
    if !value.is_object() && prefix == "spec" {
        return Err(FieldError::new(
            prefix,
            format!(
                "spec in body must be of type object: {:?}",
                type_name(&value)
            ),
        ));
    }
    serde_path_to_error::deserialize(value).map_err(|e| {
        let inner = e.inner().to_string();
        let mut path = prefix.to_string();
        let sub = e.path().to_string();
        if sub != "." && !sub.is_empty() {
            if !sub.starts_with('[') && !path.is_empty() {
                path.push('.');
            }
            path.push_str(&sub);
        }
        let (path, message) = humanize(path, &inner);
        FieldError::new(path, message)
    })
}

/// Rewrites serde's messages ("invalid type: string \"x\", expected u32") into the words
/// Kubernetes and Istio users know ("expected integer, got string \"x\"").
fn humanize(mut path: String, msg: &str) -> (String, String) {
    if let Some(rest) = msg.strip_prefix("unknown field `") {
        // serde_path_to_error's path already ends with the unknown key; add it only when
        // the error was raised before the key entered the path (top of a struct).
        let field = rest.split('`').next().unwrap_or_default();
        if !path.ends_with(&format!(".{field}")) {
            path.push('.');
            path.push_str(field);
        }
        return (path, "unknown field".to_string());
    }
    if let Some(rest) = msg.strip_prefix("unknown variant `") {
        let (value, tail) = rest.split_once('`').unwrap_or((rest, ""));
        let supported = tail
            .split_once("expected ")
            .map(|(_, list)| list.replace("one of ", "").replace('`', "\""))
            .unwrap_or_default();
        return (
            path,
            format!("Unsupported value: \"{value}\": supported values: {supported}"),
        );
    }
    if let Some(expected) = msg.strip_prefix("invalid type: null, expected ") {
        // Kubernetes' wording for a null where an object or value belongs.
        let ty = expected_word(expected);
        let message =
            format!("Invalid value: \"null\": {path} in body must be of type {ty}: \"null\"");
        return (path, message);
    }
    if let Some(rest) = msg.strip_prefix("invalid type: ") {
        if let Some((got, expected)) = rest.split_once(", expected ") {
            let got = got.replace('`', "");
            return (
                path,
                format!("expected {}, got {got}", expected_word(expected)),
            );
        }
    }
    if let Some(rest) = msg.strip_prefix("invalid value: ") {
        if let Some((got, expected)) = rest.split_once(", expected ") {
            let got = got.replace('`', "");
            return (
                path,
                format!(
                    "{got} is out of range: expected {}",
                    expected_word(expected)
                ),
            );
        }
    }
    if let Some(rest) = msg.strip_prefix("missing field `") {
        let field = rest.split('`').next().unwrap_or_default();
        path.push('.');
        path.push_str(field);
        return (path, "Required value".to_string());
    }
    (path, msg.to_string())
}

fn expected_word(serde_expected: &str) -> String {
    let e = serde_expected.trim();
    let word = match e {
        "u8" | "u16" | "u32" | "u64" => "integer >= 0".to_string(),
        "i8" | "i16" | "i32" | "i64" | "i128" | "u128" => "integer".to_string(),
        "f32" | "f64" => "number".to_string(),
        "a boolean" => "boolean".to_string(),
        "a string" => "string".to_string(),
        "a map" => "object".to_string(),
        "a sequence" => "array".to_string(),
        _ if e.starts_with("struct ") => "object".to_string(),
        _ if e.starts_with("a sequence") => "array".to_string(),
        _ => e.to_string(),
    };
    if word.starts_with("integer") && e.starts_with('u') {
        // Keep the sign rule visible: "-1" for a port is a different mistake from "abc".
        return word;
    }
    word
}

pub(crate) fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Parses and validates every document; a resource with semantic errors becomes
/// [`ConfigError::Invalid`], one that only has warnings is returned with them.
pub fn parse_and_validate(text: &str) -> Vec<Result<(Resource, Vec<FieldError>), ConfigError>> {
    let values = match split_documents(text) {
        Ok(values) => values,
        Err(e) => return vec![Err(e)],
    };
    values
        .into_iter()
        .map(|(doc, value)| validate_value(doc, value))
        .collect()
}

/// Parses and validates one JSON object (as the HTTP API receives it).
pub fn validate_value(
    document: usize,
    value: Value,
) -> Result<(Resource, Vec<FieldError>), ConfigError> {
    let res = parse_value(document, value)?;
    let report = res.validate();
    if report.errors.is_empty() {
        Ok((res, report.warnings))
    } else {
        Err(ConfigError::Invalid {
            origin: Origin {
                document,
                kind: res.kind().name().into(),
                namespace: res.metadata.namespace.clone(),
                name: res.metadata.name.clone(),
            },
            errors: report.errors,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrong_type_names_path_and_expected_type() {
        let out = parse_documents(
            "apiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata:\n  name: a\n  namespace: ns\n  labels:\n    app: 1\nspec: {}\n",
        );
        let err = out[0].as_ref().unwrap_err().to_string();
        assert_eq!(
            err,
            "Sidecar ns/a (document 0): metadata.labels.app: expected string, got integer 1"
        );
    }

    #[test]
    fn documents_are_indexed_and_unknown_kinds_named() {
        let out = parse_documents("---\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: p}\n---\napiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {name: s}\nspec: {}\nextra: 1\n");
        assert_eq!(out.len(), 2);
        assert_eq!(
            out[0].as_ref().unwrap_err().to_string(),
            "document 1: unknown kind \"Pod\" in apiVersion \"v1\""
        );
        assert_eq!(
            out[1].as_ref().unwrap_err().to_string(),
            "Sidecar s (document 2): extra: unknown field"
        );
    }

    #[test]
    fn unknown_field_is_named_once() {
        let out = parse_documents(
            "apiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {name: s, namespace: ns}\nspec:\n  egress:\n  - hostz: [a]\n",
        );
        let err = out[0].as_ref().unwrap_err().to_string();
        assert_eq!(
            err,
            "Sidecar ns/s (document 0): spec.egress[0].hostz: unknown field"
        );
    }

    #[test]
    fn lenient_reading_prunes_unknown_fields() {
        let text = "apiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {name: s}\nspec:\n  egress:\n  - hosts: [\"./*\"]\n    app: x\n  bogus: 1\n";
        let out = parse_documents_lenient(text);
        let (res, pruned) = out[0].as_ref().unwrap();
        let paths: Vec<&str> = pruned.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, ["spec.egress[0].app", "spec.bogus"]);
        assert!(res.spec_json["egress"][0].get("app").is_none());
        // The strict reader still refuses the same text.
        assert!(parse_documents(text)[0].is_err());
    }

    #[test]
    fn missing_and_null_spec() {
        let out = parse_documents(
            "apiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {name: s}\n",
        );
        assert!(out[0]
            .as_ref()
            .unwrap_err()
            .to_string()
            .ends_with("spec: Required value"));
        let out = parse_documents(
            "apiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {name: s}\nspec: null\n",
        );
        assert!(out[0]
            .as_ref()
            .unwrap_err()
            .to_string()
            .contains("spec in body must be of type object: \"null\""));
    }

    #[test]
    fn yaml_syntax_error_names_the_line() {
        let out = parse_documents("a: [\n");
        let err = out[0].as_ref().unwrap_err().to_string();
        assert!(err.contains("line"), "{err}");
    }
}
