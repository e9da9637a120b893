//! Unit tests for AuthorizationPolicy validation: what a user sees for each rule.

fn check(spec: &str) -> Result<Vec<String>, String> {
    crate::validate::testing::check(crate::Kind::AuthorizationPolicy, spec)
}

fn rejected(spec: &str, expected: &str) {
    crate::validate::testing::rejected(crate::Kind::AuthorizationPolicy, spec, expected)
}

#[test]
fn allow_nothing_and_allow_all_are_valid() {
    assert_eq!(check("  {}\n"), Ok(vec![]));
    assert_eq!(check("  rules:\n  - {}\n"), Ok(vec![]));
    assert_eq!(
        check("  action: DENY\n  rules:\n  - to:\n    - operation: {ports: [\"8080\"]}\n"),
        Ok(vec![])
    );
}

#[test]
fn action_and_provider() {
    rejected(
        "  action: DENY\n",
        "spec.rules: DENY action without `rules` is meaningless",
    );
    rejected(
        "  action: CUSTOM\n  provider: {name: ext}\n",
        "CUSTOM action without `rules` is meaningless",
    );
    rejected(
        "  action: CUSTOM\n  rules:\n  - {}\n",
        "spec.provider.name: `provider.name` must not be empty",
    );
    rejected(
        "  action: CUSTOM\n  provider: {}\n  rules:\n  - {}\n",
        "`provider.name` must not be empty",
    );
    rejected(
        "  provider: {name: ext}\n  rules:\n  - {}\n",
        "`provider` must not be with non CUSTOM action, found ALLOW",
    );
    rejected(
        "  action: AUDIT\n  provider: {name: ext}\n  rules:\n  - {}\n",
        "found AUDIT",
    );
    rejected("  action: BLOCK\n", "Unsupported value: \"BLOCK\"");
    assert!(check("  action: CUSTOM\n  provider: {name: ext}\n  rules:\n  - to:\n    - operation: {paths: [\"/admin\"]}\n").is_ok());
}

#[test]
fn custom_action_cannot_match_identities() {
    rejected(
        "  action: CUSTOM\n  provider: {name: ext}\n  rules:\n  - from:\n    - source: {principals: [a]}\n",
        "spec.rules[0].from[0].source: From.Principals is currently not supported with CUSTOM action",
    );
    rejected(
        "  action: CUSTOM\n  provider: {name: ext}\n  rules:\n  - when:\n    - {key: \"request.auth.claims[iss]\", values: [x]}\n",
        "request.auth.claims[iss] is currently not supported with CUSTOM action",
    );
    assert!(check("  action: CUSTOM\n  provider: {name: ext}\n  rules:\n  - from:\n    - source: {ipBlocks: [1.2.3.4]}\n").is_ok());
}

#[test]
fn empty_and_nil_rule_parts() {
    rejected(
        "  rules:\n  - from:\n    - {}\n",
        "spec.rules[0].from[0].source: `from.source` must not be nil, found at rule 0",
    );
    rejected(
        "  rules:\n  - from:\n    - source: {}\n",
        "`from.source` must not be empty, found at rule 0",
    );
    rejected(
        "  rules:\n  - to:\n    - {}\n",
        "`to.operation` must not be nil, found at rule 0",
    );
    rejected(
        "  rules:\n  - {}\n  - to:\n    - operation: {}\n",
        "`to.operation` must not be empty, found at rule 1",
    );
    rejected(
        "  rules:\n  - from:\n    - source: {principals: [\"\"]}\n",
        "spec.rules[0].from[0].source.principals: empty value not allowed, found in Principals",
    );
    rejected(
        "  rules:\n  - to:\n    - operation: {notHosts: [\"\"]}\n",
        "spec.rules[0].to[0].operation.notHosts: empty value not allowed, found in NotHosts",
    );
}

