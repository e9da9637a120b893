//! Tables rendered from a config dump shaped like Envoy's admin API.

use super::*;
use serde_json::json;

fn sa(address: &str, port: u16) -> Value {
    json!({"socket_address": {"address": address, "port_value": port}})
}

/// A sidecar's dump, as Envoy's `/config_dump` lays it out.
fn dump() -> Value {
    json!({"configs": [
        {"@type": "type.googleapis.com/envoy.admin.v3.BootstrapConfigDump", "bootstrap": {}},
        {"@type": "type.googleapis.com/envoy.admin.v3.ClustersConfigDump",
         "static_clusters": [
            {"cluster": {"name": "xds-grpc", "type": "STRICT_DNS"}}
         ],
         "dynamic_active_clusters": [
            {"version_info": "3", "cluster": {
                "@type": "type.googleapis.com/envoy.config.cluster.v3.Cluster",
                "name": "outbound|9080|v2|reviews.default.svc.cluster.local", "type": "EDS",
                "metadata": {"filter_metadata": {"istio": {"config": "/apis/networking.istio.io/v1/namespaces/default/destination-rule/reviews"}}}}},
            {"cluster": {"name": "outbound|9080||reviews.default.svc.cluster.local", "type": "EDS"}},
            {"cluster": {"name": "inbound|9080||"}},
            {"cluster": {"name": "BlackHoleCluster", "type": "STATIC"}},
            {"cluster": {"name": "PassthroughCluster", "type": "ORIGINAL_DST"}}
         ]},
        {"@type": "type.googleapis.com/envoy.admin.v3.ListenersConfigDump",
         "dynamic_listeners": [
            {"name": "127.0.0.1_15001", "active_state": {"listener": {
                "name": "127.0.0.1_15001", "address": sa("127.0.0.1", 15001),
                "filter_chains": [{"filters": [{"name": "envoy.filters.network.http_connection_manager",
                    "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                                     "rds": {"route_config_name": "http_proxy"}}}]}]}}},
            {"name": "10.0.0.5_9080", "active_state": {"listener": {
                "name": "10.0.0.5_9080", "address": sa("10.0.0.5", 9080),
                "filter_chains": [
                  {"filter_chain_match": {"destination_port": 9080, "transport_protocol": "tls", "application_protocols": ["istio-http/1.1", "h2"]},
                   "filters": [{"name": "envoy.filters.network.tcp_proxy",
                     "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy", "cluster": "inbound|9080||"}}]},
                  {"filter_chain_match": {"prefix_ranges": [{"address_prefix": "10.0.0.0", "prefix_len": 8}], "server_names": ["a.example", "b.example"]},
                   "filters": [{"name": "envoy.filters.network.http_connection_manager",
                     "typed_config": {"route_config": {"virtual_hosts": [{"name": "x", "domains": ["*"],
                        "routes": [{"match": {"prefix": "/"}, "route": {"cluster": "inbound|9080||"}}]}]}}}]}
                ],
                "default_filter_chain": {"filters": [{"name": "envoy.filters.network.tcp_proxy",
                    "typed_config": {"cluster": "BlackHoleCluster"}}]}}}},
            {"name": "warming", "warming_state": {"listener": {"name": "warming", "address": sa("0.0.0.0", 1)}}}
         ],
         "static_listeners": [
            {"listener": {"name": "admin_probe", "address": sa("0.0.0.0", 15021),
                "filter_chains": [{"filters": [{"name": "envoy.filters.network.http_connection_manager",
                    "typed_config": {"route_config": {"virtual_hosts": [{"name": "probe", "domains": ["*"],
                        "routes": [{"match": {"path": "/healthz/ready"}}, {"match": {"prefix": "/"}}]}]}}}]}]}}
         ]},
        {"@type": "type.googleapis.com/envoy.admin.v3.RoutesConfigDump",
         "dynamic_route_configs": [
            {"route_config": {"name": "http_proxy", "virtual_hosts": [
                {"name": "reviews.default.svc.cluster.local:9080",
                 "domains": ["reviews:9080", "reviews.default:9080", "reviews.default.svc:9080"],
                 "routes": [
                    {"match": {"path": "/reviews/0"},
                     "metadata": {"filter_metadata": {"istio": {"config": "/apis/networking.istio.io/v1/namespaces/default/virtual-service/reviews"}}},
                     "route": {"cluster": "outbound|9080|v2|reviews.default.svc.cluster.local"}},
                    {"match": {"prefix": "/"}, "route": {"cluster": "outbound|9080||reviews.default.svc.cluster.local"}}
                 ]},
                {"name": "block_all", "domains": ["*"], "routes": []}
            ]}},
            {"route_config": {"name": "9080", "virtual_hosts": [
                {"name": "ratings:9080", "domains": ["ratings:9080"],
                 "routes": [{"match": {"safe_regex": {"regex": "^/api/.*"}}}]}
            ]}}
         ]},
        {"@type": "type.googleapis.com/envoy.admin.v3.EndpointsConfigDump",
         "dynamic_endpoint_configs": [
            {"endpoint_config": {"cluster_name": "outbound|9080||reviews.default.svc.cluster.local",
                "endpoints": [{"lb_endpoints": [
                    {"endpoint": {"address": sa("10.0.0.7", 9080)}, "health_status": "HEALTHY"},
                    {"endpoint": {"address": sa("10.0.0.6", 9080)}, "health_status": "DRAINING"},
                    {"endpoint": {"address": sa("fd00::1", 9080)}}
                ]}]}}
         ]}
    ]})
}

/// Cells of a rendered table: columns are at least three spaces apart and cells hold
/// at most single spaces, so splitting on runs of 3+ spaces recovers them.
fn cells(table: &str) -> Vec<Vec<String>> {
    table
        .lines()
        .map(|l| {
            l.split("   ")
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .map(str::to_string)
                .collect()
        })
        .collect()
}

#[test]
fn clusters_split_istio_names_and_sort_like_istioctl() {
    let t = cells(&cluster_table(&dump()));
    let want: Vec<Vec<&str>> = vec![
        vec![
            "SERVICE FQDN",
            "PORT",
            "SUBSET",
            "DIRECTION",
            "TYPE",
            "DESTINATION RULE",
        ],
        vec!["9080", "-", "inbound", "STATIC", "-"],
        vec!["BlackHoleCluster", "-", "-", "-", "STATIC", "-"],
        vec!["PassthroughCluster", "-", "-", "-", "ORIGINAL_DST", "-"],
        vec![
            "reviews.default.svc.cluster.local",
            "9080",
            "-",
            "outbound",
            "EDS",
            "-",
        ],
        vec![
            "reviews.default.svc.cluster.local",
            "9080",
            "v2",
            "outbound",
            "EDS",
            "reviews.default",
        ],
        vec!["xds-grpc", "-", "-", "-", "STRICT_DNS", "-"],
    ];
    assert_eq!(t, want);
}

#[test]
fn listeners_show_one_row_per_filter_chain() {
    let t = cells(&listener_table(&dump()));
    let want: Vec<Vec<&str>> = vec![
        vec!["ADDRESSES", "PORT", "MATCH", "DESTINATION"],
        vec![
            "10.0.0.5",
            "9080",
            "Trans: tls; App: istio-http/1.1,h2; Addr: *:9080",
            "Cluster: inbound|9080||",
        ],
        vec![
            "10.0.0.5",
            "9080",
            "SNI: a.example,b.example; Addr: 10.0.0.0/8",
            "Cluster: inbound|9080||",
        ],
        vec!["10.0.0.5", "9080", "ALL", "BlackHoleCluster"],
        vec!["127.0.0.1", "15001", "ALL", "Route: http_proxy"],
        vec![
            "0.0.0.0",
            "15021",
            "ALL",
            "Inline Route: /healthz/ready, /*",
        ],
    ];
    assert_eq!(t, want);
}

#[test]
fn routes_show_one_row_per_route_with_numeric_names_first() {
    let t = cells(&route_table(&dump()));
    let want: Vec<Vec<&str>> = vec![
        vec!["NAME", "VHOST NAME", "DOMAINS", "MATCH", "VIRTUAL SERVICE"],
        vec![
            "9080",
            "ratings:9080",
            "ratings:9080",
            "regex ^/api/.*",
            "-",
        ],
        vec![
            "http_proxy",
            "reviews.default.svc.cluster.local:9080",
            "reviews:9080 + 2 more...",
            "/reviews/0",
            "reviews.default",
        ],
        vec![
            "http_proxy",
            "reviews.default.svc.cluster.local:9080",
            "reviews:9080 + 2 more...",
            "/*",
            "-",
        ],
        vec!["http_proxy", "block_all", "*", "/*", "404"],
    ];
    assert_eq!(t, want);
}

#[test]
fn endpoints_from_the_control_plane_dump() {
    let rows = endpoint_rows(&endpoint_configs(&dump()));
    let t = cells(&endpoint_table(&rows));
    let want: Vec<Vec<&str>> = vec![
        vec!["ENDPOINT", "STATUS", "OUTLIER CHECK", "CLUSTER"],
        vec![
            "10.0.0.6:9080",
            "DRAINING",
            "OK",
            "outbound|9080||reviews.default.svc.cluster.local",
        ],
        vec![
            "10.0.0.7:9080",
            "HEALTHY",
            "OK",
            "outbound|9080||reviews.default.svc.cluster.local",
        ],
        vec![
            "[fd00::1]:9080",
            "HEALTHY",
            "OK",
            "outbound|9080||reviews.default.svc.cluster.local",
        ],
    ];
    assert_eq!(t, want);
}

#[test]
fn endpoints_from_an_admin_clusters_page_carry_live_health() {
    let clusters = json!({"cluster_statuses": [
        {"name": "outbound|9080||ratings.default.svc.cluster.local", "host_statuses": [
            {"address": sa("10.0.0.9", 9080), "health_status": {"eds_health_status": "HEALTHY"}},
            {"address": sa("10.0.0.8", 9080), "health_status": {"eds_health_status": "HEALTHY", "failed_outlier_check": true}},
            {"address": sa("10.0.0.10", 9080), "health_status": {"failed_active_health_check": true}}
        ]},
        {"name": "sds", "host_statuses": [{"address": {"pipe": {"path": "/var/run/sds"}}, "health_status": {}}]}
    ]});
    let t = cells(&endpoint_table(&endpoint_rows(&clusters)));
    let want: Vec<Vec<&str>> = vec![
        vec!["ENDPOINT", "STATUS", "OUTLIER CHECK", "CLUSTER"],
        vec![
            "10.0.0.10:9080",
            "UNHEALTHY",
            "OK",
            "outbound|9080||ratings.default.svc.cluster.local",
        ],
        vec![
            "10.0.0.8:9080",
            "HEALTHY",
            "FAILED",
            "outbound|9080||ratings.default.svc.cluster.local",
        ],
        vec![
            "10.0.0.9:9080",
            "HEALTHY",
            "OK",
            "outbound|9080||ratings.default.svc.cluster.local",
        ],
        vec!["/var/run/sds", "HEALTHY", "OK", "sds"],
    ];
    assert_eq!(t, want);
}

#[test]
fn a_dump_without_a_section_gives_empty_lists_not_errors() {
    let only_bootstrap =
        json!({"configs": [{"@type": "type.googleapis.com/envoy.admin.v3.BootstrapConfigDump"}]});
    assert!(clusters(&only_bootstrap).is_empty());
    assert!(listeners(&only_bootstrap).is_empty());
    assert!(routes(&only_bootstrap).is_empty());
    assert_eq!(endpoint_configs(&only_bootstrap), json!([]));
    assert_eq!(
        cluster_table(&only_bootstrap),
        "SERVICE FQDN   PORT   SUBSET   DIRECTION   TYPE   DESTINATION RULE\n"
    );
}
