//! Reads Envoy's `/config_dump` JSON and renders istioctl-style summary tables from it.
//!
//! Works on `serde_json::Value` rather than typed protobuf: the dump comes from Envoy of
//! any version, from weftd or from weft-proxy, and an unknown field must never stop a
//! user from seeing the rest.

use crate::table::render;
use serde_json::{json, Value};

/// The dumps of one kind inside `configs[]`, found by the tail of their `@type`
/// (`type.googleapis.com/envoy.admin.v3.ClustersConfigDump`).
fn sections<'a>(dump: &'a Value, kind: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
    dump.get("configs")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(move |c| {
            c.get("@type")
                .and_then(Value::as_str)
                .is_some_and(|t| t.rsplit('.').next() == Some(kind))
        })
}

/// `section[list][*][inner]` over every dump of `kind`, for each of `lists`.
pub(super) fn collect(dump: &Value, kind: &str, lists: &[(&str, &[&str])]) -> Vec<Value> {
    let mut found = Vec::new();
    for s in sections(dump, kind) {
        for (list, path) in lists {
            for item in s.get(*list).and_then(Value::as_array).into_iter().flatten() {
                let inner = path.iter().try_fold(item, |v, k| v.get(*k));
                if let Some(v) = inner {
                    found.push(v.clone());
                }
            }
        }
    }
    found
}

/// Every cluster: dynamic (from xDS) and static (from the bootstrap).
pub fn clusters(dump: &Value) -> Vec<Value> {
    collect(
        dump,
        "ClustersConfigDump",
        &[
            ("dynamic_active_clusters", &["cluster"]),
            ("static_clusters", &["cluster"]),
        ],
    )
}

/// Every active listener; warming and draining ones are not serving traffic yet or any more.
pub fn listeners(dump: &Value) -> Vec<Value> {
    collect(
        dump,
        "ListenersConfigDump",
        &[
            ("dynamic_listeners", &["active_state", "listener"]),
            ("static_listeners", &["listener"]),
        ],
    )
}

/// Every route configuration loaded by RDS or from the bootstrap; inline ones are shown
/// with their listener.
pub fn routes(dump: &Value) -> Vec<Value> {
    collect(
        dump,
        "RoutesConfigDump",
        &[
            ("dynamic_route_configs", &["route_config"]),
            ("static_route_configs", &["route_config"]),
        ],
    )
}

/// Every ClusterLoadAssignment of an `EndpointsConfigDump`, as a JSON array.
pub fn endpoint_configs(dump: &Value) -> Value {
    Value::Array(collect(
        dump,
        "EndpointsConfigDump",
        &[
            ("dynamic_endpoint_configs", &["endpoint_config"]),
            ("static_endpoint_configs", &["endpoint_config"]),
        ],
    ))
}

fn text<'a>(v: &'a Value, ptr: &str) -> &'a str {
    v.pointer(ptr).and_then(Value::as_str).unwrap_or_default()
}

/// `name.namespace` of the Istio resource that produced a cluster or route, from the
/// `istio` filter metadata Istio writes (`/apis/<group>/<version>/namespaces/<ns>/<kind>/<name>`).
fn managed_by(v: &Value) -> String {
    let path = text(v, "/metadata/filter_metadata/istio/config");
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    match parts[..] {
        [.., "namespaces", ns, _kind, name] => format!("{name}.{ns}"),
        _ => "-".into(),
    }
}

/// Istio's cluster names, `direction|port|subset|fqdn`, split for the table; other names
/// (`xds-grpc`, `BlackHoleCluster`) are their own FQDN.
fn split_cluster_name(name: &str) -> (String, String, String, String) {
    let parts: Vec<&str> = name.split('|').collect();
    match parts[..] {
        [direction, port, subset, fqdn] => (
            fqdn.to_string(),
            port.to_string(),
            if subset.is_empty() { "-" } else { subset }.to_string(),
            direction.to_string(),
        ),
        _ => (name.to_string(), "-".into(), "-".into(), "-".into()),
    }
}

