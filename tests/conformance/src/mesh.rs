//! The shared mesh every scenario runs in: one weftd, a Bookinfo-shaped echo fleet, a client
//! sidecar (and a second one with other labels), a sidecar in front of `details`, an ingress
//! gateway, and unregistered TCP, HTTPS and egress echoes that scenarios declare themselves.

use crate::certs::Certs;
use crate::client::MeshClient;
use crate::control::{ControlPlane, ResourceKey};
use crate::dataplane::{BootstrapArgs, DataPlane, ProxyType, RunningProxy};
use crate::echo::{EchoMode, EchoServer};
use crate::Vars;
use reqwest::blocking::Client;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use weft_testkit::free_port;

/// Every service listens on this port, as Bookinfo's do.
pub const SERVICE_PORT: u16 = 9080;
/// How long the client sidecar may take to get its outbound listener from weftd.
const LISTENER_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a config change may take to reach the client sidecar.
const MARKER_TIMEOUT: Duration = Duration::from_secs(5);

/// One instance of the fleet: `name` is what the echo server reports.
struct Workload {
    service: &'static str,
    name: &'static str,
    version: &'static str,
    /// Behind its own sidecar, registered through a WorkloadGroup (auto-registration).
    sidecar: bool,
}

const fn w(service: &'static str, name: &'static str, version: &'static str) -> Workload {
    Workload {
        service,
        name,
        version,
        sidecar: false,
    }
}

/// Bookinfo's services, plus `stateful`: three equal instances for load balancing,
/// outlier detection and connection-pool scenarios.
const FLEET: &[Workload] = &[
    w("productpage", "productpage-v1", "v1"),
    Workload {
        sidecar: true,
        ..w("details", "details-v1", "v1")
    },
    w("ratings", "ratings-v1", "v1"),
    w("reviews", "reviews-v1", "v1"),
    w("reviews", "reviews-v2", "v2"),
    w("reviews", "reviews-v3", "v3"),
    w("stateful", "stateful-a", "v1"),
    w("stateful", "stateful-b", "v1"),
    w("stateful", "stateful-c", "v1"),
];

/// Echoes outside the fleet's config: scenarios reach them by `{{port:NAME}}` in their own
/// ServiceEntries. `Some(dns)`: HTTPS with a certificate for that name.
const EXTRAS: &[(&str, Extra)] = &[
    ("tcp-a", Extra::Tcp),
    ("tcp-b", Extra::Tcp),
    ("tls-a", Extra::Tls("a.example.com")),
    ("tls-b", Extra::Tls("b.example.com")),
    ("egress-http", Extra::Http),
    ("egress-https", Extra::Tls("egress.example.com")),
    ("grpc-v1", Extra::Http),
];

