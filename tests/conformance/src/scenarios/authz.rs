//! AuthorizationPolicy on requests: requests to `details` (behind its own sidecar) and to
//! the ingress gateway, allowed or refused with Envoy's `403 RBAC: access denied`; TCP
//! connections to the gateway closed. Rules on the caller's identity are in
//! `authz_identity`.
//!
//! The runner waits for the client sidecar, not for `details`' sidecar, so every scenario
//! on `details` opens with a probe only its own config refuses: a DENY rule on the
//! `x-authz-probe` header carrying the scenario's name (ALLOW policies let any probe
//! through, so a previous scenario's leftovers never refuse it). ALLOW-nothing, which
//! cannot carry that rule, runs last among them. The client sidecar keeps its connections
//! to `details` alive across scenarios: `details`' sidecar must drain the connections of
//! a replaced listener for a new policy to reach them, as Envoy does.

use crate::client::Via;
use crate::scenario::{get, req, Check, Scenario};

const DENIED: &str = "RBAC: access denied";

pub(super) fn denied(check: Check) -> Check {
    check.status(403).body_contains(DENIED)
}

pub(super) fn served(check: Check) -> Check {
    check.status(200).served_by("details-v1")
}

/// A scenario that applies `policy` and first waits, through the probe, until the policy
/// is enforced on every connection the client sidecar holds to `details`.
pub(super) fn policy_scenario(
    name: &'static str,
    policy: &'static str,
    probe_name: &str,
) -> Scenario {
    Scenario::new(name)
        .yaml(policy)
        .check(probe(probe_name).wait())
}

/// Refused only once `details`' sidecar has the scenario's config. Several requests:
/// Envoy's worker threads take a listener update one after the other, and every one of
/// them must have it.
pub(super) fn probe(name: &str) -> Check {
    denied(get("http://details:9080/probe").header("x-authz-probe", name))
        .times(12)
        .concurrency(6)
}

/// [`tcp_refused`] on every one of 12 connections (6 at once), retried as a first check
/// is: for a short while after a listener update Envoy's gateway still lets a connection
/// through under the port's previous listener, the one an earlier scenario had (seen in
/// about one run of four, with or without the changes around it).
fn tcp_settled(url: &str) -> Check {
    tcp_refused(url).times(12).concurrency(6).wait()
}

/// A TCP exchange the gateway refused: closed before anyone answered.
fn tcp_refused(url: &str) -> Check {
    get(url)
        .via(Via::Tcp)
        .status(200)
        .response_header("x-echo-name", None)
}

