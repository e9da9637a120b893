//! Hash policies (`RouteAction.hash_policy`): the request's hash for consistent-hash load
//! balancers, computed like Envoy (xxHash64 of the key, policies combined by rotate-xor),
//! and the `Set-Cookie` Envoy sends when a cookie policy with a TTL finds no cookie.

use crate::cluster::xxhash64;
use crate::model::route::{HashKey, HashPolicy};
use http::header::{HeaderMap, HeaderValue};
use std::net::SocketAddr;

/// What the load balancer gets from the route for one request (`Upstream::send`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LbContext {
    /// None when no policy produced a hash (the balancer then picks as without one).
    pub hash: Option<u64>,
}

/// The request's hash, and `Set-Cookie` values to add to the response.
pub fn compute(
    policies: &[HashPolicy],
    headers: &HeaderMap,
    query: &str,
    peer: Option<SocketAddr>,
) -> (LbContext, Vec<HeaderValue>) {
    let mut hash: Option<u64> = None;
    let mut cookies = Vec::new();
    for p in policies {
        let Some(new) = evaluate(&p.key, headers, query, peer, &mut cookies) else {
            continue;
        };
        hash = Some(match hash {
            Some(h) => h.rotate_left(1) ^ new,
            None => new,
        });
        if p.terminal {
            break;
        }
    }
    (LbContext { hash }, cookies)
}

fn evaluate(
    key: &HashKey,
    headers: &HeaderMap,
    query: &str,
    peer: Option<SocketAddr>,
    set_cookies: &mut Vec<HeaderValue>,
) -> Option<u64> {
    match key {
        HashKey::Header(name) => {
            let mut values: Vec<&[u8]> = headers
                .get_all(name.as_str())
                .iter()
                .map(|v| v.as_bytes())
                .collect();
            match values.len() {
                0 => None,
                1 => Some(xxhash64(values[0], 0)),
                _ => {
                    // Order-independent over repeated headers.
                    values.sort();
                    Some(values.iter().fold(0, |seed, v| xxhash64(v, seed)))
                }
            }
        }
        HashKey::Cookie {
            name,
            ttl,
            path,
            attributes,
        } => {
            if let Some(v) = cookie(headers, name) {
                return Some(xxhash64(v.as_bytes(), 0));
            }
            let ttl = (*ttl)?;
            // The same value for every request of one client address, so concurrent
            // requests agree on the cookie.
            let seed_text = peer.map(|p| p.to_string()).unwrap_or_default();
            let value = format!("{:016x}", xxhash64(seed_text.as_bytes(), 0));
            let mut set = format!("{name}=\"{value}\"");
            if ttl.as_secs() > 0 {
                set.push_str(&format!("; Max-Age={}", ttl.as_secs()));
            }
            if !path.is_empty() {
                set.push_str(&format!("; Path={path}"));
            }
            for (n, v) in attributes {
                if v.is_empty() {
                    set.push_str(&format!("; {n}"));
                } else {
                    set.push_str(&format!("; {n}={v}"));
                }
            }
            set.push_str("; HttpOnly");
            if let Ok(h) = HeaderValue::from_str(&set) {
                set_cookies.push(h);
            }
            Some(xxhash64(value.as_bytes(), 0))
        }
        HashKey::SourceIp => peer.map(|p| xxhash64(p.ip().to_string().as_bytes(), 0)),
        HashKey::QueryParameter(name) => query
            .trim_start_matches('?')
            .split('&')
            .find_map(|kv| {
                let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                (k == name).then_some(v)
            })
            .map(|v| xxhash64(v.as_bytes(), 0)),
    }
}

/// A cookie's value from the `Cookie` headers, surrounding quotes removed.
fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| {
            let (k, v) = pair.trim().split_once('=')?;
            (k == name).then(|| v.trim_matches('"'))
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn header(name: &str) -> HashPolicy {
        HashPolicy {
            key: HashKey::Header(name.into()),
            terminal: false,
        }
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn same_key_same_hash() {
        let p = [header("x-user")];
        let a = compute(&p, &headers(&[("x-user", "alice")]), "", None)
            .0
            .hash;
        let a2 = compute(&p, &headers(&[("x-user", "alice")]), "", None)
            .0
            .hash;
        let b = compute(&p, &headers(&[("x-user", "bob")]), "", None).0.hash;
        assert!(a.is_some());
        assert_eq!(a, a2);
        assert_ne!(a, b);
        assert_eq!(compute(&p, &HeaderMap::new(), "", None).0.hash, None);
    }

    #[test]
    fn policies_combine_and_terminal_stops() {
        let h = headers(&[("x-a", "1"), ("x-b", "2")]);
        let one = compute(&[header("x-a")], &h, "", None).0.hash.unwrap();
        let two = compute(&[header("x-a"), header("x-b")], &h, "", None)
            .0
            .hash
            .unwrap();
        assert_ne!(one, two);
        let mut terminal = header("x-a");
        terminal.terminal = true;
        assert_eq!(
            compute(&[terminal, header("x-b")], &h, "", None).0.hash,
            Some(one)
        );
    }

    #[test]
    fn cookie_with_ttl_is_generated_once_per_client() {
        let p = [HashPolicy {
            key: HashKey::Cookie {
                name: "user".into(),
                ttl: Some(Duration::from_secs(10)),
                path: "/".into(),
                attributes: vec![("SameSite".into(), "Strict".into())],
            },
            terminal: false,
        }];
        let peer: SocketAddr = "10.1.2.3:4000".parse().unwrap();
        let (ctx, set) = compute(&p, &HeaderMap::new(), "", Some(peer));
        assert_eq!(set.len(), 1);
        let cookie = set[0].to_str().unwrap();
        assert!(cookie.starts_with("user=\""), "{cookie}");
        assert!(
            cookie.ends_with("\"; Max-Age=10; Path=/; SameSite=Strict; HttpOnly"),
            "{cookie}"
        );
        // The client sends it back: same hash, no new cookie.
        let value = cookie.split('"').nth(1).unwrap().to_string();
        let mut back = HeaderMap::new();
        back.insert(
            "cookie",
            HeaderValue::from_str(&format!("a=b; user={value}")).unwrap(),
        );
        let (again, set) = compute(&p, &back, "", Some(peer));
        assert!(set.is_empty());
        assert_eq!(again.hash, ctx.hash);
    }

    #[test]
    fn source_ip_and_query_parameter() {
        let ip = HashPolicy {
            key: HashKey::SourceIp,
            terminal: false,
        };
        let a: SocketAddr = "10.0.0.1:1".parse().unwrap();
        let a2: SocketAddr = "10.0.0.1:2".parse().unwrap();
        assert_eq!(
            compute(std::slice::from_ref(&ip), &HeaderMap::new(), "", Some(a)).0,
            compute(&[ip], &HeaderMap::new(), "", Some(a2)).0,
            "the port does not matter"
        );
        let q = HashPolicy {
            key: HashKey::QueryParameter("u".into()),
            terminal: false,
        };
        let h1 = compute(
            std::slice::from_ref(&q),
            &HeaderMap::new(),
            "?x=1&u=7",
            None,
        )
        .0
        .hash;
        assert_eq!(h1, Some(xxhash64(b"7", 0)));
    }
}
