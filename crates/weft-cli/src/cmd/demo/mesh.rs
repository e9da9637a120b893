//! What the demo runs and applies: Bookinfo's workloads, their ports, and the Istio config for them.
//!
//! The config is the equivalent of Istio's `bookinfo.yaml` (a ServiceEntry per Service, a
//! WorkloadGroup per Deployment, since there is no Kubernetes here), `bookinfo-gateway.yaml`
//! and `destination-rule-all.yaml`. As in Istio's default install, every workload runs
//! under its own service account and is labelled `security.istio.io/tlsMode: istio`, so
//! auto mTLS makes sidecar-to-sidecar traffic mutual TLS; the gateway runs in
//! `istio-system` under Istio's gateway service account.

use serde_json::{json, Value};

/// Namespace of everything, as in Istio's samples.
pub const NAMESPACE: &str = "default";
/// Port every Bookinfo service listens on in the mesh.
pub const SERVICE_PORT: u16 = 9080;
/// Ports each workload takes from the block, see [`Ports`].
const SLOT: u16 = 10;

/// One Bookinfo deployment: service, version, and the `bookinfo` arguments that run it.
#[derive(Clone, Copy, Debug)]
pub struct Workload {
    pub service: &'static str,
    pub version: &'static str,
}

impl Workload {
    /// `reviews-v2`: the WorkloadGroup's name, and the proxy's in the node id.
    pub fn name(&self) -> String {
        format!("{}-{}", self.service, self.version)
    }

    /// The Kubernetes service account Istio's bookinfo.yaml gives the deployment.
    pub fn service_account(&self) -> String {
        format!("bookinfo-{}", self.service)
    }

    /// The `bookinfo` subcommand and flags for this workload.
    pub fn app_args(&self) -> Vec<String> {
        let mut args = vec![self.service.to_string()];
        if self.service == "reviews" {
            args.extend(["--version".to_string(), self.version.to_string()]);
        }
        args
    }
}

/// Bookinfo's deployments, in start order (the ones called last start first).
pub const WORKLOADS: &[Workload] = &[
    Workload {
        service: "ratings",
        version: "v1",
    },
    Workload {
        service: "details",
        version: "v1",
    },
    Workload {
        service: "reviews",
        version: "v1",
    },
    Workload {
        service: "reviews",
        version: "v2",
    },
    Workload {
        service: "reviews",
        version: "v3",
    },
    Workload {
        service: "productpage",
        version: "v1",
    },
];

/// The gateway's WorkloadGroup, selected by `istio: ingressgateway`.
pub const GATEWAY_GROUP: &str = "istio-ingressgateway";
/// Where Istio installs its gateways.
pub const GATEWAY_NAMESPACE: &str = "istio-system";
/// The ingress gateway's service account in Istio's default install.
pub const GATEWAY_SERVICE_ACCOUNT: &str = "istio-ingressgateway-service-account";
/// The label Istio's injector puts on every pod with a sidecar; it tells client sidecars
/// (auto mTLS) that the workload accepts mesh mutual TLS.
pub const TLS_MODE_LABEL: &str = "security.istio.io/tlsMode";

/// Where each workload listens, from a block of ports starting at `base`: workload `i`
/// (in [`WORKLOADS`] order) takes `base + 10*i` (its sidecar's inbound listener, the port
/// other sidecars reach it on), `+1` (the app itself), `+2` (its sidecar's outbound HTTP
/// proxy), `+3` (its sidecar's admin), `+4` (weft-proxy's `/stats/prometheus`, Istio's
/// 15090). The gateway's stats are `base + 10*6`, its admin `base + 10*6 + 3`.
#[derive(Clone, Copy, Debug)]
pub struct Ports {
    pub base: u16,
}

impl Ports {
    fn at(&self, slot: usize, offset: u16) -> u16 {
        self.base + SLOT * slot as u16 + offset
    }
    pub fn inbound(&self, i: usize) -> u16 {
        self.at(i, 0)
    }
    pub fn app(&self, i: usize) -> u16 {
        self.at(i, 1)
    }
    pub fn outbound(&self, i: usize) -> u16 {
        self.at(i, 2)
    }
    pub fn admin(&self, i: usize) -> u16 {
        self.at(i, 3)
    }
    pub fn stats(&self, i: usize) -> u16 {
        self.at(i, 4)
    }
    pub fn gateway_admin(&self) -> u16 {
        self.at(WORKLOADS.len(), 3)
    }
    /// A gateway has no inbound listener, so its stats take that slot.
    pub fn gateway_stats(&self) -> u16 {
        self.at(WORKLOADS.len(), 0)
    }
    /// The last port of the block, to check it fits below 65536.
    pub fn span() -> u16 {
        SLOT * WORKLOADS.len() as u16 + 3
    }

