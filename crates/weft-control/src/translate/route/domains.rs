//! The Host/authority values a service answers to, as Istio generates them for a proxy.

const CLUSTER_SUFFIX: &str = ".svc.cluster.local";

/// Short forms of a Kubernetes-style host as seen from `proxy_ns`: `reviews`, then
/// `reviews.default.svc` and `reviews.default` from the same namespace; only the
/// namespace-qualified forms from elsewhere (a bare `reviews` there means another service).
fn alt_hosts(hostname: &str, proxy_ns: &str) -> Vec<String> {
    let Some(stem) = hostname.strip_suffix(CLUSTER_SUFFIX) else {
        return Vec::new();
    };
    let Some((name, ns)) = stem.split_once('.') else {
        return Vec::new();
    };
    if name.is_empty() || ns.is_empty() || ns.contains('.') {
        return Vec::new();
    }
    if ns == proxy_ns {
        vec![name.to_string(), format!("{stem}.svc"), stem.to_string()]
    } else {
        vec![stem.to_string(), format!("{stem}.svc")]
    }
}

/// Every domain of a service port: the host, its short forms and its addresses, each as
/// `name:port` and, when `bare` is set, also without the port.
pub fn service_domains(
    hostname: &str,
    port: u32,
    proxy_ns: &str,
    addresses: &[String],
    bare: bool,
) -> Vec<String> {
    let mut names = vec![hostname.to_string()];
    names.extend(alt_hosts(hostname, proxy_ns));
    names.extend(
        addresses
            .iter()
            // CIDR ranges and the unspecified address are not Host values.
            .filter(|a| !a.contains('/') && a.as_str() != "0.0.0.0" && !a.is_empty())
            .cloned(),
    );
    let mut out = Vec::new();
    for n in names {
        let host = if n.contains(':') { format!("[{n}]") } else { n };
        if bare {
            out.push(host.clone());
        }
        out.push(format!("{host}:{port}"));
    }
    out
}

/// Domains of a host that is not a registry service (an external VirtualService host).
pub fn plain_domains(host: &str, port: u32, bare: bool) -> Vec<String> {
    if host == "*" {
        return vec!["*".into()];
    }
    let mut out = Vec::new();
    if bare {
        out.push(host.to_string());
    }
    out.push(format!("{host}:{port}"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_namespace_gets_every_short_name() {
        let d = service_domains(
            "reviews.default.svc.cluster.local",
            9080,
            "default",
            &[],
            true,
        );
        for want in [
            "reviews",
            "reviews:9080",
            "reviews.default:9080",
            "reviews.default.svc:9080",
            "reviews.default.svc.cluster.local:9080",
        ] {
            assert!(d.contains(&want.to_string()), "{want} missing from {d:?}");
        }
    }

    #[test]
    fn other_namespace_never_gets_the_bare_name() {
        let d = service_domains(
            "reviews.default.svc.cluster.local",
            9080,
            "prod",
            &[],
            false,
        );
        assert!(!d.iter().any(|x| x.starts_with("reviews:")));
        assert!(d.contains(&"reviews.default:9080".to_string()));
        assert!(d.iter().all(|x| x.ends_with(":9080")));
    }

    #[test]
    fn external_hosts_and_addresses() {
        let d = service_domains(
            "api.example.com",
            443,
            "default",
            &["10.0.0.1".into(), "10.1.0.0/16".into()],
            false,
        );
        assert_eq!(d, ["api.example.com:443", "10.0.0.1:443"]);
    }
}
