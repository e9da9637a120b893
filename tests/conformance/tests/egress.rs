//! Egress on both data planes (real Envoy and weft-proxy), configured only by weftd from
//! Istio YAML a user would write:
//! - the outbound traffic policy: weftd's `--mesh-config` (Istio's MeshConfig) sets it
//!   mesh-wide and a Sidecar resource overrides it; REGISTRY_ONLY answers 502 for hosts
//!   outside the registry (Istio's `block_all`), ALLOW_ANY forwards them (PassthroughCluster);
//! - Istio's "Egress Gateways" task: a ServiceEntry for an external host (a local echo
//!   stands in for edition.cnn.com), reached directly from a sidecar, then through a proxy
//!   labelled `istio: egressgateway` with the task's Gateway, DestinationRule and
//!   VirtualService, then with TLS originated by the gateway ("Egress Gateways with TLS
//!   Origination": the application still speaks plain HTTP).
//!
//! Sidecars run in explicit capture: the client uses the sidecar as its HTTP proxy.
//! Run: `cargo build --workspace --bins && cargo test -p weft-conformance --test egress`.

use weft_conformance::certs::Certs;
use weft_conformance::dataplane::{DataPlane, EnvoyDataPlane, ProxyType, WeftDataPlane};
use weft_conformance::echo::{EchoMode, EchoServer};
use weft_conformance::mesh_user::{curl, eventually, Answer, UserMesh};
use weft_testkit::free_port;

/// The client workload, `sleep` as in Istio's tasks, and a registered service it may call.
fn client_and_registered(registered_port: u16) -> String {
    format!(
        r#"apiVersion: networking.istio.io/v1
kind: WorkloadGroup
metadata: {{name: sleep, namespace: default}}
spec:
  metadata: {{labels: {{app: sleep}}}}
  template: {{serviceAccount: sleep}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: httpbin-ext, namespace: default}}
spec:
  hosts: [httpbin.example.com]
  location: MESH_EXTERNAL
  ports: [{{number: 80, name: http, protocol: HTTP}}]
  resolution: STATIC
  endpoints: [{{address: 127.0.0.1, ports: {{http: {registered_port}}}}}]
"#
    )
}

/// Admin `/stats` filter: requests the sidecar sent to PassthroughCluster.
const PASSTHROUGH: &str = r"cluster\.PassthroughCluster\.upstream_rq_total$";

/// A Sidecar for the `default` namespace with only an outbound traffic policy.
fn sidecar(mode: &str) -> String {
    format!(
        r#"apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {{name: default, namespace: default}}
spec:
  outboundTrafficPolicy: {{mode: {mode}}}
"#
    )
}

fn envoy() -> Option<EnvoyDataPlane> {
    // find() says SKIP (or panics under WEFT_REQUIRE_ENVOY=1) when Envoy is missing.
    EnvoyDataPlane::find().ok()
}

/// What a request to an unregistered host must get under `mode`, given the echo standing
/// for that host: ALLOW_ANY -> that echo's answer; REGISTRY_ONLY -> 502 and the echo never
/// sees it.
fn expect_policy(answer: &Answer, mode: &str, unknown: &str) -> Result<(), String> {
    let ok = match mode {
        "ALLOW_ANY" => answer.status == 200 && answer.served_by().as_deref() == Some(unknown),
        "REGISTRY_ONLY" => answer.status == 502 && answer.echo().is_none(),
        other => panic!("mode {other}"),
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{mode}: got {} {}",
            answer.status,
            answer.body.chars().take(300).collect::<String>()
        ))
    }
}

