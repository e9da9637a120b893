//! A cluster's transport sockets: its `transport_socket` and `transport_socket_matches`,
//! and which one each endpoint gets.
//!
//! Envoy picks per endpoint: the first `transport_socket_matches` entry whose `match`
//! the endpoint's `envoy.transport_socket_match` metadata satisfies, else the cluster's
//! `transport_socket`. Istio's auto mTLS relies on it: endpoints of workloads with a
//! sidecar carry `tlsMode: istio` and get ISTIO_MUTUAL, the others plain text. The choice
//! per endpoint is swapped in on every endpoint update without rebuilding the contexts,
//! so an EDS change keeps the connection pool.

use super::{Stream, TlsContext};
use crate::model::{Cluster, Endpoint, Secret, UpstreamTls};
use crate::telemetry::labels::Security;
use arc_swap::ArcSwap;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, RwLock};
use tokio::net::TcpStream;

/// One transport: TLS with its context, or plain text.
type Transport = Option<Arc<TlsContext>>;

#[derive(Debug, PartialEq)]
struct SocketMatch {
    criteria: BTreeMap<String, String>,
    transport: Transport,
}

/// What a cluster originates connections with.
#[derive(Debug)]
pub struct Origination {
    /// `transport_socket` (None: plain text).
    default: Transport,
    matches: Vec<SocketMatch>,
    /// The index in `matches` of each endpoint's transport, by `host:port`; endpoints
    /// not listed get `default`.
    chosen: ArcSwap<HashMap<String, usize>>,
    /// What the last handshake with each endpoint (`host:port`) proved: its verified
    /// SPIFFE id and the one this proxy presented, for Istio's principal labels. Pooled
    /// connections to an endpoint all come from handshakes with that one workload.
    verified: RwLock<HashMap<String, Security>>,
}

/// Endpoints remembered in [`Origination::verified`] at most: ORIGINAL_DST clusters
/// reach addresses no update lists.
const MAX_VERIFIED: usize = 4096;

impl PartialEq for Origination {
    fn eq(&self, other: &Self) -> bool {
        self.default == other.default && self.matches == other.matches
    }
}

fn context(
    config: Option<&UpstreamTls>,
    secrets: &BTreeMap<String, Arc<Secret>>,
    kept: Option<&Transport>,
) -> Transport {
    let config = config?;
    match kept {
        Some(Some(c)) if c.is_for(config, secrets) => Some(c.clone()),
        _ => Some(Arc::new(TlsContext::new(config, secrets))),
    }
}

impl Origination {
    /// One TLS context for every endpoint (a cluster's `transport_socket`).
    pub fn new(config: &UpstreamTls, secrets: &BTreeMap<String, Arc<Secret>>) -> Origination {
        Origination {
            default: context(Some(config), secrets, None),
            matches: Vec::new(),
            chosen: ArcSwap::default(),
            verified: RwLock::default(),
        }
    }

    /// Whether this is a single context built from `config` and the same secrets.
    pub fn is_for(&self, config: &UpstreamTls, secrets: &BTreeMap<String, Arc<Secret>>) -> bool {
        self.matches.is_empty()
            && self
                .default
                .as_ref()
                .is_some_and(|c| c.is_for(config, secrets))
    }

    /// The transports of `cluster` for `endpoints`, keeping the contexts of `kept` that
    /// did not change (so the pool that holds it can be kept too); None when the cluster
    /// only speaks plain text.
    pub fn for_cluster(
        cluster: &Cluster,
        endpoints: &[Endpoint],
        secrets: &BTreeMap<String, Arc<Secret>>,
        kept: Option<Arc<Origination>>,
    ) -> Option<Arc<Origination>> {
        // A cluster without any TLS context speaks plain text only.
        cluster.tls_contexts().next()?;
        let default = context(
            cluster.tls.as_ref(),
            secrets,
            kept.as_ref().map(|k| &k.default),
        );
        let matches = cluster
            .transport_socket_matches
            .iter()
            .enumerate()
            .map(|(i, m)| SocketMatch {
                criteria: m.criteria.clone(),
                transport: context(
                    m.tls.as_ref(),
                    secrets,
                    kept.as_ref()
                        .and_then(|k| k.matches.get(i))
                        .map(|k| &k.transport),
                ),
            })
            .collect();
        let next = Origination {
            default,
            matches,
            chosen: ArcSwap::default(),
            verified: RwLock::default(),
        };
        let origination = match kept {
            Some(k) if *k == next => k,
            _ => Arc::new(next),
        };
        origination.choose(endpoints);
        origination.forget_gone(endpoints);
        Some(origination)
    }

