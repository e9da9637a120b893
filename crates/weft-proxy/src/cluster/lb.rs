//! Load balancing over a cluster's healthy hosts: weighted round robin, power of two
//! choices by active requests, and weighted random.

use super::{Host, Upstream};
use crate::model::LbPolicy;
use rand::Rng;
use std::sync::atomic::Ordering;

/// A healthy host of `u` by its cluster's policy; None when no host is healthy (503 UH).
pub fn pick(u: &Upstream) -> Option<&Host> {
    let healthy: Vec<&Host> = u.hosts.iter().filter(|h| h.endpoint.healthy).collect();
    match healthy.len() {
        0 => None,
        1 => Some(healthy[0]),
        _ => Some(match u.config.lb_policy {
            LbPolicy::RoundRobin => weighted_nth(&healthy, u.ticket()),
            LbPolicy::Random => {
                let total = total_weight(&healthy);
                weighted_nth(&healthy, rand::rng().random_range(0..total))
            }
            LbPolicy::LeastRequest => least_of_two(&healthy),
        }),
    }
}

fn total_weight(hosts: &[&Host]) -> usize {
    hosts
        .iter()
        .map(|h| h.endpoint.weight as usize)
        .sum::<usize>()
        .max(1)
}

/// The host owning slot `n` when each host holds `weight` consecutive slots.
fn weighted_nth<'a>(hosts: &[&'a Host], n: usize) -> &'a Host {
    let mut slot = n % total_weight(hosts);
    for h in hosts {
        let w = h.endpoint.weight as usize;
        if slot < w {
            return h;
        }
        slot -= w;
    }
    hosts[0]
}

/// Envoy's LEAST_REQUEST with equal weights: two distinct random hosts, the one with fewer
/// requests in flight wins.
fn least_of_two<'a>(hosts: &[&'a Host]) -> &'a Host {
    let mut rng = rand::rng();
    let a = rng.random_range(0..hosts.len());
    let mut b = rng.random_range(0..hosts.len() - 1);
    if b >= a {
        b += 1;
    }
    let load = |i: usize| hosts[i].active.load(Ordering::Relaxed);
    if load(b) < load(a) {
        hosts[b]
    } else {
        hosts[a]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Cluster, Discovery, Endpoint};
    use std::collections::BTreeMap;
    use std::time::Duration;

    fn upstream(policy: LbPolicy, hosts: &[(u16, u32, bool)]) -> Upstream {
        let config = Cluster {
            name: "c".into(),
            discovery: Discovery::Static,
            lb_policy: policy,
            connect_timeout: Duration::from_secs(1),
            load_assignment: None,
        };
        let endpoints = hosts
            .iter()
            .map(|&(port, weight, healthy)| Endpoint {
                host: "127.0.0.1".into(),
                port,
                weight,
                healthy,
            })
            .collect();
        Upstream::new(config, endpoints, None)
    }

    fn counts(u: &Upstream, n: usize) -> BTreeMap<u16, usize> {
        let mut out = BTreeMap::new();
        for _ in 0..n {
            *out.entry(pick(u).unwrap().endpoint.port).or_default() += 1;
        }
        out
    }

    #[tokio::test]
    async fn round_robin_follows_weights_and_skips_unhealthy() {
        let u = upstream(
            LbPolicy::RoundRobin,
            &[(1, 1, true), (2, 3, true), (3, 5, false)],
        );
        assert_eq!(counts(&u, 400), BTreeMap::from([(1, 100), (2, 300)]));
    }

    #[tokio::test]
    async fn no_healthy_host_is_none() {
        let u = upstream(LbPolicy::LeastRequest, &[(1, 1, false)]);
        assert!(pick(&u).is_none());
    }

    #[tokio::test]
    async fn least_request_avoids_the_busy_host() {
        let u = upstream(LbPolicy::LeastRequest, &[(1, 1, true), (2, 1, true)]);
        u.hosts[0].active.store(10, Ordering::Relaxed);
        assert_eq!(counts(&u, 50), BTreeMap::from([(2, 50)]));
    }

    #[tokio::test]
    async fn random_reaches_every_host() {
        let u = upstream(LbPolicy::Random, &[(1, 1, true), (2, 1, true)]);
        assert_eq!(counts(&u, 200).len(), 2);
    }
}
