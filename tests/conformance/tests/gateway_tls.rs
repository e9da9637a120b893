//! HTTPS at the ingress gateway with certificates from Kubernetes Secrets (`credentialName`),
//! on both data planes (real Envoy and weft-proxy, one test each, same body): SIMPLE serves the Secret's certificate; MUTUAL also demands a client
//! certificate signed by the CA in the `<name>-cacert` Secret.
//!
//! Run: `cargo build --workspace --bins && cargo test -p weft-conformance --test gateway_tls -- --nocapture`.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};
use weft_conformance::certs::Certs;
use weft_conformance::control::ControlPlane;
use weft_conformance::dataplane::{
    BootstrapArgs, DataPlane, EnvoyDataPlane, ProxyType, WeftDataPlane,
};
use weft_conformance::echo::EchoServer;
use weft_testkit::{free_port, run_weft};

const HOST: &str = "bookinfo.example.com";
/// How long the gateway may take to get its listeners and serve the first request.
const SERVE_TIMEOUT: Duration = Duration::from_secs(30);

fn openssl(args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A client certificate (clientAuth) signed by the CA that `Certs` made in `dir`.
fn client_cert(dir: &Path) -> (PathBuf, PathBuf) {
    let s = |p: &Path| p.to_str().unwrap().to_owned();
    let (key, csr, cert, ext) = (
        dir.join("client.key"),
        dir.join("client.csr"),
        dir.join("client.pem"),
        dir.join("client.ext"),
    );
    std::fs::write(
        &ext,
        "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n",
    )
    .unwrap();
    openssl(&[
        "req",
        "-new",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-subj",
        "/CN=client",
        "-keyout",
        &s(&key),
        "-out",
        &s(&csr),
    ]);
    openssl(&[
        "x509",
        "-req",
        "-in",
        &s(&csr),
        "-CA",
        &s(&dir.join("ca.pem")),
        "-CAkey",
        &s(&dir.join("ca.key")),
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        &s(&ext),
        "-out",
        &s(&cert),
    ]);
    (cert, key)
}

/// YAML for a literal block: every line of `pem` indented.
fn block(pem: &Path, indent: &str) -> String {
    let text = std::fs::read_to_string(pem).unwrap();
    text.lines()
        .map(|l| format!("{indent}{l}\n"))
        .collect::<String>()
}

fn config(certs_dir: &Path, server: (&Path, &Path), ports: (u16, u16), echo_port: u16) -> String {
    let (simple, mutual) = ports;
    let i = "    ";
    format!(
        r#"apiVersion: v1
kind: Secret
metadata: {{name: bookinfo-cred, namespace: istio-system}}
type: kubernetes.io/tls
stringData:
  tls.crt: |
{cert}  tls.key: |
{key}---
apiVersion: v1
kind: Secret
metadata: {{name: bookinfo-mtls, namespace: istio-system}}
type: kubernetes.io/tls
stringData:
  tls.crt: |
{cert}  tls.key: |
{key}---
apiVersion: v1
kind: Secret
metadata: {{name: bookinfo-mtls-cacert, namespace: istio-system}}
stringData:
  ca.crt: |
{ca}---
apiVersion: networking.istio.io/v1
kind: WorkloadGroup
metadata: {{name: istio-ingressgateway, namespace: istio-system}}
spec:
  metadata: {{labels: {{istio: ingressgateway}}}}
  template: {{serviceAccount: istio-ingressgateway}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: echo, namespace: default}}
spec:
  hosts: [echo.default.svc.cluster.local]
  location: MESH_INTERNAL
  ports: [{{number: 9000, name: http, protocol: HTTP}}]
  resolution: STATIC
  endpoints: [{{address: 127.0.0.1, ports: {{http: {echo_port}}}}}]
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {{name: bookinfo-gateway, namespace: istio-system}}
spec:
  selector: {{istio: ingressgateway}}
  servers:
  - port: {{number: {simple}, name: https, protocol: HTTPS}}
    hosts: [{HOST}]
    tls: {{mode: SIMPLE, credentialName: bookinfo-cred}}
  - port: {{number: {mutual}, name: https-mtls, protocol: HTTPS}}
    hosts: [{HOST}]
    tls: {{mode: MUTUAL, credentialName: bookinfo-mtls}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: bookinfo, namespace: istio-system}}
spec:
  hosts: [{HOST}]
  gateways: [istio-system/bookinfo-gateway]
  http:
  - route:
    - destination: {{host: echo.default.svc.cluster.local, port: {{number: 9000}}}}
"#,
        cert = block(server.0, i),
        key = block(server.1, i),
        ca = block(&certs_dir.join("ca.pem"), i),
    )
}

/// `curl` to `https://HOST:port/hello` resolved to 127.0.0.1, trusting the suite's CA,
/// with an optional client certificate.
fn curl(ca: &Path, port: u16, client: Option<&(PathBuf, PathBuf)>) -> Output {
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "--max-time", "5", "--noproxy", "*", "--cacert"])
        .arg(ca)
        .arg("--resolve")
        .arg(format!("{HOST}:{port}:127.0.0.1"));
    if let Some((cert, key)) = client {
        cmd.arg("--cert").arg(cert).arg("--key").arg(key);
    }
    cmd.arg(format!("https://{HOST}:{port}/hello"))
        .stdin(Stdio::null())
        .output()
        .expect("run curl")
}

