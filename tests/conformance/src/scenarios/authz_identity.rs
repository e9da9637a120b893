//! AuthorizationPolicy on who calls: `source.principals` / `notPrincipals`,
//! `namespaces` / `notNamespaces` and the `source.principal` / `source.namespace` conditions,
//! ALLOW and DENY, at `details`' sidecar.
//!
//! Callers: the client sidecar (`cluster.local/ns/default/sa/sleep`), the canary client
//! sidecar (`.../sa/sleep-canary`), the ingress gateway (`.../sa/istio-ingressgateway`), all
//! talking mutual TLS to `details` (auto mTLS), and a plaintext caller straight at
//! `details`' inbound port, which `details` takes under the default PERMISSIVE mode and
//! which has no principal and no namespace. Every `notPrincipals` / `notNamespaces` answer
//! for that plaintext caller is the one Envoy gives.
//!
//! Last, a keep-alive client that sees a new policy without reconnecting itself: the
//! sidecar drains the connections of the listener the policy replaced.

use super::authz::{denied, policy_scenario, probe, served, GATEWAY_TO_DETAILS};
use crate::client::Via;
use crate::scenario::{get, Check, Scenario};

/// `details` as the client sidecar reaches it.
fn details(path: &str) -> Check {
    get(&format!("http://details:9080{path}"))
}

/// `details` as the canary client sidecar reaches it.
fn from_canary(path: &str) -> Check {
    details(path).via(Via::CanarySidecar)
}

/// The scenario's probe through the canary sidecar, retried: it may hold connections to
/// `details` accepted under the previous policy (the client sidecar's are flushed by
/// the first probe).
fn canary_probe(name: &str) -> Check {
    probe(name).via(Via::CanarySidecar).wait()
}

/// `details`' inbound port reached without a sidecar: plaintext, no identity.
fn plaintext(path: &str) -> Check {
    get(&format!(
        "http://127.0.0.1:{{{{inbound:details-v1}}}}{path}"
    ))
    .via(Via::Direct)
}

pub fn scenarios() -> Vec<Scenario> {
    vec![
        policy_scenario(
            "authz: ALLOW by source principal",
            ALLOW_PRINCIPALS,
            "allow-principals",
        )
        .check(canary_probe("allow-principals"))
        .check(served(details("/by-principal")))
        .check(denied(from_canary("/by-principal")))
        .check(denied(plaintext("/by-principal")))
        .check(served(from_canary("/any-peer")))
        .check(denied(plaintext("/any-peer"))),
        policy_scenario(
            "authz: DENY by source principal",
            DENY_PRINCIPALS,
            "deny-principals",
        )
        .check(canary_probe("deny-principals"))
        .check(denied(from_canary("/")))
        .check(served(details("/")))
        .check(served(plaintext("/"))),
        Scenario::new("authz: the gateway calls with its own principal")
            .yaml(DENY_GATEWAY)
            .yaml(GATEWAY_TO_DETAILS)
            .check(
                denied(get("http://authz.example.com/from-gateway").via(Via::Gateway))
                    .times(12)
                    .concurrency(6),
            )
            .check(served(details("/from-gateway")).wait()),
        policy_scenario(
            "authz: notPrincipals in ALLOW and DENY",
            NOT_PRINCIPALS,
            "not-principals",
        )
        .check(canary_probe("not-principals"))
        .check(served(details("/open")))
        .check(denied(from_canary("/open")))
        .check(served(plaintext("/open")))
        .check(served(details("/only-sleep")))
        .check(denied(plaintext("/only-sleep"))),
        policy_scenario(
            "authz: namespaces and notNamespaces",
            NAMESPACES,
            "namespaces",
        )
        .check(canary_probe("namespaces"))
        .check(served(details("/default/page")))
        .check(served(from_canary("/default/page")))
        .check(denied(plaintext("/default/page")))
        .check(denied(details("/elsewhere")))
        .check(served(details("/not-prod/page")))
        .check(served(plaintext("/not-prod/page")))
        .check(served(details("/not-prod/strict")))
        .check(denied(plaintext("/not-prod/strict"))),
        policy_scenario(
            "authz: when source.principal and source.namespace",
            WHEN_SOURCE,
            "when-source",
        )
        .check(canary_probe("when-source"))
        .check(served(details("/by-principal")))
        .check(denied(from_canary("/by-principal")))
        .check(served(from_canary("/by-namespace")))
        .check(denied(plaintext("/by-namespace")))
        .check(served(details("/not-canary")))
        .check(denied(from_canary("/not-canary")))
        .check(served(plaintext("/not-canary")))
        .check(denied(details("/deny-namespace")))
        .check(served(plaintext("/deny-namespace"))),
        // The connections opened before the policy: the client's own keep-alive connection
        // to `details`' inbound port, and the client sidecar's pooled mTLS connection. A
        // sidecar that kept serving them under the listener they were accepted on would
        // answer 200 until they closed, which a busy client never lets happen.
        Scenario::new("authz: a keep-alive connection gets a new policy")
            .before(served(
                get("http://127.0.0.1:{{inbound:details-v1}}/keep-alive").via(Via::KeepAlive),
            ))
            .before(served(details("/keep-alive")))
            .yaml(DENY_KEEP_ALIVE)
            .check(denied(
                get("http://127.0.0.1:{{inbound:details-v1}}/keep-alive").via(Via::KeepAlive),
            ))
            .check(denied(details("/keep-alive")).times(4).wait())
            .check(served(
                get("http://127.0.0.1:{{inbound:details-v1}}/other").via(Via::KeepAlive),
            )),
    ]
}

