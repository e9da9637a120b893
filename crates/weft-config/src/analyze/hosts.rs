//! Istio's host-name rules as analyzers apply them: short names, FQDNs, wildcards, exportTo.

use std::fmt;

/// The Kubernetes cluster domain Istio assumes when it expands short names.
pub const CLUSTER_LOCAL_SUFFIX: &str = "svc.cluster.local";
/// exportTo value meaning "every namespace".
pub const EXPORT_TO_ALL: &str = "*";
/// exportTo value meaning "only my own namespace".
pub const EXPORT_TO_LOCAL: &str = ".";
/// The reserved gateway name for sidecars.
pub const MESH_GATEWAY: &str = "mesh";

/// Expands a short service name to its FQDN in `namespace`: `reviews` ->
/// `reviews.default.svc.cluster.local`. Anything with a dot, or a wildcard, is taken as
/// already qualified, which is how Istio reads hosts too.
pub fn to_fqdn(namespace: &str, host: &str) -> String {
    if host.starts_with('*') || host.contains('.') {
        host.to_string()
    } else {
        format!("{host}.{namespace}.{CLUSTER_LOCAL_SUFFIX}")
    }
}

/// A resource name as a pair, as in `namespace/name`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FullName {
    pub namespace: String,
    pub name: String,
}

impl FullName {
    pub fn new(namespace: &str, name: &str) -> Self {
        FullName {
            namespace: namespace.to_string(),
            name: name.to_string(),
        }
    }

    /// Reads `ns/name` or a bare `name` (which then lives in `default_namespace`), the way
    /// VirtualServices name their gateways.
    pub fn short_or_full(default_namespace: &str, reference: &str) -> Self {
        match reference.split_once('/') {
            Some((ns, name)) => FullName::new(ns, name),
            None => FullName::new(default_namespace, reference),
        }
    }

    /// The Kubernetes service a host names: `reviews.prod.svc.cluster.local` is
    /// `prod/reviews`; a short name is looked up in `default_namespace`; any other host
    /// is kept whole as the name, so that equal hosts still compare equal.
    pub fn from_host(default_namespace: &str, host: &str) -> Self {
        match service_of_fqdn(host) {
            Some(name) => name,
            None => FullName::new(default_namespace, host),
        }
    }
}

impl fmt::Display for FullName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.namespace.is_empty() {
            f.write_str(&self.name)
        } else {
            write!(f, "{}/{}", self.namespace, self.name)
        }
    }
}

/// Splits `name.namespace.svc.cluster.local`. Istio's pattern is greedy on the name, so
/// `a.b.ns.svc.cluster.local` is service `a.b` in namespace `ns`.
fn service_of_fqdn(host: &str) -> Option<FullName> {
    let rest = host.strip_suffix(CLUSTER_LOCAL_SUFFIX)?.strip_suffix('.')?;
    let (name, namespace) = rest.rsplit_once('.')?;
    (!name.is_empty() && !namespace.is_empty()).then(|| FullName::new(namespace, name))
}

/// Whether two hosts, either possibly a `*.` wildcard, can name the same thing.
pub fn hosts_match(a: &str, b: &str) -> bool {
    match (a.strip_prefix('*'), b.strip_prefix('*')) {
        (Some(a), Some(b)) => a.ends_with(b) || b.ends_with(a),
        (Some(a), None) => b.ends_with(a),
        (None, Some(b)) => a.ends_with(b),
        (None, None) => a == b,
    }
}

/// Gateway server hosts (`ns/host`, `./host`, `*/host` or `host`) that a resource in
/// `namespace` may bind to, with the namespace part removed.
pub fn names_for_namespace<'a>(hosts: &'a [String], namespace: &'a str) -> Vec<&'a str> {
    hosts
        .iter()
        .filter_map(|h| match h.split_once('/') {
            Some((ns, name)) if ns == namespace || ns == "*" => Some(name),
            Some(_) => None,
            None => Some(h.as_str()),
        })
        .collect()
}

/// Whether an exportTo list makes a resource visible everywhere (empty means everywhere).
pub fn exported_to_all(export_to: &[String]) -> bool {
    export_to.is_empty() || export_to.iter().any(|e| e == EXPORT_TO_ALL)
}

/// The visibility scopes of a resource: `*`, or the namespaces its exportTo names, with
/// `.` read as the resource's own namespace.
pub fn export_scopes(export_to: &[String], own_namespace: &str) -> Vec<String> {
    if exported_to_all(export_to) {
        return vec![EXPORT_TO_ALL.to_string()];
    }
    let mut scopes: Vec<String> = export_to
        .iter()
        .map(|e| {
            if e == EXPORT_TO_LOCAL {
                own_namespace.to_string()
            } else {
                e.clone()
            }
        })
        .collect();
    scopes.sort();
    scopes.dedup();
    scopes
}

/// A host as seen from one visibility scope: `*/reviews.default.svc.cluster.local` or
/// `ns1/reviews.default.svc.cluster.local`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ScopedFqdn {
    pub scope: String,
    pub fqdn: String,
}

impl ScopedFqdn {
    pub fn new(scope: &str, namespace: &str, host: &str) -> Self {
        ScopedFqdn {
            scope: scope.to_string(),
            fqdn: to_fqdn(namespace, host),
        }
    }
}

impl fmt::Display for ScopedFqdn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.scope, self.fqdn)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_names_expand_in_their_namespace() {
        assert_eq!(
            to_fqdn("default", "reviews"),
            "reviews.default.svc.cluster.local"
        );
        assert_eq!(to_fqdn("default", "reviews.prod"), "reviews.prod");
        assert_eq!(to_fqdn("default", "*"), "*");
    }

    #[test]
    fn fqdn_names_its_service() {
        assert_eq!(
            FullName::from_host("x", "reviews.prod.svc.cluster.local"),
            FullName::new("prod", "reviews")
        );
        assert_eq!(
            FullName::from_host("x", "reviews"),
            FullName::new("x", "reviews")
        );
        assert_eq!(
            FullName::from_host("x", "www.example.com"),
            FullName::new("x", "www.example.com")
        );
        assert_eq!(FullName::short_or_full("a", "b/gw").to_string(), "b/gw");
        assert_eq!(FullName::short_or_full("", "gw").to_string(), "gw");
    }

    #[test]
    fn wildcards_match_both_ways() {
        assert!(hosts_match("*.example.com", "www.example.com"));
        assert!(hosts_match("www.example.com", "*.example.com"));
        assert!(hosts_match("*.com", "*.example.com"));
        assert!(hosts_match("*", "anything"));
        assert!(!hosts_match("www.example.com", "api.example.com"));
        assert!(!hosts_match("*.example.com", "example.org"));
    }

    #[test]
    fn gateway_hosts_by_namespace() {
        let hosts = vec![
            "prod/a.com".to_string(),
            "*/b.com".to_string(),
            "c.com".to_string(),
            "dev/d.com".to_string(),
        ];
        assert_eq!(
            names_for_namespace(&hosts, "prod"),
            vec!["a.com", "b.com", "c.com"]
        );
    }

    #[test]
    fn export_scopes_read_dot_as_own_namespace() {
        assert_eq!(export_scopes(&[], "ns"), vec!["*"]);
        assert_eq!(
            export_scopes(&[".".into(), "other".into()], "ns"),
            vec!["ns", "other"]
        );
        assert_eq!(export_scopes(&["*".into(), ".".into()], "ns"), vec!["*"]);
    }
}