    /// What the last TLS handshake with `authority` proved (nothing for plain text or
    /// before any handshake).
    pub fn verified(&self, authority: &str) -> Security {
        let verified = self.verified.read().unwrap_or_else(|e| e.into_inner());
        verified.get(authority).cloned().unwrap_or_default()
    }

    fn remember(&self, authority: &str, context: &TlsContext, stream: &Stream) {
        let Stream::Tls(tls) = stream else {
            return;
        };
        let proved = Security {
            peer: crate::identity::verify::peer_spiffe_id(tls.get_ref().1).map(Into::into),
            own: context.local_principal(),
        };
        let mut verified = self.verified.write().unwrap_or_else(|e| e.into_inner());
        if verified.get(authority) == Some(&proved) {
            return;
        }
        if verified.len() >= MAX_VERIFIED {
            verified.clear();
        }
        verified.insert(authority.to_string(), proved);
    }

    fn forget(&self, authority: &str) {
        let known = {
            let verified = self.verified.read().unwrap_or_else(|e| e.into_inner());
            verified.contains_key(authority)
        };
        if known {
            let mut verified = self.verified.write().unwrap_or_else(|e| e.into_inner());
            verified.remove(authority);
        }
    }

    /// Drops what handshakes proved for endpoints the cluster no longer has.
    fn forget_gone(&self, endpoints: &[Endpoint]) {
        let current: HashSet<String> = endpoints.iter().map(Endpoint::authority).collect();
        self.verified
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|a, _| current.contains(a));
    }

    /// Records the transport of each endpoint.
    fn choose(&self, endpoints: &[Endpoint]) {
        if self.matches.is_empty() {
            return;
        }
        let chosen = endpoints
            .iter()
            .filter_map(|e| {
                let i = self
                    .matches
                    .iter()
                    .position(|m| criteria_met(&m.criteria, &e.transport_socket_match))?;
                Some((e.authority(), i))
            })
            .collect();
        self.chosen.store(Arc::new(chosen));
    }

    /// A connection over `tcp` with the cluster's `transport_socket` (`host`: the server
    /// name when the context has no SNI).
    pub async fn connect(&self, host: &str, tcp: TcpStream) -> Result<Stream, String> {
        match &self.default {
            Some(c) => c.connect(host, tcp).await,
            None => Ok(Stream::Plain(tcp)),
        }
    }

    /// A connection over `tcp` to the endpoint `authority` (`host:port`) with the
    /// transport chosen for it; an address no endpoint has (an original destination)
    /// gets `transport_socket`.
    pub async fn connect_to(
        &self,
        authority: &str,
        host: &str,
        tcp: TcpStream,
    ) -> Result<Stream, String> {
        let index = self.chosen.load().get(authority).copied();
        let transport = match index.and_then(|i| self.matches.get(i)) {
            Some(m) => &m.transport,
            None => &self.default,
        };
        match transport {
            Some(c) => {
                let stream = c.connect(host, tcp).await?;
                self.remember(authority, c, &stream);
                Ok(stream)
            }
            None => {
                // An endpoint now reached in plain text (its tlsMode went away) proves
                // nothing any more.
                self.forget(authority);
                Ok(Stream::Plain(tcp))
            }
        }
    }
}