/// SERVICE FQDN, PORT, SUBSET, DIRECTION, TYPE, DESTINATION RULE; sorted as istioctl does.
pub fn cluster_table(dump: &Value) -> String {
    let mut rows: Vec<Vec<String>> = clusters(dump)
        .iter()
        .map(|c| {
            let (fqdn, port, subset, direction) = split_cluster_name(text(c, "/name"));
            // The proto default (STATIC) is left out of JSON dumps; a custom cluster type
            // (ORIGINAL_DST via extension, aggregate) names itself.
            let kind = match (c.pointer("/cluster_type/name"), c.get("type")) {
                (Some(Value::String(custom)), _) => custom.clone(),
                (_, Some(Value::String(t))) => t.clone(),
                _ => "STATIC".into(),
            };
            vec![fqdn, port, subset, direction, kind, managed_by(c)]
        })
        .collect();
    rows.sort_by(|a, b| {
        let key = |r: &Vec<String>| {
            (
                r[0].clone(),
                r[2].clone(),
                r[1].parse::<u32>().unwrap_or(0),
                r[3].clone(),
            )
        };
        key(a).cmp(&key(b))
    });
    render(
        &[
            "SERVICE FQDN",
            "PORT",
            "SUBSET",
            "DIRECTION",
            "TYPE",
            "DESTINATION RULE",
        ],
        &rows,
    )
}

fn socket(addr: &Value) -> Option<(String, Option<u64>)> {
    if let Some(sa) = addr.get("socket_address") {
        let host = text(sa, "/address").to_string();
        return Some((host, sa.get("port_value").and_then(Value::as_u64)));
    }
    if let Some(pipe) = addr.pointer("/pipe/path").and_then(Value::as_str) {
        return Some((pipe.to_string(), None));
    }
    let internal = addr.pointer("/envoy_internal_address/server_listener_name");
    internal
        .and_then(Value::as_str)
        .map(|n| (format!("envoy://{n}"), None))
}

/// What a filter chain matches on, in istioctl's words ("ALL", "Addr: *:9080", "Trans: tls").
fn describe_chain_match(m: &Value) -> String {
    let list = |k: &str| -> Vec<String> {
        m.get(k)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string))
            .collect()
    };
    let mut parts = Vec::new();
    let sni = list("server_names");
    if !sni.is_empty() {
        parts.push(format!("SNI: {}", sni.join(",")));
    }
    if let Some(t) = m.get("transport_protocol").and_then(Value::as_str) {
        parts.push(format!("Trans: {t}"));
    }
    let alpn = list("application_protocols");
    if !alpn.is_empty() {
        parts.push(format!("App: {}", alpn.join(",")));
    }
    let port = m
        .get("destination_port")
        .and_then(Value::as_u64)
        .map(|p| format!(":{p}"));
    let ranges: Vec<String> = m
        .get("prefix_ranges")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|r| {
            format!(
                "{}/{}",
                text(r, "/address_prefix"),
                r.get("prefix_len").and_then(Value::as_u64).unwrap_or(0)
            )
        })
        .collect();
    match (ranges.is_empty(), port) {
        (false, p) => parts.push(format!(
            "Addr: {}{}",
            ranges.join(","),
            p.unwrap_or_default()
        )),
        (true, Some(p)) => parts.push(format!("Addr: *{p}")),
        (true, None) => {}
    }
    if parts.is_empty() {
        "ALL".into()
    } else {
        parts.join("; ")
    }
}

/// A cluster as a destination: the pseudo-clusters (BlackHoleCluster, PassthroughCluster)
/// read best bare.
fn cluster_destination(cluster: &str) -> String {
    if cluster.contains("Cluster") {
        cluster.to_string()
    } else {
        format!("Cluster: {cluster}")
    }
}

/// Where a filter chain sends traffic: its route configuration, inline routes, or a TCP cluster.
fn describe_chain_destination(chain: &Value) -> String {
    for f in chain
        .get("filters")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let name = text(f, "/name");
        let ty = text(f, "/typed_config/@type");
        let cfg = f.get("typed_config").unwrap_or(&Value::Null);
        if name == "envoy.filters.network.http_connection_manager"
            || ty.ends_with(".HttpConnectionManager")
        {
            if let Some(rc) = cfg.get("route_config") {
                return describe_inline_routes(rc);
            }
            let rds = text(cfg, "/rds/route_config_name");
            return if rds.is_empty() {
                "HTTP".into()
            } else {
                format!("Route: {rds}")
            };
        }
        if name == "envoy.filters.network.tcp_proxy" || ty.ends_with(".TcpProxy") {
            if let Some(c) = cfg.get("cluster").and_then(Value::as_str) {
                return cluster_destination(c);
            }
            let weighted: Vec<&str> = cfg
                .pointer("/weighted_clusters/clusters")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .map(|c| text(c, "/name"))
                .collect();
            return format!("Clusters: {}", weighted.join(","));
        }
    }
    "Non-HTTP/Non-TCP".into()
}

