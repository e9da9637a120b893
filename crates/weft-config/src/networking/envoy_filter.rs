//! EnvoyFilter (networking.istio.io): patches to the generated Envoy configuration.

use super::shared::cel_error;
use super::shared::WorkloadSelector;
use crate::common::PolicyTargetReference;
use crate::meta::ObjectMeta;
use crate::validate::common::{validate_policy_target_refs, validate_port};
use crate::validate::Report;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// `istio.networking.v1alpha3.EnvoyFilter`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EnvoyFilter {
    /// Exclusive with `targetRefs`; all workloads of the namespace when both are unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload_selector: Option<WorkloadSelector>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub target_refs: Vec<PolicyTargetReference>,
    /// Applied in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub config_patches: Vec<EnvoyConfigObjectPatch>,
    /// Lower runs first; root namespace filters before others at equal priority.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<i32>,
}

/// One patch: where it applies, what it matches and what it does.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EnvoyConfigObjectPatch {
    #[serde(default)]
    pub apply_to: ApplyTo,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub r#match: Option<EnvoyConfigObjectMatch>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patch: Option<Patch>,
}

/// The kind of Envoy object a patch applies to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ApplyTo {
    #[default]
    Invalid,
    Listener,
    FilterChain,
    NetworkFilter,
    HttpFilter,
    RouteConfiguration,
    VirtualHost,
    HttpRoute,
    Cluster,
    ExtensionConfig,
    Bootstrap,
    ListenerFilter,
}

/// Which objects a patch applies to; `listener`, `routeConfiguration`, `cluster` and
/// `waypoint` form a oneof.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EnvoyConfigObjectMatch {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<PatchContext>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy: Option<ProxyMatch>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listener: Option<ListenerMatch>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route_configuration: Option<RouteConfigurationMatch>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<ClusterMatch>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waypoint: Option<WaypointMatch>,
}

/// The kind of proxy and traffic direction a patch applies to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PatchContext {
    #[default]
    Any,
    SidecarInbound,
    SidecarOutbound,
    Gateway,
    Waypoint,
}

/// Matches proxies by version regex and node metadata.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProxyMatch {
    /// RE2 regex on the proxy's Istio version, e.g. `^1\.2.*`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy_version: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
}

/// Matches listeners and things inside them.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ListenerMatch {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port_number: Option<u32>,
    /// Not implemented by Istio.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter_chain: Option<FilterChainMatch>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listener_filter: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// Matches a filter chain of a listener.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FilterChainMatch {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sni: Option<String>,
    /// `tls` or `raw_buffer`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transport_protocol: Option<String>,
    /// Comma-separated ALPN values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub application_protocols: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<FilterMatch>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination_port: Option<u32>,
}

/// Matches a network filter (and an HTTP filter inside it).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FilterMatch {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub_filter: Option<SubFilterMatch>,
}

/// Matches an HTTP filter by name.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SubFilterMatch {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// Matches route configurations, virtual hosts and routes.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RouteConfigurationMatch {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port_number: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port_name: Option<String>,
    /// `namespace/name` of a Gateway, for gateway contexts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vhost: Option<VirtualHostMatch>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// Matches a virtual host.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VirtualHostMatch {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route: Option<RouteMatch>,
}

/// Matches a route in a virtual host.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RouteMatch {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default)]
    pub action: RouteAction,
}

/// The action of a route to match.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RouteAction {
    #[default]
    Any,
    Route,
    Redirect,
    DirectResponse,
}

/// Matches clusters.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClusterMatch {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port_number: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subset: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// Matches waypoint proxy objects (context WAYPOINT only).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WaypointMatch {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<FilterMatch>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route: Option<WaypointRouteMatch>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port_number: Option<u32>,
}

/// Matches a waypoint route by name.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WaypointRouteMatch {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// What a patch does and with which Envoy configuration.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Patch {
    #[serde(default)]
    pub operation: Operation,
    /// Free-form Envoy configuration in proto JSON, merged or inserted as is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<serde_json::Value>,
    /// Where an added HTTP filter goes relative to Istio's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter_class: Option<FilterClass>,
}

/// Patch operations.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Operation {
    #[default]
    Invalid,
    Merge,
    Add,
    Remove,
    InsertBefore,
    InsertAfter,
    InsertFirst,
    Replace,
    MergeAndReplaceList,
}

/// Position class of an inserted HTTP filter.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum FilterClass {
    #[default]
    Unspecified,
    Authn,
    Authz,
    Stats,
}

const HCM: &str = "envoy.filters.network.http_connection_manager";

/// Checks an EnvoyFilter like Istio's CRD rules and validation webhook. The patch value
/// is free-form Envoy configuration and is not checked against Envoy's types here.
/// Why an EnvoyFilter changes nothing in Weft today.
pub const NOT_APPLIED: &str = "stored and validated, but not applied: weftd does not patch the configuration it generates with EnvoyFilters, and weft-proxy does not run them";

pub fn validate(spec: &EnvoyFilter, _meta: &ObjectMeta, report: &mut Report) {
    report.warn(
        "spec",
        "EnvoyFilter exposes internal implementation details that may change at any time. Prefer other APIs if possible, and exercise extreme caution, especially around upgrades.",
    );
    // Said on every write so that nobody believes a patch is in force when it is not.
    report.warn("spec", NOT_APPLIED);
    if spec.workload_selector.is_some() && !spec.target_refs.is_empty() {
        cel_error(
            report,
            "spec",
            "object",
            "only one of targetRefs or workloadSelector can be set",
        );
    }
    validate_policy_target_refs(&spec.target_refs, "spec.targetRefs", report);
    if let Some(sel) = &spec.workload_selector {
        for (k, v) in &sel.labels {
            if v.contains('*') {
                cel_error(
                    report,
                    &format!("spec.workloadSelector.labels.{k}"),
                    "string",
                    "wildcard is not supported in selector",
                );
            }
        }
        if sel.labels.is_empty() {
            report.warn(
                "spec.workloadSelector",
                "Envoy filter: workload selector specified without labels, will be applied to all services in namespace",
            );
        }
    }
    for (i, cp) in spec.config_patches.iter().enumerate() {
        validate_patch(report, &format!("spec.configPatches[{i}]"), cp);
    }
}