    /// Every port the demo binds in the block, with what it is for (for a clear error).
    pub fn all(&self) -> Vec<(u16, String)> {
        let mut out = Vec::new();
        for (i, w) in WORKLOADS.iter().enumerate() {
            let n = w.name();
            out.push((self.inbound(i), format!("{n} sidecar inbound")));
            out.push((self.app(i), format!("{n} app")));
            out.push((self.outbound(i), format!("{n} sidecar outbound")));
            out.push((self.admin(i), format!("{n} sidecar admin")));
            out.push((self.stats(i), format!("{n} sidecar stats")));
        }
        out.push((self.gateway_stats(), "gateway stats".into()));
        out.push((self.gateway_admin(), "gateway admin".into()));
        out
    }
}

/// Name of the Secret holding the gateway's HTTPS certificate (`credentialName`).
pub const CREDENTIAL: &str = "bookinfo-credential";

/// The gateway's HTTPS server: its port and the PEM certificate and key it serves.
pub struct Https<'a> {
    pub port: u16,
    pub cert_pem: &'a str,
    pub key_pem: &'a str,
}

/// The config files the demo applies, by file name.
pub fn config_files(
    ports: Ports,
    gateway_port: u16,
    https: &Https,
) -> Vec<(&'static str, Vec<Value>)> {
    vec![
        ("bookinfo.yaml", bookinfo(ports)),
        ("bookinfo-gateway.yaml", gateway(gateway_port, https)),
        ("destination-rule-all.yaml", destination_rules()),
    ]
}

/// File (in the demo's config dir) with the gateway's certificate, for `curl --cacert`.
pub const GATEWAY_CERT: &str = "gateway-cert.pem";

/// A self-signed certificate (PEM certificate, PEM key) for the names a browser or curl
/// on this machine uses: localhost, 127.0.0.1, and Istio's docs' bookinfo.com.
pub fn gateway_certificate() -> Result<(String, String), rcgen::Error> {
    let names = ["localhost", "127.0.0.1", "bookinfo.com"].map(String::from);
    let made = rcgen::generate_simple_self_signed(names.to_vec())?;
    Ok((made.cert.pem(), made.signing_key.serialize_pem()))
}

/// A `kubernetes.io/tls` Secret, as `kubectl create secret tls` makes it.
fn tls_secret(https: &Https) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": meta(CREDENTIAL),
        "type": "kubernetes.io/tls",
        "stringData": {"tls.crt": https.cert_pem, "tls.key": https.key_pem},
    })
}

fn meta(name: &str) -> Value {
    json!({"name": name, "namespace": NAMESPACE})
}

/// Services and workloads: Istio's bookinfo.yaml without Kubernetes.
fn bookinfo(ports: Ports) -> Vec<Value> {
    let mut docs = Vec::new();
    for service in ["details", "ratings", "reviews", "productpage"] {
        docs.push(json!({
            "apiVersion": "networking.istio.io/v1", "kind": "ServiceEntry",
            "metadata": {"name": service, "namespace": NAMESPACE,
                         "labels": {"app": service, "service": service}},
            "spec": {
                "hosts": [format!("{service}.{NAMESPACE}.svc.cluster.local")],
                "location": "MESH_INTERNAL",
                "ports": [{"number": SERVICE_PORT, "name": "http", "protocol": "HTTP"}],
                "resolution": "STATIC",
                "workloadSelector": {"labels": {"app": service}},
            },
        }));
    }
    for (i, w) in WORKLOADS.iter().enumerate() {
        docs.push(json!({
            "apiVersion": "networking.istio.io/v1", "kind": "WorkloadGroup",
            "metadata": meta(&w.name()),
            "spec": {
                "metadata": {"labels": {"app": w.service, "version": w.version,
                                        TLS_MODE_LABEL: "istio"}},
                "template": {
                    "serviceAccount": w.service_account(),
                    "ports": {"http": ports.inbound(i)},
                },
            },
        }));
    }
    docs.push(json!({
        "apiVersion": "networking.istio.io/v1", "kind": "WorkloadGroup",
        "metadata": {"name": GATEWAY_GROUP, "namespace": GATEWAY_NAMESPACE},
        "spec": {
            "metadata": {"labels": {"istio": "ingressgateway", "app": GATEWAY_GROUP}},
            "template": {"serviceAccount": GATEWAY_SERVICE_ACCOUNT},
        },
    }));
    docs
}