/// An inline route configuration in one cell; a single catch-all route is just its cluster.
fn describe_inline_routes(rc: &Value) -> String {
    let vhosts = rc
        .get("virtual_hosts")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if let [vh] = &vhosts[..] {
        let routes = vh
            .get("routes")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        if vh.get("domains") == Some(&json!(["*"]))
            && routes.len() == 1
            && text(&routes[0], "/match/prefix") == "/"
        {
            if let Some(c) = routes[0].pointer("/route/cluster").and_then(Value::as_str) {
                return cluster_destination(c);
            }
        }
    }
    let described: Vec<String> = vhosts
        .iter()
        .map(|vh| {
            let matches: Vec<String> = vh
                .get("routes")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .map(|r| describe_route_match(r.get("match").unwrap_or(&Value::Null)))
                .collect();
            let domains = vh
                .get("domains")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let domains: Vec<&str> = domains.iter().filter_map(Value::as_str).collect();
            match domains[..] {
                ["*"] | [] => matches.join(", "),
                _ => format!("{} {}", domains.join("/"), matches.join(", ")),
            }
        })
        .collect();
    format!("Inline Route: {}", described.join("; "))
}

/// ADDRESSES, PORT, MATCH, DESTINATION: one row per filter chain, sorted by port and address.
pub fn listener_table(dump: &Value) -> String {
    let all = listeners(dump);
    let mut placed: Vec<(u64, String, &Value)> = Vec::new();
    for l in &all {
        let mut addrs = Vec::new();
        let mut port = None;
        if let Some((host, p)) = l.get("address").and_then(socket) {
            addrs.push(host);
            port = p;
        }
        for extra in l
            .get("additional_addresses")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some((host, _)) = extra.get("address").and_then(socket) {
                addrs.push(host);
            }
        }
        if addrs.is_empty() {
            addrs.push(text(l, "/name").to_string());
        }
        placed.push((port.unwrap_or(0), addrs.join(","), l));
    }
    placed.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
    let mut rows = Vec::new();
    for (port, addrs, l) in placed {
        let port = if port == 0 {
            "-".into()
        } else {
            port.to_string()
        };
        let chains = l
            .get("filter_chains")
            .and_then(Value::as_array)
            .into_iter()
            .flatten();
        for chain in chains.chain(l.get("default_filter_chain")) {
            rows.push(vec![
                addrs.clone(),
                port.clone(),
                describe_chain_match(chain.get("filter_chain_match").unwrap_or(&Value::Null)),
                describe_chain_destination(chain),
            ]);
        }
    }
    render(&["ADDRESSES", "PORT", "MATCH", "DESTINATION"], &rows)
}

/// A route's match in one word or two: `/*`, `/productpage`, `/static*`, `regex ^/api/.*`.
fn describe_route_match(m: &Value) -> String {
    let mut conds = Vec::new();
    if let Some(p) = m.get("prefix").and_then(Value::as_str) {
        conds.push(format!("{p}*"));
    }
    if let Some(p) = m.get("path_separated_prefix").and_then(Value::as_str) {
        conds.push(format!("{p}/*"));
    }
    if let Some(p) = m.get("path").and_then(Value::as_str) {
        conds.push(p.to_string());
    }
    if let Some(r) = m.pointer("/safe_regex/regex").and_then(Value::as_str) {
        conds.push(format!("regex {r}"));
    }
    if conds.is_empty() {
        // No path condition at all: every path matches.
        conds.push("/*".into());
    }
    conds.join(" ")
}

