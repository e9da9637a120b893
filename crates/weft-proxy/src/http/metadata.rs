//! Per-request dynamic metadata, as Envoy's `StreamInfo::dynamicMetadata()`: a JSON object
//! per filter name that filters write (`envoy.filters.http.jwt_authn` puts the verified
//! JWT payload there) and later filters and matchers read by path (RBAC's `metadata`
//! principal, route `dynamic_metadata` matches). It lives in the request's extensions so
//! every stage of the filter chain sees the same value.

use serde_json::{Map, Value};

/// Dynamic metadata of one request: filter name -> struct (always a JSON object).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DynamicMetadata {
    filters: Map<String, Value>,
}

impl DynamicMetadata {
    /// Sets `key` in `filter`'s struct, replacing what was there.
    pub fn set(&mut self, filter: &str, key: &str, value: Value) {
        let entry = self
            .filters
            .entry(filter.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(fields) = entry {
            fields.insert(key.to_string(), value);
        }
    }

    /// The struct `filter` wrote, if any.
    pub fn filter(&self, filter: &str) -> Option<&Map<String, Value>> {
        self.filters.get(filter)?.as_object()
    }

    /// Every filter's struct by filter name, as RBAC's metadata matchers read them.
    pub fn as_map(&self) -> &Map<String, Value> {
        &self.filters
    }

    /// The value at `path` (keys of nested structs) inside `filter`'s struct, as Envoy's
    /// `MetadataMatcher` walks it: every step but the last must be a struct.
    pub fn lookup<S: AsRef<str>>(&self, filter: &str, path: &[S]) -> Option<&Value> {
        let (first, rest) = path.split_first()?;
        let mut value = self.filter(filter)?.get(first.as_ref())?;
        for key in rest {
            value = value.as_object()?.get(key.as_ref())?;
        }
        Some(value)
    }

    /// The request's metadata (empty when no filter wrote any).
    pub fn of<B>(req: &http::Request<B>) -> Option<&DynamicMetadata> {
        req.extensions().get::<DynamicMetadata>()
    }

    /// The request's metadata, created empty on first use.
    pub fn of_mut<B>(req: &mut http::Request<B>) -> &mut DynamicMetadata {
        req.extensions_mut()
            .get_or_insert_default::<DynamicMetadata>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn lookup_walks_nested_structs_and_stops_at_non_structs() {
        let mut req = http::Request::new(());
        assert!(DynamicMetadata::of(&req).is_none());
        DynamicMetadata::of_mut(&mut req).set(
            "envoy.filters.http.jwt_authn",
            "payload",
            json!({"iss": "issuer-1", "nested": {"group": "admins"}, "aud": ["a", "b"]}),
        );
        let md = DynamicMetadata::of(&req).unwrap();
        let f = "envoy.filters.http.jwt_authn";
        assert_eq!(md.lookup(f, &["payload", "iss"]), Some(&json!("issuer-1")));
        assert_eq!(
            md.lookup(f, &["payload", "nested", "group"]),
            Some(&json!("admins"))
        );
        assert_eq!(md.lookup(f, &["payload", "aud", "0"]), None);
        assert_eq!(md.lookup(f, &["payload", "missing"]), None);
        assert_eq!(md.lookup("other", &["payload"]), None);
        assert_eq!(md.lookup::<&str>(f, &[]), None);
    }
}
