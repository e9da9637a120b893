//! Telemetry analyzers: access logging with no provider, several namespace-wide
//! Telemetries, and tracing through the retired Lightstep provider.

use super::context::{origin, Context};
use super::messages::{
    DEPRECATED, INVALID_TELEMETRY_PROVIDER, MULTIPLE_TELEMETRIES_WITHOUT_WORKLOAD_SELECTORS,
};
use super::Message;
use crate::resource::Resource;
use std::collections::{BTreeMap, BTreeSet};

/// telemetry.ProviderAnalyzer: an access-logging entry with no provider does nothing when
/// the mesh has no default access-log provider either.
pub(super) fn providers(ctx: &Context<'_>, out: &mut Vec<Message>) {
    if !ctx.mesh.default_access_logging.is_empty() {
        return;
    }
    for (r, t) in ctx.telemetries() {
        for logging in &t.access_logging {
            if logging.disabled == Some(true) || !logging.providers.is_empty() {
                continue;
            }
            out.push(INVALID_TELEMETRY_PROVIDER.message(
                origin(r),
                &[(&r.metadata.name).into(), (&r.metadata.namespace).into()],
            ));
        }
    }
}

/// telemetry.DefaultSelectorAnalyzer: only one Telemetry per namespace may apply to every
/// workload in it; with more, which one wins is undefined.
pub(super) fn default_selectors(ctx: &Context<'_>, out: &mut Vec<Message>) {
    let mut by_namespace: BTreeMap<&str, Vec<&Resource>> = BTreeMap::new();
    for (r, t) in ctx.telemetries() {
        if t.selector.is_none() {
            by_namespace
                .entry(r.metadata.namespace.as_str())
                .or_default()
                .push(r);
        }
    }
    for (ns, list) in by_namespace.into_iter().filter(|(_, l)| l.len() > 1) {
        let mut names: Vec<String> = list.iter().map(|r| r.metadata.name.clone()).collect();
        names.sort();
        for r in list {
            out.push(
                MULTIPLE_TELEMETRIES_WITHOUT_WORKLOAD_SELECTORS
                    .message(origin(r), &[names.clone().into(), ns.into()]),
            );
        }
    }
}

/// telemetry.LightstepAnalyzer: tracing through a `lightstep` extension provider still
/// works but is deprecated in favour of OpenTelemetry.
pub(super) fn lightstep(ctx: &Context<'_>, out: &mut Vec<Message>) {
    let lightstep: BTreeSet<&str> = ctx
        .mesh
        .extension_providers
        .iter()
        .filter(|p| p.kind == "lightstep")
        .map(|p| p.name.as_str())
        .collect();
    if lightstep.is_empty() {
        return;
    }
    for (r, t) in ctx.telemetries() {
        let used = t.tracing.iter().flat_map(|tr| &tr.providers);
        for p in used.filter(|p| lightstep.contains(p.name.as_str())) {
            let detail = format!(
                "The Lightstep provider {} is deprecated, please migrate to OpenTelemetry provider.",
                p.name
            );
            out.push(DEPRECATED.message(origin(r), &[detail.into()]));
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::analyze::{MeshConfig, Options};

    use crate::analyze::testing::run_with as run;

    fn telemetry(name: &str, ns: &str, spec: &str) -> String {
        format!(
            "apiVersion: telemetry.istio.io/v1\nkind: Telemetry\nmetadata: {{name: {name}, namespace: {ns}}}\nspec: {spec}\n---\n"
        )
    }

    #[test]
    fn access_logging_without_provider() {
        let yaml = telemetry(
            "logs",
            "istio-system",
            "{accessLogging: [{filter: {expression: \"response.code >= 400\"}}]}",
        ) + &telemetry("off", "foo", "{accessLogging: [{disabled: true}]}")
            + &telemetry(
                "named",
                "bar",
                "{accessLogging: [{providers: [{name: envoy}]}]}",
            );
        assert_eq!(
            run("telemetry.ProviderAnalyzer", &yaml, &Options::default()),
            vec!["Warning [IST0157] (Telemetry istio-system/logs) The Telemetry logs in namespace \"istio-system\" with empty providers will be ignored."]
        );
        let options = Options {
            mesh: MeshConfig::from_yaml("defaultProviders: {accessLogging: [envoy]}").unwrap(),
            ..Options::default()
        };
        assert!(run("telemetry.ProviderAnalyzer", &yaml, &options).is_empty());
    }

    #[test]
    fn two_namespace_wide_telemetries() {
        let yaml = telemetry("b", "ns", "{}")
            + &telemetry("a", "ns", "{}")
            + &telemetry("scoped", "ns", "{selector: {matchLabels: {app: x}}}")
            + &telemetry("alone", "other", "{}");
        assert_eq!(
            run("telemetry.DefaultSelectorAnalyzer", &yaml, &Options::default()),
            vec![
                "Error [IST0160] (Telemetry ns/a) The Telemetries [a b] in namespace \"ns\" have no workload selector, which can lead to undefined behavior.",
                "Error [IST0160] (Telemetry ns/b) The Telemetries [a b] in namespace \"ns\" have no workload selector, which can lead to undefined behavior.",
            ]
        );
    }

    #[test]
    fn lightstep_tracing_is_deprecated() {
        let yaml = telemetry(
            "t",
            "istio-system",
            "{tracing: [{providers: [{name: ls}, {name: otel}]}]}",
        );
        let mesh = MeshConfig::from_yaml(
            "extensionProviders: [{name: ls, lightstep: {service: x, port: 443}}, {name: otel, opentelemetry: {service: y, port: 4317}}]",
        )
        .unwrap();
        let options = Options {
            mesh,
            ..Options::default()
        };
        assert_eq!(
            run("telemetry.LightstepAnalyzer", &yaml, &options),
            vec!["Warning [IST0002] (Telemetry istio-system/t) Deprecated: The Lightstep provider ls is deprecated, please migrate to OpenTelemetry provider."]
        );
        assert!(run("telemetry.LightstepAnalyzer", &yaml, &Options::default()).is_empty());
    }
}
