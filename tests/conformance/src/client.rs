//! The application's side: requests sent through the client sidecar (explicit mode) or a gateway.

use reqwest::blocking::Client;
use reqwest::Url;
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
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
    /// Like `Sidecar`, through the second client sidecar (other workload labels).
    CanarySidecar,
    /// HTTP/2 with prior knowledge (h2c) to the client sidecar's outbound port, the URL's
    /// authority as `:authority`: how a gRPC client talks to an explicit sidecar. The URL
    /// must not name a port (it would be dialled), so the service's port is 80.
    SidecarH2c,
    /// HTTPS to the gateway (the URL's port, else the gateway port) with the URL's host as
    /// SNI and `Host`, trusting only the suite's CA: the certificate must name that host.
    GatewayTls,
    /// Straight to the URL (no proxy, a new connection): a caller outside the mesh, in
    /// plaintext, e.g. at a sidecar's inbound port (`http://127.0.0.1:{{inbound:details-v1}}/`).
    Direct,
    /// Like `Direct`, over one shared client that keeps its connections alive between
    /// requests and checks: what a long-lived HTTP/1.1 client does.
    KeepAlive,
    /// Raw TCP to 127.0.0.1 at the URL's port (`tcp://gateway:PORT/payload`): sends the
    /// path without its `/`, closes its side and reads everything back. The answer is 200
    /// with the body read; `weft-echo --tcp`'s name prefix becomes `x-echo-name`.
    Tcp,
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
    /// Local address to send from (`127.0.0.7`), for source-IP hashing; any loopback
    /// address works on Linux.
    pub source: Option<String>,
}

impl Request {
    /// A copy with `{n}` replaced by `n` in the URL, header values and source address, so one
    /// check can send a different key with every request.
    pub fn numbered(&self, n: usize) -> Request {
        let fill = |s: &str| s.replace("{n}", &n.to_string());
        Request {
            via: self.via,
            method: self.method.clone(),
            url: fill(&self.url),
            headers: self
                .headers
                .iter()
                .map(|(k, v)| (k.clone(), fill(v)))
                .collect(),
            body: self.body.clone(),
            source: self.source.as_deref().map(fill),
        }
    }
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
    canary_port: Option<u16>,
    proxied: Client,
    canary: Option<Client>,
    direct: Client,
    /// Keeps idle connections, unlike every other client here.
    keep_alive: Client,
    /// The suite's CA, the only root [`Via::GatewayTls`] trusts.
    ca: Option<reqwest::Certificate>,
}

/// Settings every client shares. No idle connections: a listener update drains old
/// connections slowly, and a request on one would see the previous config.
fn builder() -> reqwest::blocking::ClientBuilder {
    Client::builder()
        .pool_max_idle_per_host(0)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(REQUEST_TIMEOUT)
}

fn proxied_to(port: u16) -> Result<reqwest::blocking::ClientBuilder, String> {
    let proxy =
        reqwest::Proxy::http(format!("http://127.0.0.1:{port}")).map_err(|e| e.to_string())?;
    Ok(builder().proxy(proxy))
}

impl MeshClient {
    pub fn new(outbound_port: u16, gateway_port: u16) -> Result<MeshClient, String> {
        let build = |b: reqwest::blocking::ClientBuilder| b.build().map_err(|e| e.to_string());
        Ok(MeshClient {
            outbound_port,
            gateway_port,
            canary_port: None,
            proxied: build(proxied_to(outbound_port)?)?,
            canary: None,
            direct: build(builder().no_proxy())?,
            keep_alive: build(builder().no_proxy().pool_max_idle_per_host(1))?,
            ca: None,
        })
    }

    /// Also sends [`Via::CanarySidecar`] requests, to the sidecar on `port`.
    pub fn with_canary(mut self, port: u16) -> Result<MeshClient, String> {
        self.canary = Some(proxied_to(port)?.build().map_err(|e| e.to_string())?);
        self.canary_port = Some(port);
        Ok(self)
    }

    /// Trusts the PEM CA certificate `pem` for [`Via::GatewayTls`].
    pub fn with_ca(mut self, pem: &[u8]) -> Result<MeshClient, String> {
        self.ca = Some(reqwest::Certificate::from_pem(pem).map_err(|e| e.to_string())?);
        Ok(self)
    }

