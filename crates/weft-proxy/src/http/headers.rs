//! Applying header edits of a route configuration's levels: removals first, then
//! additions by append action, with `%COMMAND%` values evaluated per request.

use crate::listener::Downstream;
use crate::model::listener::Forwarding;
use crate::model::route::{AppendAction, HeaderMutations, HeaderOps, RouteCluster, ValuePart};
use crate::model::{Route, RouteConfig, VirtualHost};
use http::header::{HeaderMap, HeaderName, HeaderValue};
use std::net::{IpAddr, SocketAddr};
use std::sync::OnceLock;

/// The levels of header edits that apply to a request, at most four (see [`levels`]),
/// kept inline: they are looked up for every request.
#[derive(Clone, Copy, Default)]
pub struct Levels<'a> {
    items: [Option<&'a HeaderMutations>; 4],
}

impl<'a> Levels<'a> {
    pub fn iter(&self) -> impl Iterator<Item = &'a HeaderMutations> + '_ {
        self.items.iter().flatten().copied()
    }

    /// Whether a response value reads the request's headers (`%REQ(...)%`), which must
    /// then be kept until the response.
    pub fn response_reads_request(&self) -> bool {
        self.iter().any(|m| {
            m.response.add.iter().any(|a| {
                a.value
                    .iter()
                    .any(|p| matches!(p, ValuePart::RequestHeader(_)))
            })
        })
    }
}

/// The levels in the order Envoy evaluates them: the weighted cluster, then route, virtual
/// host and configuration (most to least specific, so a less specific overwrite wins), or
/// the reverse for the three when `most_specific_header_mutations_wins`.
pub fn levels<'a>(
    rc: &'a RouteConfig,
    vh: &'a VirtualHost,
    route: &'a Route,
    cluster: Option<&'a RouteCluster>,
) -> Levels<'a> {
    let mut chain = [&route.headers, &vh.headers, &rc.headers];
    if rc.most_specific_header_mutations_wins {
        chain.reverse();
    }
    let mut out = Levels::default();
    let present = cluster.map(|c| &c.headers).into_iter().chain(chain);
    for (slot, m) in out.items.iter_mut().zip(present.filter(|m| !m.is_empty())) {
        *slot = Some(m);
    }
    out
}

pub fn apply_request(levels: &Levels<'_>, headers: &mut HeaderMap, peer: Option<SocketAddr>) {
    for m in levels.iter() {
        apply(&m.request, headers, peer, None);
    }
}