pub fn scenarios() -> Vec<Scenario> {
    vec![
        Scenario::new("authz: gateway enforces the policies that select it")
            .yaml(GATEWAY_DENY)
            .yaml(GATEWAY_TO_DETAILS)
            .check(
                denied(get("http://authz.example.com/gw-deny").via(Via::Gateway))
                    .times(12)
                    .concurrency(6),
            )
            .check(served(
                get("http://authz.example.com/fine").via(Via::Gateway),
            ))
            .check(served(get("http://details:9080/gw-deny"))),
        policy_scenario(
            "authz: ALLOW by path, method and header",
            ALLOW_BY_REQUEST,
            "allow-by-request",
        )
        .check(
            denied(get("http://details:9080/private"))
                .response_header("content-type", Some("text/plain")),
        )
        .check(served(get("http://details:9080/public/page")).upstream_path("/public/page"))
        .check(denied(req("POST", "http://details:9080/public/page")))
        .check(served(
            get("http://details:9080/private").header("x-allow", "yes"),
        ))
        .check(denied(
            get("http://details:9080/private").header("x-allow", "no"),
        )),
        policy_scenario("authz: DENY by path", DENY_BY_PATH, "deny-by-path")
            .check(denied(get("http://details:9080/admin/users")))
            .check(denied(get("http://details:9080/admin/users?q=1")))
            .check(served(get("http://details:9080/adminx")))
            .check(served(get("http://details:9080/users"))),
        policy_scenario(
            "authz: namespace-wide policy applies without a selector",
            NAMESPACE_WIDE,
            "namespace-wide",
        )
        .check(denied(get("http://details:9080/ns-wide")))
        .check(served(get("http://details:9080/fine"))),
        policy_scenario(
            "authz: root-namespace policies apply, other namespaces' do not",
            ROOT_AND_OTHER_NAMESPACE,
            "root-namespace",
        )
        .check(denied(get("http://details:9080/root-deny")))
        .check(served(get("http://details:9080/prod-deny")))
        .check(served(get("http://details:9080/other"))),
        policy_scenario("authz: selector picks the workload", SELECTOR, "selector")
            .check(denied(get("http://details:9080/v1-only")))
            .check(served(get("http://details:9080/v2-only"))),
        policy_scenario(
            "authz: DENY is decided before ALLOW",
            DENY_BEFORE_ALLOW,
            "deny-before-allow",
        )
        .check(denied(get("http://details:9080/secret")))
        .check(served(get("http://details:9080/open"))),
        policy_scenario("authz: AUDIT does not block", AUDIT, "audit")
            .check(denied(get("http://details:9080/denied")))
            .check(served(get("http://details:9080/audited"))),
        policy_scenario(
            "authz: source.ip and remoteIpBlocks",
            SOURCE_IPS,
            "source-ips",
        )
        .check(denied(get("http://details:9080/from-local")))
        .check(denied(
            get("http://details:9080/from-remote").header("x-forwarded-for", "10.1.2.3"),
        ))
        .check(served(get("http://details:9080/from-remote")))
        .check(served(
            get("http://details:9080/from-remote").header("x-forwarded-for", "10.9.9.9"),
        )),
        policy_scenario(
            "authz: ALLOW with no rules allows nothing",
            ALLOW_NOTHING,
            "allow-nothing",
        )
        .check(denied(get("http://details:9080/")))
        .check(denied(req("POST", "http://details:9080/anything"))),
        // Policies first and the Gateway last: a TCP listener never exists without its
        // policy and route. Envoy's workers take an updated listener one after the other,
        // so only a scenario's first check (retried, many connections at once) may meet a
        // listener the previous scenario had: the HTTP-only ALLOW opens on a fresh port 2;
        // deny-by-port waits until port 2 serves again, then checks the fresh port 1.
        Scenario::new("authz: an HTTP-only ALLOW rule allows no TCP")
            .yaml(TCP_ALLOW_HTTP_ONLY)
            .yaml(TCP_GATEWAY_PORT_2)
            .check(
                tcp_refused("tcp://gateway:{{gateway_port_2}}/hello")
                    .times(12)
                    .concurrency(6),
            )
            .check(tcp_settled("tcp://gateway:{{gateway_port_2}}/again")),
        Scenario::new("authz: TCP rules deny by port")
            .yaml(TCP_DENY_PORT)
            .yaml(TCP_GATEWAY)
            .check(
                get("tcp://gateway:{{gateway_port_2}}/hello")
                    .via(Via::Tcp)
                    .served_by("tcp-a")
                    .body_contains("tcp-a: hello")
                    .times(12)
                    .concurrency(6),
            )
            .check(tcp_settled("tcp://gateway:{{gateway_port}}/hello")),
    ]
}

const GATEWAY_DENY: &str = "
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: gateway-deny, namespace: default}
spec:
  selector: {matchLabels: {istio: ingressgateway}}
  action: DENY
  rules:
  - to: [{operation: {paths: [/gw-deny]}}]
";

pub(super) const GATEWAY_TO_DETAILS: &str = "
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: authz, namespace: default}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: [authz.example.com]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: authz, namespace: default}
spec:
  hosts: [authz.example.com]
  gateways: [authz]
  http:
  - route: [{destination: {host: details.default.svc.cluster.local, port: {number: 9080}}}]
";

