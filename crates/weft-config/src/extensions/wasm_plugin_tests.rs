//! Unit tests for WasmPlugin validation.

use super::check_url;

fn check(spec: &str) -> Result<Vec<String>, String> {
    crate::validate::testing::check(crate::Kind::WasmPlugin, spec)
}

fn rejected(spec: &str, expected: &str) {
    crate::validate::testing::rejected(crate::Kind::WasmPlugin, spec, expected)
}

#[test]
fn urls() {
    for ok in [
        "oci://ghcr.io/org/plugin:1.0",
        "ghcr.io/org/plugin:1.0",
        "file:///opt/x.wasm",
        "HTTPS://example.com/x.wasm",
        "test",
    ] {
        assert_eq!(check_url(ok), Ok(()), "{ok}");
    }
    assert_eq!(
        check_url("s3://bucket/x.wasm"),
        Err("url contains unsupported scheme: s3".into())
    );
    assert!(check_url("http://ex ample.com").is_err());
    assert!(check_url("http://example.com/%zz").is_err());
    rejected("  url: \"s3://bucket/x.wasm\"\n", "spec.url: Invalid value: \"s3://bucket/x.wasm\": url must have schema one of [http, https, file, oci]");
    rejected("  sha256: abc\n", "spec.url: Required value");
    rejected(
        "  url: \"\"\n",
        "spec.url: Invalid value: \"\": spec.url in body should be at least 1 chars long",
    );
}

#[test]
fn checksum_phase_and_policy() {
    assert!(check("  url: oci://x/y\n  phase: AUTHZ\n  priority: -10\n  imagePullPolicy: IfNotPresent\n  failStrategy: FAIL_OPEN\n  type: NETWORK\n").is_ok());
    rejected(
        "  url: oci://x/y\n  sha256: ABCDEF\n",
        "spec.sha256 in body should match '(^$|^[a-f0-9]{64}$)'",
    );
    rejected(
        "  url: oci://x/y\n  phase: LATE\n",
        "Unsupported value: \"LATE\"",
    );
    rejected(
        "  url: oci://x/y\n  imagePullPolicy: IF_NOT_PRESENT\n",
        "Unsupported value: \"IF_NOT_PRESENT\"",
    );
    rejected(
        "  url: oci://x/y\n  pluginConfig: [1]\n",
        "spec.pluginConfig",
    );
}

#[test]
fn vm_env_and_match_ports() {
    assert!(check("  url: oci://x/y\n  vmConfig:\n    env:\n    - {name: A, valueFrom: HOST}\n    - {name: B, value: b}\n").is_ok());
    rejected("  url: oci://x/y\n  vmConfig:\n    env:\n    - {name: A, valueFrom: HOST, value: a}\n", "spec.vmConfig.env[0]: Invalid value: \"object\": value may only be set when valueFrom is INLINE");
    rejected(
        "  url: oci://x/y\n  vmConfig:\n    env:\n    - {name: A}\n    - {name: A}\n",
        "spec.vmConfig.env[1]: Duplicate value",
    );
    rejected(
        "  url: oci://x/y\n  match:\n  - ports: [{number: 0}]\n",
        "spec.match[0].ports[0].number: Invalid value: 0",
    );
    rejected(
        "  url: oci://x/y\n  match:\n  - mode: SERVER\n    ports: [{number: 80}, {number: 80}]\n",
        "spec.match[0].ports[1]: Duplicate value",
    );
    rejected(
        "  url: oci://x/y\n  match:\n  - mode: INBOUND\n",
        "Unsupported value: \"INBOUND\"",
    );
}

#[test]
fn says_it_is_not_applied() {
    let warnings = check("  url: oci://ghcr.io/org/plugin:1.0\n").expect("valid plugin");
    assert!(
        warnings
            .iter()
            .any(|w| w == &format!("spec: {}", super::NOT_APPLIED)),
        "{warnings:?}"
    );
}
