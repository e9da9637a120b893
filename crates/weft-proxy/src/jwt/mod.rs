//! `envoy.filters.http.jwt_authn`: end-user authentication with JSON Web Tokens, as Istio's
//! RequestAuthentication configures it. Providers (issuer, audiences, inline JWKS, token
//! locations, outputs) and rules (a path match and a requirement tree); a request whose
//! rule's requirement fails gets Envoy's 401 (403 for a disallowed audience) with the
//! failure text as body and a `www-authenticate: Bearer realm=...` challenge. On success
//! the payload goes to the request's dynamic metadata (`payload_in_metadata`), where RBAC
//! and route matches read it, and to headers when asked.

mod convert;
pub mod extract;
pub mod jwks;
#[cfg(test)]
mod tests;
pub mod token;

pub use convert::jwt_authn;

use crate::http::metadata::DynamicMetadata;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use extract::{Found, Location};
use http::header::{HeaderName, HeaderValue};
use http::{Request, StatusCode};
use jwks::Jwks;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use token::{Jwt, Status};

/// The filter name, also the dynamic-metadata namespace the payload is written under.
pub const FILTER_NAME: &str = "envoy.filters.http.jwt_authn";
pub const JWT_AUTHN_TYPE: &str = "envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication";

/// The filter's configuration (`JwtAuthentication`).
#[derive(Clone, Debug, serde::Serialize)]
pub struct JwtAuthn {
    #[serde(skip)]
    pub providers: BTreeMap<String, Provider>,
    #[serde(skip)]
    pub rules: Vec<Rule>,
    pub bypass_cors_preflight: bool,
}

/// How one issuer's tokens are found, verified and passed on (`JwtProvider`).
#[derive(Clone, Debug)]
pub struct Provider {
    /// Empty: any issuer.
    pub issuer: Option<String>,
    /// Empty: any audience.
    pub audiences: Vec<String>,
    pub jwks: Jwks,
    pub locations: Vec<Location>,
    pub forward: bool,
    pub forward_payload_header: Option<HeaderName>,
    pub pad_forward_payload_header: bool,
    pub payload_in_metadata: Option<String>,
    /// Claims whose space-separated string value goes to metadata as a list.
    pub space_delimited_claims: Vec<String>,
    /// Header <- claim (its path of keys through nested objects).
    pub claim_to_headers: Vec<(HeaderName, Vec<String>)>,
    pub clock_skew_seconds: u64,
    /// `clear_route_cache`: after this provider verified a token, the route is chosen
    /// again, so route matches see the payload (Istio sets it on gateways, where
    /// VirtualServices may route on `@request.auth.claims`).
    pub clear_route_cache: bool,
}

/// Request extension: `jwt_authn` cleared the route cache after verifying a token, as
/// Envoy's does for a provider with `clear_route_cache`. Envoy picks the route before
/// `jwt_authn` runs (the filter looks up its per-route config); only a cleared cache
/// makes route matching see what the filter wrote, so without this marker routes are
/// matched without the JWT payload, whatever order weft-proxy runs them in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RouteCacheCleared;

/// Which requests a requirement applies to (the path part of a `RouteMatch`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PathMatch {
    Prefix(String),
    Path(String),
}

/// `RequirementRule`: the first rule whose path matches decides; `None` requires nothing.
#[derive(Clone, Debug)]
pub struct Rule {
    pub path: PathMatch,
    pub requires: Option<Requirement>,
}

/// `JwtRequirement`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Requirement {
    /// A valid token of this provider, with these audiences instead of the provider's when
    /// given (`provider_and_audiences`).
    Provider(String, Option<Vec<String>>),
    Any(Vec<Requirement>),
    All(Vec<Requirement>),
    /// No token at all passes; a token present must be valid.
    AllowMissing,
    /// Anything passes; valid tokens still produce their outputs.
    AllowMissingOrFailed,
}

/// A request the filter refused: Envoy's status, body and challenge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejection {
    pub status: StatusCode,
    pub body: String,
    pub www_authenticate: String,
}

/// One provider's verdict on the request.
#[derive(Clone, Debug)]
enum Verdict {
    Missing,
    Failed(Status),
    Verified(Box<(Jwt, Found)>),
}

/// Verdicts computed once per provider and request.
struct Session<'a> {
    cfg: &'a JwtAuthn,
    headers: &'a http::HeaderMap,
    query: Option<&'a str>,
    now: u64,
    verdicts: BTreeMap<(String, Option<Vec<String>>), Verdict>,
}

