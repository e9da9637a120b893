//! Filter chain selection, Envoy's way: criteria are applied in order (destination port,
//! destination address, server name, transport protocol, application protocols); at each
//! step the most specific matching chains stay, and chains that leave the criterion empty
//! are kept only when no chain names the connection's value.

use crate::model::{FilterChain, FilterChainMatch};
use std::net::{IpAddr, SocketAddr};

/// What is known about a connection when its chain is chosen.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConnectionInfo {
    /// The local port, or the original destination's when it was restored.
    pub destination_port: u16,
    /// The local address, or the original destination's when it was restored.
    pub destination_ip: Option<IpAddr>,
    /// The original destination (SO_ORIGINAL_DST) when a `use_original_dst` listener or the
    /// `original_dst` listener filter restored it: where ORIGINAL_DST clusters connect.
    pub original_dst: Option<SocketAddr>,
    /// SNI from the ClientHello, lower case.
    pub server_name: Option<String>,
    /// `tls` when the connection opened with a ClientHello, else `raw_buffer`.
    pub transport_protocol: &'static str,
    /// ALPN offered in the ClientHello, or `http/1.1` / `h2c` from the HTTP inspector.
    pub application_protocols: Vec<String>,
}

/// The chain serving a connection, or None (Envoy closes such connections).
pub fn select<'a>(chains: &'a [FilterChain], conn: &ConnectionInfo) -> Option<&'a FilterChain> {
    let mut candidates: Vec<&FilterChain> = chains.iter().collect();
    let steps: [&dyn Fn(&FilterChainMatch) -> Specificity; 5] = [
        &|m| match m.destination_port {
            None => Specificity::Any,
            Some(p) if p == conn.destination_port => Specificity::Exact(0),
            Some(_) => Specificity::No,
        },
        // The longest prefix containing the destination wins.
        &|m| {
            if m.prefix_ranges.is_empty() {
                return Specificity::Any;
            }
            let Some(ip) = conn.destination_ip else {
                return Specificity::No;
            };
            m.prefix_ranges
                .iter()
                .filter(|r| r.contains(ip))
                .map(|r| Specificity::Exact(r.prefix_len.into()))
                .max()
                .unwrap_or(Specificity::No)
        },
        &|m| server_name(&m.server_names, conn.server_name.as_deref()),
        &|m| match &m.transport_protocol {
            None => Specificity::Any,
            Some(p) if p == conn.transport_protocol => Specificity::Exact(0),
            Some(_) => Specificity::No,
        },
        &|m| {
            if m.application_protocols.is_empty() {
                Specificity::Any
            } else if m
                .application_protocols
                .iter()
                .any(|p| conn.application_protocols.contains(p))
            {
                Specificity::Exact(0)
            } else {
                Specificity::No
            }
        },
    ];
    for step in steps {
        let best = candidates
            .iter()
            .map(|c| step(&c.matcher))
            .max()
            .unwrap_or(Specificity::No);
        if best == Specificity::No {
            return None;
        }
        candidates.retain(|c| step(&c.matcher) == best);
    }
    candidates.first().copied()
}

/// How well one criterion matches; greater is more specific.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Specificity {
    No,
    /// The chain leaves the criterion empty.
    Any,
    /// A `*.suffix` wildcard, by suffix length.
    Wildcard(usize),
    /// An exact match; for address prefixes, by prefix length (else 0).
    Exact(usize),
}