/// The echo's answer through the gateway, retried until the listener is in place.
fn served(ca: &Path, port: u16, client: Option<&(PathBuf, PathBuf)>) -> Result<Value, String> {
    let deadline = Instant::now() + SERVE_TIMEOUT;
    loop {
        let out = curl(ca, port, client);
        let body = String::from_utf8_lossy(&out.stdout).into_owned();
        match serde_json::from_str::<Value>(&body) {
            Ok(v) if out.status.success() && v.get("name").is_some() => return Ok(v),
            _ if Instant::now() > deadline => {
                return Err(format!(
                    "no echo answer on port {port}: {body} {}",
                    String::from_utf8_lossy(&out.stderr)
                ))
            }
            _ => std::thread::sleep(Duration::from_millis(250)),
        }
    }
}

#[test]
fn envoy_gateway_serves_https_with_credential_name_secrets() {
    let Ok(envoy) = EnvoyDataPlane::find() else {
        return; // find() said SKIP, or panicked under WEFT_REQUIRE_ENVOY=1.
    };
    gateway_serves_https_with_credential_name_secrets(&envoy);
}

#[test]
fn weft_gateway_serves_https_with_credential_name_secrets() {
    gateway_serves_https_with_credential_name_secrets(&WeftDataPlane::new());
}

fn gateway_serves_https_with_credential_name_secrets(data_plane: &dyn DataPlane) {
    let control = ControlPlane::start().unwrap();
    let dir = control.scratch().join("certs");
    let certs = Certs::new_ca(&dir).unwrap();
    let server = certs.server(HOST).unwrap();
    let client = client_cert(&dir);
    let echo = EchoServer::start("gateway-echo", "v1").unwrap();
    let ports = (free_port(), free_port());

    // `weft apply -f`, as a user would: Secrets, the gateway's WorkloadGroup, the echo's
    // ServiceEntry, Gateway, VirtualService.
    let file = control.scratch().join("gateway-tls.yaml");
    std::fs::write(
        &file,
        config(&dir, (&server.cert, &server.key), ports, echo.addr.port()),
    )
    .unwrap();
    let data_dir = control.data_dir();
    let env = [
        ("WEFT_SERVER", control.server()),
        ("WEFT_DATA_DIR", data_dir.display().to_string()),
    ];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let applied = run_weft(&["apply", "-f", file.to_str().unwrap()], &env, None);
    assert_eq!(applied.code, 0, "{}{}", applied.stdout, applied.stderr);
    assert!(
        applied.stdout.contains("secret/bookinfo-cred created"),
        "{}",
        applied.stdout
    );
    // Listed without their keys.
    let listed = run_weft(&["get", "secrets", "-n", "istio-system"], &env, None);
    assert_eq!(listed.code, 0, "{}", listed.stderr);
    assert!(
        listed.stdout.contains("bookinfo-mtls-cacert   Opaque"),
        "{}",
        listed.stdout
    );
    assert!(!listed.stdout.contains("BEGIN"), "{}", listed.stdout);

    let gateway = data_plane
        .start(&BootstrapArgs {
            workload_group: "istio-ingressgateway".into(),
            namespace: "istio-system".into(),
            proxy_type: ProxyType::Router,
            ip: "127.0.0.1".into(),
            app_ports: Vec::new(),
            outbound_port: free_port(),
            admin_port: free_port(),
            xds: control.xds_addr(),
            labels: vec![("istio".into(), "ingressgateway".into())],
            server: control.server(),
            data_dir: control.data_dir(),
            work_dir: control.scratch().join("gateway"),
        })
        .unwrap();
    let report = |e: String| -> String {
        format!(
            "{e}\n--- weftd\n{}\n--- {}\n{}",
            control.log(),
            data_plane.name(),
            gateway.log()
        )
    };

    // SIMPLE: the Secret's certificate, verified against the CA for the SNI host.
    let answer = served(&certs.ca, ports.0, None).map_err(report).unwrap();
    assert_eq!(answer["name"], "gateway-echo");
    assert_eq!(answer["path"], "/hello");

    // MUTUAL: with a client certificate signed by the `-cacert` Secret's CA it is served...
    let answer = served(&certs.ca, ports.1, Some(&client))
        .map_err(report)
        .unwrap();
    assert_eq!(answer["name"], "gateway-echo");
    // ...and without one the handshake (or the first read) fails: no answer at all.
    let refused = curl(&certs.ca, ports.1, None);
    assert!(
        !refused.status.success(),
        "served without a client certificate"
    );
    assert!(refused.stdout.is_empty(), "{:?}", refused);
    assert_eq!(gateway.rejected_updates().unwrap(), 0, "{}", gateway.log());
}