impl Session<'_> {
    fn verdict(&mut self, name: &str, audiences: Option<&Vec<String>>) -> Verdict {
        let key = (name.to_string(), audiences.cloned());
        if let Some(v) = self.verdicts.get(&key) {
            return v.clone();
        }
        let v = match self.cfg.providers.get(name) {
            // Conversion checks names; unknown here means a requirement on nothing.
            None => Verdict::Failed(Status::UnknownIssuer),
            Some(p) => match extract::extract(&p.locations, self.headers, self.query) {
                None => Verdict::Missing,
                Some(found) => match verify(p, audiences, &found.token, self.now) {
                    Ok(jwt) => Verdict::Verified(Box::new((jwt, found))),
                    Err(s) => Verdict::Failed(s),
                },
            },
        };
        self.verdicts.insert(key, v.clone());
        v
    }

    fn evaluate(&mut self, req: &Requirement) -> Result<(), Status> {
        match req {
            Requirement::Provider(name, aud) => match self.verdict(name, aud.as_ref()) {
                Verdict::Verified(_) => Ok(()),
                Verdict::Missing => Err(Status::Missing),
                Verdict::Failed(s) => Err(s),
            },
            Requirement::Any(list) => {
                let mut error = Status::Missing;
                for r in list {
                    match self.evaluate(r) {
                        Ok(()) => return Ok(()),
                        Err(Status::Missing) => {}
                        Err(s) if error == Status::Missing => error = s,
                        Err(_) => {}
                    }
                }
                Err(error)
            }
            Requirement::All(list) => list.iter().try_for_each(|r| self.evaluate(r)),
            Requirement::AllowMissing => {
                // Any token at any provider's location must verify with its provider.
                let names: Vec<String> = self.cfg.providers.keys().cloned().collect();
                let mut error = None;
                for name in names {
                    match self.verdict(&name, None) {
                        Verdict::Verified(_) => return Ok(()),
                        Verdict::Failed(s) => {
                            error.get_or_insert(s);
                        }
                        Verdict::Missing => {}
                    }
                }
                error.map_or(Ok(()), Err)
            }
            Requirement::AllowMissingOrFailed => {
                for name in self.cfg.providers.keys().cloned().collect::<Vec<_>>() {
                    self.verdict(&name, None);
                }
                Ok(())
            }
        }
    }
}

/// Envoy's checks in its order: issuer, time window, audiences, signature.
fn verify(
    p: &Provider,
    audiences: Option<&Vec<String>>,
    token: &str,
    now: u64,
) -> Result<Jwt, Status> {
    let jwt = Jwt::parse(token)?;
    if let Some(issuer) = &p.issuer {
        if jwt.iss.as_deref() != Some(issuer.as_str()) {
            return Err(Status::UnknownIssuer);
        }
    }
    jwt.check_time(now, p.clock_skew_seconds)?;
    if !jwt.audience_allowed(audiences.unwrap_or(&p.audiences)) {
        return Err(Status::AudienceNotAllowed);
    }
    jwt.verify_signature(&p.jwks)?;
    Ok(jwt)
}

fn is_cors_preflight(headers: &http::HeaderMap, method: &http::Method) -> bool {
    method == http::Method::OPTIONS
        && headers.contains_key(http::header::ORIGIN)
        && headers.contains_key(http::header::ACCESS_CONTROL_REQUEST_METHOD)
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl JwtAuthn {
    /// Runs the filter on a request: `Ok` lets it continue (with metadata and headers
    /// set, and marked [`RouteCacheCleared`] when a provider that verified a token asks
    /// for it), `Err` is the local reply to send instead.
    pub fn authenticate<B>(&self, req: &mut Request<B>, now: u64) -> Result<(), Rejection> {
        // Claim headers come only from verified tokens: a client's own are dropped first,
        // on every path, as Envoy does.
        for p in self.providers.values() {
            for (header, _) in &p.claim_to_headers {
                req.headers_mut().remove(header);
            }
        }
        if self.bypass_cors_preflight && is_cors_preflight(req.headers(), req.method()) {
            return Ok(());
        }
        let path = req.uri().path().to_string();
        let Some(rule) = self.rules.iter().find(|r| match &r.path {
            PathMatch::Prefix(p) => path.starts_with(p.as_str()),
            PathMatch::Path(p) => &path == p,
        }) else {
            return Ok(());
        };
        let Some(requirement) = &rule.requires else {
            return Ok(());
        };
        let query = req.uri().query().map(str::to_string);
        let mut session = Session {
            cfg: self,
            headers: req.headers(),
            query: query.as_deref(),
            now,
            verdicts: BTreeMap::new(),
        };
        let result = session.evaluate(requirement);
        let verdicts = std::mem::take(&mut session.verdicts);
        if let Err(status) = result {
            tracing::debug!(%status, "jwt_authn: request refused");
            return Err(self.rejection(req, status));
        }
        // Outputs of every token that verified, once per provider.
        let mut done = Vec::new();
        for ((name, _), v) in verdicts {
            let Verdict::Verified(verified) = v else {
                continue;
            };
            if done.contains(&name) {
                continue;
            }
            let (jwt, found) = *verified;
            if let Some(p) = self.providers.get(&name) {
                outputs(p, &jwt, &found, req);
                if p.clear_route_cache {
                    req.extensions_mut().insert(RouteCacheCleared);
                }
            }
            done.push(name);
        }
        Ok(())
    }

    fn rejection<B>(&self, req: &Request<B>, status: Status) -> Rejection {
        let scheme = req
            .headers()
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("http");
        let host = req
            .uri()
            .authority()
            .map(|a| a.as_str().to_string())
            .or_else(|| {
                req.headers()
                    .get(http::header::HOST)
                    .and_then(|h| h.to_str().ok())
                    .map(str::to_string)
            })
            .unwrap_or_default();
        let path = req
            .headers()
            .get("x-envoy-original-path")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
            .unwrap_or_else(|| {
                req.uri()
                    .path_and_query()
                    .map_or("/", |p| p.as_str())
                    .to_string()
            });
        let mut challenge = format!("Bearer realm=\"{scheme}://{host}{path}\"");
        if status != Status::Missing {
            challenge.push_str(", error=\"invalid_token\"");
        }
        Rejection {
            status: if status == Status::AudienceNotAllowed {
                StatusCode::FORBIDDEN
            } else {
                StatusCode::UNAUTHORIZED
            },
            body: status.to_string(),
            www_authenticate: challenge,
        }
    }
}

/// A claim as a header value: strings as they are, numbers and booleans printed; other
/// types are not copied (as in Envoy).
fn claim_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// A claim by its path of keys through nested objects.
fn claim<'a>(payload: &'a Map<String, Value>, path: &[String]) -> Option<&'a Value> {
    let (first, rest) = path.split_first()?;
    let mut v = payload.get(first)?;
    for key in rest {
        v = v.as_object()?.get(key)?;
    }
    Some(v)
}

