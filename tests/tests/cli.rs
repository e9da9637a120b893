//! The `weft` CLI against a real weftd: what a user types and what they see.

use serde_json::Value;
use weft_testkit::{free_port, run_weft, Weftd};

fn data(name: &str) -> String {
    format!("{}/data/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// Istio's Bookinfo samples, read in place from the shared corpus.
fn bookinfo(name: &str) -> String {
    format!(
        "{}/../../shared/istio-testdata/samples/bookinfo/networking/{name}",
        env!("CARGO_MANIFEST_DIR")
    )
}

/// The NAME column (or the column named `col`) of a kubectl-style table.
fn column(table: &str, col: &str) -> Vec<String> {
    let mut lines = table.lines();
    let header = lines.next().unwrap_or_default();
    let idx = header
        .split_whitespace()
        .position(|h| h == col)
        .unwrap_or_else(|| panic!("no {col} column in\n{table}"));
    lines
        .map(|l| {
            l.split_whitespace()
                .nth(idx)
                .unwrap_or_default()
                .to_string()
        })
        .collect()
}

#[test]
fn apply_get_reapply_change_and_delete() {
    let weftd = Weftd::start();
    let mesh = data("mesh.yaml");

    let out = weftd.weft(&["apply", "-f", &mesh]);
    assert_eq!(
        out.ok(),
        "gateway.networking.istio.io/bookinfo-gateway created\n\
         virtualservice.networking.istio.io/reviews created\n\
         destinationrule.networking.istio.io/reviews created\n"
    );

    // Table: NAME and AGE, by short name.
    let out = weftd.weft(&["get", "vs"]);
    let table = out.ok();
    assert!(table.starts_with("NAME "), "{table}");
    assert_eq!(column(table, "NAME"), ["reviews"]);
    assert_eq!(column(table, "AGE").len(), 1);
    assert!(!column(table, "AGE")[0].contains("unknown"), "{table}");

    // Wide shows the VirtualService's gateways and hosts.
    let wide = weftd.weft(&["get", "virtualservices", "-o", "wide"]);
    assert_eq!(column(wide.ok(), "GATEWAYS"), [r#"["bookinfo-gateway"]"#]);
    assert_eq!(column(wide.ok(), "HOSTS"), [r#"["reviews"]"#]);

    // -A adds the NAMESPACE column; resources without one landed in "default".
    let all = weftd.weft(&["get", "dr", "-A"]);
    assert_eq!(column(all.ok(), "NAMESPACE"), ["default"]);
    assert_eq!(column(all.ok(), "NAME"), ["reviews"]);

    // -l filters on labels, server side.
    let labeled = weftd.weft(&["get", "all", "-l", "app=reviews", "-o", "name"]);
    assert_eq!(
        labeled.ok(),
        "virtualservice.networking.istio.io/reviews\ndestinationrule.networking.istio.io/reviews\n"
    );
    let none = weftd.weft(&["get", "gw", "-l", "app=nothing"]);
    assert_eq!(none.ok(), "");
    assert_eq!(none.stderr, "No resources found in default namespace.\n");

    // -o yaml of one object is the object, as stored.
    let yaml = weftd.weft(&["get", "dr", "reviews", "-o", "yaml"]);
    let obj: Value = serde_yaml::from_str(yaml.ok()).expect("get -o yaml prints YAML");
    assert_eq!(obj["kind"], "DestinationRule");
    assert_eq!(obj["metadata"]["namespace"], "default");
    assert_eq!(obj["spec"]["subsets"][1]["name"], "v2");

    // -o json of a listing is a List.
    let json = weftd.weft(&["get", "gw", "-o", "json"]);
    let list: Value = serde_json::from_str(json.ok()).expect("get -o json prints JSON");
    assert_eq!(list["kind"], "List");
    assert_eq!(list["items"][0]["metadata"]["name"], "bookinfo-gateway");

    // The same file again changes nothing.
    let again = weftd.weft(&["apply", "-f", &mesh]);
    assert_eq!(
        again.ok(),
        "gateway.networking.istio.io/bookinfo-gateway unchanged\n\
         virtualservice.networking.istio.io/reviews unchanged\n\
         destinationrule.networking.istio.io/reviews unchanged\n"
    );

    // A changed weight, from stdin, is "configured" and stored.
    let text = std::fs::read_to_string(&mesh).unwrap();
    let changed = text
        .replace("weight: 80", "weight: 50")
        .replace("weight: 20", "weight: 50");
    let out = weftd.weft_stdin(&["apply", "-f", "-"], Some(&changed));
    assert_eq!(
        out.ok(),
        "gateway.networking.istio.io/bookinfo-gateway unchanged\n\
         virtualservice.networking.istio.io/reviews configured\n\
         destinationrule.networking.istio.io/reviews unchanged\n"
    );
    let vs = weftd.weft(&["get", "vs", "reviews", "-o", "json"]);
    let vs: Value = serde_json::from_str(vs.ok()).unwrap();
    assert_eq!(vs["spec"]["http"][0]["route"][0]["weight"], 50);

    // Delete by kind and name, then by file; what is gone is NotFound.
    let out = weftd.weft(&["delete", "gw", "bookinfo-gateway"]);
    assert_eq!(
        out.ok(),
        "gateway.networking.istio.io \"bookinfo-gateway\" deleted\n"
    );
    let out = weftd.weft(&["delete", "-f", &mesh]);
    out.expect_code(1);
    assert_eq!(
        out.stdout,
        "virtualservice.networking.istio.io \"reviews\" deleted\n\
         destinationrule.networking.istio.io \"reviews\" deleted\n"
    );
    assert!(
        out.stderr.starts_with("Error from server (NotFound): ")
            && out.stderr.contains("bookinfo-gateway"),
        "{}",
        out.stderr
    );
    let out = weftd.weft(&["get", "vs", "reviews"]);
    out.expect_code(1);
    assert!(
        out.stderr.starts_with("Error from server (NotFound): "),
        "{}",
        out.stderr
    );
    let out = weftd.weft(&["get", "all"]);
    assert_eq!(out.ok(), "");
    assert_eq!(out.stderr, "No resources found in default namespace.\n");
    let out = weftd.weft(&["delete", "vs", "reviews", "--ignore-not-found"]);
    assert_eq!(out.ok(), "");
}

#[test]
fn invalid_apply_names_the_field_and_stores_nothing() {
    let weftd = Weftd::start();
    let out = weftd.weft(&["apply", "-f", &data("invalid.yaml")]);
    out.expect_code(1);
    assert_eq!(out.stdout, "", "nothing may be reported as applied");
    let first = out.stderr.lines().next().unwrap_or_default();
    assert!(
        first.contains(
            "invalid.yaml: VirtualService details (document 1): spec.http[0].route[0].weight: "
        ),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("nothing was applied"), "{}", out.stderr);
    // The valid first document was not sent either.
    let out = weftd.weft(&["get", "vs", "-A"]);
    assert_eq!(out.ok(), "");
    assert_eq!(out.stderr, "No resources found\n");
}

#[test]
fn bookinfo_sample_rules_apply_and_list() {
    let weftd = Weftd::start();
    let out = weftd.weft(&[
        "apply",
        "-f",
        &bookinfo("destination-rule-all.yaml"),
        "-f",
        &bookinfo("virtual-service-all-v1.yaml"),
    ]);
    let applied = out.ok();
    assert_eq!(applied.lines().count(), 8, "{applied}");
    assert!(
        applied.lines().all(|l| l.ends_with(" created")),
        "{applied}"
    );

    let out = weftd.weft(&["get", "vs"]);
    assert_eq!(
        column(out.ok(), "NAME"),
        ["details", "productpage", "ratings", "reviews"]
    );
    let out = weftd.weft(&["get", "dr", "-o", "wide"]);
    assert_eq!(
        column(out.ok(), "HOST"),
        ["details", "productpage", "ratings", "reviews"]
    );
}

#[test]
fn writes_need_the_token() {
    let weftd = Weftd::start();
    let mesh = data("mesh.yaml");
    let url = weftd.url();
    let elsewhere = weftd.scratch().join("elsewhere");
    let elsewhere = elsewhere.display().to_string();

    let out = run_weft(
        &["apply", "-f", &mesh],
        &[("WEFT_SERVER", &url), ("WEFT_DATA_DIR", &elsewhere)],
        None,
    );
    out.expect_code(1);
    assert!(
        out.stderr
            .starts_with("error: no token for writes: cannot read "),
        "{}",
        out.stderr
    );

    let out = run_weft(
        &["apply", "-f", &mesh, "--token", "wrong"],
        &[("WEFT_SERVER", &url)],
        None,
    );
    out.expect_code(1);
    assert!(
        out.stderr.starts_with("Error from server (Unauthorized): "),
        "{}",
        out.stderr
    );

    // Reads need no token.
    let out = run_weft(
        &["get", "vs"],
        &[("WEFT_SERVER", &url), ("WEFT_DATA_DIR", &elsewhere)],
        None,
    );
    out.expect_code(0);
}

#[test]
fn validate_offline() {
    let out = run_weft(&["validate", "-f", &data("mesh.yaml")], &[], None);
    assert_eq!(out.ok(), format!("{:?} is valid\n", data("mesh.yaml")));

    let out = run_weft(
        &[
            "validate",
            "-f",
            &data("invalid.yaml"),
            "-f",
            &data("mesh.yaml"),
        ],
        &[],
        None,
    );
    out.expect_code(1);
    assert!(
        out.stderr.contains("spec.http[0].route[0].weight"),
        "{}",
        out.stderr
    );
    assert_eq!(out.stdout, format!("{:?} is valid\n", data("mesh.yaml")));

    // Kubernetes objects in the same file are skipped, not errors.
    let platform = format!(
        "{}/../../shared/istio-testdata/samples/bookinfo/platform/kube/bookinfo.yaml",
        env!("CARGO_MANIFEST_DIR")
    );
    let out = run_weft(&["validate", "-f", &platform], &[], None);
    out.expect_code(0);
    assert!(
        out.stderr
            .contains("Service details (document 0) is not an Istio resource"),
        "{}",
        out.stderr
    );
}

/// The README's demo applies examples/quickstart: it must validate and analyze clean.
#[test]
fn quickstart_example_is_valid_and_clean() {
    let dir = format!("{}/../examples/quickstart", env!("CARGO_MANIFEST_DIR"));
    run_weft(&["validate", "-f", &dir], &[], None).expect_code(0);
    let out = run_weft(&["analyze", &dir], &[], None);
    out.expect_code(0);
    assert_eq!(out.stdout, "", "findings: {}", out.stdout);
    assert!(
        out.stderr.contains("No validation issues found"),
        "{}",
        out.stderr
    );
}

/// EnvoyFilters are accepted, and every write says plainly that they change nothing yet.
#[test]
fn envoy_filter_is_stored_with_a_not_applied_warning() {
    let out = run_weft(&["validate", "-f", &data("envoyfilter.yaml")], &[], None);
    out.expect_code(0);
    assert!(out.stderr.contains("not applied"), "{}", out.stderr);

    let weftd = Weftd::start();
    let out = weftd.weft(&["apply", "-f", &data("envoyfilter.yaml")]);
    out.expect_code(0);
    assert!(
        out.stdout
            .contains("envoyfilter.networking.istio.io/reviews-header created"),
        "{}",
        out.stdout
    );
    assert!(out.stderr.contains("not applied"), "{}", out.stderr);
}

#[test]
fn analyze_files_reports_missing_subset() {
    let out = run_weft(&["analyze", &data("missing-subset.yaml")], &[], None);
    out.expect_code(79);
    let missing_subset = |l: &str| {
        l.starts_with("Error [IST0101] (VirtualService default/reviews) ")
            && l.contains("reviews+v3")
    };
    assert!(out.stdout.lines().any(missing_subset), "{}", out.stdout);

    // Both subsets exist here: no finding about them.
    let clean = run_weft(&["analyze", &data("mesh.yaml")], &[], None);
    assert!(!clean.stdout.contains("reviews+v"), "{}", clean.stdout);
}

#[test]
fn analyze_what_weftd_stores() {
    let weftd = Weftd::start();
    let out = weftd.weft(&["analyze"]);
    out.expect_code(0);
    assert_eq!(
        out.stderr,
        "\u{2714} No validation issues found when analyzing namespace: default.\n"
    );

    weftd
        .weft(&["apply", "-f", &data("missing-subset.yaml"), "-n", "shop"])
        .ok();
    // The finding is in "shop": the default namespace stays clean.
    weftd.weft(&["analyze"]).expect_code(0);
    let out = weftd.weft(&["analyze", "-n", "shop", "-o", "json"]);
    out.expect_code(79);
    let messages: Value = serde_json::from_str(&out.stdout).expect("analyze -o json prints JSON");
    let found = messages.as_array().unwrap().iter().any(|m| {
        m["code"] == "IST0101"
            && m["level"] == "Error"
            && m["origin"] == "VirtualService shop/reviews"
            && m["message"]
                .as_str()
                .unwrap_or_default()
                .contains("reviews+v3")
    });
    assert!(found, "{}", out.stdout);
}

#[test]
fn version_shows_client_and_control_plane() {
    let weftd = Weftd::start();
    let out = weftd.weft(&["version"]);
    let lines: Vec<&str> = out.ok().lines().collect();
    assert_eq!(lines.len(), 2, "{}", out.stdout);
    assert!(lines[0].starts_with("client version: 0."), "{}", out.stdout);
    assert!(
        lines[1].starts_with("control plane version: "),
        "{}",
        out.stdout
    );
    assert!(!lines[1].ends_with("unknown"), "{}", out.stdout);
}

#[test]
fn unreachable_server_says_how_to_fix_it() {
    let url = format!("http://127.0.0.1:{}", free_port());
    let out = run_weft(&["get", "vs"], &[("WEFT_SERVER", &url)], None);
    out.expect_code(1);
    assert_eq!(
        out.stderr,
        format!(
            "error: cannot reach weftd at {url} (connection refused); start it with \"weftd\" or set --server\n"
        )
    );
    let out = run_weft(&["version", "--server", &url], &[], None);
    out.expect_code(1);
    assert!(out.stdout.starts_with("client version: "), "{}", out.stdout);
    assert!(out.stderr.contains("cannot reach weftd"), "{}", out.stderr);
}
