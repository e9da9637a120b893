//! The shared mesh every scenario runs in: one weftd, a Bookinfo-shaped echo fleet, a client
//! sidecar (and a second one with other labels), a sidecar in front of `details`, an ingress
//! gateway, and unregistered TCP, HTTPS and egress echoes that scenarios declare themselves.
//! Every proxy has a workload identity (its WorkloadGroup's service account, proven with a
//! bootstrap token from weftd), and `details` is labelled for mesh mTLS, so the sidecars
//! talk mutual TLS to it (auto mTLS) under the default PERMISSIVE mode.

use crate::certs::Certs;
use crate::client::MeshClient;
use crate::control::{ControlPlane, ResourceKey};
use crate::dataplane::{BootstrapArgs, DataPlane, Identity, ProxyType, RunningProxy};
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

/// WorkloadGroups of the clients and the gateway; each is its own service account too,
/// so a policy tells them apart by principal
/// (`cluster.local/ns/default/sa/sleep-canary`).
pub const CLIENT_GROUPS: [&str; 3] = ["sleep", "sleep-canary", "istio-ingressgateway"];

/// The label of workloads whose sidecar takes mesh mTLS (Istio's auto mTLS looks at it).
const TLS_MODE: (&str, &str) = ("security.istio.io/tlsMode", "istio");

/// The service account of a fleet service's instances, as Bookinfo names them.
fn account(service: &str) -> String {
    format!("bookinfo-{service}")
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
    /// Inbound port of each server-side sidecar, by instance name (`details-v1`):
    /// `{{inbound:details-v1}}`, where a plaintext caller outside the mesh knocks.
    pub inbound_ports: BTreeMap<&'static str, u16>,
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
        let gateway_port = late_bound_port();
        let gateway_port_2 = late_bound_port();
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
            inbound_ports,
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
        // Every proxy proves its workload identity (the WorkloadGroup's service account)
        // with a bootstrap token, so sidecars talk mutual TLS and policies see principals.
        let mut identity = |sa: &str| match mesh.control.token_file("default", sa) {
            Ok(token_file) => Some(Identity {
                service_account: sa.to_owned(),
                token_file,
            }),
            Err(e) => {
                mesh.problems.push(format!("no identity for {sa}: {e}"));
                None
            }
        };
        let identities: BTreeMap<String, Option<Identity>> = FLEET
            .iter()
            .filter(|wl| wl.sidecar)
            .map(|wl| account(wl.service))
            .chain(CLIENT_GROUPS.iter().map(|g| (*g).to_owned()))
            .map(|sa| {
                let id = identity(&sa);
                (sa, id)
            })
            .collect();
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
        let id = |sa: &str| identities.get(sa).and_then(Option::as_ref);
        let client_args = BootstrapArgs {
            outbound_port,
            ..args("sleep", ProxyType::Sidecar)
        };
        match dp.start_as(&client_args, id("sleep")) {
            Ok(p) => mesh.sidecar = Some(p),
            Err(e) => mesh.problems.push(format!("client sidecar: {e}")),
        }
        let canary_args = BootstrapArgs {
            outbound_port: canary_port,
            ..args("sleep-canary", ProxyType::Sidecar)
        };
        match dp.start_as(&canary_args, id("sleep-canary")) {
            Ok(p) => mesh.canary = Some(p),
            Err(e) => mesh.problems.push(format!("canary client sidecar: {e}")),
        }
        let gateway_args = BootstrapArgs {
            labels: vec![("istio".into(), "ingressgateway".into())],
            ..args("istio-ingressgateway", ProxyType::Router)
        };
        match dp.start_as(&gateway_args, id("istio-ingressgateway")) {
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
            match dp.start_as(&server_args, id(&account(wl.service))) {
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
        for (name, port) in &self.inbound_ports {
            values.insert(format!("inbound:{name}"), port.to_string());
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

/// A port for a listener that comes and goes with the scenarios (the gateway's): outside
/// the kernel's ephemeral range, so no connection's local port takes it while it is
/// unbound (the proxy would then fail to bind it: `Address already in use`). Falls back
/// to an ephemeral one.
fn late_bound_port() -> u16 {
    use std::net::TcpListener;
    // Spread the start so parallel suites rarely try the same ports.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::from(d.subsec_nanos()))
        .unwrap_or_default();
    let (low, span) = (20_000u64, 12_000u64);
    let start = (u64::from(std::process::id()) ^ nanos) % span;
    (0..256)
        .map(|i| (low + (start + i * 37) % span) as u16)
        .find(|port| {
            TcpListener::bind(("0.0.0.0", *port)).is_ok()
                && TcpListener::bind(("127.0.0.1", *port)).is_ok()
        })
        .unwrap_or_else(free_port)
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
        let mut labels = json!({"app": wl.service, "version": wl.version});
        let account = account(wl.service);
        if wl.sidecar {
            // Its sidecar takes mesh mTLS: callers' sidecars use it (auto mTLS).
            labels[TLS_MODE.0] = TLS_MODE.1.into();
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
        .chain([&TLS_MODE])
        .map(|(k, v)| ((*k).to_owned(), Value::from(*v)))
        .collect();
    let [sleep, canary_group, gateway] = CLIENT_GROUPS;
    for (group, labels) in [
        (sleep, json!({"app": "sleep", TLS_MODE.0: TLS_MODE.1})),
        (canary_group, Value::Object(canary)),
        (gateway, json!({"istio": "ingressgateway"})),
    ] {
        docs.push(json!({
            "apiVersion": "networking.istio.io/v1", "kind": "WorkloadGroup",
            "metadata": {"name": group, "namespace": "default"},
            "spec": {"metadata": {"labels": labels}, "template": {"serviceAccount": group}},
        }));
    }
    Ok(docs)
}