fn validate_patch(report: &mut Report, path: &str, cp: &EnvoyConfigObjectPatch) {
    if let Some(m) = &cp.r#match {
        let mp = format!("{path}.match");
        let objects = [
            m.listener.is_some(),
            m.route_configuration.is_some(),
            m.cluster.is_some(),
            m.waypoint.is_some(),
        ];
        if objects.iter().filter(|o| **o).count() > 1 {
            report.error(
                &mp,
                "only one of listener, routeConfiguration, cluster or waypoint can be set",
            );
        }
        let waypoint_context = m.context == Some(PatchContext::Waypoint);
        if waypoint_context != m.waypoint.is_some() {
            cel_error(
                report,
                &mp,
                "object",
                "only support waypointMatch when context is WAYPOINT",
            );
        }
        if let Some(port) = m.waypoint.as_ref().and_then(|w| w.port_number) {
            if validate_port(port).is_err() {
                cel_error(
                    report,
                    &format!("{mp}.waypoint.portNumber"),
                    "integer",
                    "port must be between 1-65535",
                );
            }
        }
        if waypoint_context {
            // Istio does not check waypoint patches further yet.
            return;
        }
    }
    if cp.apply_to == ApplyTo::Invalid {
        report.error(format!("{path}.applyTo"), "Envoy filter: missing applyTo");
        return;
    }
    let Some(patch) = &cp.patch else {
        report.error(format!("{path}.patch"), "Envoy filter: missing patch");
        return;
    };
    if patch.operation == Operation::Invalid {
        report.error(
            format!("{path}.patch.operation"),
            "Envoy filter: missing patch operation",
        );
        return;
    }
    if patch.operation != Operation::Remove && patch.value.is_none() {
        report.error(
            format!("{path}.patch.value"),
            "Envoy filter: missing patch value for non-remove operation",
        );
        return;
    }
    let Some(m) = &cp.r#match else { return };
    let mp = format!("{path}.match");
    if let Some(version) = m.proxy.as_ref().and_then(|p| p.proxy_version.as_deref()) {
        let vp = format!("{mp}.proxy.proxyVersion");
        if version.len() > 1024 {
            report.warn(
                &vp,
                "Envoy filter: proxyVersion match exceeds 1024 characters and will be ignored",
            );
        } else if let Err(e) = regex::Regex::new(version) {
            report.error(
                &vp,
                format!("Envoy filter: invalid regex for proxy version, [{e}]"),
            );
        }
    }
    let has_object = m.listener.is_some() || m.route_configuration.is_some() || m.cluster.is_some();
    match cp.apply_to {
        ApplyTo::Listener
        | ApplyTo::FilterChain
        | ApplyTo::NetworkFilter
        | ApplyTo::HttpFilter
        | ApplyTo::ListenerFilter => {
            if has_object && m.listener.is_none() {
                report.error(
                    &mp,
                    "Envoy filter: applyTo for listener class objects cannot have non listener match",
                );
                return;
            }
            let Some(filter) = m
                .listener
                .as_ref()
                .and_then(|l| l.filter_chain.as_ref())
                .and_then(|fc| fc.filter.as_ref())
            else {
                return;
            };
            let fp = format!("{mp}.listener.filterChain.filter");
            if matches!(cp.apply_to, ApplyTo::Listener | ApplyTo::FilterChain) {
                report.warn(
                    &fp,
                    format!(
                        "Envoy filter: filter match has no effect when used with {}",
                        apply_to_name(cp.apply_to)
                    ),
                );
            }
            let name = filter.name.as_deref().unwrap_or_default();
            if name.is_empty() {
                report.error(&fp, "Envoy filter: filter match has no name to match on");
            } else if let Some(sub) = &filter.sub_filter {
                if cp.apply_to != ApplyTo::HttpFilter {
                    report.error(
                        &fp,
                        "Envoy filter: subfilter match can be used with applyTo HTTP_FILTER only",
                    );
                }
                if name != HCM && name != "envoy.http_connection_manager" {
                    report.error(
                        &fp,
                        format!("Envoy filter: subfilter match requires filter match with {HCM}"),
                    );
                }
                if sub.name.as_deref().unwrap_or_default().is_empty() {
                    report.error(
                        format!("{fp}.subFilter"),
                        "Envoy filter: subfilter match has no name to match on",
                    );
                }
            }
        }
        ApplyTo::RouteConfiguration | ApplyTo::VirtualHost | ApplyTo::HttpRoute
            if has_object && m.route_configuration.is_none() =>
        {
            report.error(
                &mp,
                "Envoy filter: applyTo for http route class objects cannot have non route configuration match",
            );
        }
        ApplyTo::Cluster if has_object && m.cluster.is_none() => {
            report.error(
                &mp,
                "Envoy filter: applyTo for cluster class objects cannot have non cluster match",
            );
        }
        _ => {}
    }
}

fn apply_to_name(a: ApplyTo) -> String {
    serde_json::to_value(a)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}