/// weftd runs with `mesh_mode` in its mesh config; a Sidecar then sets `sidecar_mode` for
/// the namespace, and deleting it brings the mesh's mode back.
fn outbound_traffic_policy(data_plane: &dyn DataPlane, mesh_mode: &str, sidecar_mode: &str) {
    let registered = EchoServer::start("httpbin", "v1").unwrap();
    let unknown = EchoServer::start("unregistered", "v1").unwrap();
    let mesh = UserMesh::with_mesh_config(&format!(
        "# Istio MeshConfig, as in the istio ConfigMap's `mesh` key\noutboundTrafficPolicy:\n  mode: {mesh_mode}\n"
    ));
    mesh.apply(&client_and_registered(registered.addr.port()));
    let (sleep, port) = mesh.proxy(
        data_plane,
        "sleep",
        "default",
        ProxyType::Sidecar,
        &[("app", "sleep")],
    );
    let context = || {
        format!(
            "--- weftd\n{}\n--- {}\n{}",
            mesh.control.log(),
            data_plane.name(),
            sleep.log()
        )
    };
    let unknown_url = format!("http://{}/status", unknown.addr);

    // A registered host is served in every mode.
    eventually(
        "registered host through the sidecar",
        || {
            let a = curl(Some(port), "http://httpbin.example.com/headers", &[]);
            match a.served_by().as_deref() {
                Some("httpbin") if a.status == 200 => Ok(()),
                _ => Err(format!("{} {}", a.status, a.body)),
            }
        },
        context,
    );
    // The mesh config decides for an unregistered host...
    let before = sleep.stat_sum(PASSTHROUGH).unwrap();
    let a = curl(Some(port), &unknown_url, &[]);
    expect_policy(&a, mesh_mode, "unregistered")
        .map_err(|e| format!("{e}\n{}", context()))
        .unwrap();
    let after = sleep.stat_sum(PASSTHROUGH).unwrap();
    assert_eq!(
        after > before,
        mesh_mode == "ALLOW_ANY",
        "PassthroughCluster requests {before} -> {after}"
    );
    // An unregistered host by name: an explicit-mode sidecar does no DNS of its own, so
    // ALLOW_ANY cannot reach it (503, no upstream); REGISTRY_ONLY still answers 502.
    let by_name = curl(Some(port), "http://unregistered.example.com/", &[]);
    let expected = if mesh_mode == "ALLOW_ANY" { 503 } else { 502 };
    assert_eq!(by_name.status, expected, "{by_name:?}\n{}", context());

    // ...until a Sidecar in the namespace says otherwise...
    let out = mesh.apply(&sidecar(sidecar_mode));
    assert!(out.contains("/default created"), "{out}");
    eventually(
        "the Sidecar's outboundTrafficPolicy",
        || {
            expect_policy(
                &curl(Some(port), &unknown_url, &[]),
                sidecar_mode,
                "unregistered",
            )
        },
        context,
    );
    // ...and the mesh's mode is back once it is deleted.
    mesh.weft(&["delete", "sidecar", "default", "-n", "default"]);
    eventually(
        "the mesh config's outboundTrafficPolicy again",
        || {
            expect_policy(
                &curl(Some(port), &unknown_url, &[]),
                mesh_mode,
                "unregistered",
            )
        },
        context,
    );
    assert_eq!(sleep.rejected_updates().unwrap(), 0, "{}", sleep.log());
}

#[test]
fn envoy_registry_only_mesh_blocks_unknown_hosts_unless_a_sidecar_allows_any() {
    if let Some(envoy) = envoy() {
        outbound_traffic_policy(&envoy, "REGISTRY_ONLY", "ALLOW_ANY");
    }
}

#[test]
fn weft_registry_only_mesh_blocks_unknown_hosts_unless_a_sidecar_allows_any() {
    outbound_traffic_policy(&WeftDataPlane::new(), "REGISTRY_ONLY", "ALLOW_ANY");
}

#[test]
fn envoy_allow_any_mesh_passes_unknown_hosts_unless_a_sidecar_restricts() {
    if let Some(envoy) = envoy() {
        outbound_traffic_policy(&envoy, "ALLOW_ANY", "REGISTRY_ONLY");
    }
}

#[test]
fn weft_allow_any_mesh_passes_unknown_hosts_unless_a_sidecar_restricts() {
    outbound_traffic_policy(&WeftDataPlane::new(), "ALLOW_ANY", "REGISTRY_ONLY");
}

