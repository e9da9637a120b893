//! Kubernetes label selectors: `a=b`, `a==b`, `a!=b`, `a`, `!a`, `a in (x,y)`, `a notin (x)`.

use serde_json::Value;
use std::fmt;
use std::str::FromStr;
use thiserror::Error;

/// A conjunction of requirements; the empty selector matches everything.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Selector {
    requirements: Vec<Requirement>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Requirement {
    Equals(String, String),
    NotEquals(String, String),
    Exists(String),
    NotExists(String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
}

#[derive(Debug, Error, PartialEq, Eq)]
#[error("invalid label selector {selector:?}: {reason}")]
pub struct SelectorError {
    selector: String,
    reason: String,
}

impl Selector {
    /// Whether the object's `metadata.labels` satisfy every requirement.
    pub fn matches(&self, object: &Value) -> bool {
        let labels = object.get("metadata").and_then(|m| m.get("labels"));
        let label = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
        self.requirements.iter().all(|r| match r {
            Requirement::Equals(k, v) => label(k) == Some(v.as_str()),
            // As in Kubernetes, `!=` and `notin` also match objects without the label.
            Requirement::NotEquals(k, v) => label(k) != Some(v.as_str()),
            Requirement::Exists(k) => label(k).is_some(),
            Requirement::NotExists(k) => label(k).is_none(),
            Requirement::In(k, vs) => label(k).is_some_and(|l| vs.iter().any(|v| v == l)),
            Requirement::NotIn(k, vs) => !label(k).is_some_and(|l| vs.iter().any(|v| v == l)),
        })
    }

    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }
}

impl FromStr for Selector {
    type Err = SelectorError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let fail = |reason: String| SelectorError {
            selector: text.to_string(),
            reason,
        };
        let requirements = split_top_level(text)
            .map_err(fail)?
            .into_iter()
            .map(|part| parse_requirement(part.trim()).map_err(fail))
            .collect::<Result<_, _>>()?;
        Ok(Selector { requirements })
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .requirements
            .iter()
            .map(|r| match r {
                Requirement::Equals(k, v) => format!("{k}={v}"),
                Requirement::NotEquals(k, v) => format!("{k}!={v}"),
                Requirement::Exists(k) => k.clone(),
                Requirement::NotExists(k) => format!("!{k}"),
                Requirement::In(k, vs) => format!("{k} in ({})", vs.join(",")),
                Requirement::NotIn(k, vs) => format!("{k} notin ({})", vs.join(",")),
            })
            .collect();
        f.write_str(&parts.join(","))
    }
}

/// Splits on commas that are not inside `( )`, so `a in (x,y),b` is two requirements.
fn split_top_level(text: &str) -> Result<Vec<&str>, String> {
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0usize, 0usize);
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.checked_sub(1).ok_or("unbalanced ')'")?,
            ',' if depth == 0 => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if depth != 0 {
        return Err("unbalanced '('".into());
    }
    parts.push(&text[start..]);
    Ok(parts)
}

fn parse_requirement(part: &str) -> Result<Requirement, String> {
    if part.is_empty() {
        return Err("empty requirement".into());
    }
    if let Some(key) = part.strip_prefix('!') {
        return Ok(Requirement::NotExists(key_of(key.trim())?));
    }
    for (op, make) in [
        (
            "!=",
            Requirement::NotEquals as fn(String, String) -> Requirement,
        ),
        ("==", Requirement::Equals),
        ("=", Requirement::Equals),
    ] {
        if let Some((k, v)) = part.split_once(op) {
            return Ok(make(key_of(k.trim())?, value_of(v.trim())?));
        }
    }
    for (op, make) in [
        (
            " notin ",
            Requirement::NotIn as fn(String, Vec<String>) -> Requirement,
        ),
        (" in ", Requirement::In),
    ] {
        if let Some((k, set)) = part.split_once(op) {
            let set = set.trim();
            let inner = set
                .strip_prefix('(')
                .and_then(|s| s.strip_suffix(')'))
                .ok_or_else(|| format!("expected a parenthesized set after {:?}", op.trim()))?;
            let values = inner
                .split(',')
                .map(|v| value_of(v.trim()))
                .collect::<Result<Vec<_>, _>>()?;
            return Ok(make(key_of(k.trim())?, values));
        }
    }
    Ok(Requirement::Exists(key_of(part)?))
}

fn valid_chars(s: &str, extra: &[char]) -> bool {
    s.chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') || extra.contains(&c))
}

fn key_of(key: &str) -> Result<String, String> {
    if key.is_empty() || !valid_chars(key, &['/']) {
        return Err(format!("invalid label key {key:?}"));
    }
    Ok(key.to_string())
}

fn value_of(value: &str) -> Result<String, String> {
    if !valid_chars(value, &[]) {
        return Err(format!("invalid label value {value:?}"));
    }
    Ok(value.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(labels: Value) -> Value {
        json!({"metadata": {"name": "x", "labels": labels}})
    }

    fn sel(s: &str) -> Selector {
        s.parse().unwrap()
    }

    #[test]
    fn equality_and_existence() {
        let reviews_v2 = obj(json!({"app": "reviews", "version": "v2"}));
        let canary = obj(json!({"app": "reviews", "canary": "true"}));
        let s = sel("app=reviews,version!=v1,!canary");
        assert!(s.matches(&reviews_v2));
        assert!(!s.matches(&canary));
        assert!(sel("app==reviews").matches(&canary));
        assert!(sel("canary").matches(&canary));
        assert!(!sel("version").matches(&canary));
        assert!(!sel("app=ratings").matches(&reviews_v2));
        assert!(sel("").matches(&json!({"metadata": {}})));
    }

    #[test]
    fn set_based() {
        let s = sel("version in (v1, v2),app notin (ratings)");
        assert!(s.matches(&obj(json!({"app": "reviews", "version": "v2"}))));
        assert!(!s.matches(&obj(json!({"app": "reviews", "version": "v3"}))));
        assert!(!s.matches(&obj(json!({"app": "ratings", "version": "v1"}))));
        assert_eq!(s.to_string(), "version in (v1,v2),app notin (ratings)");
    }

    #[test]
    fn rejects_malformed() {
        for bad in ["a=b,", "=b", "a in (x", "a in x", "a b", "a=(x)", ",", "!"] {
            assert!(bad.parse::<Selector>().is_err(), "{bad} should be rejected");
        }
        let err = "app=re views".parse::<Selector>().unwrap_err();
        assert!(err.to_string().contains("invalid label value"), "{err}");
    }
}
