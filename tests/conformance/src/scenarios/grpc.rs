//! gRPC: HTTP/2 from the application (h2c to the explicit sidecar) to a GRPC service port,
//! and faults answered the gRPC way.

use crate::client::Via;
use crate::scenario::{req, Check, Scenario};

/// A unary call with an empty message: a gRPC frame header (uncompressed, length 0).
fn grpc_call() -> Check {
    req("POST", "http://grpc-echo/echo.Echo/Say")
        .via(Via::SidecarH2c)
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body("\0\0\0\0\0")
}

pub fn scenarios() -> Vec<Scenario> {
    vec![
        Scenario::new("gRPC: h2c through the sidecar to a GRPC port stays HTTP/2")
            .yaml(GRPC_SERVICE)
            .check(
                grpc_call()
                    .status(200)
                    .served_by("grpc-v1")
                    .upstream_field("/protocol", "HTTP/2")
                    .upstream_field("/method", "POST")
                    .upstream_field("/path", "/echo.Echo/Say")
                    .upstream_field("/headers/content-type", "application/grpc"),
            ),
        Scenario::new("gRPC: fault abort with grpcStatus over h2c")
            .yaml(GRPC_SERVICE)
            .yaml(GRPC_ABORT)
            .check(
                grpc_call()
                    .status(200)
                    .response_header("grpc-status", Some("14"))
                    .served_delta("grpc-v1", 0, 0),
            ),
    ]
}

/// Port 80: the authority is then the bare `grpc-echo`, which an h2c client can send while
/// connecting to the sidecar's port (a URL's port would be both the authority's and the
/// connection's).
const GRPC_SERVICE: &str = "
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: grpc-echo}
spec:
  hosts: [grpc-echo.default.svc.cluster.local]
  location: MESH_INTERNAL
  ports: [{number: 80, name: grpc, protocol: GRPC}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1, ports: {grpc: {{port:grpc-v1}}}}]
";

const GRPC_ABORT: &str = "
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: grpc-echo}
spec:
  hosts: [grpc-echo]
  http:
  - fault: {abort: {grpcStatus: UNAVAILABLE, percentage: {value: 100}}}
    route: [{destination: {host: grpc-echo, port: {number: 80}}}]
";