const ALLOW_PRINCIPALS: &str = "
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: allow-principals, namespace: default}
spec:
  selector: {matchLabels: {app: details}}
  action: ALLOW
  rules:
  - from: [{source: {principals: [cluster.local/ns/default/sa/sleep]}}]
  - from: [{source: {principals: ['*']}}]
    to: [{operation: {paths: [/any-peer]}}]
  - when: [{key: 'request.headers[x-authz-probe]', values: ['*']}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: probe, namespace: default}
spec:
  selector: {matchLabels: {app: details}}
  action: DENY
  rules:
  - when: [{key: 'request.headers[x-authz-probe]', values: [allow-principals]}]
";

const DENY_PRINCIPALS: &str = "
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-principals, namespace: default}
spec:
  selector: {matchLabels: {app: details}}
  action: DENY
  rules:
  - from: [{source: {principals: [cluster.local/ns/default/sa/sleep-canary]}}]
  - when: [{key: 'request.headers[x-authz-probe]', values: [deny-principals]}]
";

const DENY_GATEWAY: &str = "
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-gateway, namespace: default}
spec:
  selector: {matchLabels: {app: details}}
  action: DENY
  rules:
  - from: [{source: {principals: [cluster.local/ns/default/sa/istio-ingressgateway]}}]
";

const NOT_PRINCIPALS: &str = "
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: allow-not-canary, namespace: default}
spec:
  selector: {matchLabels: {app: details}}
  action: ALLOW
  rules:
  - from: [{source: {notPrincipals: [cluster.local/ns/default/sa/sleep-canary]}}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-not-sleep, namespace: default}
spec:
  selector: {matchLabels: {app: details}}
  action: DENY
  rules:
  - from: [{source: {notPrincipals: [cluster.local/ns/default/sa/sleep]}}]
    to: [{operation: {paths: [/only-sleep]}}]
  - when: [{key: 'request.headers[x-authz-probe]', values: [not-principals]}]
";

const NAMESPACES: &str = "
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: allow-namespaces, namespace: default}
spec:
  selector: {matchLabels: {app: details}}
  action: ALLOW
  rules:
  - from: [{source: {namespaces: [prod]}}]
  - from: [{source: {namespaces: [default]}}]
    to: [{operation: {paths: [/default/*]}}]
  - from: [{source: {notNamespaces: [prod]}}]
    to: [{operation: {paths: [/not-prod/*]}}]
  - when: [{key: 'request.headers[x-authz-probe]', values: ['*']}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-other-namespaces, namespace: default}
spec:
  selector: {matchLabels: {app: details}}
  action: DENY
  rules:
  - from: [{source: {notNamespaces: [default]}}]
    to: [{operation: {paths: [/not-prod/strict]}}]
  - when: [{key: 'request.headers[x-authz-probe]', values: [namespaces]}]
";

const WHEN_SOURCE: &str = "
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: allow-when-source, namespace: default}
spec:
  selector: {matchLabels: {app: details}}
  action: ALLOW
  rules:
  - to: [{operation: {paths: [/by-principal]}}]
    when: [{key: source.principal, values: [cluster.local/ns/default/sa/sleep]}]
  - to: [{operation: {paths: [/by-namespace]}}]
    when: [{key: source.namespace, values: [default]}]
  - to: [{operation: {paths: [/not-canary, /deny-namespace]}}]
    when: [{key: source.principal, notValues: [cluster.local/ns/default/sa/sleep-canary]}]
  - when: [{key: 'request.headers[x-authz-probe]', values: ['*']}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-when-namespace, namespace: default}
spec:
  selector: {matchLabels: {app: details}}
  action: DENY
  rules:
  - to: [{operation: {paths: [/deny-namespace]}}]
    when: [{key: source.namespace, values: [default]}]
  - when: [{key: 'request.headers[x-authz-probe]', values: [when-source]}]
";

const DENY_KEEP_ALIVE: &str = "
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-keep-alive, namespace: default}
spec:
  selector: {matchLabels: {app: details}}
  action: DENY
  rules:
  - to: [{operation: {paths: [/keep-alive]}}]
";
