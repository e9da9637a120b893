//! Trust domain aliases: a principal written against the local trust domain (or
//! `cluster.local`, Istio's stand-in for it, or an alias) also matches identities from every
//! alias, so policies keep working across a trust domain migration.

/// The local trust domain followed by its aliases.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrustDomains {
    pub domains: Vec<String>,
}

const CLUSTER_LOCAL: &str = "cluster.local";

impl TrustDomains {
    pub fn new(local: &str, aliases: &[String]) -> TrustDomains {
        let mut domains = vec![local.to_string()];
        domains.extend(aliases.iter().filter(|a| *a != local).cloned());
        TrustDomains { domains }
    }

    /// Whether aliases change anything (Istio migrates only when there are some).
    pub fn has_aliases(&self) -> bool {
        self.domains.len() > 1
    }

    /// `principals` with those in a known trust domain repeated for every trust domain.
    pub fn replace_aliases(&self, principals: &[String]) -> Vec<String> {
        let mut out = Vec::new();
        for p in principals {
            let parts: Vec<&str> = p.split('/').collect();
            // Only `<td>/ns/<ns>/sa/<sa>` names a trust domain; `*` leaves it open.
            let enforced = parts.len() == 5 && parts[0] != "*";
            if !enforced {
                out.push(p.clone());
                continue;
            }
            let td = parts[0];
            let known = td == CLUSTER_LOCAL || self.domains.iter().any(|d| wildcard_match(td, d));
            if !known {
                tracing::warn!(
                    principal = %p,
                    "trust domain of the principal is neither the local one nor an alias"
                );
                out.push(p.clone());
                continue;
            }
            let mut expanded: Vec<String> = Vec::new();
            for d in &self.domains {
                let candidate = if td.starts_with('*') && wildcard_match(td, d) {
                    p.clone()
                } else {
                    let mut replaced = parts.clone();
                    replaced[0] = d;
                    replaced.join("/")
                };
                if !expanded.contains(&candidate) {
                    expanded.push(candidate);
                }
            }
            out.extend(expanded);
        }
        out
    }
}

/// `pattern` (`*x`, `x*`, `*` or exact) against trust domain `td`.
fn wildcard_match(pattern: &str, td: &str) -> bool {
    if pattern == "*" || pattern == td {
        return true;
    }
    if let Some(suffix) = pattern.strip_prefix('*') {
        return td.ends_with(suffix);
    }
    if let Some(prefix) = pattern.strip_suffix('*') {
        return td.starts_with(prefix);
    }
    false
}

#[cfg(test)]
mod tests {
    use super::TrustDomains;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn local_principals_match_every_alias() {
        let tds = TrustDomains::new("td1", &s(&["cluster.local"]));
        assert_eq!(
            tds.replace_aliases(&s(&["cluster.local/ns/a/sa/b", "other/ns/a/sa/b"])),
            s(&[
                "td1/ns/a/sa/b",
                "cluster.local/ns/a/sa/b",
                "other/ns/a/sa/b"
            ])
        );
    }

    #[test]
    fn wildcard_trust_domains_stay_for_what_they_match() {
        let tds = TrustDomains::new("new-td", &s(&["old-td", "some-trustdomain"]));
        assert_eq!(
            tds.replace_aliases(&s(&["*-td/ns/foo/sa/x", "*"])),
            s(&["*-td/ns/foo/sa/x", "some-trustdomain/ns/foo/sa/x", "*"])
        );
    }
}
