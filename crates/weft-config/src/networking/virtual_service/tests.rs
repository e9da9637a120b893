//! What a user sees when a VirtualService is wrong: each test feeds YAML and checks the
//! error text (or its absence).

use crate::parse::parse_and_validate;

/// Validates one VirtualService whose spec is `spec` (YAML, indented by two spaces) and
/// returns its errors joined, or "" when it is accepted.
fn errors(spec: &str) -> String {
    let doc = format!(
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: vs\n  namespace: ns\nspec:\n{spec}"
    );
    let results = parse_and_validate(&doc);
    assert_eq!(results.len(), 1);
    match &results[0] {
        Ok(_) => String::new(),
        Err(e) => e.to_string(),
    }
}

const ROUTE: &str =
    "  hosts: [reviews]\n  http:\n  - route:\n    - destination: {host: reviews, subset: v1}\n";

#[test]
fn a_plain_route_is_accepted() {
    assert_eq!(errors(ROUTE), "");
}

#[test]
fn weights_must_not_be_negative_nor_all_zero() {
    let neg = errors("  hosts: [r]\n  http:\n  - route:\n    - destination: {host: a}\n      weight: -10\n    - destination: {host: b}\n      weight: 110\n");
    assert!(
        neg.contains("spec.http[0].route[0].weight: weight -10 < 0"),
        "{neg}"
    );
    let zero = errors("  hosts: [r]\n  http:\n  - route:\n    - destination: {host: a}\n    - destination: {host: b}\n");
    assert!(
        zero.contains("spec.http[0].route: total destination weight = 0"),
        "{zero}"
    );
    let split = errors("  hosts: [r]\n  http:\n  - route:\n    - destination: {host: a}\n      weight: 80\n    - destination: {host: b}\n      weight: 20\n");
    assert_eq!(split, "");
}

#[test]
fn regexes_must_compile_as_re2() {
    let e = errors("  hosts: [r]\n  http:\n  - match:\n    - uri: {regex: \"/a(?=b)\"}\n    route:\n    - destination: {host: a}\n");
    assert!(e.contains("spec.http[0].match[0].uri: \"uri\": "), "{e}");
    assert!(e.contains("Istio uses RE2 style regex-based match"), "{e}");
    assert_eq!(
        errors("  hosts: [r]\n  http:\n  - match:\n    - uri: {regex: \"/v[0-9]+/.*\"}\n    route:\n    - destination: {host: a}\n"),
        ""
    );
}

#[test]
fn string_match_is_a_oneof() {
    let e = errors("  hosts: [r]\n  http:\n  - match:\n    - uri: {exact: /a, prefix: /b}\n    route:\n    - destination: {host: a}\n");
    assert!(
        e.contains("only one of exact, prefix or regex can be set"),
        "{e}"
    );
}

#[test]
fn hosts_follow_istios_rules() {
    let e = errors("  hosts: [\"*\"]\n  http:\n  - route:\n    - destination: {host: a}\n");
    assert!(
        e.contains("wildcard host * is not allowed for virtual services bound to the mesh gateway"),
        "{e}"
    );
    let e = errors("  hosts: [\"foo.*.com\"]\n  http:\n  - route:\n    - destination: {host: a}\n");
    assert!(
        e.contains("spec.hosts[0]: domain name \"*.com\" invalid (label \"*\" invalid)"),
        "{e}"
    );
    let e = errors("  hosts: [\"*.foo.com\", bar.foo.com]\n  http:\n  - route:\n    - destination: {host: a}\n");
    assert!(
        e.contains("duplicate hosts in virtual service: *.foo.com & bar.foo.com"),
        "{e}"
    );
    // An IP address is a valid host.
    assert_eq!(
        errors("  hosts: [10.0.0.1]\n  tcp:\n  - route:\n    - destination: {host: a}\n"),
        ""
    );
}

