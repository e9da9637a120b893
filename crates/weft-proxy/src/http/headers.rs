//! Applying header edits of a route configuration's levels: removals first, then
//! additions by append action, with `%COMMAND%` values evaluated per request.

use crate::model::route::{AppendAction, HeaderMutations, HeaderOps, RouteCluster, ValuePart};
use crate::model::{Route, RouteConfig, VirtualHost};
use http::header::{HeaderMap, HeaderName, HeaderValue};
use std::net::SocketAddr;

/// The levels in the order Envoy evaluates them: the weighted cluster, then route, virtual
/// host and configuration (most to least specific, so a less specific overwrite wins), or
/// the reverse for the three when `most_specific_header_mutations_wins`.
pub fn levels<'a>(
    rc: &'a RouteConfig,
    vh: &'a VirtualHost,
    route: &'a Route,
    cluster: Option<&'a RouteCluster>,
) -> Vec<&'a HeaderMutations> {
    let mut chain = vec![&route.headers, &vh.headers, &rc.headers];
    if rc.most_specific_header_mutations_wins {
        chain.reverse();
    }
    let mut out: Vec<&HeaderMutations> = cluster.map(|c| &c.headers).into_iter().collect();
    out.extend(chain);
    out.retain(|m| !m.is_empty());
    out
}

pub fn apply_request(
    levels: &[&HeaderMutations],
    headers: &mut HeaderMap,
    peer: Option<SocketAddr>,
) {
    for m in levels {
        apply(&m.request, headers, peer, None);
    }
}

/// `request`: the downstream request's headers, for `%REQ(...)%` in response values.
pub fn apply_response(
    levels: &[&HeaderMutations],
    headers: &mut HeaderMap,
    peer: Option<SocketAddr>,
    request: &HeaderMap,
) {
    for m in levels {
        apply(&m.response, headers, peer, Some(request));
    }
}

fn apply(
    ops: &HeaderOps,
    headers: &mut HeaderMap,
    peer: Option<SocketAddr>,
    request: Option<&HeaderMap>,
) {
    for name in &ops.remove {
        headers.remove(name.as_str());
    }
    for add in &ops.add {
        let value = evaluate(&add.value, peer, request.unwrap_or(headers));
        if value.is_empty() && !add.keep_empty_value {
            continue;
        }
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(add.name.as_bytes()),
            HeaderValue::from_str(&value),
        ) else {
            tracing::debug!(header = %add.name, "header value not representable; skipped");
            continue;
        };
        match add.action {
            AppendAction::AppendIfExistsOrAdd => {
                headers.append(name, value);
            }
            AppendAction::AddIfAbsent => {
                if !headers.contains_key(&name) {
                    headers.insert(name, value);
                }
            }
            AppendAction::OverwriteIfExistsOrAdd => {
                headers.insert(name, value);
            }
            AppendAction::OverwriteIfExists => {
                if headers.contains_key(&name) {
                    headers.insert(name, value);
                }
            }
        }
    }
}

fn evaluate(parts: &[ValuePart], peer: Option<SocketAddr>, request: &HeaderMap) -> String {
    let mut out = String::new();
    for p in parts {
        match p {
            ValuePart::Literal(s) => out.push_str(s),
            ValuePart::DownstreamRemoteAddress => {
                if let Some(p) = peer {
                    out.push_str(&p.to_string());
                }
            }
            ValuePart::DownstreamRemoteAddressWithoutPort => {
                if let Some(p) = peer {
                    out.push_str(&p.ip().to_string());
                }
            }
            ValuePart::RequestHeader(name) => {
                if let Some(v) = request.get(name.as_str()).and_then(|v| v.to_str().ok()) {
                    out.push_str(v);
                }
            }
        }
    }
    out
}

