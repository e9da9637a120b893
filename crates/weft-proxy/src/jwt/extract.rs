//! Where a provider looks for its token (`from_headers` with a value prefix, `from_params`,
//! `from_cookies`; by default `Authorization: Bearer <token>` and the `access_token` query
//! parameter), and taking a forwarded token off the request.

use http::HeaderMap;

/// One place a token may be.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Location {
    /// A header, the token after `prefix` (found anywhere in the value, as Envoy does).
    Header {
        name: http::HeaderName,
        prefix: String,
    },
    Param(String),
    Cookie(String),
}

/// The default locations when a provider names none.
pub fn default_locations() -> Vec<Location> {
    vec![
        Location::Header {
            name: http::header::AUTHORIZATION,
            prefix: "Bearer ".to_string(),
        },
        Location::Param("access_token".to_string()),
    ]
}

/// A token found at a location.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Found {
    pub token: String,
    pub location: Location,
}

/// The token ends at the first character a compact JWS cannot hold (a header may carry
/// more after it, e.g. `Bearer <jwt>, other`).
fn token_prefix(s: &str) -> &str {
    let end = s
        .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '=')))
        .unwrap_or(s.len());
    &s[..end]
}

/// The first token at `locations`, in their order.
pub fn extract(locations: &[Location], headers: &HeaderMap, query: Option<&str>) -> Option<Found> {
    locations.iter().find_map(|location| {
        let token = match location {
            Location::Header { name, prefix } => headers.get_all(name).iter().find_map(|v| {
                let v = v.to_str().ok()?;
                let t = if prefix.is_empty() {
                    v.trim()
                } else {
                    let at = v.find(prefix.as_str())?;
                    token_prefix(&v[at + prefix.len()..])
                };
                (!t.is_empty()).then(|| t.to_string())
            }),
            Location::Param(name) => query?.split('&').find_map(|pair| {
                let (k, v) = pair.split_once('=')?;
                (k == name && !v.is_empty()).then(|| v.to_string())
            }),
            Location::Cookie(name) => headers
                .get_all(http::header::COOKIE)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(';'))
                .find_map(|c| {
                    let (k, v) = c.trim().split_once('=')?;
                    (k == name && !v.is_empty()).then(|| v.trim_matches('"').to_string())
                }),
        }?;
        Some(Found {
            token,
            location: location.clone(),
        })
    })
}

/// Takes a token off the request when its provider does not `forward` it. As in Envoy,
/// only a header location is removed; query parameters and cookies stay.
pub fn remove(found: &Found, headers: &mut HeaderMap) {
    if let Location::Header { name, .. } = &found.location {
        headers.remove(name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    #[test]
    fn default_locations_are_bearer_then_access_token() {
        let d = default_locations();
        let h = headers(&[("authorization", "Bearer a.b.c")]);
        assert_eq!(
            extract(&d, &h, Some("access_token=x.y.z")).unwrap().token,
            "a.b.c"
        );
        let h = headers(&[("authorization", "Basic dXNlcg==")]);
        let found = extract(&d, &h, Some("q=1&access_token=x.y.z")).unwrap();
        assert_eq!(found.token, "x.y.z");
        assert_eq!(found.location, Location::Param("access_token".into()));
        assert_eq!(extract(&d, &HeaderMap::new(), None), None);
    }

    #[test]
    fn custom_headers_prefixes_and_cookies() {
        let locs = vec![
            Location::Header {
                name: http::HeaderName::from_static("x-jwt"),
                prefix: String::new(),
            },
            Location::Header {
                name: http::HeaderName::from_static("x-auth"),
                prefix: "Token ".into(),
            },
            Location::Cookie("session".into()),
        ];
        let h = headers(&[("x-auth", "scheme Token a.b.c, more")]);
        assert_eq!(extract(&locs, &h, None).unwrap().token, "a.b.c");
        let h = headers(&[("cookie", "other=1; session=c.d.e")]);
        assert_eq!(extract(&locs, &h, None).unwrap().token, "c.d.e");
        let mut h = headers(&[("x-jwt", " f.g.h ")]);
        let found = extract(&locs, &h, None).unwrap();
        assert_eq!(found.token, "f.g.h");
        remove(&found, &mut h);
        assert!(h.get("x-jwt").is_none());
    }
}