fn outputs<B>(p: &Provider, jwt: &Jwt, found: &Found, req: &mut Request<B>) {
    if let Some(key) = &p.payload_in_metadata {
        let mut payload = jwt.payload.clone();
        for name in &p.space_delimited_claims {
            if let Some(Value::String(s)) = payload.get(name) {
                let list = s.split(' ').filter(|x| !x.is_empty());
                let list = list.map(|x| Value::String(x.to_string())).collect();
                payload.insert(name.clone(), Value::Array(list));
            }
        }
        DynamicMetadata::of_mut(req).set(FILTER_NAME, key, Value::Object(payload));
    }
    let headers = req.headers_mut();
    if let Some(h) = &p.forward_payload_header {
        let value = if p.pad_forward_payload_header {
            // Re-encode with padding: `base64url` with `=`.
            let raw = URL_SAFE_NO_PAD.decode(&jwt.payload_b64).unwrap_or_default();
            base64::engine::general_purpose::URL_SAFE.encode(raw)
        } else {
            jwt.payload_b64.clone()
        };
        if let Ok(v) = HeaderValue::from_str(&value) {
            headers.insert(h.clone(), v);
        }
    }
    for (header, name) in &p.claim_to_headers {
        let value = claim(&jwt.payload, name).and_then(claim_text);
        if let Some(v) = value.and_then(|v| HeaderValue::from_str(&v).ok()) {
            headers.insert(header.clone(), v);
        }
    }
    if !p.forward {
        extract::remove(found, headers);
    }
}

/// The connection manager's `jwt_authn` filter, if it lists one (at most one).
pub fn from_http_filters(
    field: &str,
    filters: &[envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::HttpFilter],
) -> crate::xds::convert::Result<Option<std::sync::Arc<JwtAuthn>>> {
    use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::http_filter::ConfigType;
    let mut found = None;
    for (i, f) in filters.iter().enumerate() {
        let Some(ConfigType::TypedConfig(any)) = &f.config_type else {
            continue;
        };
        if crate::xds::convert::type_name(any) != JWT_AUTHN_TYPE {
            continue;
        }
        let field = format!("{field}[{i}].typed_config");
        if found.is_some() {
            return Err(crate::xds::convert::unsupported(
                field,
                "a second jwt_authn filter",
            ));
        }
        let proto = crate::xds::convert::unpack(&field, any, JWT_AUTHN_TYPE)?;
        found = Some(std::sync::Arc::new(jwt_authn(&field, &proto)?));
    }
    Ok(found)
}

impl Rejection {
    /// Adds the `www-authenticate` challenge to the local reply.
    pub fn challenge(&self, headers: &mut http::HeaderMap) {
        if let Ok(v) = HeaderValue::from_str(&self.www_authenticate) {
            headers.insert(http::header::WWW_AUTHENTICATE, v);
        }
    }
}