/// Istio's bookinfo-gateway.yaml, its server on the demo's gateway port, plus an HTTPS
/// server (SIMPLE TLS, the certificate from a Secret) as in Istio's secure gateway task.
fn gateway(port: u16, https: &Https) -> Vec<Value> {
    let prefix = |p: &str| json!({"uri": {"prefix": p}});
    let exact = |p: &str| json!({"uri": {"exact": p}});
    vec![
        tls_secret(https),
        json!({
            "apiVersion": "networking.istio.io/v1", "kind": "Gateway",
            "metadata": meta("bookinfo-gateway"),
            "spec": {
                "selector": {"istio": "ingressgateway"},
                "servers": [
                    {"port": {"number": port, "name": "http", "protocol": "HTTP"},
                     "hosts": ["*"]},
                    {"port": {"number": https.port, "name": "https", "protocol": "HTTPS"},
                     "hosts": ["*"],
                     "tls": {"mode": "SIMPLE", "credentialName": CREDENTIAL}},
                ],
            },
        }),
        json!({
            "apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
            "metadata": meta("bookinfo"),
            "spec": {
                "hosts": ["*"],
                "gateways": ["bookinfo-gateway"],
                "http": [{
                    "match": [exact("/productpage"), prefix("/static"), exact("/login"),
                              exact("/logout"), prefix("/api/v1/products")],
                    "route": [{"destination": {"host": "productpage",
                                               "port": {"number": SERVICE_PORT}}}],
                }],
            },
        }),
    ]
}

/// Istio's destination-rule-all.yaml: a subset per version label.
fn destination_rules() -> Vec<Value> {
    let rule = |host: &str, versions: &[&str]| {
        let subsets: Vec<Value> = versions
            .iter()
            .map(|v| json!({"name": v, "labels": {"version": v}}))
            .collect();
        json!({
            "apiVersion": "networking.istio.io/v1", "kind": "DestinationRule",
            "metadata": meta(host),
            "spec": {"host": host, "subsets": subsets},
        })
    };
    vec![
        rule("productpage", &["v1"]),
        rule("reviews", &["v1", "v2", "v3"]),
        rule("ratings", &["v1", "v2", "v2-mysql", "v2-mysql-vm"]),
        rule("details", &["v1", "v2"]),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn port_block_has_no_overlap_and_fits_its_span() {
        let ports = Ports { base: 19100 };
        let all = ports.all();
        let distinct: BTreeSet<u16> = all.iter().map(|(p, _)| *p).collect();
        assert_eq!(distinct.len(), all.len());
        assert_eq!(*distinct.first().unwrap(), 19100);
        assert_eq!(*distinct.last().unwrap(), 19100 + Ports::span());
    }

    #[test]
    fn workloads_take_mesh_mtls_under_their_own_accounts_and_the_gateway_istios() {
        let groups: Vec<Value> = bookinfo(Ports { base: 19100 })
            .into_iter()
            .filter(|d| d["kind"] == "WorkloadGroup")
            .collect();
        assert_eq!(groups.len(), WORKLOADS.len() + 1);
        for w in WORKLOADS {
            let g = groups
                .iter()
                .find(|g| g["metadata"]["name"] == w.name().as_str())
                .unwrap();
            assert_eq!(g["spec"]["metadata"]["labels"][TLS_MODE_LABEL], "istio");
            assert_eq!(
                g["spec"]["template"]["serviceAccount"],
                format!("bookinfo-{}", w.service).as_str()
            );
        }
        let gw = groups
            .iter()
            .find(|g| g["metadata"]["name"] == GATEWAY_GROUP)
            .unwrap();
        assert_eq!(gw["metadata"]["namespace"], "istio-system");
        assert_eq!(
            gw["spec"]["template"]["serviceAccount"],
            "istio-ingressgateway-service-account"
        );
    }

    #[test]
    fn every_document_is_valid_istio_config() {
        let (cert_pem, key_pem) = gateway_certificate().unwrap();
        assert!(cert_pem.starts_with("-----BEGIN CERTIFICATE-----"));
        let https = Https {
            port: 8443,
            cert_pem: &cert_pem,
            key_pem: &key_pem,
        };
        for (file, docs) in config_files(Ports { base: 19100 }, 8080, &https) {
            for doc in docs {
                match weft_config::parse::validate_value(0, doc.clone()) {
                    Ok((_, warnings)) => {
                        assert!(warnings.is_empty(), "{file}: {doc}: {warnings:?}")
                    }
                    Err(e) => panic!("{file}: {doc}: {e}"),
                }
            }
        }
    }
}