    /// A one-off client for what the shared ones cannot do: a chosen source address, h2c,
    /// or a host name resolved to a local port.
    fn special(&self, req: &Request, url: &Url) -> Result<Client, String> {
        let mut b = match req.via {
            Via::Sidecar => proxied_to(self.outbound_port)?,
            Via::CanarySidecar => proxied_to(self.canary_port.ok_or("no canary sidecar")?)?,
            _ => builder().no_proxy(),
        };
        if let Some(source) = &req.source {
            let ip: IpAddr = source
                .parse()
                .map_err(|e| format!("source {source}: {e}"))?;
            b = b.local_address(ip);
        }
        let host = url.host_str().unwrap_or_default();
        let local = |port: u16| SocketAddr::from(([127, 0, 0, 1], port));
        match req.via {
            Via::SidecarH2c => {
                b = b
                    .http2_prior_knowledge()
                    .resolve(host, local(self.outbound_port));
            }
            Via::GatewayTls => {
                let ca = self.ca.clone().ok_or("no CA: openssl did not make one")?;
                b = b
                    .tls_built_in_root_certs(false)
                    .add_root_certificate(ca)
                    .resolve(host, local(url.port().unwrap_or(self.gateway_port)));
            }
            _ => {}
        }
        b.build().map_err(|e| e.to_string())
    }

    /// Sends one request; a transport error (refused, reset, timeout) is an Err.
    pub fn send(&self, req: &Request) -> Result<Response, String> {
        let url = Url::parse(&req.url).map_err(|e| format!("{}: {e}", req.url))?;
        if req.via == Via::Tcp {
            return exchange_tcp(&url);
        }
        let method =
            reqwest::Method::from_bytes(req.method.as_bytes()).map_err(|e| e.to_string())?;
        // The shared clients cover the common cases; the rest get a one-off client.
        let shared = match (req.via, &req.source) {
            (Via::Sidecar, None) => Some(self.proxied.clone()),
            (Via::CanarySidecar, None) => self.canary.clone(),
            (Via::SidecarHost | Via::Gateway | Via::Direct, None) => Some(self.direct.clone()),
            (Via::KeepAlive, None) => Some(self.keep_alive.clone()),
            _ => None,
        };
        let client = match shared {
            Some(client) => client,
            None => self.special(req, &url)?,
        };
        let builder = match req.via {
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
                client
                    .request(method, target)
                    .header(reqwest::header::HOST, authority)
            }
            _ => client.request(method, url.clone()),
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
            .map_err(|e| format!("{} {}: {}", req.method, req.url, with_causes(&e)))?;
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

/// An error and its causes on one line: reqwest's own message hides why a request failed.
fn with_causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}

/// Longest a raw TCP exchange may take.
const TCP_TIMEOUT: Duration = Duration::from_secs(5);

/// [`Via::Tcp`]: one exchange with whatever listens on 127.0.0.1 at the URL's port.
fn exchange_tcp(url: &Url) -> Result<Response, String> {
    let port = url
        .port()
        .ok_or_else(|| format!("{url}: a TCP URL needs a port"))?;
    let payload = url.path().trim_start_matches('/');
    let start = Instant::now();
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let io = |e: std::io::Error| format!("tcp {addr}: {e}");
    let mut conn = TcpStream::connect_timeout(&addr, TCP_TIMEOUT).map_err(io)?;
    conn.set_read_timeout(Some(TCP_TIMEOUT)).map_err(io)?;
    conn.write_all(payload.as_bytes()).map_err(io)?;
    conn.shutdown(std::net::Shutdown::Write).map_err(io)?;
    let mut answer = Vec::new();
    conn.read_to_end(&mut answer).map_err(io)?;
    let body = String::from_utf8_lossy(&answer).into_owned();
    let mut headers = BTreeMap::new();
    if let Some((name, _)) = body.split_once(": ") {
        headers.insert("x-echo-name".to_owned(), name.to_owned());
    }
    Ok(Response {
        status: 200,
        headers,
        body,
        elapsed: start.elapsed(),
    })
}
