//! RequestAuthentication end to end on both data planes (real Envoy and weft-proxy, one test
//! each, same body), configured by weftd: an ingress gateway with two JWT rules, one with
//! its keys inline (RS256), one whose keys weftd fetches from `jwksUri` on a local HTTP
//! server (ES256). What a client sees: a valid token or no token is served; an expired
//! token, one from an unknown issuer, one with a forged payload and one signed by a key
//! nobody published get 401 with Envoy's text and `www-authenticate` challenge. The
//! upstream sees the claims weftd asked for and not the token (not forwarded).
//!
//! Run: `cargo build --workspace --bins && cargo test -p weft-conformance --test jwt -- --nocapture`.

use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::time::{Duration, Instant};
use weft_conformance::control::ControlPlane;
use weft_conformance::dataplane::{
    BootstrapArgs, DataPlane, EnvoyDataPlane, ProxyType, WeftDataPlane,
};
use weft_conformance::echo::EchoServer;
use weft_testkit::jwt::{now, Signer};
use weft_testkit::{free_port, run_weft};

const HOST: &str = "jwt.example.com";
const ISSUER_INLINE: &str = "https://inline.example";
const ISSUER_REMOTE: &str = "https://remote.example";
/// How long the gateway may take to get its listeners and serve the first request.
const SERVE_TIMEOUT: Duration = Duration::from_secs(30);

/// Serves `body` as `application/json` to every request, on a thread, for weftd's fetch.
fn serve_jwks(body: String) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let mut reader = BufReader::new(conn.try_clone().unwrap());
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                line.clear();
            }
            let _ = write!(
                conn,
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    format!("http://{addr}/keys.json")
}

fn config(port: u16, echo_port: u16, inline_jwks: &str, jwks_uri: &str) -> String {
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
metadata: {{name: jwt-gateway, namespace: istio-system}}
spec:
  selector: {{istio: ingressgateway}}
  servers:
  - port: {{number: {port}, name: http, protocol: HTTP}}
    hosts: [{HOST}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: echo, namespace: istio-system}}
spec:
  hosts: [{HOST}]
  gateways: [istio-system/jwt-gateway]
  http:
  - route:
    - destination: {{host: echo.default.svc.cluster.local, port: {{number: 9000}}}}
---
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {{name: jwt, namespace: istio-system}}
spec:
  selector: {{matchLabels: {{istio: ingressgateway}}}}
  jwtRules:
  - issuer: {ISSUER_INLINE}
    audiences: [echo]
    jwks: '{inline_jwks}'
    outputClaimToHeaders: [{{header: x-jwt-sub, claim: sub}}]
  - issuer: {ISSUER_REMOTE}
    jwksUri: {jwks_uri}
    outputPayloadToHeader: x-jwt-payload
"#
    )
}

struct Answer {
    status: u16,
    www_authenticate: Option<String>,
    body: String,
}

fn get(
    client: &reqwest::blocking::Client,
    port: u16,
    token: Option<&str>,
) -> Result<Answer, String> {
    let mut req = client
        .get(format!("http://127.0.0.1:{port}/api"))
        .header("host", HOST);
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let resp = req.send().map_err(|e| e.to_string())?;
    let status = resp.status().as_u16();
    let www_authenticate = resp
        .headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let body = resp.text().map_err(|e| e.to_string())?;
    Ok(Answer {
        status,
        www_authenticate,
        body,
    })
}

