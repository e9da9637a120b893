//! Egress: an external service (MESH_EXTERNAL, DNS) reached through the client sidecar, in
//! plain HTTP and with TLS originated by the sidecar (DestinationRule `tls.mode: SIMPLE`).

use crate::scenario::{get, Scenario};

pub fn scenarios() -> Vec<Scenario> {
    vec![
        Scenario::new("egress: MESH_EXTERNAL ServiceEntry with DNS resolution")
            .yaml(EXTERNAL)
            .check(
                get("http://localhost:{{port:egress-http}}/out")
                    .status(200)
                    .served_by("egress-http")
                    .upstream_path("/out")
                    .stat_increase(
                        r"outbound\|{{port:egress-http}}\|\|localhost\.upstream_rq_total",
                        1,
                    ),
            ),
        Scenario::new("egress: TLS origination with caCertificates and sni")
            .yaml(ORIGINATION)
            .check(
                get("http://secure.example.com/secure")
                    .status(200)
                    .served_by("egress-https")
                    .upstream_path("/secure")
                    .upstream_field("/tls/sni", "egress.example.com"),
            ),
    ]
}

const EXTERNAL: &str = "
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: egress}
spec:
  hosts: [localhost]
  location: MESH_EXTERNAL
  ports: [{number: {{port:egress-http}}, name: http, protocol: HTTP}]
  resolution: DNS
";

/// A DestinationRule's dotless host is a short name in its namespace (as in Istio), so it
/// cannot name `localhost`: the service is `secure.example.com`, its endpoint is resolved
/// `localhost`, and the certificate names the `sni`, not the host.
const ORIGINATION: &str = "
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: egress}
spec:
  hosts: [secure.example.com]
  location: MESH_EXTERNAL
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: DNS
  endpoints: [{address: localhost, ports: {http: {{port:egress-https}}}}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: egress}
spec:
  host: secure.example.com
  trafficPolicy:
    tls:
      mode: SIMPLE
      caCertificates: {{ca}}
      sni: egress.example.com
";