fn server_name(names: &[String], sni: Option<&str>) -> Specificity {
    if names.is_empty() {
        return Specificity::Any;
    }
    let Some(sni) = sni else {
        return Specificity::No;
    };
    names
        .iter()
        .map(|n| {
            if n == sni {
                Specificity::Exact(0)
            } else if let Some(suffix) = n.strip_prefix('*') {
                // `*.example.com` matches `a.example.com`, not `example.com`.
                if sni.len() > suffix.len() && sni.ends_with(suffix) {
                    Specificity::Wildcard(suffix.len())
                } else {
                    Specificity::No
                }
            } else {
                Specificity::No
            }
        })
        .max()
        .unwrap_or(Specificity::No)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::NetworkFilter;

    fn chain(name: &str, m: FilterChainMatch) -> FilterChain {
        FilterChain {
            name: name.into(),
            matcher: m,
            filter: NetworkFilter::TcpProxy {
                stat_prefix: String::new(),
                clusters: Vec::new(),
                rbac: Vec::new(),
            },
            tls: None,
        }
    }

    fn sni(names: &[&str]) -> FilterChainMatch {
        FilterChainMatch {
            server_names: names.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    fn conn(server_name: Option<&str>) -> ConnectionInfo {
        ConnectionInfo {
            destination_port: 443,
            destination_ip: Some([10, 0, 0, 1].into()),
            original_dst: None,
            server_name: server_name.map(str::to_owned),
            transport_protocol: if server_name.is_some() {
                "tls"
            } else {
                "raw_buffer"
            },
            application_protocols: Vec::new(),
        }
    }

    fn picked(chains: &[FilterChain], c: &ConnectionInfo) -> Option<String> {
        select(chains, c).map(|c| c.name.clone())
    }

    #[test]
    fn server_names_exact_beats_wildcard_beats_catch_all() {
        let chains = vec![
            chain("any", FilterChainMatch::default()),
            chain("wild", sni(&["*.example.com"])),
            chain("a", sni(&["a.example.com"])),
        ];
        assert_eq!(
            picked(&chains, &conn(Some("a.example.com"))).as_deref(),
            Some("a")
        );
        assert_eq!(
            picked(&chains, &conn(Some("b.example.com"))).as_deref(),
            Some("wild")
        );
        assert_eq!(
            picked(&chains, &conn(Some("example.com"))).as_deref(),
            Some("any")
        );
        assert_eq!(picked(&chains, &conn(None)).as_deref(), Some("any"));
    }

    #[test]
    fn no_matching_chain_means_no_chain() {
        let chains = vec![chain("a", sni(&["a.example.com"]))];
        assert_eq!(picked(&chains, &conn(Some("c.example.com"))), None);
        assert_eq!(picked(&chains, &conn(None)), None);
    }

    #[test]
    fn destination_port_is_decided_before_server_name() {
        let port = FilterChainMatch {
            destination_port: Some(443),
            ..Default::default()
        };
        let chains = vec![chain("sni", sni(&["a.example.com"])), chain("port", port)];
        // The port match wins even though the other chain names the SNI (Envoy's order).
        assert_eq!(
            picked(&chains, &conn(Some("a.example.com"))).as_deref(),
            Some("port")
        );
    }

    #[test]
    fn transport_and_application_protocols() {
        let tls = FilterChainMatch {
            transport_protocol: Some("tls".into()),
            ..Default::default()
        };
        let h2c = FilterChainMatch {
            application_protocols: vec!["http/1.1".into(), "h2c".into()],
            ..Default::default()
        };
        let chains = vec![
            chain("tls", tls),
            chain("http", h2c),
            chain("tcp", Default::default()),
        ];
        assert_eq!(picked(&chains, &conn(Some("x"))).as_deref(), Some("tls"));
        let mut plain = conn(None);
        assert_eq!(picked(&chains, &plain).as_deref(), Some("tcp"));
        plain.application_protocols = vec!["h2c".into()];
        assert_eq!(picked(&chains, &plain).as_deref(), Some("http"));
    }

    #[test]
    fn destination_address_longest_prefix_then_catch_all() {
        use crate::model::listener::CidrRange;
        let range = |ip: &str, len| FilterChainMatch {
            prefix_ranges: vec![CidrRange {
                address_prefix: ip.parse().unwrap(),
                prefix_len: len,
            }],
            ..Default::default()
        };
        let chains = vec![
            chain("any", FilterChainMatch::default()),
            chain("all-v4", range("0.0.0.0", 0)),
            chain("ten", range("10.0.0.0", 8)),
        ];
        let mut c = conn(None);
        assert_eq!(picked(&chains, &c).as_deref(), Some("ten"));
        c.destination_ip = Some([192, 168, 1, 1].into());
        assert_eq!(picked(&chains, &c).as_deref(), Some("all-v4"));
        // An IPv6 destination is in no IPv4 range: the chain without ranges serves it.
        c.destination_ip = Some("fd00::1".parse().unwrap());
        assert_eq!(picked(&chains, &c).as_deref(), Some("any"));
    }
}
