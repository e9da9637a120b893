//! The CORS filter (`envoy.filters.http.cors`): preflights answered by the proxy, actual
//! cross-origin requests annotated. Policies are read route first, then virtual host,
//! then configuration, field by field, as Envoy's filter does.

use super::routing::string_matches;
use super::{full, ResponseBody};
use crate::model::route::CorsPolicy;
use http::header::{HeaderMap, HeaderName, HeaderValue};
use http::{Method, Response, StatusCode};

const ALLOW_ORIGIN: &str = "access-control-allow-origin";
const ALLOW_CREDENTIALS: &str = "access-control-allow-credentials";
const ALLOW_METHODS: &str = "access-control-allow-methods";
const ALLOW_HEADERS: &str = "access-control-allow-headers";
const MAX_AGE: &str = "access-control-max-age";
const EXPOSE_HEADERS: &str = "access-control-expose-headers";
const ALLOW_PRIVATE_NETWORK: &str = "access-control-allow-private-network";

/// The policies in force for one request, most specific first.
pub struct Cors<'a> {
    policies: Vec<&'a CorsPolicy>,
}

/// What the decode side decided, for the encode side.
#[derive(Debug, Default)]
pub struct Latched {
    /// The request's Origin when it is allowed.
    origin: Option<String>,
}

pub enum Decision {
    /// Answer with this (a preflight).
    Respond(Response<ResponseBody>),
    Continue(Latched),
}