/// NAME, VHOST NAME, DOMAINS, MATCH, VIRTUAL SERVICE: one row per route.
pub fn route_table(dump: &Value) -> String {
    let mut configs = routes(dump);
    // Numeric names (ports: "9080") sort as numbers and come first, as in istioctl.
    configs.sort_by_key(|rc| {
        let name = text(rc, "/name").to_string();
        (
            name.parse::<u64>().map_or(1, |_| 0),
            name.parse::<u64>().unwrap_or(0),
            name,
        )
    });
    let mut rows = Vec::new();
    for rc in &configs {
        let name = text(rc, "/name");
        for vh in rc
            .get("virtual_hosts")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let domains: Vec<&str> = vh
                .get("domains")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            let domains = match domains[..] {
                [] => "-".to_string(),
                [one] => one.to_string(),
                [first, ref rest @ ..] => format!("{first} + {} more...", rest.len()),
            };
            let base = [name.to_string(), text(vh, "/name").to_string(), domains];
            let routes = vh
                .get("routes")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            if routes.is_empty() {
                // A virtual host with no routes answers everything with 404.
                let mut row = base.to_vec();
                row.extend(["/*".into(), "404".into()]);
                rows.push(row);
            }
            for r in &routes {
                let mut row = base.to_vec();
                row.push(describe_route_match(r.get("match").unwrap_or(&Value::Null)));
                row.push(managed_by(r));
                rows.push(row);
            }
        }
    }
    render(
        &["NAME", "VHOST NAME", "DOMAINS", "MATCH", "VIRTUAL SERVICE"],
        &rows,
    )
}

/// One endpoint of one cluster, as the ENDPOINT table shows it.
#[derive(Debug, PartialEq)]
pub struct EndpointRow {
    pub address: String,
    pub status: String,
    /// Ejected by outlier detection.
    pub outlier_failed: bool,
    pub cluster: String,
}

fn address_cell(addr: &Value) -> String {
    match socket(addr) {
        Some((host, Some(port))) if host.contains(':') => format!("[{host}]:{port}"),
        Some((host, Some(port))) => format!("{host}:{port}"),
        Some((host, None)) => host,
        None => "-".into(),
    }
}

/// Rows from either an admin's `/clusters?format=json` (`cluster_statuses[]`, with live
/// health) or weftd's ClusterLoadAssignments (health as the control plane declared it).
pub fn endpoint_rows(source: &Value) -> Vec<EndpointRow> {
    let mut rows = Vec::new();
    if let Some(statuses) = source.get("cluster_statuses").and_then(Value::as_array) {
        for c in statuses {
            for h in c
                .get("host_statuses")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let hs = h.get("health_status").unwrap_or(&Value::Null);
                let flag = |k: &str| hs.get(k).and_then(Value::as_bool).unwrap_or(false);
                let status = if flag("failed_active_health_check") {
                    "UNHEALTHY".to_string()
                } else {
                    eds_status(hs.get("eds_health_status"))
                };
                rows.push(EndpointRow {
                    address: address_cell(h.get("address").unwrap_or(&Value::Null)),
                    status,
                    outlier_failed: flag("failed_outlier_check"),
                    cluster: text(c, "/name").to_string(),
                });
            }
        }
    } else {
        for cla in source.as_array().into_iter().flatten() {
            let cluster = text(cla, "/cluster_name");
            for locality in cla
                .get("endpoints")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                for lb in locality
                    .get("lb_endpoints")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    rows.push(EndpointRow {
                        address: address_cell(
                            lb.pointer("/endpoint/address").unwrap_or(&Value::Null),
                        ),
                        status: eds_status(lb.get("health_status")),
                        outlier_failed: false,
                        cluster: cluster.to_string(),
                    });
                }
            }
        }
    }
    rows.sort_by(|a, b| (&a.cluster, &a.address).cmp(&(&b.cluster, &b.address)));
    rows
}

/// Envoy routes to UNKNOWN (the proto default, left out of JSON) as to HEALTHY.
fn eds_status(v: Option<&Value>) -> String {
    match v.and_then(Value::as_str) {
        None | Some("UNKNOWN") => "HEALTHY".into(),
        Some(s) => s.to_string(),
    }
}

/// ENDPOINT, STATUS, OUTLIER CHECK, CLUSTER.
pub fn endpoint_table(rows: &[EndpointRow]) -> String {
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let outlier = if r.outlier_failed { "FAILED" } else { "OK" };
            vec![
                r.address.clone(),
                r.status.clone(),
                outlier.into(),
                r.cluster.clone(),
            ]
        })
        .collect();
    render(&["ENDPOINT", "STATUS", "OUTLIER CHECK", "CLUSTER"], &rows)
}

#[cfg(test)]
#[path = "summary_tests.rs"]
mod tests;
