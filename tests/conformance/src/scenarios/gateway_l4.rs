//! Gateways below HTTP: TCP servers routed by port and TLS passed through by SNI, to
//! backends that are not in the mesh's base config.

use crate::client::Via;
use crate::scenario::{get, Scenario};

pub fn scenarios() -> Vec<Scenario> {
    vec![
        Scenario::new("gateway: TCP servers routed by port")
            .yaml(TCP)
            .check(
                get("tcp://gateway:{{gateway_port}}/hello")
                    .via(Via::Tcp)
                    .served_by("tcp-a")
                    .body_contains("tcp-a: hello"),
            )
            .check(
                get("tcp://gateway:{{gateway_port_2}}/again")
                    .via(Via::Tcp)
                    .served_by("tcp-b")
                    .body_contains("tcp-b: again"),
            ),
        Scenario::new("gateway: TLS PASSTHROUGH routed by SNI")
            .yaml(PASSTHROUGH)
            .check(
                get("https://a.example.com/a")
                    .via(Via::GatewayTls)
                    .status(200)
                    .served_by("tls-a")
                    .upstream_field("/tls/sni", "a.example.com")
                    .upstream_path("/a"),
            )
            .check(
                get("https://b.example.com/b")
                    .via(Via::GatewayTls)
                    .status(200)
                    .served_by("tls-b")
                    .upstream_field("/tls/sni", "b.example.com"),
            ),
    ]
}

const TCP: &str = "
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
kind: ServiceEntry
metadata: {name: tcp-b}
spec:
  hosts: [tcp-b.default.svc.cluster.local]
  location: MESH_INTERNAL
  ports: [{number: 9000, name: tcp, protocol: TCP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1, ports: {tcp: {{port:tcp-b}}}}]
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
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: tcp}
spec:
  hosts: ['*']
  gateways: [tcp]
  tcp:
  - match: [{port: {{gateway_port}}}]
    route: [{destination: {host: tcp-a.default.svc.cluster.local, port: {number: 9000}}}]
  - match: [{port: {{gateway_port_2}}}]
    route: [{destination: {host: tcp-b.default.svc.cluster.local, port: {number: 9000}}}]
";

const PASSTHROUGH: &str = "
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: tls-a}
spec:
  hosts: [tls-a.default.svc.cluster.local]
  location: MESH_INTERNAL
  ports: [{number: 9443, name: tls, protocol: TLS}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1, ports: {tls: {{port:tls-a}}}}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: tls-b}
spec:
  hosts: [tls-b.default.svc.cluster.local]
  location: MESH_INTERNAL
  ports: [{number: 9443, name: tls, protocol: TLS}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1, ports: {tls: {{port:tls-b}}}}]
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: passthrough}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 443, name: tls, protocol: TLS}
    tls: {mode: PASSTHROUGH}
    hosts: [a.example.com, b.example.com]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: passthrough}
spec:
  hosts: [a.example.com, b.example.com]
  gateways: [passthrough]
  tls:
  - match: [{sniHosts: [a.example.com]}]
    route: [{destination: {host: tls-a.default.svc.cluster.local, port: {number: 9443}}}]
  - match: [{sniHosts: [b.example.com]}]
    route: [{destination: {host: tls-b.default.svc.cluster.local, port: {number: 9443}}}]
";
