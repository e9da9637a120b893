//! A blocking client for weftd's Kubernetes-shaped HTTP API (docs/api.md).

use reqwest::blocking::{Client as Http, RequestBuilder};
use reqwest::header::HeaderMap;
use serde::Deserialize;
use serde_json::Value;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;
use thiserror::Error;
use weft_config::Kind;

/// Why a call to weftd did not give the answer asked for.
#[derive(Debug, Error)]
pub enum ClientError {
    #[error("cannot reach weftd at {server} ({reason}); start it with \"weftd\" or set --server")]
    Unreachable { server: String, reason: String },
    /// weftd answered with a Kubernetes `Status`; printed the way kubectl prints it.
    #[error("{0}")]
    Server(Box<Status>),
    #[error("weftd at {server} answered {what} with HTTP {code} and an unexpected body: {body}")]
    Unexpected {
        server: String,
        what: String,
        code: u16,
        body: String,
    },
    #[error("request to weftd at {server} failed: {reason}")]
    Transport { server: String, reason: String },
    #[error(
        "no token for writes: cannot read {path} ({reason}); pass --token, set WEFT_TOKEN, \
         or set --data-dir to weftd's data directory"
    )]
    NoToken { path: String, reason: String },
}

impl ClientError {
    pub fn is_not_found(&self) -> bool {
        matches!(self, ClientError::Server(s) if s.code == 404)
    }
}

/// A Kubernetes `Status` error body.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
pub struct Status {
    #[serde(default)]
    pub code: u16,
    #[serde(default)]
    pub reason: String,
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub details: Option<StatusDetails>,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
pub struct StatusDetails {
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub causes: Vec<Cause>,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
pub struct Cause {
    #[serde(default)]
    pub field: String,
    #[serde(default)]
    pub message: String,
}

impl fmt::Display for Status {
    /// kubectl's wording: `Error from server (NotFound): ...`, and for 422 one line per
    /// cause under `The VirtualService "reviews" is invalid:`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let causes = self.details.as_ref().map(|d| d.causes.as_slice());
        if let (Some(d), Some(causes)) = (&self.details, causes) {
            if self.code == 422 && !causes.is_empty() {
                let line = |c: &Cause| match c.field.is_empty() {
                    true => c.message.clone(),
                    false => format!("{}: {}", c.field, c.message),
                };
                write!(f, "The {} {:?} is invalid:", d.kind, d.name)?;
                if let [only] = causes {
                    return write!(f, " {}", line(only));
                }
                for c in causes {
                    write!(f, "\n* {}", line(c))?;
                }
                return Ok(());
            }
        }
        let reason = if self.reason.is_empty() {
            format!("HTTP {}", self.code)
        } else {
            self.reason.clone()
        };
        write!(f, "Error from server ({reason}): {}", self.message)?;
        if self.code == 401 {
            // The usual cause is a token from another data dir; say where to look.
            f.write_str(" (check --token, WEFT_TOKEN or --data-dir)")?;
        }
        Ok(())
    }
}

/// What a PUT did.
#[derive(Debug)]
pub struct Written {
    /// 201: the object did not exist before.
    pub created: bool,
    /// `Warning: 299 - "..."` headers, unquoted.
    pub warnings: Vec<String>,
}

/// Talks to one weftd. Reads need nothing (but secrets); writes need the bearer token.
pub struct Client {
    server: String,
    token: Option<String>,
    token_file: PathBuf,
    http: Http,
}

impl Client {
    pub fn new(server: &str, token: Option<String>, token_file: PathBuf) -> Self {
        let http = Http::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(30))
            .build()
            .expect("TLS backend initializes");
        Client {
            server: server.trim_end_matches('/').to_string(),
            token,
            token_file,
            http,
        }
    }

    /// `GET /`: weftd's name, version and readiness.
    pub fn root(&self) -> Result<Value, ClientError> {
        let (_, _, body) = self.send("GET /", self.http.get(self.url("/")))?;
        self.json("GET /", 200, &body)
    }

    /// Lists `kind` in one namespace, or in all when `namespace` is None.
    pub fn list(
        &self,
        kind: Kind,
        namespace: Option<&str>,
        selector: Option<&str>,
    ) -> Result<Vec<Value>, ClientError> {
        let i = kind.info();
        let base = api_base(&kind.preferred_api_version());
        let path = match namespace {
            Some(ns) => format!("{base}/namespaces/{ns}/{}", i.plural),
            None => format!("{base}/{}", i.plural),
        };
        let mut req = self.read(kind, self.http.get(self.url(&path)))?;
        if let Some(sel) = selector {
            req = req.query(&[("labelSelector", sel)]);
        }
        let what = format!("GET {path}");
        let (_, _, body) = self.send(&what, req)?;
        let list = self.json(&what, 200, &body)?;
        match list.get("items") {
            Some(Value::Array(items)) => Ok(items.clone()),
            Some(Value::Null) | None => Ok(Vec::new()),
            Some(_) => Err(self.unexpected(&what, 200, &body)),
        }
    }