impl<'a> Cors<'a> {
    pub fn new(policies: impl IntoIterator<Item = Option<&'a CorsPolicy>>) -> Cors<'a> {
        Cors {
            policies: policies.into_iter().flatten().collect(),
        }
    }

    fn first<T>(&self, f: impl Fn(&CorsPolicy) -> Option<T>) -> Option<T> {
        self.policies.iter().find_map(|p| f(p))
    }

    fn text(&self, f: impl Fn(&CorsPolicy) -> &str) -> &str {
        self.policies
            .iter()
            .map(|p| f(p))
            .find(|s| !s.is_empty())
            .unwrap_or("")
    }

    fn origin_allowed(&self, origin: &str) -> bool {
        let Some(p) = self.policies.iter().find(|p| !p.allow_origins.is_empty()) else {
            return false;
        };
        p.allow_origins.iter().any(|m| {
            string_matches(&m.matcher, "*", m.ignore_case)
                || string_matches(&m.matcher, origin, m.ignore_case)
        })
    }

    /// The decode side: a preflight is answered here; otherwise the request goes on.
    pub fn decode(&self, method: &Method, headers: &HeaderMap) -> Decision {
        let enabled = self
            .policies
            .first()
            .is_some_and(|p| p.enabled.is_none_or(|f| f.sample()));
        if !enabled {
            return Decision::Continue(Latched::default());
        }
        let Some(origin) = headers
            .get(http::header::ORIGIN)
            .and_then(|v| v.to_str().ok())
            .filter(|o| !o.is_empty())
        else {
            return Decision::Continue(Latched::default());
        };
        let allowed = self.origin_allowed(origin);
        let latched = Latched {
            origin: allowed.then(|| origin.to_string()),
        };
        let request_method = headers
            .get("access-control-request-method")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if method != Method::OPTIONS || request_method.is_empty() {
            return Decision::Continue(latched);
        }
        let forward_unmatched = self
            .first(|p| p.forward_not_matching_preflights)
            .unwrap_or(true);
        if !allowed && forward_unmatched {
            return Decision::Continue(latched);
        }
        let mut resp = Response::new(full(String::new()));
        *resp.status_mut() = StatusCode::OK;
        let h = resp.headers_mut();
        if allowed {
            set(h, ALLOW_ORIGIN, origin);
        }
        if self.first(|p| p.allow_credentials).unwrap_or(false) {
            set(h, ALLOW_CREDENTIALS, "true");
        }
        let methods = self.text(|p| &p.allow_methods);
        if !methods.is_empty() {
            set(
                h,
                ALLOW_METHODS,
                if methods == "*" {
                    request_method
                } else {
                    methods
                },
            );
        }
        let allow_headers = self.text(|p| &p.allow_headers);
        if !allow_headers.is_empty() {
            let requested = headers
                .get("access-control-request-headers")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            set(
                h,
                ALLOW_HEADERS,
                if allow_headers == "*" {
                    requested
                } else {
                    allow_headers
                },
            );
        }
        let max_age = self.text(|p| &p.max_age);
        if !max_age.is_empty() {
            set(h, MAX_AGE, max_age);
        }
        let private_network = headers
            .get("access-control-request-private-network")
            .is_some_and(|v| v == "true");
        if private_network
            && self
                .first(|p| p.allow_private_network_access)
                .unwrap_or(false)
        {
            set(h, ALLOW_PRIVATE_NETWORK, "true");
        }
        Decision::Respond(resp)
    }

    /// The encode side: an allowed cross-origin request's response is annotated.
    pub fn encode(&self, latched: &Latched, headers: &mut HeaderMap) {
        let Some(origin) = &latched.origin else {
            return;
        };
        set(headers, ALLOW_ORIGIN, origin);
        if self.first(|p| p.allow_credentials).unwrap_or(false) {
            set(headers, ALLOW_CREDENTIALS, "true");
        }
        let expose = self.text(|p| &p.expose_headers);
        if !expose.is_empty() {
            set(headers, EXPOSE_HEADERS, expose);
        }
    }
}

fn set(headers: &mut HeaderMap, name: &'static str, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        headers.insert(HeaderName::from_static(name), v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::route::OriginMatcher;
    use crate::model::StringMatch;

    fn policy() -> CorsPolicy {
        CorsPolicy {
            allow_origins: vec![OriginMatcher {
                matcher: StringMatch::Exact("https://example.com".into()),
                ignore_case: false,
            }],
            allow_methods: "POST,GET".into(),
            allow_headers: "x-custom".into(),
            max_age: "86400".into(),
            forward_not_matching_preflights: Some(true),
            ..Default::default()
        }
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn preflight_is_answered_for_allowed_origins() {
        let p = policy();
        let cors = Cors::new([Some(&p)]);
        let pre = headers(&[
            ("origin", "https://example.com"),
            ("access-control-request-method", "POST"),
        ]);
        let Decision::Respond(resp) = cors.decode(&Method::OPTIONS, &pre) else {
            panic!("preflight not answered");
        };
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()[ALLOW_ORIGIN], "https://example.com");
        assert_eq!(resp.headers()[ALLOW_METHODS], "POST,GET");
        assert_eq!(resp.headers()[ALLOW_HEADERS], "x-custom");
        assert_eq!(resp.headers()[MAX_AGE], "86400");
        let evil = headers(&[
            ("origin", "https://evil.example"),
            ("access-control-request-method", "POST"),
        ]);
        assert!(
            matches!(cors.decode(&Method::OPTIONS, &evil), Decision::Continue(_)),
            "forwarded"
        );
        let mut strict = policy();
        strict.forward_not_matching_preflights = Some(false);
        let Decision::Respond(resp) = Cors::new([Some(&strict)]).decode(&Method::OPTIONS, &evil)
        else {
            panic!("not answered");
        };
        assert!(resp.headers().get(ALLOW_ORIGIN).is_none());
    }

    #[test]
    fn actual_requests_get_allow_origin_only_when_allowed() {
        let p = policy();
        let mut vh = CorsPolicy {
            expose_headers: "x-exposed".into(),
            allow_credentials: Some(true),
            ..Default::default()
        };
        vh.allow_origins.clear();
        let cors = Cors::new([Some(&p), Some(&vh)]);
        let Decision::Continue(latched) =
            cors.decode(&Method::GET, &headers(&[("origin", "https://example.com")]))
        else {
            panic!("not a preflight");
        };
        let mut out = HeaderMap::new();
        cors.encode(&latched, &mut out);
        assert_eq!(out[ALLOW_ORIGIN], "https://example.com");
        assert_eq!(
            out[EXPOSE_HEADERS], "x-exposed",
            "falls back to the virtual host's"
        );
        assert_eq!(out[ALLOW_CREDENTIALS], "true");
        let Decision::Continue(latched) = cors.decode(
            &Method::GET,
            &headers(&[("origin", "https://evil.example")]),
        ) else {
            panic!("not a preflight");
        };
        let mut out = HeaderMap::new();
        cors.encode(&latched, &mut out);
        assert!(out.is_empty());
    }

    #[test]
    fn wildcard_origin_allows_all() {
        let mut p = policy();
        p.allow_origins[0].matcher = StringMatch::Exact("*".into());
        assert!(Cors::new([Some(&p)]).origin_allowed("https://anything"));
        assert!(!Cors::new([None]).origin_allowed("https://anything"));
    }
}
