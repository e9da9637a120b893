//! Mesh mutual TLS at `details`' sidecar: PeerAuthentication STRICT (workload, mesh-wide)
//! refuses a plaintext caller while the client sidecars (auto mTLS, certificates from
//! weftd's CA) still get through, a workload's PERMISSIVE beats its namespace's STRICT, a
//! port-level DISABLE takes plaintext again, and a DestinationRule's `tls`
//! (ISTIO_MUTUAL, DISABLE) decides what the client sidecar sends.
//!
//! Every scenario first waits for `details`' sidecar through what only its new config
//! does: refusing plaintext (STRICT) or a probe rule (port-level DISABLE). Checks through
//! the client sidecars are retried ([`Check::wait`]): they may hold connections to
//! `details` accepted under its previous listener.

use super::authz::{denied, served};
use crate::client::Via;
use crate::scenario::{get, Check, Scenario};

/// `details`' inbound port reached without a sidecar: plaintext, no identity.
fn plaintext(path: &str) -> Check {
    get(&format!(
        "http://127.0.0.1:{{{{inbound:details-v1}}}}{path}"
    ))
    .via(Via::Direct)
}

/// Refused only once `details`' sidecar is STRICT; several connections at once, as every
/// Envoy worker must have the listener.
fn strict_probe() -> Check {
    plaintext("/strict").refused().times(12).concurrency(6)
}

pub fn scenarios() -> Vec<Scenario> {
    vec![
        Scenario::new("mtls: STRICT refuses plaintext, sidecars still connect")
            .yaml(STRICT)
            .check(strict_probe())
            .check(served(get("http://details:9080/strict")).times(4).wait())
            .check(served(get("http://details:9080/strict").via(Via::CanarySidecar)).wait()),
        Scenario::new("mtls: a mesh-wide STRICT policy reaches the workload")
            .yaml(MESH_STRICT)
            .check(strict_probe())
            .check(served(get("http://details:9080/mesh-strict")).wait()),
        Scenario::new("mtls: a workload's PERMISSIVE overrides its namespace's STRICT")
            .yaml(NAMESPACE_STRICT_WORKLOAD_PERMISSIVE)
            .check(
                denied(plaintext("/probe").header("x-authz-probe", "workload-permissive"))
                    .times(12)
                    .concurrency(6),
            )
            .check(served(plaintext("/permissive")).times(4))
            .check(served(get("http://details:9080/permissive")).wait()),
        Scenario::new("mtls: a port-level DISABLE takes plaintext under STRICT")
            .yaml(PORT_DISABLE)
            .check(
                denied(plaintext("/probe").header("x-authz-probe", "port-disable"))
                    .times(12)
                    .concurrency(6),
            )
            .check(served(plaintext("/plain")).times(4)),
        // Istio's EDS drops an endpoint's tlsMode when a PeerAuthentication disables mTLS
        // for it (any level, port-level included), so auto mTLS sends plaintext there.
        Scenario::new("mtls: auto mTLS sends plaintext to a port-level DISABLE port")
            .yaml(PORT_DISABLE)
            .check(
                denied(plaintext("/probe").header("x-authz-probe", "port-disable"))
                    .times(12)
                    .concurrency(6),
            )
            .check(served(get("http://details:9080/plain")).wait()),
        Scenario::new("mtls: DestinationRule ISTIO_MUTUAL reaches a STRICT workload")
            .yaml(STRICT)
            .yaml(DESTINATION_RULE_ISTIO_MUTUAL)
            .check(strict_probe())
            .check(served(get("http://details:9080/mutual")).times(4).wait()),
        Scenario::new("mtls: DestinationRule tls DISABLE to a STRICT workload fails")
            .yaml(STRICT)
            .yaml(DESTINATION_RULE_DISABLE)
            .check(strict_probe())
            .check(get("http://details:9080/disabled").status(503).wait())
            .check(
                get("http://details:9080/disabled")
                    .via(Via::CanarySidecar)
                    .status(503)
                    .wait(),
            ),
    ]
}

const STRICT: &str = "
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: details-strict, namespace: default}
spec:
  selector: {matchLabels: {app: details}}
  mtls: {mode: STRICT}
";

const MESH_STRICT: &str = "
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: istio-system}
spec:
  mtls: {mode: STRICT}
";

/// The workload-level policy wins over the namespace's, with a probe (plaintext is served
/// before and after).
const NAMESPACE_STRICT_WORKLOAD_PERMISSIVE: &str = "
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: default}
spec:
  mtls: {mode: STRICT}
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: details-permissive, namespace: default}
spec:
  selector: {matchLabels: {app: details}}
  mtls: {mode: PERMISSIVE}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: probe, namespace: default}
spec:
  selector: {matchLabels: {app: details}}
  action: DENY
  rules:
  - when: [{key: 'request.headers[x-authz-probe]', values: [workload-permissive]}]
";

/// STRICT but for the workload's (inbound) port, with a probe that tells when `details`'
/// sidecar has it: a plaintext request with the probe header is refused by the policy,
/// not by the handshake.
const PORT_DISABLE: &str = "
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: details-strict, namespace: default}
spec:
  selector: {matchLabels: {app: details}}
  mtls: {mode: STRICT}
  portLevelMtls:
    {{inbound:details-v1}}: {mode: DISABLE}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: probe, namespace: default}
spec:
  selector: {matchLabels: {app: details}}
  action: DENY
  rules:
  - when: [{key: 'request.headers[x-authz-probe]', values: [port-disable]}]
";

/// Bookinfo's `details` DestinationRule (the base config's subsets) with mesh mTLS
/// spelled out.
const DESTINATION_RULE_ISTIO_MUTUAL: &str = "
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: details, namespace: default}
spec:
  host: details
  trafficPolicy:
    tls: {mode: ISTIO_MUTUAL}
  subsets:
  - name: v1
    labels: {version: v1}
  - name: v2
    labels: {version: v2}
";

/// The same with TLS turned off: the client sidecar sends plaintext whatever the
/// endpoint's label says.
const DESTINATION_RULE_DISABLE: &str = "
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: details, namespace: default}
spec:
  host: details
  trafficPolicy:
    tls: {mode: DISABLE}
  subsets:
  - name: v1
    labels: {version: v1}
  - name: v2
    labels: {version: v2}
";