/// Every criterion is in the endpoint's metadata with the same value; no criteria match
/// every endpoint.
fn criteria_met(criteria: &BTreeMap<String, String>, metadata: &BTreeMap<String, String>) -> bool {
    criteria.iter().all(|(k, v)| metadata.get(k) == Some(v))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::cluster::TransportSocketMatch;
    use crate::model::{Discovery, LbPolicy};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn endpoint(port: u16, tls_mode: Option<&str>) -> Endpoint {
        Endpoint {
            host: "127.0.0.1".into(),
            port,
            weight: 1,
            healthy: true,
            workload: None,
            transport_socket_match: tls_mode
                .map(|m| BTreeMap::from([("tlsMode".to_string(), m.to_string())]))
                .unwrap_or_default(),
        }
    }

    /// Istio's auto mTLS cluster: `tlsMode: istio` endpoints TLS, the rest plain text.
    fn auto_mtls() -> Cluster {
        let mut c = Cluster::new(
            "outbound|9080||reviews",
            Discovery::Eds {
                service_name: "reviews".into(),
            },
            LbPolicy::RoundRobin,
        );
        c.transport_socket_matches = vec![
            TransportSocketMatch {
                name: "tlsMode-istio".into(),
                criteria: BTreeMap::from([("tlsMode".into(), "istio".into())]),
                tls: Some(UpstreamTls {
                    sni: "outbound_.9080_._.reviews".into(),
                    ..Default::default()
                }),
            },
            TransportSocketMatch {
                name: "tlsMode-disabled".into(),
                criteria: BTreeMap::new(),
                tls: None,
            },
        ];
        c
    }

    /// The first byte a connection to `port` starts with: 22 for a TLS handshake record.
    async fn first_byte(o: &Arc<Origination>, port: u16) -> u8 {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let o = o.clone();
        // The TLS handshake never finishes (nobody answers): the client runs until
        // aborted, once the server has seen its first byte.
        let client = tokio::spawn(async move {
            let tcp = TcpStream::connect(addr).await.unwrap();
            if let Ok(Stream::Plain(mut s)) =
                o.connect_to(&addr.to_string(), "127.0.0.1", tcp).await
            {
                s.write_all(b"G").await.unwrap();
                std::future::pending::<()>().await;
            }
        });
        let (mut tcp, _) = listener.accept().await.unwrap();
        let mut b = [0u8; 1];
        tcp.read_exact(&mut b).await.unwrap();
        client.abort();
        b[0]
    }

    #[tokio::test]
    async fn each_endpoint_gets_the_transport_its_metadata_selects() {
        let secrets = BTreeMap::new();
        let (mesh, plain) = (free_port(), free_port());
        let endpoints = [endpoint(mesh, Some("istio")), endpoint(plain, None)];
        let o = Origination::for_cluster(&auto_mtls(), &endpoints, &secrets, None).unwrap();
        assert_eq!(first_byte(&o, mesh).await, 22, "TLS handshake record");
        assert_eq!(first_byte(&o, plain).await, b'G', "plain text");
        // Metadata that meets no criteria of a non-empty match falls to the catch-all.
        let other = [endpoint(mesh, Some("disabled"))];
        let o = Origination::for_cluster(&auto_mtls(), &other, &secrets, Some(o)).unwrap();
        assert_eq!(first_byte(&o, mesh).await, b'G');
    }

    #[test]
    fn an_endpoint_update_keeps_the_contexts_and_a_plain_cluster_has_none() {
        let secrets = BTreeMap::new();
        let first =
            Origination::for_cluster(&auto_mtls(), &[endpoint(1, None)], &secrets, None).unwrap();
        let again = Origination::for_cluster(
            &auto_mtls(),
            &[endpoint(2, Some("istio"))],
            &secrets,
            Some(first.clone()),
        )
        .unwrap();
        assert!(Arc::ptr_eq(&first, &again));
        let plain = Cluster::new("c", Discovery::Static, LbPolicy::RoundRobin);
        assert!(Origination::for_cluster(&plain, &[], &secrets, None).is_none());
    }

    fn free_port() -> u16 {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    }
}