#[derive(Clone, Copy)]
enum Extra {
    Http,
    Tcp,
    Tls(&'static str),
}

/// Labels of the second client's WorkloadGroup, for `sourceLabels` scenarios.
pub const CANARY_LABELS: &[(&str, &str)] = &[("app", "sleep"), ("track", "canary")];

/// Everything running; dropped in reverse order of start.
pub struct Mesh {
    pub client: MeshClient,
    /// The client's sidecar, then the gateway, then server-side sidecars.
    pub sidecar: Option<Box<dyn RunningProxy>>,
    /// A second client sidecar whose workload carries [`CANARY_LABELS`].
    pub canary: Option<Box<dyn RunningProxy>>,
    pub gateway: Option<Box<dyn RunningProxy>>,
    pub servers: Vec<Box<dyn RunningProxy>>,
    pub echoes: Vec<EchoServer>,
    pub control: ControlPlane,
    pub gateway_port: u16,
    /// A second port scenarios may give a Gateway server (`{{gateway_port_2}}`).
    pub gateway_port_2: u16,
    pub outbound_port: u16,
    pub canary_port: u16,
    /// The suite's CA, when `openssl` could make one.
    pub certs: Option<Certs>,
    /// The config every scenario starts from, to restore what a scenario replaced.
    pub base: BTreeMap<ResourceKey, Value>,
    /// Whether the client sidecar got its outbound listener; if not, scenarios are not
    /// retried while waiting for config, to keep a broken run short.
    pub converged: bool,
    /// Why part of the mesh failed to start, for the report.
    pub problems: Vec<String>,
    pub http: Client,
    /// Bumped for every marker host name (see [`Mesh::marker`]).
    marker_generation: std::cell::Cell<u32>,
}

impl Mesh {
    /// Starts the whole mesh. Only weftd and the echo fleet are hard requirements; proxies
    /// that fail to start are reported and the scenarios needing them fail.
    pub fn start(dp: &dyn DataPlane) -> Result<Mesh, String> {
        let control = ControlPlane::start()?;
        let mut echoes = Vec::new();
        for wl in FLEET {
            echoes.push(EchoServer::start(wl.name, wl.version)?);
        }
        let outbound_port = free_port();
        let canary_port = free_port();
        let gateway_port = free_port();
        let gateway_port_2 = free_port();
        let mut problems = Vec::new();
        let certs = match Certs::new_ca(&control.scratch().join("certs")) {
            Ok(c) => Some(c),
            Err(e) => {
                problems.push(format!("no CA, TLS scenarios will fail: {e}"));
                None
            }
        };
        for (name, extra) in EXTRAS {
            let mode = match extra {
                Extra::Http => EchoMode::Http,
                Extra::Tcp => EchoMode::Tcp,
                Extra::Tls(dns) => match certs.as_ref().map(|c| c.server(dns)) {
                    Some(Ok(server)) => EchoMode::Tls {
                        cert: server.cert,
                        key: server.key,
                    },
                    Some(Err(e)) => {
                        problems.push(format!("{name}: {e}"));
                        continue;
                    }
                    None => continue,
                },
            };
            echoes.push(EchoServer::start_mode(name, "v1", mode)?);
        }
        let mut client = MeshClient::new(outbound_port, gateway_port)?.with_canary(canary_port)?;
        if let Some(certs) = &certs {
            let pem = std::fs::read(&certs.ca).map_err(|e| format!("read CA: {e}"))?;
            client = client.with_ca(&pem)?;
        }
        let mut inbound_ports = BTreeMap::new();
        let mut base = BTreeMap::new();
        for doc in fleet_config(&echoes, &mut inbound_ports)? {
            control.apply(&doc)?;
            base.insert(ResourceKey::of(&doc)?, doc);
        }
        let mut mesh = Mesh {
            client,
            sidecar: None,
            canary: None,
            gateway: None,
            servers: Vec::new(),
            echoes,
            control,
            gateway_port,
            gateway_port_2,
            outbound_port,
            canary_port,
            certs,
            base,
            converged: false,
            problems,
            http: Client::builder()
                .no_proxy()
                .build()
                .map_err(|e| e.to_string())?,
            marker_generation: std::cell::Cell::new(0),
        };
        for doc in crate::load_source(
            &crate::scenario::Source::Bookinfo("destination-rule-all.yaml"),
            gateway_port,
        )? {
            mesh.control.apply(&doc)?;
            mesh.base.insert(ResourceKey::of(&doc)?, doc);
        }
        let args = |group: &str, kind: ProxyType| BootstrapArgs {
            workload_group: group.to_owned(),
            namespace: "default".into(),
            proxy_type: kind,
            ip: "127.0.0.1".into(),
            app_ports: Vec::new(),
            outbound_port: free_port(),
            admin_port: free_port(),
            xds: mesh.control.xds_addr(),
            labels: Vec::new(),
            server: mesh.control.server(),
            data_dir: mesh.control.data_dir(),
            work_dir: mesh.control.scratch().join(group),
        };
        let client_args = BootstrapArgs {
            outbound_port,
            ..args("sleep", ProxyType::Sidecar)
        };
        match dp.start(&client_args) {
            Ok(p) => mesh.sidecar = Some(p),
            Err(e) => mesh.problems.push(format!("client sidecar: {e}")),
        }
        let canary_args = BootstrapArgs {
            outbound_port: canary_port,
            ..args("sleep-canary", ProxyType::Sidecar)
        };
        match dp.start(&canary_args) {
            Ok(p) => mesh.canary = Some(p),
            Err(e) => mesh.problems.push(format!("canary client sidecar: {e}")),
        }
        let gateway_args = BootstrapArgs {
            labels: vec![("istio".into(), "ingressgateway".into())],
            ..args("istio-ingressgateway", ProxyType::Router)
        };
        match dp.start(&gateway_args) {
            Ok(p) => mesh.gateway = Some(p),
            Err(e) => mesh.problems.push(format!("gateway: {e}")),
        }
        for (wl, echo) in FLEET.iter().zip(&mesh.echoes) {
            if !wl.sidecar {
                continue;
            }
            let server_args = BootstrapArgs {
                app_ports: vec![("http".into(), echo.addr.port())],
                ..args(wl.name, ProxyType::Sidecar)
            };
            match dp.start(&server_args) {
                Ok(p) => mesh.servers.push(p),
                Err(e) => mesh.problems.push(format!("{} sidecar: {e}", wl.name)),
            }
        }
        mesh.converged = mesh.wait_outbound_listener();
        if !mesh.converged {
            mesh.problems.push(format!(
                "the client sidecar has no listener on 127.0.0.1:{outbound_port} after {LISTENER_TIMEOUT:?}"
            ));
        }
        Ok(mesh)
    }