/// The echo's description of the request, retried until `token`'s request is served.
fn served(
    client: &reqwest::blocking::Client,
    port: u16,
    token: Option<&str>,
) -> Result<Value, String> {
    let deadline = Instant::now() + SERVE_TIMEOUT;
    loop {
        let last = match get(client, port, token) {
            Ok(a) if a.status == 200 => {
                return serde_json::from_str(&a.body).map_err(|e| format!("{e}: {}", a.body))
            }
            Ok(a) => format!("{} {}", a.status, a.body),
            Err(e) => e,
        };
        if Instant::now() > deadline {
            return Err(format!("not served: {last}"));
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[test]
fn envoy_gateway_enforces_request_authentication() {
    let Ok(envoy) = EnvoyDataPlane::find() else {
        return; // find() said SKIP, or panicked under WEFT_REQUIRE_ENVOY=1.
    };
    gateway_enforces_request_authentication(&envoy);
}

#[test]
fn weft_gateway_enforces_request_authentication() {
    gateway_enforces_request_authentication(&WeftDataPlane::new());
}

fn gateway_enforces_request_authentication(data_plane: &dyn DataPlane) {
    let control = ControlPlane::start().unwrap();
    let echo = EchoServer::start("jwt-echo", "v1").unwrap();
    let inline_key = Signer::rsa("inline-1");
    let remote_key = Signer::es256("remote-1");
    let jwks_uri = serve_jwks(remote_key.jwks());
    let port = free_port();

    let file = control.scratch().join("jwt.yaml");
    std::fs::write(
        &file,
        config(port, echo.addr.port(), &inline_key.jwks(), &jwks_uri),
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
    // A connection per request: a config change applies to new connections.
    let client = reqwest::blocking::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();

    // No token: served (a RequestAuthentication alone does not require one).
    let answer = served(&client, port, None).map_err(report).unwrap();
    assert_eq!(answer["name"], "jwt-echo");

    // A valid inline-key token: served, the claim header set, the token taken off.
    let claims = |iss: &str, extra: Value| {
        let mut c = json!({"iss": iss, "sub": "alice", "aud": "echo", "exp": now() + 600});
        c.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        c
    };
    let good = inline_key.sign(&claims(ISSUER_INLINE, json!({})));
    let answer = served(&client, port, Some(&good)).map_err(report).unwrap();
    assert_eq!(answer["headers"]["x-jwt-sub"], "alice", "{answer}");
    assert!(answer["headers"].get("authorization").is_none(), "{answer}");

    // A token whose keys weftd fetched from jwksUri: served, with the payload header.
    let remote = remote_key.sign(&claims(ISSUER_REMOTE, json!({"group": "ops"})));
    let answer = served(&client, port, Some(&remote))
        .map_err(report)
        .unwrap();
    let payload = answer["headers"]["x-jwt-payload"]
        .as_str()
        .unwrap_or_default();
    assert!(!payload.is_empty(), "{answer}");

    // Invalid tokens: 401, Envoy's text, the challenge naming the request.
    let realm = format!("Bearer realm=\"http://{HOST}/api\", error=\"invalid_token\"");
    let forged = {
        let mut parts: Vec<String> = good.split('.').map(str::to_string).collect();
        let other = inline_key.sign(&claims(ISSUER_INLINE, json!({"sub": "mallory"})));
        parts[1] = other.split('.').nth(1).unwrap().to_string();
        parts.join(".")
    };
    let cases = [
        (
            inline_key.sign(&claims(ISSUER_INLINE, json!({"exp": now() - 3600}))),
            "Jwt is expired",
        ),
        (
            inline_key.sign(&claims("https://stranger.example", json!({}))),
            "Jwt issuer is not configured",
        ),
        (forged, "Jwt verification fails"),
        // The published kid, another key (and type): a candidate key that cannot verify.
        (
            Signer::es256("inline-1").sign(&claims(ISSUER_INLINE, json!({}))),
            "Jwt verification fails",
        ),
        (
            Signer::es256("unpublished").sign(&claims(ISSUER_INLINE, json!({}))),
            "Jwks doesn't have key to match kid or alg from Jwt",
        ),
    ];
    for (token, text) in cases {
        let a = get(&client, port, Some(&token)).map_err(report).unwrap();
        assert_eq!(
            (a.status, a.body.as_str()),
            (401, text),
            "{}",
            data_plane.name()
        );
        assert_eq!(
            a.www_authenticate.as_deref(),
            Some(realm.as_str()),
            "{text}"
        );
    }
    // Signed right but for another audience: 403, as Envoy answers.
    let wrong_aud = inline_key.sign(&claims(ISSUER_INLINE, json!({"aud": "other"})));
    let a = get(&client, port, Some(&wrong_aud))
        .map_err(report)
        .unwrap();
    assert_eq!(
        (a.status, a.body.as_str()),
        (403, "Audiences in Jwt are not allowed")
    );

    // An AuthorizationPolicy that wants a request principal: now a request without a
    // token is refused by RBAC (403), one with alice's valid token still served.
    let policy = control.scratch().join("require-jwt.yaml");
    std::fs::write(&policy, REQUIRE_JWT).unwrap();
    let applied = run_weft(&["apply", "-f", policy.to_str().unwrap()], &env, None);
    assert_eq!(applied.code, 0, "{}{}", applied.stdout, applied.stderr);
    let deadline = Instant::now() + SERVE_TIMEOUT;
    let refused = loop {
        let a = get(&client, port, None).map_err(report).unwrap();
        if a.status != 200 || Instant::now() > deadline {
            break a;
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    if refused.status != 403 {
        let dump = client
            .get(format!("http://{}/config_dump", gateway.admin()))
            .send()
            .and_then(|r| r.text())
            .unwrap_or_default();
        panic!(
            "{} {}: not refused by RBAC\n--- config_dump\n{dump}\n{}",
            refused.status,
            refused.body,
            report(String::new())
        );
    }
    assert_eq!(refused.body, "RBAC: access denied");
    let answer = served(&client, port, Some(&good)).map_err(report).unwrap();
    assert_eq!(answer["headers"]["x-jwt-sub"], "alice", "{answer}");
    // The principal is `iss/sub`: a valid token for another subject is refused.
    let bob = inline_key.sign(&claims(ISSUER_INLINE, json!({"sub": "bob"})));
    let a = get(&client, port, Some(&bob)).map_err(report).unwrap();
    assert_eq!((a.status, a.body.as_str()), (403, "RBAC: access denied"));
    assert_eq!(gateway.rejected_updates().unwrap(), 0, "{}", gateway.log());
}

/// ALLOW only requests whose JWT principal is the inline issuer's alice.
const REQUIRE_JWT: &str = r#"apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: require-jwt, namespace: istio-system}
spec:
  selector: {matchLabels: {istio: ingressgateway}}
  action: ALLOW
  rules:
  - from:
    - source: {requestPrincipals: ["https://inline.example/alice"]}
"#;

/// `@request.auth.claims.group` in a VirtualService header match on the gateway: weftd
/// turns it into a route `dynamic_metadata` matcher on jwt_authn's payload (and sets
/// `clear_route_cache`, so the route is chosen again once the token is verified).
/// Requests whose verified token says `group: ops` (a string, or a list holding it) go to
/// the ops echo; others, with another group or no token, to the default one.
#[test]
fn envoy_gateway_routes_on_jwt_claims() {
    let Ok(envoy) = EnvoyDataPlane::find() else {
        return;
    };
    gateway_routes_on_jwt_claims(&envoy);
}

#[test]
fn weft_gateway_routes_on_jwt_claims() {
    gateway_routes_on_jwt_claims(&WeftDataPlane::new());
}

fn gateway_routes_on_jwt_claims(data_plane: &dyn DataPlane) {
    let control = ControlPlane::start().unwrap();
    let echo = EchoServer::start("default-echo", "v1").unwrap();
    let ops = EchoServer::start("ops-echo", "v1").unwrap();
    let key = Signer::ed25519("claims-1");
    let port = free_port();
    let yaml = config(port, echo.addr.port(), &key.jwks(), "http://127.0.0.1:9/unused")
        .replace(
            "  http:\n  - route:",
            "  http:\n  - match: [{headers: {\"@request.auth.claims.group\": {exact: ops}}}]\n    route:\n    - destination: {host: ops.default.svc.cluster.local, port: {number: 9000}}\n  - route:",
        )
        + &format!(
            "---\napiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: ops, namespace: default}}\nspec:\n  hosts: [ops.default.svc.cluster.local]\n  location: MESH_INTERNAL\n  ports: [{{number: 9000, name: http, protocol: HTTP}}]\n  resolution: STATIC\n  endpoints: [{{address: 127.0.0.1, ports: {{http: {}}}}}]\n",
            ops.addr.port()
        );
    let file = control.scratch().join("claims.yaml");
    std::fs::write(&file, yaml).unwrap();
    let data_dir = control.data_dir();
    let env = [
        ("WEFT_SERVER", control.server()),
        ("WEFT_DATA_DIR", data_dir.display().to_string()),
    ];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let applied = run_weft(&["apply", "-f", file.to_str().unwrap()], &env, None);
    assert_eq!(applied.code, 0, "{}{}", applied.stdout, applied.stderr);
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
    let report = |e: String| {
        format!(
            "{e}\n--- weftd\n{}\n--- {}\n{}",
            control.log(),
            data_plane.name(),
            gateway.log()
        )
    };
    // A connection per request: a config change applies to new connections.
    let client = reqwest::blocking::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let token = |claims: Value| {
        let mut c = json!({"iss": ISSUER_INLINE, "sub": "carol", "aud": "echo",
            "exp": now() + 600});
        c.as_object_mut()
            .unwrap()
            .extend(claims.as_object().unwrap().clone());
        key.sign(&c)
    };
    let answer = served(&client, port, None).map_err(report).unwrap();
    assert_eq!(answer["name"], "default-echo", "{}", data_plane.name());
    for (claims, expected) in [
        (json!({"group": "ops"}), "ops-echo"),
        (json!({"group": ["dev", "ops"]}), "ops-echo"),
        (json!({"group": "dev"}), "default-echo"),
        (json!({"group": ["dev"]}), "default-echo"),
        (json!({}), "default-echo"),
    ] {
        let answer = served(&client, port, Some(&token(claims.clone())))
            .map_err(report)
            .unwrap();
        assert_eq!(
            answer["name"],
            expected,
            "{}: claims {claims}",
            data_plane.name()
        );
    }
    // A token that does not verify is refused before any route is chosen.
    let forged = Signer::ed25519("claims-1").sign(&json!({"iss": ISSUER_INLINE,
        "aud": "echo", "exp": now() + 600, "group": "ops"}));
    let a = get(&client, port, Some(&forged)).map_err(report).unwrap();
    assert_eq!(a.status, 401, "{}: {}", data_plane.name(), a.body);
    assert_eq!(gateway.rejected_updates().unwrap(), 0, "{}", gateway.log());
}
