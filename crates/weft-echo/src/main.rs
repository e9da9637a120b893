//! `weft-echo`: answers every HTTP/1.1 or h2c request with a JSON description of it.
//!
//! Tests put it behind a data plane and read, from the body, which instance served a request
//! and what that request looked like when it arrived (path, host, headers). Request headers
//! make it misbehave on demand, so retries, timeouts and outlier detection can be observed:
//!
//! - `x-echo-status: 503` answers with that status;
//! - `x-echo-delay-ms: 200` waits that long before answering;
//! - `x-echo-only-on: NAME` applies the two above only on the instance called NAME.
//!
//! `GET /__count` answers `{"count": N}`, the number of other requests this instance has seen,
//! so a test can count retries where they land.
//!
//! `--tls CERT KEY` serves HTTPS instead (the answer then says which SNI the client sent) and
//! `--tcp` echoes raw bytes after `<name>: `, for TLS and TCP routing tests.

mod tcp;
mod tls;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, Version};
use axum::response::{IntoResponse, Response};
use axum::Router;
use clap::Parser;
use serde_json::{json, Map, Value};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tls::{Peer, TlsListener};

/// The path that reports the request count instead of echoing.
const COUNT_PATH: &str = "/__count";
/// The longest delay a request may ask for, so a typo cannot hang a test run.
const MAX_DELAY: Duration = Duration::from_secs(60);

/// weft-echo: an echo server for tests.
#[derive(Clone, Debug, Parser)]
// `--version` is the reported app version, so clap's own version flag is off.
#[command(name = "weft-echo", about, disable_version_flag = true)]
struct Options {
    /// Address to listen on; port 0 picks a free port (printed on start).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Instance name reported in every answer, e.g. `reviews-v2`.
    #[arg(long, default_value = "echo")]
    name: String,
    /// Version reported in every answer, e.g. `v2`.
    #[arg(long, default_value = "v1")]
    version: String,
    /// Serve HTTPS with this PEM certificate chain and PEM private key.
    #[arg(long, num_args = 2, value_names = ["CERT", "KEY"], conflicts_with = "tcp")]
    tls: Option<Vec<PathBuf>>,
    /// Echo raw TCP bytes, prefixed by `<name>: `, instead of HTTP.
    #[arg(long)]
    tcp: bool,
}

/// Who this instance is and how many requests it has answered.
#[derive(Debug)]
struct Instance {
    name: String,
    version: String,
    count: AtomicU64,
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let options = Options::parse();
    let listener = tokio::net::TcpListener::bind(options.listen).await?;
    // A plain line on stdout: how a test that passed port 0 learns the real port.
    println!("listening on {}", listener.local_addr()?);
    if options.tcp {
        return tcp::serve(listener, options.name).await;
    }
    let instance = Arc::new(Instance {
        name: options.name,
        version: options.version,
        count: AtomicU64::new(0),
    });
    let service = app(instance).into_make_service_with_connect_info::<Peer>();
    match options.tls.as_deref() {
        Some([cert, key]) => axum::serve(TlsListener::new(listener, cert, key)?, service).await,
        _ => axum::serve(listener, service).await,
    }
}

/// Every method and path reaches `echo`; axum's serve speaks HTTP/1.1 and h2c (prior knowledge).
fn app(instance: Arc<Instance>) -> Router {
    Router::new().fallback(echo).with_state(instance)
}

async fn echo(
    State(instance): State<Arc<Instance>>,
    ConnectInfo(peer): ConnectInfo<Peer>,
    method: Method,
    uri: Uri,
    version: Version,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if method == Method::GET && uri.path() == COUNT_PATH {
        let count = instance.count.load(Ordering::SeqCst);
        return axum::Json(json!({ "name": instance.name, "count": count })).into_response();
    }
    let count = instance.count.fetch_add(1, Ordering::SeqCst) + 1;
    let behaviour = Behaviour::from_headers(&headers, &instance.name);
    if !behaviour.delay.is_zero() {
        tokio::time::sleep(behaviour.delay).await;
    }
    let host = headers
        .get("host")
        .and_then(|h| h.to_str().ok())
        .map(str::to_owned)
        .or_else(|| uri.authority().map(|a| a.to_string()))
        .unwrap_or_default();
    let mut described = json!({
        "name": instance.name,
        "version": instance.version,
        "method": method.as_str(),
        "path": uri.path(),
        "query": uri.query().unwrap_or(""),
        "host": host,
        "protocol": protocol(version),
        "headers": header_map(&headers),
        "bodySize": body.len(),
        "count": count,
        "peer": peer.addr.to_string(),
    });
    if let Some(sni) = peer.tls_sni {
        described["tls"] = json!({ "sni": sni });
    }
    let mut response = (behaviour.status, axum::Json(described)).into_response();
    // Headers too, so a test can see the instance when the body is replaced (HEAD) or for
    // response-header manipulation checks.
    let out = response.headers_mut();
    for (key, value) in [
        ("x-echo-name", &instance.name),
        ("x-echo-version", &instance.version),
    ] {
        if let Ok(value) = HeaderValue::from_str(value) {
            out.insert(key, value);
        }
    }
    response
}

/// What a request asked this instance to do besides echoing.
#[derive(Debug, PartialEq)]
struct Behaviour {
    status: StatusCode,
    delay: Duration,
}

