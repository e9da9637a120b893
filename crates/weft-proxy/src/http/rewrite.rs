//! Path rewrites (`prefix_rewrite`, `regex_rewrite`) and redirect `Location`s, built
//! from the request the way Envoy's router does.

use crate::model::route::{PathRewrite, RedirectPath};
use crate::model::{PathMatch, Redirect};

/// The rewritten path and query, or None when the route does not rewrite. `matched`: the
/// route's path matcher (a prefix rewrite replaces what it matched).
pub fn rewrite(rw: &PathRewrite, matched: &PathMatch, path_and_query: &str) -> String {
    let (path, query) = split(path_and_query);
    let new_path = match rw {
        PathRewrite::Prefix(prefix) => {
            let matched_len = match matched {
                PathMatch::Prefix(p) => p.len().min(path.len()),
                // An exact path match: the whole path is what matched.
                PathMatch::Path(_) => path.len(),
                // Envoy refuses prefix_rewrite with safe_regex; keep the path.
                PathMatch::SafeRegex(_) => 0,
            };
            if matches!(matched, PathMatch::SafeRegex(_)) {
                path.to_string()
            } else {
                format!("{prefix}{}", &path[matched_len..])
            }
        }
        PathRewrite::Regex {
            pattern,
            substitution,
        } => pattern
            .replace_all(path, substitution.as_str())
            .into_owned(),
    };
    format!("{new_path}{query}")
}

/// `path` and `?query` (empty when there is none).
fn split(path_and_query: &str) -> (&str, &str) {
    match path_and_query.find('?') {
        Some(i) => (&path_and_query[..i], &path_and_query[i..]),
        None => (path_and_query, ""),
    }
}

/// The `Location` of a redirect. `scheme`: the request's (`x-forwarded-proto`);
/// `authority`: its Host.
pub fn location(
    r: &Redirect,
    matched: &PathMatch,
    scheme: &str,
    authority: &str,
    path_and_query: &str,
) -> String {
    let new_scheme = r.scheme.as_deref().unwrap_or(scheme);
    let host = match &r.host {
        // host_redirect replaces the authority; only port_redirect adds a port to it.
        Some(h) => h.clone(),
        None => request_host(authority, scheme, new_scheme, r.port.is_some()),
    };
    let port = r.port.map(|p| format!(":{p}")).unwrap_or_default();
    let path = match &r.path {
        None => {
            if r.strip_query {
                split(path_and_query).0.to_string()
            } else {
                path_and_query.to_string()
            }
        }
        // A query in path_redirect replaces the request's and is never stripped.
        Some(RedirectPath::Path(p)) if p.contains('?') => p.clone(),
        Some(RedirectPath::Path(p)) if r.strip_query => p.clone(),
        Some(RedirectPath::Path(p)) => format!("{p}{}", split(path_and_query).1),
        Some(RedirectPath::Rewrite(rw)) => {
            let rewritten = rewrite(rw, matched, path_and_query);
            if r.strip_query {
                split(&rewritten).0.to_string()
            } else {
                rewritten
            }
        }
    };
    format!("{new_scheme}://{host}{port}{path}")
}

/// The request's authority for a redirect: its port goes when a new port is set, or when
/// the scheme changes and the port was the old scheme's default (`http://x:80` ->
/// `https://x`), as Envoy's router does.
fn request_host(authority: &str, scheme: &str, new_scheme: &str, new_port: bool) -> String {
    let port_at = if authority.starts_with('[') {
        authority.rfind("]:").map(|i| i + 1)
    } else {
        authority.rfind(':')
    };
    let Some(at) = port_at else {
        return authority.to_string();
    };
    let port = &authority[at..];
    let default_port = (scheme == "https" && port == ":443") || (scheme == "http" && port == ":80");
    if new_port || (new_scheme != scheme && default_port) {
        authority[..at].to_string()
    } else {
        authority.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use regex::Regex;
    use std::sync::Arc;

    fn prefix(p: &str) -> PathMatch {
        PathMatch::Prefix(p.into())
    }

    #[test]
    fn prefix_and_regex_rewrites_keep_the_query() {
        let rw = PathRewrite::Prefix("/v2/".into());
        assert_eq!(
            rewrite(&rw, &prefix("/v1/"), "/v1/books?id=1"),
            "/v2/books?id=1"
        );
        assert_eq!(
            rewrite(&rw, &PathMatch::Path("/old".into()), "/old?x"),
            "/v2/?x"
        );
        let re = PathRewrite::Regex {
            pattern: Arc::new(Regex::new("^/service/([^/]+)(/.*)$").unwrap()),
            substitution: "${2}/instance/${1}".into(),
        };
        assert_eq!(
            rewrite(&re, &prefix("/"), "/service/foo/v1/api?q=1"),
            "/v1/api/instance/foo?q=1"
        );
    }

    fn redirect() -> Redirect {
        Redirect {
            status: 301,
            ..Default::default()
        }
    }

    #[test]
    fn redirect_locations() {
        let loc = |r: &Redirect, authority: &str, pq: &str| {
            location(r, &prefix("/old"), "http", authority, pq)
        };
        let mut https = redirect();
        https.scheme = Some("https".into());
        assert_eq!(
            loc(&https, "example.com:80", "/a?b"),
            "https://example.com/a?b"
        );
        assert_eq!(
            loc(&https, "example.com:8080", "/a"),
            "https://example.com:8080/a"
        );
        let mut host = redirect();
        host.host = Some("new.example.com".into());
        assert_eq!(loc(&host, "old:9080", "/a"), "http://new.example.com/a");
        host.port = Some(8443);
        assert_eq!(
            loc(&host, "old:9080", "/a"),
            "http://new.example.com:8443/a"
        );
        let mut port = redirect();
        port.port = Some(9000);
        assert_eq!(loc(&port, "[::1]:9080", "/a"), "http://[::1]:9000/a");
        let mut path = redirect();
        path.path = Some(RedirectPath::Path("/new".into()));
        assert_eq!(loc(&path, "h", "/old/x?q=1"), "http://h/new?q=1");
        path.strip_query = true;
        assert_eq!(loc(&path, "h", "/old/x?q=1"), "http://h/new");
        path.path = Some(RedirectPath::Path("/new?z=2".into()));
        assert_eq!(loc(&path, "h", "/old/x?q=1"), "http://h/new?z=2");
        let mut pre = redirect();
        pre.path = Some(RedirectPath::Rewrite(PathRewrite::Prefix("/fresh".into())));
        assert_eq!(loc(&pre, "h", "/old/x?q=1"), "http://h/fresh/x?q=1");
        pre.strip_query = true;
        assert_eq!(loc(&pre, "h", "/old/x?q=1"), "http://h/fresh/x");
    }
}
