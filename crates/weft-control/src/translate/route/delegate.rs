//! VirtualService delegation: a root rule with `delegate` is replaced by the delegate's
//! rules, each narrowed to the root's match and inheriting what it leaves unset.

use super::context::ScopedRoute;
use crate::model::MeshSnapshot;
use std::collections::BTreeMap;
use weft_config::networking::virtual_service::{
    HttpMatchRequest, HttpRoute, StringMatch, VirtualService,
};
use weft_config::{Kind, Spec};

/// The rules of a root VirtualService, delegation expanded (one level, as Istio allows).
pub fn expand(
    snapshot: &MeshSnapshot,
    vs_name: &str,
    vs_ns: &str,
    vs: &VirtualService,
) -> Vec<ScopedRoute> {
    let scoped = |http: HttpRoute, namespace: &str| ScopedRoute {
        http,
        namespace: namespace.to_string(),
        vs_name: vs_name.to_string(),
        vs_namespace: vs_ns.to_string(),
    };
    let mut out = Vec::new();
    for root in &vs.http {
        let Some(d) = &root.delegate else {
            out.push(scoped(root.clone(), vs_ns));
            continue;
        };
        let ns = if d.namespace.is_empty() {
            vs_ns
        } else {
            &d.namespace
        };
        let Some(child) = find(snapshot, &d.name, ns) else {
            // A missing delegate leaves nothing to route to.
            continue;
        };
        for http in &child.http {
            if http.delegate.is_some() {
                continue;
            }
            if let Some(merged) = merge(root, http) {
                out.push(scoped(merged, ns));
            }
        }
    }
    out
}

fn find<'a>(snapshot: &'a MeshSnapshot, name: &str, ns: &str) -> Option<&'a VirtualService> {
    snapshot
        .of_kind(Kind::VirtualService)
        .find_map(|r| match &r.spec {
            Spec::VirtualService(vs) if r.metadata.name == name && r.metadata.namespace == ns => {
                Some(vs.as_ref())
            }
            _ => None,
        })
}

/// The delegate rule under the root rule; `None` when their matches cannot overlap.
fn merge(root: &HttpRoute, child: &HttpRoute) -> Option<HttpRoute> {
    let mut out = child.clone();
    out.r#match = merge_matches(&root.r#match, &child.r#match)?;
    out.name = match (&root.name, &child.name) {
        (Some(r), Some(c)) => Some(format!("{r}-{c}")),
        (r, c) => c.clone().or_else(|| r.clone()),
    };
    macro_rules! inherit {
        ($($f:ident),*) => { $( if out.$f.is_none() { out.$f = root.$f.clone(); } )* };
    }
    inherit!(
        rewrite,
        timeout,
        retries,
        fault,
        mirror,
        mirror_percent,
        mirror_percent_snake,
        mirror_percentage,
        cors_policy,
        headers
    );
    if out.mirrors.is_empty() {
        out.mirrors = root.mirrors.clone();
    }
    Some(out)
}

/// Every (root, delegate) pair that can both hold; `None` if none can.
fn merge_matches(
    root: &[HttpMatchRequest],
    child: &[HttpMatchRequest],
) -> Option<Vec<HttpMatchRequest>> {
    if root.is_empty() {
        return Some(child.to_vec());
    }
    if child.is_empty() {
        return Some(root.to_vec());
    }
    let merged: Vec<_> = root
        .iter()
        .flat_map(|r| child.iter().filter_map(move |c| merge_match(r, c)))
        .collect();
    (!merged.is_empty()).then_some(merged)
}

fn merge_string(
    r: &Option<StringMatch>,
    c: &Option<StringMatch>,
) -> Result<Option<StringMatch>, ()> {
    match (r, c) {
        (Some(r), Some(c)) if r != c => Err(()),
        (r, c) => Ok(c.clone().or_else(|| r.clone())),
    }
}

fn merge_map(
    r: &BTreeMap<String, StringMatch>,
    c: &BTreeMap<String, StringMatch>,
) -> Result<BTreeMap<String, StringMatch>, ()> {
    let mut out = r.clone();
    for (k, v) in c {
        match out.get(k) {
            Some(existing) if existing != v => return Err(()),
            _ => {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    Ok(out)
}

/// The delegate's URI must lie inside the root's prefix (or equal its exact/regex); other
/// conditions are ANDed, and the same condition set differently on both is a conflict.
fn merge_match(r: &HttpMatchRequest, c: &HttpMatchRequest) -> Option<HttpMatchRequest> {
    let mut out = c.clone();
    out.uri = match (&r.uri, &c.uri) {
        (Some(ru), Some(cu)) => {
            let within = match (&ru.prefix, &cu.exact, &cu.prefix) {
                (Some(p), Some(e), _) => e.starts_with(p.as_str()),
                (Some(p), _, Some(cp)) => cp.starts_with(p.as_str()),
                _ => ru == cu,
            };
            if !within {
                return None;
            }
            Some(cu.clone())
        }
        (ru, cu) => cu.clone().or_else(|| ru.clone()),
    };
    out.scheme = merge_string(&r.scheme, &c.scheme).ok()?;
    out.method = merge_string(&r.method, &c.method).ok()?;
    out.authority = merge_string(&r.authority, &c.authority).ok()?;
    out.headers = merge_map(&r.headers, &c.headers).ok()?;
    out.without_headers = merge_map(&r.without_headers, &c.without_headers).ok()?;
    out.query_params = merge_map(&r.query_params, &c.query_params).ok()?;
    out.port = match (r.port, c.port) {
        (Some(a), Some(b)) if a != b => return None,
        (a, b) => b.or(a),
    };
    for (k, v) in &r.source_labels {
        if c.source_labels.get(k).is_some_and(|cv| cv != v) {
            return None;
        }
        out.source_labels.insert(k.clone(), v.clone());
    }
    if out.gateways.is_empty() {
        out.gateways = r.gateways.clone();
    }
    if out.source_namespace.is_none() {
        out.source_namespace = r.source_namespace.clone();
    }
    out.ignore_uri_case = r.ignore_uri_case || c.ignore_uri_case;
    if out.name.is_none() {
        out.name = r.name.clone();
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(yaml: &str) -> HttpMatchRequest {
        serde_yaml::from_str(yaml).unwrap()
    }

    #[test]
    fn delegate_uri_must_be_inside_root_prefix() {
        let root = m("uri: {prefix: /productpage}");
        let inside = merge_match(&root, &m("uri: {exact: /productpage/v1}")).unwrap();
        assert_eq!(
            inside.uri.unwrap().exact.as_deref(),
            Some("/productpage/v1")
        );
        assert!(merge_match(&root, &m("uri: {prefix: /login}")).is_none());
    }

    #[test]
    fn conditions_are_anded_and_conflicts_dropped() {
        let root = m("headers: {end-user: {exact: jason}}");
        let both = merge_match(&root, &m("uri: {prefix: /a}\nheaders: {x: {exact: y}}")).unwrap();
        assert_eq!(both.headers.len(), 2);
        assert_eq!(both.uri.unwrap().prefix.as_deref(), Some("/a"));
        assert!(merge_match(&root, &m("headers: {end-user: {exact: bob}}")).is_none());
    }
}