/// What the connection manager does to every request before the filters, as Envoy's
/// does: an `x-request-id` when there is none (`generate_request_id`), and at the edge
/// (`use_remote_address`, which Istio sets on gateways only) the client's address
/// appended to `x-forwarded-for`.
pub fn connection_manager_request<B>(
    req: &mut http::Request<B>,
    peer: Option<SocketAddr>,
    edge: bool,
) {
    let h = req.headers_mut();
    let request_id = HeaderName::from_static("x-request-id");
    if !h.contains_key(&request_id) {
        if let Ok(v) = HeaderValue::from_str(&super::uuid_v4()) {
            h.insert(request_id, v);
        }
    }
    if let (true, Some(peer)) = (edge, peer) {
        let xff = HeaderName::from_static("x-forwarded-for");
        let ip = peer.ip().to_string();
        let value = match h.get(&xff).and_then(|v| v.to_str().ok()) {
            Some(prior) if !prior.is_empty() => format!("{prior}, {ip}"),
            _ => ip,
        };
        if let Ok(v) = HeaderValue::from_str(&value) {
            h.insert(xff, v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::route::HeaderAdd;

    fn add(name: &str, value: &str, action: AppendAction) -> HeaderAdd {
        HeaderAdd {
            name: name.into(),
            value: vec![ValuePart::Literal(value.into())],
            action,
            keep_empty_value: false,
        }
    }

    fn map(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.append(*k, HeaderValue::from_static(v));
        }
        m
    }

    #[test]
    fn append_actions() {
        let ops = HeaderOps {
            remove: vec!["x-gone".into()],
            add: vec![
                add("x-append", "2", AppendAction::AppendIfExistsOrAdd),
                add("x-absent", "new", AppendAction::AddIfAbsent),
                add("x-kept", "new", AppendAction::AddIfAbsent),
                add("x-set", "new", AppendAction::OverwriteIfExistsOrAdd),
                add("x-only-if", "new", AppendAction::OverwriteIfExists),
                add("x-empty", "", AppendAction::OverwriteIfExistsOrAdd),
                add("x-gone", "back", AppendAction::AppendIfExistsOrAdd),
            ],
        };
        let mut h = map(&[
            ("x-append", "1"),
            ("x-kept", "old"),
            ("x-set", "old"),
            ("x-set", "older"),
            ("x-gone", "x"),
        ]);
        apply(&ops, &mut h, None, None);
        let all =
            |n: &str| -> Vec<&str> { h.get_all(n).iter().map(|v| v.to_str().unwrap()).collect() };
        assert_eq!(all("x-append"), ["1", "2"]);
        assert_eq!(all("x-absent"), ["new"]);
        assert_eq!(all("x-kept"), ["old"]);
        assert_eq!(all("x-set"), ["new"]);
        assert!(all("x-only-if").is_empty());
        assert!(all("x-empty").is_empty(), "empty values are dropped");
        assert_eq!(all("x-gone"), ["back"], "removal happens before additions");
    }

    #[test]
    fn values_see_the_client_and_request() {
        let peer: SocketAddr = "10.0.0.7:5555".parse().unwrap();
        let parts = [
            ValuePart::DownstreamRemoteAddressWithoutPort,
            ValuePart::Literal("/".into()),
            ValuePart::RequestHeader("x-user".into()),
        ];
        assert_eq!(
            evaluate(&parts, Some(peer), &map(&[("x-user", "jason")])),
            "10.0.0.7/jason"
        );
    }

    #[test]
    fn least_specific_overwrite_wins_by_default() {
        let level = |v: &str| HeaderMutations {
            request: HeaderOps {
                remove: vec![],
                add: vec![add("x-level", v, AppendAction::OverwriteIfExistsOrAdd)],
            },
            response: HeaderOps::default(),
        };
        let mut rc = RouteConfig {
            headers: level("config"),
            ..Default::default()
        };
        let vh = VirtualHost {
            headers: level("vhost"),
            ..Default::default()
        };
        let route = Route {
            name: "x".into(),
            matcher: crate::model::RouteMatch {
                path: crate::model::PathMatch::Prefix("/".into()),
                case_sensitive: true,
                headers: vec![],
                query_parameters: vec![],
            },
            action: crate::model::Action::DirectResponse {
                status: 200,
                body: None,
            },
            headers: level("route"),
            filters: Default::default(),
        };
        let mut h = HeaderMap::new();
        apply_request(&levels(&rc, &vh, &route, None), &mut h, None);
        assert_eq!(h["x-level"], "config");
        rc.most_specific_header_mutations_wins = true;
        let mut h = HeaderMap::new();
        apply_request(&levels(&rc, &vh, &route, None), &mut h, None);
        assert_eq!(h["x-level"], "route");
    }
}
