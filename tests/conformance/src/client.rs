//! The application's side: requests sent through the client sidecar (explicit mode) or a gateway.

use reqwest::blocking::Client;
use reqwest::Url;
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Longest a single request may take; the slowest scenario (Bookinfo's 7s ratings delay)
/// fits well inside.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);

/// How a request reaches the mesh.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Via {
    /// To the client sidecar as an HTTP proxy, absolute form: `GET http://reviews:9080/`.
    Sidecar,
    /// To the client sidecar's outbound port with `Host: reviews:9080`.
    SidecarHost,
    /// To the ingress gateway's port with the URL's authority as `Host`.
    Gateway,
}

/// One request as a scenario writes it.
#[derive(Clone, Debug)]
pub struct Request {
    pub via: Via,
    pub method: String,
    /// `http://reviews:9080/path?query`: the authority is what the mesh routes on.
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<String>,
}

/// What came back, headers lower-cased and repeated ones joined with ", ".
#[derive(Clone, Debug)]
pub struct Response {
    pub status: u16,
    pub headers: BTreeMap<String, String>,
    pub body: String,
    pub elapsed: Duration,
}

impl Response {
    /// The echo server's description of the request, when an echo server answered.
    pub fn echo(&self) -> Option<Value> {
        serde_json::from_str::<Value>(&self.body)
            .ok()
            .filter(|v| v.get("name").is_some() && v.get("path").is_some())
    }

    /// The instance that answered, from the echo body or the `x-echo-name` header.
    pub fn served_by(&self) -> Option<String> {
        self.echo()
            .and_then(|e| e["name"].as_str().map(str::to_owned))
            .or_else(|| self.headers.get("x-echo-name").cloned())
    }

    /// One line for failure reports.
    pub fn summary(&self) -> String {
        let body: String = self.body.chars().take(300).collect();
        format!("{} in {:?}: {body}", self.status, self.elapsed)
    }
}

/// Where the mesh's entry points listen on 127.0.0.1.
#[derive(Clone, Debug)]
pub struct MeshClient {
    outbound_port: u16,
    gateway_port: u16,
    proxied: Client,
    direct: Client,
}

impl MeshClient {
    pub fn new(outbound_port: u16, gateway_port: u16) -> Result<MeshClient, String> {
        let proxy = reqwest::Proxy::http(format!("http://127.0.0.1:{outbound_port}"))
            .map_err(|e| e.to_string())?;
        // No idle connections: a listener update drains old connections slowly, and a
        // request on one would see the previous config.
        let build = |b: reqwest::blocking::ClientBuilder| {
            b.pool_max_idle_per_host(0)
                .redirect(reqwest::redirect::Policy::none())
                .timeout(REQUEST_TIMEOUT)
                .build()
                .map_err(|e| e.to_string())
        };
        Ok(MeshClient {
            outbound_port,
            gateway_port,
            proxied: build(Client::builder().proxy(proxy))?,
            direct: build(Client::builder().no_proxy())?,
        })
    }

    /// Sends one request; a transport error (refused, reset, timeout) is an Err.
    pub fn send(&self, req: &Request) -> Result<Response, String> {
        let url = Url::parse(&req.url).map_err(|e| format!("{}: {e}", req.url))?;
        let method =
            reqwest::Method::from_bytes(req.method.as_bytes()).map_err(|e| e.to_string())?;
        let builder = match req.via {
            Via::Sidecar => self.proxied.request(method, url.clone()),
            Via::SidecarHost | Via::Gateway => {
                let port = if req.via == Via::Gateway {
                    self.gateway_port
                } else {
                    self.outbound_port
                };
                let authority = match url.port() {
                    Some(p) => format!("{}:{p}", url.host_str().unwrap_or_default()),
                    None => url.host_str().unwrap_or_default().to_owned(),
                };
                let mut target = url.clone();
                target
                    .set_host(Some("127.0.0.1"))
                    .map_err(|e| e.to_string())?;
                target
                    .set_port(Some(port))
                    .map_err(|()| format!("cannot set port on {url}"))?;
                self.direct
                    .request(method, target)
                    .header(reqwest::header::HOST, authority)
            }
        };
        let mut builder = builder;
        for (k, v) in &req.headers {
            builder = builder.header(k.as_str(), v.as_str());
        }
        if let Some(body) = &req.body {
            builder = builder.body(body.clone());
        }
        let start = Instant::now();
        let resp = builder
            .send()
            .map_err(|e| format!("{} {}: {e}", req.method, req.url))?;
        let status = resp.status().as_u16();
        let mut headers = BTreeMap::<String, String>::new();
        for (k, v) in resp.headers() {
            let v = String::from_utf8_lossy(v.as_bytes()).into_owned();
            headers
                .entry(k.as_str().to_owned())
                .and_modify(|e| {
                    e.push_str(", ");
                    e.push_str(&v);
                })
                .or_insert(v);
        }
        let body = resp.text().unwrap_or_default();
        Ok(Response {
            status,
            headers,
            body,
            elapsed: start.elapsed(),
        })
    }
}