const ALLOW_BY_REQUEST: &str = "
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: details-allow, namespace: default}
spec:
  selector: {matchLabels: {app: details}}
  action: ALLOW
  rules:
  - to: [{operation: {methods: [GET], paths: [/public/*]}}]
  - when: [{key: 'request.headers[x-allow]', values: ['yes']}]
  - when: [{key: 'request.headers[x-authz-probe]', values: ['*']}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: probe, namespace: default}
spec:
  selector: {matchLabels: {app: details}}
  action: DENY
  rules:
  - when: [{key: 'request.headers[x-authz-probe]', values: [allow-by-request]}]
";

const DENY_BY_PATH: &str = "
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: details-deny, namespace: default}
spec:
  selector: {matchLabels: {app: details}}
  action: DENY
  rules:
  - to: [{operation: {paths: [/admin/*]}}]
  - when: [{key: 'request.headers[x-authz-probe]', values: [deny-by-path]}]
";

const NAMESPACE_WIDE: &str = "
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: namespace-deny, namespace: default}
spec:
  action: DENY
  rules:
  - to: [{operation: {paths: [/ns-wide]}}]
  - when: [{key: 'request.headers[x-authz-probe]', values: [namespace-wide]}]
";

const ROOT_AND_OTHER_NAMESPACE: &str = "
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: mesh-deny, namespace: istio-system}
spec:
  selector: {matchLabels: {app: details}}
  action: DENY
  rules:
  - to: [{operation: {paths: [/root-deny]}}]
  - when: [{key: 'request.headers[x-authz-probe]', values: [root-namespace]}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: prod-deny, namespace: prod}
spec:
  selector: {matchLabels: {app: details}}
  action: DENY
  rules:
  - to: [{operation: {paths: [/prod-deny]}}]
";

const SELECTOR: &str = "
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: details-v1-only, namespace: default}
spec:
  selector: {matchLabels: {app: details, version: v1}}
  action: DENY
  rules:
  - to: [{operation: {paths: [/v1-only]}}]
  - when: [{key: 'request.headers[x-authz-probe]', values: [selector]}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: details-v2-only, namespace: default}
spec:
  selector: {matchLabels: {app: details, version: v2}}
  action: DENY
  rules:
  - to: [{operation: {paths: [/v2-only]}}]
";

const DENY_BEFORE_ALLOW: &str = "
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: allow-all, namespace: default}
spec:
  selector: {matchLabels: {app: details}}
  rules: [{}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-secret, namespace: default}
spec:
  selector: {matchLabels: {app: details}}
  action: DENY
  rules:
  - to: [{operation: {paths: [/secret]}}]
  - when: [{key: 'request.headers[x-authz-probe]', values: [deny-before-allow]}]
";

const AUDIT: &str = "
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: audit-all, namespace: default}
spec:
  selector: {matchLabels: {app: details}}
  action: AUDIT
  rules: [{}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-denied, namespace: default}
spec:
  selector: {matchLabels: {app: details}}
  action: DENY
  rules:
  - to: [{operation: {paths: [/denied]}}]
  - when: [{key: 'request.headers[x-authz-probe]', values: [audit]}]
";

const SOURCE_IPS: &str = "
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: by-address, namespace: default}
spec:
  selector: {matchLabels: {app: details}}
  action: DENY
  rules:
  - from: [{source: {ipBlocks: [127.0.0.0/8]}}]
    to: [{operation: {paths: [/from-local]}}]
  - from: [{source: {remoteIpBlocks: [10.1.2.0/24]}}]
    to: [{operation: {paths: [/from-remote]}}]
  - when: [{key: 'request.headers[x-authz-probe]', values: [source-ips]}]
";

const ALLOW_NOTHING: &str = "
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: allow-nothing, namespace: default}
spec:
  selector: {matchLabels: {app: details}}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: probe, namespace: default}
spec:
  selector: {matchLabels: {app: details}}
  action: DENY
  rules:
  - when: [{key: 'request.headers[x-authz-probe]', values: [allow-nothing]}]
";

const TCP_GATEWAY: &str = "
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: tcp-a}
spec:
  hosts: [tcp-a.default.svc.cluster.local]
  location: MESH_INTERNAL
  ports: [{number: 9000, name: tcp, protocol: TCP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1, ports: {tcp: {{port:tcp-a}}}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: tcp}
spec:
  hosts: ['*']
  gateways: [tcp]
  tcp:
  - route: [{destination: {host: tcp-a.default.svc.cluster.local, port: {number: 9000}}}]
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: tcp}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: {{gateway_port}}, name: tcp-1, protocol: TCP}
    hosts: ['*']
  - port: {number: {{gateway_port_2}}, name: tcp-2, protocol: TCP}
    hosts: ['*']
";

/// [`TCP_GATEWAY`] with the second server only.
const TCP_GATEWAY_PORT_2: &str = "
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: tcp-a}
spec:
  hosts: [tcp-a.default.svc.cluster.local]
  location: MESH_INTERNAL
  ports: [{number: 9000, name: tcp, protocol: TCP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1, ports: {tcp: {{port:tcp-a}}}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: tcp}
spec:
  hosts: ['*']
  gateways: [tcp]
  tcp:
  - route: [{destination: {host: tcp-a.default.svc.cluster.local, port: {number: 9000}}}]
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: tcp}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: {{gateway_port_2}}, name: tcp-2, protocol: TCP}
    hosts: ['*']
";

const TCP_DENY_PORT: &str = "
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: gateway-tcp-deny, namespace: default}
spec:
  selector: {matchLabels: {istio: ingressgateway}}
  action: DENY
  rules:
  - to: [{operation: {ports: ['{{gateway_port}}']}}]
";

const TCP_ALLOW_HTTP_ONLY: &str = "
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: gateway-http-only, namespace: default}
spec:
  selector: {matchLabels: {istio: ingressgateway}}
  action: ALLOW
  rules:
  - to: [{operation: {methods: [GET]}}]
";