impl Behaviour {
    /// Reads the `x-echo-*` headers; malformed values are ignored rather than failing the
    /// request, which would look like a data-plane error to the test.
    fn from_headers(headers: &HeaderMap, name: &str) -> Behaviour {
        let get = |key: &str| headers.get(key).and_then(|v| v.to_str().ok());
        let applies = get("x-echo-only-on").is_none_or(|only| only == name);
        let mut behaviour = Behaviour {
            status: StatusCode::OK,
            delay: Duration::ZERO,
        };
        if !applies {
            return behaviour;
        }
        if let Some(status) = get("x-echo-status")
            .and_then(|s| s.parse::<u16>().ok())
            .and_then(|s| StatusCode::from_u16(s).ok())
        {
            behaviour.status = status;
        }
        if let Some(ms) = get("x-echo-delay-ms").and_then(|s| s.parse::<u64>().ok()) {
            behaviour.delay = Duration::from_millis(ms).min(MAX_DELAY);
        }
        behaviour
    }
}

fn protocol(version: Version) -> &'static str {
    match version {
        Version::HTTP_09 => "HTTP/0.9",
        Version::HTTP_10 => "HTTP/1.0",
        Version::HTTP_2 => "HTTP/2",
        Version::HTTP_3 => "HTTP/3",
        _ => "HTTP/1.1",
    }
}

/// Header name -> value; repeated headers are joined with ", " as HTTP allows.
fn header_map(headers: &HeaderMap) -> Value {
    let mut map = Map::new();
    for (key, value) in headers {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        match map.get_mut(key.as_str()) {
            Some(Value::String(existing)) => {
                existing.push_str(", ");
                existing.push_str(&value);
            }
            _ => {
                map.insert(key.as_str().to_owned(), Value::String(value));
            }
        }
    }
    Value::Object(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.append(*k, HeaderValue::from_static(v));
        }
        map
    }

    #[test]
    fn behaviour_follows_headers_and_only_on() {
        let h = headers(&[("x-echo-status", "503"), ("x-echo-delay-ms", "20")]);
        let b = Behaviour::from_headers(&h, "a");
        assert_eq!(b.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(b.delay, Duration::from_millis(20));

        let h = headers(&[("x-echo-status", "503"), ("x-echo-only-on", "b")]);
        assert_eq!(Behaviour::from_headers(&h, "a").status, StatusCode::OK);
        assert_eq!(
            Behaviour::from_headers(&h, "b").status,
            StatusCode::SERVICE_UNAVAILABLE
        );

        let h = headers(&[("x-echo-status", "nope"), ("x-echo-delay-ms", "999999999")]);
        let b = Behaviour::from_headers(&h, "a");
        assert_eq!(b.status, StatusCode::OK);
        assert_eq!(b.delay, MAX_DELAY);
    }

    #[test]
    fn flags_parse() {
        use clap::CommandFactory;
        Options::command().debug_assert();
        let o = Options::parse_from(["weft-echo", "--name", "reviews-v2", "--version", "v2"]);
        assert_eq!((o.name.as_str(), o.version.as_str()), ("reviews-v2", "v2"));
        let o = Options::parse_from(["weft-echo", "--tls", "c.pem", "k.pem"]);
        assert_eq!(
            o.tls,
            Some(vec![PathBuf::from("c.pem"), PathBuf::from("k.pem")])
        );
        assert!(Options::try_parse_from(["weft-echo", "--tcp", "--tls", "c", "k"]).is_err());
    }

    #[test]
    fn repeated_headers_are_joined() {
        let h = headers(&[("x-a", "1"), ("x-a", "2"), ("x-b", "3")]);
        assert_eq!(header_map(&h), json!({"x-a": "1, 2", "x-b": "3"}));
    }

    /// Serves on a free port and checks both protocols and the counter end to end.
    #[tokio::test]
    async fn echoes_http1_and_h2c_and_counts() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let instance = Arc::new(Instance {
            name: "reviews-v2".into(),
            version: "v2".into(),
            count: AtomicU64::new(0),
        });
        let service = app(instance).into_make_service_with_connect_info::<Peer>();
        tokio::spawn(async move { axum::serve(listener, service).await });

        let h1 = reqwest::Client::new();
        let r = h1
            .post(format!("http://{addr}/a/b?x=1"))
            .header("x-test", "yes")
            .header("x-echo-status", "418")
            .body("hello")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 418);
        assert_eq!(r.headers()["x-echo-version"], "v2");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["name"], "reviews-v2");
        assert_eq!(body["method"], "POST");
        assert_eq!(body["path"], "/a/b");
        assert_eq!(body["query"], "x=1");
        assert_eq!(body["host"], addr.to_string());
        assert_eq!(body["headers"]["x-test"], "yes");
        assert_eq!(body["bodySize"], 5);
        assert_eq!(body["protocol"], "HTTP/1.1");
        assert!(
            body.get("tls").is_none(),
            "plain connections say nothing of TLS"
        );

        let h2 = reqwest::Client::builder()
            .http2_prior_knowledge()
            .build()
            .unwrap();
        let body: Value = h2
            .get(format!("http://{addr}/"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(body["protocol"], "HTTP/2");
        assert_eq!(body["count"], 2);

        let count: Value = h1
            .get(format!("http://{addr}{COUNT_PATH}"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(count["count"], 2, "reading the count does not count");
    }
}
