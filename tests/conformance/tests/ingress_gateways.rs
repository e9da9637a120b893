//! Ingress on both data planes (real Envoy and weft-proxy), configured only by weftd from
//! Istio YAML: several Gateways sharing one port, each host served by the VirtualService
//! bound to its own Gateway; a host whose VirtualService is bound to a Gateway that does
//! not list it gets 404; a server with `tls.httpsRedirect: true` answers 301 to the same
//! host and path over https, as Envoy's `require_tls` does.
//!
//! Run: `cargo build --workspace --bins && cargo test -p weft-conformance --test ingress_gateways`.

use weft_conformance::dataplane::{DataPlane, EnvoyDataPlane, ProxyType, WeftDataPlane};
use weft_conformance::echo::EchoServer;
use weft_conformance::mesh_user::{curl, eventually, Answer, UserMesh};
use weft_testkit::free_port;

fn config(port: u16, bookinfo: u16, httpbin: u16) -> String {
    format!(
        r#"apiVersion: networking.istio.io/v1
kind: WorkloadGroup
metadata: {{name: istio-ingressgateway, namespace: istio-system}}
spec:
  metadata: {{labels: {{istio: ingressgateway}}}}
  template: {{serviceAccount: istio-ingressgateway}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: productpage}}
spec:
  hosts: [productpage.default.svc.cluster.local]
  location: MESH_INTERNAL
  ports: [{{number: 9080, name: http, protocol: HTTP}}]
  resolution: STATIC
  endpoints: [{{address: 127.0.0.1, ports: {{http: {bookinfo}}}}}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: httpbin}}
spec:
  hosts: [httpbin.default.svc.cluster.local]
  location: MESH_INTERNAL
  ports: [{{number: 8000, name: http, protocol: HTTP}}]
  resolution: STATIC
  endpoints: [{{address: 127.0.0.1, ports: {{http: {httpbin}}}}}]
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata:
  name: bookinfo-gateway
spec:
  selector:
    istio: ingressgateway
  servers:
  - port:
      number: {port}
      name: http
      protocol: HTTP
    hosts:
    - "bookinfo.example.com"
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata:
  name: httpbin-gateway
spec:
  selector:
    istio: ingressgateway
  servers:
  - port:
      number: {port}
      name: http
      protocol: HTTP
    hosts:
    - "httpbin.example.com"
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata:
  name: secure-gateway
spec:
  selector:
    istio: ingressgateway
  servers:
  - port:
      number: {port}
      name: http
      protocol: HTTP
    hosts:
    - "secure.example.com"
    tls:
      httpsRedirect: true
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: bookinfo
spec:
  hosts:
  - "bookinfo.example.com"
  gateways:
  - bookinfo-gateway
  http:
  - route:
    - destination:
        host: productpage
        port:
          number: 9080
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: httpbin
spec:
  hosts:
  - "httpbin.example.com"
  gateways:
  - httpbin-gateway
  http:
  - match:
    - uri:
        prefix: /status
    route:
    - destination:
        host: httpbin
        port:
          number: 8000
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews-on-the-wrong-gateway
spec:
  hosts:
  - "reviews.example.com"
  gateways:
  - httpbin-gateway
  http:
  - route:
    - destination:
        host: httpbin
        port:
          number: 8000
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: secure
spec:
  hosts:
  - "secure.example.com"
  gateways:
  - secure-gateway
  http:
  - route:
    - destination:
        host: productpage
        port:
          number: 9080
"#
    )
}

/// `curl http://<host>:<port><path>`, the host resolved to 127.0.0.1.
fn get(host: &str, port: u16, path: &str) -> Answer {
    curl(
        None,
        &format!("http://{host}:{port}{path}"),
        &[format!("{host}:{port}:127.0.0.1")],
    )
}

fn served_by(a: &Answer, name: &str) -> Result<serde_json::Value, String> {
    match a.echo() {
        Some(e) if a.status == 200 && e["name"] == name => Ok(e),
        _ => Err(format!("{} {}", a.status, a.body)),
    }
}

fn gateways_share_a_port(data_plane: &dyn DataPlane) {
    let bookinfo = EchoServer::start("productpage", "v1").unwrap();
    let httpbin = EchoServer::start("httpbin", "v1").unwrap();
    let port = free_port();
    let mesh = UserMesh::start();
    let out = mesh.apply(&config(port, bookinfo.addr.port(), httpbin.addr.port()));
    for created in [
        "gateway.networking.istio.io/bookinfo-gateway created",
        "gateway.networking.istio.io/httpbin-gateway created",
        "gateway.networking.istio.io/secure-gateway created",
    ] {
        assert!(out.contains(created), "{out}");
    }
    let (gateway, _) = mesh.proxy(
        data_plane,
        "istio-ingressgateway",
        "istio-system",
        ProxyType::Router,
        &[("istio", "ingressgateway")],
    );
    let context = || {
        format!(
            "--- weftd\n{}\n--- {}\n{}",
            mesh.control.log(),
            data_plane.name(),
            gateway.log()
        )
    };

    // Each host through its own Gateway and VirtualService, on one port.
    let seen = eventually(
        "bookinfo.example.com",
        || {
            served_by(
                &get("bookinfo.example.com", port, "/productpage"),
                "productpage",
            )
        },
        context,
    );
    assert_eq!(seen["path"], "/productpage");
    let seen = served_by(&get("httpbin.example.com", port, "/status/200"), "httpbin")
        .map_err(|e| format!("{e}\n{}", context()))
        .unwrap();
    assert_eq!(seen["host"], format!("httpbin.example.com:{port}"));
    // A path the host's VirtualService does not route: 404 from the gateway.
    assert_eq!(get("httpbin.example.com", port, "/headers").status, 404);
    // A VirtualService bound to a Gateway whose servers do not list its host serves nothing.
    let wrong = get("reviews.example.com", port, "/");
    assert_eq!(wrong.status, 404, "{wrong:?}");
    assert!(wrong.echo().is_none());
    // A host no Gateway lists.
    assert_eq!(get("unknown.example.com", port, "/").status, 404);

    // httpsRedirect: 301 to the same host and path over https, nothing forwarded.
    let http = reqwest::blocking::Client::builder()
        .no_proxy()
        .build()
        .unwrap();
    let before = bookinfo.count(&http).unwrap();
    let redirect = get("secure.example.com", port, "/login?next=%2Fproductpage");
    assert_eq!(redirect.status, 301, "{redirect:?}\n{}", context());
    assert_eq!(
        redirect.header("location").as_deref(),
        Some(format!("https://secure.example.com:{port}/login?next=%2Fproductpage").as_str())
    );
    assert_eq!(bookinfo.count(&http).unwrap(), before);
    assert_eq!(gateway.rejected_updates().unwrap(), 0, "{}", gateway.log());
}

#[test]
fn envoy_gateways_share_a_port_by_host_and_redirect_to_https() {
    if let Ok(envoy) = EnvoyDataPlane::find() {
        gateways_share_a_port(&envoy);
    }
}

#[test]
fn weft_gateways_share_a_port_by_host_and_redirect_to_https() {
    gateways_share_a_port(&WeftDataPlane::new());
}