#[test]
fn redirect_route_and_direct_response_exclude_each_other() {
    let e = errors("  hosts: [r]\n  http:\n  - redirect: {uri: /new}\n    route:\n    - destination: {host: a}\n");
    assert!(
        e.contains("spec.http[0].route: HTTP route cannot contain both route and redirect"),
        "{e}"
    );
    let e = errors("  hosts: [r]\n  http:\n  - directResponse: {status: 503}\n    route:\n    - destination: {host: a}\n");
    assert!(
        e.contains("HTTP route cannot contain both route and direct_response"),
        "{e}"
    );
    let e = errors("  hosts: [r]\n  http:\n  - match:\n    - uri: {prefix: /a}\n");
    assert!(
        e.contains("HTTP route, redirect or direct_response is required"),
        "{e}"
    );
    let e = errors("  hosts: [r]\n  http:\n  - redirect: {uri: /a, redirectCode: 200}\n");
    assert!(
        e.contains("200 is not a valid redirect code, must be 3xx"),
        "{e}"
    );
}

#[test]
fn delegate_rules() {
    let root = errors("  hosts: [r]\n  http:\n  - name: root\n    delegate: {name: child}\n    route:\n    - destination: {host: a}\n");
    assert!(
        root.contains("root HTTP route root must not specify route"),
        "{root}"
    );
    let child = errors("  gateways: [ns/gw]\n  http:\n  - delegate: {name: other}\n");
    assert!(
        child.contains("delegate virtual service must have no gateways specified"),
        "{child}"
    );
    assert!(
        child.contains("delegate HTTP route cannot contain delegate"),
        "{child}"
    );
    assert_eq!(
        errors("  http:\n  - route:\n    - destination: {host: a}\n"),
        ""
    );
}

#[test]
fn retries_and_timeouts() {
    let e = errors("  hosts: [r]\n  http:\n  - route:\n    - destination: {host: a}\n    timeout: 0.5ms\n    retries: {attempts: 3, perTryTimeout: 2s, retryOn: \"5xx,bogus\"}\n");
    assert!(
        e.contains("spec.http[0].timeout: duration must be greater than 1ms"),
        "{e}"
    );
    assert!(e.contains("\"bogus\" is not a valid retryOn policy"), "{e}");
    let e = errors("  hosts: [r]\n  http:\n  - route:\n    - destination: {host: a}\n    retries: {attempts: 0, perTryTimeout: 2s}\n");
    assert!(
        e.contains("http retry policy configured when attempts are set to 0 (disabled)"),
        "{e}"
    );
    assert_eq!(
        errors("  hosts: [r]\n  http:\n  - route:\n    - destination: {host: a}\n    timeout: 10s\n    retries: {attempts: 3, perTryTimeout: 2s, retryOn: \"gateway-error,503\"}\n"),
        ""
    );
}

#[test]
fn fault_percentages_and_statuses() {
    let e = errors("  hosts: [r]\n  http:\n  - route:\n    - destination: {host: a}\n    fault:\n      abort: {httpStatus: 700, percentage: {value: 101}}\n");
    assert!(
        e.contains("percentage 101 is neither 0.0, nor in range [0.0001, 100.0]"),
        "{e}"
    );
    assert!(e.contains("HTTP status 700 is not in range 200-599"), "{e}");
    let e =
        errors("  hosts: [r]\n  http:\n  - route:\n    - destination: {host: a}\n    fault: {}\n");
    assert!(
        e.contains("HTTP fault injection must have an abort and/or a delay"),
        "{e}"
    );
}

#[test]
fn gateway_references() {
    let e = errors("  hosts: [r.example.com]\n  gateways: [\"ns/\", \"Bad_NS/gw\"]\n  http:\n  - route:\n    - destination: {host: a}\n");
    assert!(
        e.contains("spec.gateways[0]: config namespace and gateway name cannot be empty"),
        "{e}"
    );
    assert!(e.contains("invalid value for namespace: \"Bad_NS\""), "{e}");
    let ok = parse_and_validate("apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: vs}\nspec:\n  hosts: [r.example.com]\n  gateways: [gw.istio-system]\n  http:\n  - route:\n    - destination: {host: a}\n");
    let (_, warnings) = ok[0].as_ref().expect("legacy gateway names are accepted");
    assert!(warnings[0]
        .message
        .contains("prefer the <namespace>/<name> format: \"istio-system/gw\""));
}

#[test]
fn tls_sni_hosts_must_be_within_hosts() {
    let e = errors("  hosts: [a.example.com]\n  tls:\n  - match:\n    - sniHosts: [b.example.com]\n    route:\n    - destination: {host: a}\n");
    assert!(e.contains("SNI host \"b.example.com\" is not a compatible subset of any of the virtual service hosts: [a.example.com]"), "{e}");
}