/// Istio's task, step 1: the external host's ServiceEntry (DNS resolution; the endpoint is
/// `localhost`, where the stand-in listens), the client and the egress gateway's workloads
/// and Service.
fn external_service(echo_port: u16, tls_port: u16, gateway_port: u16) -> String {
    format!(
        r#"apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: cnn, namespace: default}}
spec:
  hosts: [edition.cnn.com]
  ports:
  - {{number: 80, name: http-port, protocol: HTTP}}
  - {{number: 443, name: https-port, protocol: HTTPS}}
  resolution: DNS
  endpoints: [{{address: localhost, ports: {{http-port: {echo_port}, https-port: {tls_port}}}}}]
---
apiVersion: networking.istio.io/v1
kind: WorkloadGroup
metadata: {{name: istio-egressgateway, namespace: istio-system}}
spec:
  metadata: {{labels: {{istio: egressgateway}}}}
  template: {{serviceAccount: istio-egressgateway-service-account}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: istio-egressgateway, namespace: istio-system}}
spec:
  hosts: [istio-egressgateway.istio-system.svc.cluster.local]
  location: MESH_INTERNAL
  ports: [{{number: 80, name: http2, protocol: HTTP2}}]
  resolution: STATIC
  endpoints: [{{address: 127.0.0.1, ports: {{http2: {gateway_port}}}, labels: {{istio: egressgateway}}}}]
"#
    )
}

/// Istio's task, step 2, unchanged but for the gateway's port: the egress gateway listens
/// on `gateway_port` (no root for port 80), so its Gateway server and the VirtualService's
/// gateway-side match name that port.
fn through_egress_gateway(gateway_port: u16) -> String {
    format!(
        r#"apiVersion: networking.istio.io/v1
kind: Gateway
metadata:
  name: istio-egressgateway
spec:
  selector:
    istio: egressgateway
  servers:
  - port:
      number: {gateway_port}
      name: http
      protocol: HTTP
    hosts:
    - edition.cnn.com
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: egressgateway-for-cnn
spec:
  host: istio-egressgateway.istio-system.svc.cluster.local
  subsets:
  - name: cnn
---
{virtual_service}"#,
        virtual_service = cnn_virtual_service(gateway_port, 80)
    )
}

/// Istio's "Egress Gateways with TLS Origination" task: the gateway side of the route goes
/// to port 443 and a DestinationRule originates TLS there (with the test CA, since the
/// stand-in's certificate is not publicly trusted, and the host as SNI).
fn tls_origination(gateway_port: u16, ca: &std::path::Path) -> String {
    format!(
        r#"{virtual_service}---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: originate-tls-for-edition-cnn-com
spec:
  host: edition.cnn.com
  trafficPolicy:
    loadBalancer:
      simple: ROUND_ROBIN
    portLevelSettings:
    - port:
        number: 443
      tls:
        mode: SIMPLE
        caCertificates: {ca}
        sni: edition.cnn.com
"#,
        ca = ca.display(),
        virtual_service = cnn_virtual_service(gateway_port, 443)
    )
}

/// The task's VirtualService: from the mesh to the egress gateway's `cnn` subset, and from
/// the gateway (listening on `gateway_port`) to the external host on `external_port`.
fn cnn_virtual_service(gateway_port: u16, external_port: u16) -> String {
    format!(
        r#"apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: direct-cnn-through-egress-gateway
spec:
  hosts:
  - edition.cnn.com
  gateways:
  - istio-egressgateway
  - mesh
  http:
  - match:
    - gateways:
      - mesh
      port: 80
    route:
    - destination:
        host: istio-egressgateway.istio-system.svc.cluster.local
        subset: cnn
        port:
          number: 80
      weight: 100
  - match:
    - gateways:
      - istio-egressgateway
      port: {gateway_port}
    route:
    - destination:
        host: edition.cnn.com
        port:
          number: {external_port}
      weight: 100
"#
    )
}

// Admin `/stats` filters (regexes, as Envoy takes them): requests a proxy sent to the
// external host's cluster, and to the egress gateway's `cnn` subset.
const TO_CNN: &str = r"cluster\.outbound\|80\|\|edition\.cnn\.com\.upstream_rq_total$";
const TO_CNN_TLS: &str = r"cluster\.outbound\|443\|\|edition\.cnn\.com\.upstream_rq_total$";
const TO_GATEWAY: &str = r"cluster\.outbound\|80\|cnn\|istio-egressgateway\.istio-system\.svc\.cluster\.local\.upstream_rq_total$";