#[test]
fn sources_ips_ports_and_paths() {
    rejected(
        "  rules:\n  - from:\n    - source: {ipBlocks: [1.2.3.4/40]}\n",
        "bad CIDR range (1.2.3.4/40)",
    );
    rejected(
        "  rules:\n  - from:\n    - source: {notRemoteIpBlocks: [foo]}\n",
        "spec.rules[0].from[0].source.notRemoteIpBlocks: bad IP address (foo)",
    );
    rejected(
        "  rules:\n  - to:\n    - operation: {ports: [\"http\"]}\n",
        "bad port (http)",
    );
    rejected(
        "  rules:\n  - to:\n    - operation: {paths: [\"/{**}/a/{*}\"]}\n",
        "{**} is not the last operator",
    );
    rejected(
        "  rules:\n  - from:\n    - source: {serviceAccounts: [ns/sa], namespaces: [ns]}\n",
        "Cannot set serviceAccounts with namespaces or principals",
    );
    rejected(
        "  rules:\n  - from:\n    - source: {trustDomains: [\"td/x\"]}\n",
        "trust domain must not contain '/'",
    );
    rejected(
        "  rules:\n  - from:\n    - source: {serviceAccounts: [\"a/b/c\"]}\n",
        "expected format 'serviceAccount' or 'namespace/serviceAccount'",
    );
}

#[test]
fn when_conditions() {
    assert!(check("  rules:\n  - when:\n    - {key: \"request.headers[x-token]\", values: [\"a*\"]}\n    - {key: destination.port, notValues: [\"22\"]}\n").is_ok());
    rejected("  rules:\n  - when:\n    - {key: request.headers, values: [a]}\n", "spec.rules[0].when[0].values: invalid `value` for `key` request.headers: bad key (request.headers): should have format a[b]");
    rejected(
        "  rules:\n  - when:\n    - {key: source.ip, notValues: [\"1.2.3\"]}\n",
        "invalid `notValue` for `key` source.ip: bad IP address (1.2.3)",
    );
    rejected(
        "  rules:\n  - when:\n    - {key: request.auth.principal}\n",
        "at least one of `values` or `notValues` must be set for key request.auth.principal",
    );
    rejected(
        "  rules:\n  - when:\n    - {key: \"\", values: [a]}\n",
        "spec.rules[0].when[0].key: `key` must not be empty",
    );
    rejected(
        "  rules:\n  - when:\n    - {values: [a]}\n",
        "spec.rules[0].when[0].key: Required value",
    );
    rejected(
        "  rules:\n  - when:\n    - {key: \"destination.labels[app]\", values: [a]}\n",
        "is replaced by the workload selector",
    );
    rejected(
        "  rules:\n  - when:\n    - {key: request.url, values: [a]}\n",
        "unknown attribute: request.url",
    );
}

#[test]
fn deny_with_only_http_attributes_warns() {
    let warnings =
        check("  action: DENY\n  rules:\n  - to:\n    - operation: {methods: [POST]}\n").unwrap();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].starts_with(
        "spec.rules[0]: configured AuthorizationPolicy will deny all traffic to TCP ports"
    ));
    assert_eq!(
        check("  action: DENY\n  rules:\n  - from:\n    - source: {namespaces: [x]}\n"),
        Ok(vec![])
    );
    assert_eq!(
        check("  rules:\n  - to:\n    - operation: {methods: [POST]}\n"),
        Ok(vec![])
    );
}

#[test]
fn selector_and_targets() {
    rejected(
        "  selector: {matchLabels: {app: a}}\n  targetRef: {kind: Service, name: s}\n",
        "spec: Invalid value: \"object\": only one of targetRefs or selector can be set",
    );
    rejected(
        "  selector: {matchLabels: {app: \"a*\"}}\n",
        "spec.selector.matchLabels[app]: wildcard not allowed in label value match",
    );
    rejected(
        "  targetRef: {kind: Service}\n",
        "spec.targetRef.name: Required value",
    );
    rejected("  targetRefs:\n  - {kind: Service, name: s, namespace: other}\n", "spec.targetRefs[0].namespace: Invalid value: \"string\": cross namespace referencing is not currently supported");
    assert!(check("  targetRefs:\n  - {kind: Gateway, group: gateway.networking.k8s.io, name: gw}\n  - {kind: ServiceEntry, group: networking.istio.io, name: se}\n").is_ok());
}