    pub fn get(&self, kind: Kind, namespace: &str, name: &str) -> Result<Value, ClientError> {
        let path = object_path(&kind.preferred_api_version(), kind, namespace, name);
        let what = format!("GET {path}");
        let req = self.read(kind, self.http.get(self.url(&path)))?;
        let (_, _, body) = self.send(&what, req)?;
        self.json(&what, 200, &body)
    }

    /// Creates or replaces one object (`weft apply`), at the apiVersion it was written in.
    pub fn put(&self, object: &Value, namespace: &str) -> Result<Written, ClientError> {
        let api_version = object["apiVersion"].as_str().unwrap_or_default();
        let kind = object["kind"]
            .as_str()
            .and_then(Kind::from_kind_name)
            .expect("apply sends only parsed Istio resources");
        let name = object["metadata"]["name"].as_str().unwrap_or_default();
        let path = object_path(api_version, kind, namespace, name);
        let req = self.http.put(self.url(&path)).json(object);
        let req = self.authorize(req)?;
        let (code, headers, _) = self.send(&format!("PUT {path}"), req)?;
        Ok(Written {
            created: code == 201,
            warnings: warnings(&headers),
        })
    }

    pub fn delete(&self, kind: Kind, namespace: &str, name: &str) -> Result<(), ClientError> {
        let path = object_path(&kind.preferred_api_version(), kind, namespace, name);
        let req = self.authorize(self.http.delete(self.url(&path)))?;
        self.send(&format!("DELETE {path}"), req).map(|_| ())
    }

    /// POSTs JSON to a weftd endpoint that needs the token (`/api/weft/v1/tokens`) and
    /// returns the answer's JSON.
    pub fn post_authorized(&self, path: &str, body: &Value) -> Result<Value, ClientError> {
        let what = format!("POST {path}");
        let req = self.authorize(self.http.post(self.url(path)).json(body))?;
        let (code, _, text) = self.send(&what, req)?;
        self.json(&what, code, &text)
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.server)
    }

    /// Reads of secrets carry the token too: weftd guards their private keys.
    fn read(&self, kind: Kind, req: RequestBuilder) -> Result<RequestBuilder, ClientError> {
        if kind.is_sensitive() {
            self.authorize(req)
        } else {
            Ok(req)
        }
    }

    fn authorize(&self, req: RequestBuilder) -> Result<RequestBuilder, ClientError> {
        let token = match &self.token {
            Some(t) => t.clone(),
            None => std::fs::read_to_string(&self.token_file)
                .map(|t| t.trim().to_string())
                .map_err(|e| ClientError::NoToken {
                    path: self.token_file.display().to_string(),
                    reason: io_reason(&e),
                })?,
        };
        Ok(req.bearer_auth(token))
    }

    /// Sends a request; any status >= 400 becomes an error carrying weftd's Status.
    fn send(
        &self,
        what: &str,
        req: RequestBuilder,
    ) -> Result<(u16, HeaderMap, String), ClientError> {
        let resp = req.send().map_err(|e| self.transport(e))?;
        let code = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp.text().map_err(|e| self.transport(e))?;
        if code >= 400 {
            return match serde_json::from_str::<Status>(&body) {
                Ok(status) if !status.message.is_empty() || !status.reason.is_empty() => {
                    Err(ClientError::Server(Box::new(Status { code, ..status })))
                }
                _ => Err(self.unexpected(what, code, &body)),
            };
        }
        Ok((code, headers, body))
    }

    fn json(&self, what: &str, code: u16, body: &str) -> Result<Value, ClientError> {
        serde_json::from_str(body).map_err(|_| self.unexpected(what, code, body))
    }

    fn unexpected(&self, what: &str, code: u16, body: &str) -> ClientError {
        let mut body: String = body.chars().take(200).collect();
        if body.is_empty() {
            body = "(empty)".into();
        }
        ClientError::Unexpected {
            server: self.server.clone(),
            what: what.to_string(),
            code,
            body,
        }
    }

    fn transport(&self, e: reqwest::Error) -> ClientError {
        let reason = root_cause(&e);
        if e.is_connect() || (e.is_timeout() && e.is_request()) {
            ClientError::Unreachable {
                server: self.server.clone(),
                reason,
            }
        } else {
            ClientError::Transport {
                server: self.server.clone(),
                reason,
            }
        }
    }
}

/// `/apis/{group}/{version}/namespaces/{ns}/{plural}/{name}`, or `/api/v1/...` for a
/// core kind (Secret).
fn object_path(api_version: &str, kind: Kind, namespace: &str, name: &str) -> String {
    format!(
        "{}/namespaces/{namespace}/{}/{name}",
        api_base(api_version),
        kind.info().plural
    )
}