/// `request`: the downstream request's headers, for `%REQ(...)%` in response values.
pub fn apply_response(
    levels: &Levels<'_>,
    headers: &mut HeaderMap,
    peer: Option<SocketAddr>,
    request: &HeaderMap,
) {
    for m in levels.iter() {
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
/// does: an `x-request-id` when there is none (`generate_request_id`), and the forwarding
/// headers per [`Forwarding`]. At the edge (`use_remote_address`) the trusted client
/// address (the peer, or the address `xff_num_trusted_hops` from the right of
/// x-forwarded-for) goes in `x-envoy-external-address`, the peer is appended to
/// x-forwarded-for (a loopback peer as the node's own address, as Envoy does) and, with
/// no trusted hops, `x-forwarded-proto` is the connection's scheme. Elsewhere the headers
/// stay as they came and only a missing `x-forwarded-proto` is set.
pub fn connection_manager_request<B>(
    req: &mut http::Request<B>,
    downstream: &Downstream,
    fwd: Forwarding,
) {
    let h = req.headers_mut();
    if !h.contains_key(&super::X_REQUEST_ID) {
        h.insert(super::X_REQUEST_ID.clone(), super::uuid_v4());
    }
    let proto = super::X_FORWARDED_PROTO.clone();
    let scheme = HeaderValue::from_static(if downstream.tls { "https" } else { "http" });
    let Some(peer) = downstream.remote.filter(|_| fwd.use_remote_address) else {
        if !h.contains_key(&proto) {
            h.insert(proto, scheme);
        }
        return;
    };
    let xff = HeaderName::from_static("x-forwarded-for");
    let prior = h
        .get(&xff)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty())
        .map(str::to_string);
    let trusted = match (fwd.xff_num_trusted_hops, &prior) {
        (0, _) | (_, None) => Some(peer.ip()),
        (hops, Some(list)) => {
            let hops = hops as usize;
            let entries: Vec<&str> = list.split(',').map(str::trim).collect();
            // Too few entries for the trusted hops: the peer, as in Envoy.
            (entries.len() >= hops)
                .then(|| entries[entries.len() - hops].parse().ok())
                .flatten()
                .or(Some(peer.ip()))
        }
    };
    if let Some(v) = trusted.and_then(|ip| HeaderValue::from_str(&ip.to_string()).ok()) {
        h.insert(HeaderName::from_static("x-envoy-external-address"), v);
    }
    if !fwd.skip_xff_append {
        let appended = if peer.ip().is_loopback() {
            node_address()
        } else {
            peer.ip()
        };
        let value = match prior {
            Some(p) => format!("{p},{appended}"),
            None => appended.to_string(),
        };
        if let Ok(v) = HeaderValue::from_str(&value) {
            h.insert(xff, v);
        }
    }
    // Behind trusted hops the scheme they saw is kept; otherwise the peer's word is not.
    if fwd.xff_num_trusted_hops == 0 || !h.contains_key(&proto) {
        h.insert(proto, scheme);
    }
}

/// The node's own address, which Envoy appends to x-forwarded-for for a loopback peer:
/// the first non-loopback IPv4 address of its interfaces (loopback when there is none).
fn node_address() -> IpAddr {
    static ADDRESS: OnceLock<IpAddr> = OnceLock::new();
    *ADDRESS.get_or_init(|| {
        nix::ifaddrs::getifaddrs()
            .into_iter()
            .flatten()
            .filter_map(|ifa| ifa.address?.as_sockaddr_in().map(|a| IpAddr::V4(a.ip())))
            .find(|ip| !ip.is_loopback())
            .unwrap_or(IpAddr::V4(std::net::Ipv4Addr::LOCALHOST))
    })
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

    /// The forwarding headers after the connection manager, for a request from `peer`
    /// carrying `incoming`.
    fn forwarded(
        peer: &str,
        tls: bool,
        fwd: Forwarding,
        incoming: &[(&'static str, &'static str)],
    ) -> Vec<(String, String)> {
        let mut req = http::Request::new(());
        *req.headers_mut() = map(incoming);
        let downstream = Downstream {
            remote: Some(peer.parse().unwrap()),
            tls,
            ..Downstream::default()
        };
        connection_manager_request(&mut req, &downstream, fwd);
        let mut out: Vec<(String, String)> = req
            .headers()
            .iter()
            .filter(|(k, _)| k.as_str() != "x-request-id")
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap().to_string()))
            .collect();
        out.sort();
        out
    }

    fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
        let mut v: Vec<_> = p
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        v.sort();
        v
    }

    #[test]
    fn forwarding_headers_follow_envoys_use_remote_address() {
        let edge = Forwarding {
            use_remote_address: true,
            ..Forwarding::default()
        };
        let spoofed = [
            ("x-forwarded-for", "1.2.3.4,5.6.7.8"),
            ("x-forwarded-proto", "https"),
            ("x-envoy-external-address", "9.9.9.9"),
        ];
        // The edge: the peer is the client, whatever the request claims.
        assert_eq!(
            forwarded("203.0.113.7:4000", false, edge, &spoofed),
            pairs(&[
                ("x-forwarded-for", "1.2.3.4,5.6.7.8,203.0.113.7"),
                ("x-forwarded-proto", "http"),
                ("x-envoy-external-address", "203.0.113.7"),
            ])
        );
        // A loopback peer is appended as the node's own address.
        let node = node_address().to_string();
        assert_eq!(
            forwarded("127.0.0.1:4000", true, edge, &[]),
            pairs(&[
                ("x-forwarded-for", &node),
                ("x-forwarded-proto", "https"),
                ("x-envoy-external-address", "127.0.0.1"),
            ])
        );
        // One trusted hop: the client is the last forwarded address, the scheme is kept.
        let hop = Forwarding {
            xff_num_trusted_hops: 1,
            ..edge
        };
        assert_eq!(
            forwarded("203.0.113.7:4000", false, hop, &spoofed),
            pairs(&[
                ("x-forwarded-for", "1.2.3.4,5.6.7.8,203.0.113.7"),
                ("x-forwarded-proto", "https"),
                ("x-envoy-external-address", "5.6.7.8"),
            ])
        );
        let quiet = Forwarding {
            skip_xff_append: true,
            ..edge
        };
        assert_eq!(
            forwarded("203.0.113.7:4000", false, quiet, &[]),
            pairs(&[
                ("x-forwarded-proto", "http"),
                ("x-envoy-external-address", "203.0.113.7"),
            ])
        );
        // Not the edge (Istio's sidecars): trusted as they come, the scheme filled in.
        let sidecar = Forwarding::default();
        assert_eq!(
            forwarded("203.0.113.7:4000", false, sidecar, &spoofed),
            pairs(&spoofed)
        );
        assert_eq!(
            forwarded("203.0.113.7:4000", false, sidecar, &[]),
            pairs(&[("x-forwarded-proto", "http")])
        );
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
                dynamic_metadata: vec![],
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