    fn wait_outbound_listener(&self) -> bool {
        let Some(sidecar) = &self.sidecar else {
            return false;
        };
        let deadline = Instant::now() + LISTENER_TIMEOUT;
        while Instant::now() < deadline {
            if sidecar.listening(self.outbound_port) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    }

    /// Every running proxy with a label for reports.
    pub fn proxies(&self) -> Vec<(&'static str, &dyn RunningProxy)> {
        let mut all: Vec<(&'static str, &dyn RunningProxy)> = Vec::new();
        if let Some(p) = &self.sidecar {
            all.push(("client sidecar", p.as_ref()));
        }
        if let Some(p) = &self.canary {
            all.push(("canary client sidecar", p.as_ref()));
        }
        if let Some(p) = &self.gateway {
            all.push(("gateway", p.as_ref()));
        }
        for p in &self.servers {
            all.push(("details sidecar", p.as_ref()));
        }
        all
    }

    /// Moves the marker service to a new host name and waits until the client sidecar
    /// routes that name: then the sidecar has every change applied before it, since weftd
    /// translates whole snapshots. False if the marker did not answer in time.
    pub fn marker(&self) -> bool {
        let generation = self.marker_generation.get() + 1;
        self.marker_generation.set(generation);
        let host = format!("marker-{generation}.conformance.test");
        let Some(echo) = self.echoes.first() else {
            return false;
        };
        let doc = json!({
            "apiVersion": "networking.istio.io/v1", "kind": "ServiceEntry",
            "metadata": {"name": "conformance-marker", "namespace": "default"},
            "spec": {
                "hosts": [host],
                "location": "MESH_INTERNAL",
                "ports": [{"number": SERVICE_PORT, "name": "http", "protocol": "HTTP"}],
                "resolution": "STATIC",
                "endpoints": [{"address": "127.0.0.1", "ports": {"http": echo.addr.port()}}],
            },
        });
        if self.control.apply(&doc).is_err() {
            return false;
        }
        let probe = crate::client::Request {
            via: crate::client::Via::Sidecar,
            method: "GET".into(),
            url: format!("http://{host}:{SERVICE_PORT}/"),
            headers: Vec::new(),
            body: None,
            source: None,
        };
        let deadline = Instant::now() + MARKER_TIMEOUT;
        while Instant::now() < deadline {
            if self.client.send(&probe).is_ok_and(|r| r.status == 200) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        false
    }

    /// Placeholder values for scenario YAML and requests (see [`Vars`]).
    pub fn vars(&self) -> Vars {
        let mut values = BTreeMap::new();
        for echo in &self.echoes {
            values.insert(format!("port:{}", echo.name), echo.addr.port().to_string());
        }
        values.insert("gateway_port".into(), self.gateway_port.to_string());
        values.insert("gateway_port_2".into(), self.gateway_port_2.to_string());
        if let Some(certs) = &self.certs {
            values.insert("ca".into(), certs.ca.display().to_string());
        }
        Vars {
            values,
            fixed_ports: vec![self.gateway_port_2],
        }
    }

    /// Requests seen so far by every instance whose name starts with `prefix`.
    pub fn served(&self, prefix: &str) -> Result<u64, String> {
        let mut total = 0;
        for echo in self.echoes.iter().filter(|e| e.name.starts_with(prefix)) {
            total += echo.count(&self.http)?;
        }
        Ok(total)
    }
}

/// ServiceEntries, WorkloadEntries and WorkloadGroups describing the fleet, generated from
/// where the echo servers really listen. Fills `inbound` with each sidecar's inbound port.
fn fleet_config(
    echoes: &[EchoServer],
    inbound: &mut BTreeMap<&'static str, u16>,
) -> Result<Vec<Value>, String> {
    let mut docs = Vec::new();
    let mut services: Vec<&str> = FLEET.iter().map(|w| w.service).collect();
    services.dedup();
    for svc in services {
        docs.push(json!({
            "apiVersion": "networking.istio.io/v1", "kind": "ServiceEntry",
            "metadata": {"name": svc, "namespace": "default"},
            "spec": {
                "hosts": [format!("{svc}.default.svc.cluster.local")],
                "location": "MESH_INTERNAL",
                "ports": [{"number": SERVICE_PORT, "name": "http", "protocol": "HTTP"}],
                "resolution": "STATIC",
                "workloadSelector": {"labels": {"app": svc}},
            },
        }));
    }
    for (wl, echo) in FLEET.iter().zip(echoes) {
        let labels = json!({"app": wl.service, "version": wl.version});
        let account = format!("bookinfo-{}", wl.service);
        if wl.sidecar {
            // The sidecar's inbound listener binds this port and forwards to the echo server.
            let port = free_port();
            inbound.insert(wl.name, port);
            docs.push(json!({
                "apiVersion": "networking.istio.io/v1", "kind": "WorkloadGroup",
                "metadata": {"name": wl.name, "namespace": "default"},
                "spec": {
                    "metadata": {"labels": labels},
                    "template": {"ports": {"http": port}, "serviceAccount": account},
                },
            }));
        } else {
            docs.push(json!({
                "apiVersion": "networking.istio.io/v1", "kind": "WorkloadEntry",
                "metadata": {"name": wl.name, "namespace": "default"},
                "spec": {
                    "address": "127.0.0.1",
                    "ports": {"http": echo.addr.port()},
                    "labels": labels,
                    "serviceAccount": account,
                },
            }));
        }
    }
    let canary: serde_json::Map<String, Value> = CANARY_LABELS
        .iter()
        .map(|(k, v)| ((*k).to_owned(), Value::from(*v)))
        .collect();
    for (group, labels) in [
        ("sleep", json!({"app": "sleep"})),
        ("sleep-canary", Value::Object(canary)),
        ("istio-ingressgateway", json!({"istio": "ingressgateway"})),
    ] {
        docs.push(json!({
            "apiVersion": "networking.istio.io/v1", "kind": "WorkloadGroup",
            "metadata": {"name": group, "namespace": "default"},
            "spec": {"metadata": {"labels": labels}, "template": {"serviceAccount": group}},
        }));
    }
    Ok(docs)
}