/// `/apis/{group}/{version}`, or `/api/{version}` for Kubernetes' core group, whose
/// apiVersion has no group.
fn api_base(api_version: &str) -> String {
    if api_version.contains('/') {
        format!("/apis/{api_version}")
    } else {
        format!("/api/{api_version}")
    }
}

/// The innermost error in words a user knows ("connection refused", not a hyper chain).
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur: &(dyn std::error::Error + 'static) = e;
    loop {
        if let Some(io) = cur.downcast_ref::<std::io::Error>() {
            return io_reason(io);
        }
        match cur.source() {
            Some(next) => cur = next,
            None => return cur.to_string(),
        }
    }
}

fn io_reason(e: &std::io::Error) -> String {
    use std::io::ErrorKind::*;
    match e.kind() {
        ConnectionRefused => "connection refused".into(),
        NotFound => "no such file".into(),
        PermissionDenied => "permission denied".into(),
        TimedOut => "timed out".into(),
        _ => e.to_string(),
    }
}

/// `Warning: 299 - "text"` -> `text`.
fn warnings(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all("warning")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(|v| {
            match (v.find('"'), v.rfind('"')) {
                (Some(a), Some(b)) if b > a => &v[a + 1..b],
                _ => v,
            }
            .to_string()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(json: &str) -> Status {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn not_found_reads_like_kubectl() {
        let s = status(
            r#"{"kind":"Status","code":404,"reason":"NotFound","message":"virtualservices.networking.istio.io \"x\" not found"}"#,
        );
        assert_eq!(
            s.to_string(),
            r#"Error from server (NotFound): virtualservices.networking.istio.io "x" not found"#
        );
    }

    #[test]
    fn invalid_prints_one_line_per_cause() {
        let s = status(
            r#"{"code":422,"reason":"Invalid","message":"m","details":{"kind":"VirtualService","name":"reviews",
                "causes":[{"field":"spec.hosts","message":"Required value"},{"field":"spec.http[0].route[1].weight","message":"expected integer"}]}}"#,
        );
        assert_eq!(
            s.to_string(),
            "The VirtualService \"reviews\" is invalid:\n* spec.hosts: Required value\n* spec.http[0].route[1].weight: expected integer"
        );
        let one = status(
            r#"{"code":422,"reason":"Invalid","message":"m","details":{"kind":"Gateway","name":"gw",
                "causes":[{"field":"spec.servers","message":"Required value"}]}}"#,
        );
        assert_eq!(
            one.to_string(),
            "The Gateway \"gw\" is invalid: spec.servers: Required value"
        );
    }

    #[test]
    fn unauthorized_says_where_the_token_comes_from() {
        let s = status(r#"{"code":401,"reason":"Unauthorized","message":"bad token"}"#);
        assert!(s.to_string().contains("--data-dir"), "{s}");
    }

    #[test]
    fn warning_headers_are_unquoted() {
        let mut h = HeaderMap::new();
        h.append(
            "warning",
            r#"299 - "host \"x\" has no port""#.parse().unwrap(),
        );
        h.append("warning", "plain".parse().unwrap());
        assert_eq!(warnings(&h), vec![r#"host \"x\" has no port"#, "plain"]);
    }

    #[test]
    fn refused_connection_names_server_and_cure() {
        // Port 1 on loopback is essentially never listening.
        let c = Client::new("http://127.0.0.1:1/", None, PathBuf::from("/nonexistent"));
        let err = c.root().unwrap_err();
        assert_eq!(
            err.to_string(),
            "cannot reach weftd at http://127.0.0.1:1 (connection refused); start it with \"weftd\" or set --server"
        );
    }

    #[test]
    fn core_kinds_live_under_api_v1() {
        assert_eq!(
            object_path("v1", Kind::Secret, "istio-system", "cred"),
            "/api/v1/namespaces/istio-system/secrets/cred"
        );
        assert_eq!(
            object_path("networking.istio.io/v1", Kind::Gateway, "default", "gw"),
            "/apis/networking.istio.io/v1/namespaces/default/gateways/gw"
        );
    }

    #[test]
    fn reading_secrets_needs_the_token() {
        let c = Client::new(
            "http://127.0.0.1:1",
            None,
            PathBuf::from("/nonexistent/token"),
        );
        let err = c.list(Kind::Secret, None, None).unwrap_err();
        assert!(matches!(err, ClientError::NoToken { .. }), "{err}");
        // Other kinds are read without one (and here fail only to connect).
        let err = c.list(Kind::Gateway, None, None).unwrap_err();
        assert!(matches!(err, ClientError::Unreachable { .. }), "{err}");
    }

    #[test]
    fn writes_without_token_file_explain_the_fix() {
        let c = Client::new(
            "http://127.0.0.1:1",
            None,
            PathBuf::from("/nonexistent/token"),
        );
        let err = c
            .delete(Kind::VirtualService, "default", "reviews")
            .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("no token for writes: cannot read /nonexistent/token (no such file)"),
            "{err}"
        );
    }
}
