//! EnvoyFilter analyzers: patch operations that Envoy ignores, or whose effect depends on
//! the order filters happen to be applied in.

use super::context::{origin, Context};
use super::messages::{
    MessageType, ENVOY_FILTER_USES_ADD_OPERATION_INCORRECTLY, ENVOY_FILTER_USES_RELATIVE_OPERATION,
    ENVOY_FILTER_USES_RELATIVE_OPERATION_WITH_PROXY_VERSION,
    ENVOY_FILTER_USES_REMOVE_OPERATION_INCORRECTLY,
    ENVOY_FILTER_USES_REPLACE_OPERATION_INCORRECTLY,
};
use super::Message;
use crate::networking::envoy_filter::{ApplyTo, EnvoyConfigObjectPatch, Operation};
use serde_json::Value;

/// envoyfilter.EnvoyPatchAnalyzer.
///
/// Relative operations (INSERT_BEFORE/AFTER, REPLACE, REMOVE) only work if the filter they
/// are relative to is already there, which without a priority depends on creation order.
/// When an earlier patch pinned the same filter to a proxy version, an upgrade can reorder
/// things too, so that case gets its own, stronger warning.
pub(super) fn envoy_patches(ctx: &Context<'_>, out: &mut Vec<Message>) {
    // Names of filters patched with a proxyVersion match, across every EnvoyFilter seen so
    // far: the warning is about how filters interact, not about one resource alone.
    let mut version_pinned: Vec<String> = Vec::new();
    for (r, ef) in ctx.envoy_filters() {
        let priority = ef.priority.unwrap_or(0);
        let relative = |name: &str, pinned: &[String]| -> Option<&'static MessageType> {
            if priority != 0 {
                None
            } else if pinned.iter().any(|p| p == name) {
                Some(&ENVOY_FILTER_USES_RELATIVE_OPERATION_WITH_PROXY_VERSION)
            } else {
                Some(&ENVOY_FILTER_USES_RELATIVE_OPERATION)
            }
        };
        for cp in &ef.config_patches {
            let Some(patch) = &cp.patch else {
                // Istio stops reading a filter's patches at the first one without a patch.
                break;
            };
            let name = instance_name(cp);
            let route_level = matches!(
                cp.apply_to,
                ApplyTo::RouteConfiguration | ApplyTo::HttpRoute
            );
            let finding = match patch.operation {
                Operation::Add if route_level => Some(&ENVOY_FILTER_USES_ADD_OPERATION_INCORRECTLY),
                Operation::Remove if route_level => {
                    Some(&ENVOY_FILTER_USES_REMOVE_OPERATION_INCORRECTLY)
                }
                Operation::Replace
                    if !matches!(
                        cp.apply_to,
                        ApplyTo::NetworkFilter | ApplyTo::HttpFilter | ApplyTo::VirtualHost
                    ) =>
                {
                    Some(&ENVOY_FILTER_USES_REPLACE_OPERATION_INCORRECTLY)
                }
                Operation::Remove
                | Operation::Replace
                | Operation::InsertBefore
                | Operation::InsertAfter => relative(&name, &version_pinned),
                _ => None,
            };
            if let Some(t) = finding {
                out.push(t.message(origin(r), &[]));
            }
            let pinned = cp
                .r#match
                .as_ref()
                .and_then(|m| m.proxy.as_ref())
                .and_then(|p| p.proxy_version.as_deref())
                .is_some_and(|v| !v.is_empty());
            if pinned {
                version_pinned.push(name);
            }
        }
    }
}

/// The filter a patch is about: the `name` in its value, else the filter its listener
/// match names.
fn instance_name(cp: &EnvoyConfigObjectPatch) -> String {
    let from_value = cp
        .patch
        .as_ref()
        .and_then(|p| p.value.as_ref())
        .and_then(|v| v.get("name"))
        .map(|n| match n {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        });
    from_value
        .or_else(|| {
            cp.r#match
                .as_ref()?
                .listener
                .as_ref()?
                .filter_chain
                .as_ref()?
                .filter
                .as_ref()?
                .name
                .clone()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use crate::analyze::{analyze_only, Options};
    use crate::parse_documents;

    fn codes(yaml: &str) -> Vec<String> {
        let resources: Vec<_> = parse_documents(yaml)
            .into_iter()
            .map(|r| r.expect("test YAML parses"))
            .collect();
        analyze_only(
            &resources,
            &Options::default(),
            "envoyfilter.EnvoyPatchAnalyzer",
        )
        .expect("analyzer exists")
        .iter()
        .map(|m| format!("{} {}", m.code, m.origin))
        .collect()
    }

    fn filter(name: &str, priority: i32, patches: &str) -> String {
        format!(
            "apiVersion: networking.istio.io/v1alpha3\nkind: EnvoyFilter\n\
             metadata: {{name: {name}, namespace: ns}}\nspec:\n  priority: {priority}\n  configPatches:\n{patches}---\n"
        )
    }

    const INSERT_PINNED: &str = "  - applyTo: HTTP_FILTER\n    match: {proxy: {proxyVersion: '^1\\.2.*'}}\n    patch: {operation: INSERT_AFTER, value: {name: lua}}\n";
    const INSERT: &str =
        "  - applyTo: HTTP_FILTER\n    patch: {operation: INSERT_BEFORE, value: {name: lua}}\n";

    #[test]
    fn relative_operations_without_priority() {
        let yaml = filter("a", 0, INSERT_PINNED)
            + &filter("b", 0, INSERT)
            + &filter("c", 5, INSERT)
            + &filter(
                "d",
                0,
                "  - applyTo: HTTP_FILTER\n    patch: {operation: INSERT_FIRST, value: {name: x}}\n",
            );
        assert_eq!(
            codes(&yaml),
            vec!["IST0151 EnvoyFilter ns/a", "IST0155 EnvoyFilter ns/b"]
        );
    }

    #[test]
    fn operations_envoy_ignores() {
        let patch = |apply: &str, op: &str| {
            format!("  - applyTo: {apply}\n    patch: {{operation: {op}, value: {{name: x}}}}\n")
        };
        let yaml = filter("add", 1, &patch("HTTP_ROUTE", "ADD"))
            + &filter("remove", 1, &patch("ROUTE_CONFIGURATION", "REMOVE"))
            + &filter("replace", 1, &patch("CLUSTER", "REPLACE"))
            + &filter("fine", 1, &patch("HTTP_FILTER", "REPLACE"));
        assert_eq!(
            codes(&yaml),
            vec![
                "IST0153 EnvoyFilter ns/add",
                "IST0154 EnvoyFilter ns/remove",
                "IST0152 EnvoyFilter ns/replace",
            ]
        );
    }
}
