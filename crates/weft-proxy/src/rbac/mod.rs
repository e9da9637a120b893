//! Role-based access control: Envoy's `envoy.filters.http.rbac` and
//! `envoy.filters.network.rbac`, which is how Istio's AuthorizationPolicy reaches a proxy.
//! [`model`] holds the rules, [`convert`] builds them from xDS (NACKing what cannot be
//! honoured), [`engine`] decides. A connection manager or TCP chain runs its RBAC filters
//! in order; the first that refuses ends the request (403 `RBAC: access denied`, response
//! flag `RBAC`) or closes the connection.

pub mod convert;
pub mod engine;
pub mod model;
mod template;

pub use engine::{evaluate, RequestAttrs, Subject, Verdict};
pub use model::{RbacAction, RbacFilter, Rules};

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};

/// Envoy's local reply body for a refused request.
pub const DENIED_BODY: &str = "RBAC: access denied";
/// Envoy's response flag for it (`%RESPONSE_FLAGS%`).
pub const DENIED_FLAG: &str = "RBAC";

impl RbacFilter {
    /// The enforced decision; shadow rules are evaluated and logged only.
    pub fn check(&self, s: &Subject<'_>) -> Verdict {
        if let Some(shadow) = &self.shadow_rules {
            let v = evaluate(shadow, s);
            tracing::debug!(
                prefix = %self.shadow_rules_stat_prefix,
                allowed = v.allowed,
                policy = v.policy.as_deref().unwrap_or("none"),
                "RBAC shadow rules"
            );
        }
        match &self.rules {
            Some(rules) => evaluate(rules, s),
            None => Verdict {
                allowed: true,
                policy: None,
            },
        }
    }
}

/// Runs `filters` in order: `Err` with the deciding policy (if one matched) from the first
/// that refuses.
pub fn check_all(filters: &[Arc<RbacFilter>], s: &Subject<'_>) -> Result<(), Option<String>> {
    for f in filters {
        let v = f.check(s);
        if !v.allowed {
            tracing::debug!(
                policy = v.policy.as_deref().unwrap_or("none"),
                "RBAC denied"
            );
            return Err(v.policy);
        }
    }
    Ok(())
}

/// `rbac_access_denied_matched_policy[<policy>|none]`, Envoy's response code details.
/// Interned: the access log carries `'static` details, and policy names are few and
/// bounded by the configuration.
pub fn denied_details(policy: Option<&str>) -> &'static str {
    static SEEN: OnceLock<Mutex<HashSet<&'static str>>> = OnceLock::new();
    let text = format!(
        "rbac_access_denied_matched_policy[{}]",
        policy.unwrap_or("none")
    );
    let mut seen = SEEN
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if let Some(s) = seen.get(text.as_str()) {
        return s;
    }
    let leaked: &'static str = Box::leak(text.into_boxed_str());
    seen.insert(leaked);
    leaked
}

/// The client address Envoy's HTTP RBAC calls `remote_ip`: at the edge the peer; behind
/// it (`use_remote_address: false`, no trusted hops) the last `x-forwarded-for` entry when
/// it is an IP, else the peer.
pub fn remote_address(
    headers: &http::HeaderMap,
    peer: Option<SocketAddr>,
    edge: bool,
) -> Option<SocketAddr> {
    if edge {
        return peer;
    }
    let last = headers
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.rsplit(',').next())
        .and_then(|ip| ip.trim().parse().ok());
    match last {
        Some(ip) => Some(SocketAddr::new(ip, 0)),
        None => peer,
    }
}

/// The path as Envoy's `normalize_path` hands it to RBAC: dot segments removed (RFC 3986
/// 5.2.4), the query kept. Without it `/public/../admin` would dodge a rule on `/admin`.
pub fn normalized_path(path_and_query: &str) -> String {
    let (path, query) = match path_and_query.find('?') {
        Some(i) => path_and_query.split_at(i),
        None => (path_and_query, ""),
    };
    let mut out: Vec<&str> = Vec::new();
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    for (i, seg) in segments.iter().enumerate() {
        let last = i + 1 == segments.len();
        match *seg {
            "." => {
                if last {
                    out.push("");
                }
            }
            ".." => {
                out.pop();
                if last {
                    out.push("");
                }
            }
            s => out.push(s),
        }
    }
    format!("/{}{query}", out.join("/"))
}

/// What the network filter knows of a connection (no request, the peer as remote).
pub fn connection(d: &crate::listener::Downstream) -> Subject<'_> {
    Subject {
        request: None,
        direct_remote: d.remote,
        remote: d.remote,
        destination: d.destination(),
        server_name: d.server_name.as_deref(),
        tls: d.tls,
        peer_principal: d.peer_principal.as_deref(),
        metadata: None,
    }
}

#[cfg(test)]
mod tests;