fn egress_gateway_task(data_plane: &dyn DataPlane) {
    let cnn = EchoServer::start("edition-cnn", "v1").unwrap();
    let gateway_port = free_port();
    let mesh = UserMesh::start();
    let certs = Certs::new_ca(&mesh.control.scratch().join("certs")).unwrap();
    let server = certs.server("edition.cnn.com").unwrap();
    let cnn_tls = EchoServer::start_mode(
        "edition-cnn-tls",
        "v1",
        EchoMode::Tls {
            cert: server.cert.clone(),
            key: server.key.clone(),
        },
    )
    .unwrap();
    mesh.apply(&client_and_registered(free_port()));
    mesh.apply(&external_service(
        cnn.addr.port(),
        cnn_tls.addr.port(),
        gateway_port,
    ));
    let (sleep, port) = mesh.proxy(
        data_plane,
        "sleep",
        "default",
        ProxyType::Sidecar,
        &[("app", "sleep")],
    );
    let (gateway, _) = mesh.proxy(
        data_plane,
        "istio-egressgateway",
        "istio-system",
        ProxyType::Router,
        &[("istio", "egressgateway")],
    );
    let context = || {
        format!(
            "--- weftd\n{}\n--- sidecar ({})\n{}\n--- egress gateway\n{}",
            mesh.control.log(),
            data_plane.name(),
            sleep.log(),
            gateway.log()
        )
    };
    let politics = || curl(Some(port), "http://edition.cnn.com/politics", &[]);
    let from_cnn = |a: &Answer| match a.echo() {
        Some(e) if a.status == 200 && e["name"] == "edition-cnn" => Ok(e),
        _ => Err(format!("{} {}", a.status, a.body)),
    };

    // Directly: the sidecar sends the request to the external host's cluster.
    let seen = eventually(
        "edition.cnn.com directly",
        || from_cnn(&politics()),
        context,
    );
    assert_eq!(seen["path"], "/politics");
    assert_eq!(seen["host"], "edition.cnn.com");
    assert!(sleep.stat_sum(TO_CNN).unwrap() >= 1);
    assert_eq!(gateway.stat_sum(TO_CNN).unwrap(), 0);

    // Through the egress gateway: mesh -> gateway (subset cnn) -> edition.cnn.com.
    let out = mesh.apply(&through_egress_gateway(gateway_port));
    assert!(
        out.contains("/direct-cnn-through-egress-gateway created"),
        "{out}"
    );
    let seen = eventually(
        "edition.cnn.com through the egress gateway",
        || {
            let before = gateway.stat_sum(TO_CNN)?;
            let seen = from_cnn(&politics())?;
            let after = gateway.stat_sum(TO_CNN)?;
            if after > before {
                Ok(seen)
            } else {
                Err(format!("the gateway's {TO_CNN} stayed {after}"))
            }
        },
        context,
    );
    assert_eq!(seen["path"], "/politics");
    assert_eq!(seen["host"], "edition.cnn.com");
    // The sidecar's side of the hop: its cluster for the gateway's `cnn` subset.
    let direct_before = sleep.stat_sum(TO_CNN).unwrap();
    let via_before = sleep.stat_sum(TO_GATEWAY).unwrap();
    let a = politics();
    from_cnn(&a).unwrap();
    assert_eq!(sleep.stat_sum(TO_GATEWAY).unwrap(), via_before + 1);
    assert_eq!(sleep.stat_sum(TO_CNN).unwrap(), direct_before);

    // TLS origination at the gateway: the application still sends plain HTTP to port 80.
    mesh.apply(&tls_origination(gateway_port, &certs.ca));
    let seen = eventually(
        "edition.cnn.com over TLS originated by the egress gateway",
        || {
            let a = politics();
            match a.echo() {
                Some(e) if a.status == 200 && e["name"] == "edition-cnn-tls" => Ok(e),
                _ => Err(format!("{} {}", a.status, a.body)),
            }
        },
        context,
    );
    assert_eq!(seen["path"], "/politics");
    assert_eq!(seen["tls"]["sni"], "edition.cnn.com");
    assert!(gateway.stat_sum(TO_CNN_TLS).unwrap() >= 1);
    assert_eq!(sleep.stat_sum(TO_CNN_TLS).unwrap(), 0);
    assert_eq!(sleep.rejected_updates().unwrap(), 0, "{}", sleep.log());
    assert_eq!(gateway.rejected_updates().unwrap(), 0, "{}", gateway.log());
}

#[test]
fn envoy_egress_gateway_task() {
    if let Some(envoy) = envoy() {
        egress_gateway_task(&envoy);
    }
}

#[test]
fn weft_egress_gateway_task() {
    egress_gateway_task(&WeftDataPlane::new());
}
