//! Load balancing over a cluster's usable hosts: weighted round robin, power of N
//! choices by requests in flight, weighted random, and the consistent hashes (ring hash,
//! Maglev) for requests that carry a hash. Below the healthy panic threshold every host
//! is used, as Envoy does.

use super::maglev::Table;
use super::ring_hash::Ring;
use super::{Host, Upstream};
use crate::model::LbPolicy;
use rand::Rng;
use std::sync::atomic::Ordering;
use std::time::Instant;

/// Hosts tried along the ring/table when the one a hash lands on is ejected.
const HASH_PROBES: u64 = 8;

/// The lookup structure of a hashing policy, built over the hosts EDS calls healthy.
#[derive(Debug, Default)]
pub(super) enum Hashing {
    #[default]
    None,
    Ring(Ring, Vec<usize>),
    Maglev(Table, Vec<usize>),
}

impl Hashing {
    pub(super) fn build(policy: &LbPolicy, hosts: &[Host]) -> Hashing {
        let index: Vec<usize> = (0..hosts.len())
            .filter(|i| hosts[*i].endpoint.healthy)
            .collect();
        let keys: Vec<(String, u32)> = index
            .iter()
            .map(|i| (hosts[*i].endpoint.authority(), hosts[*i].endpoint.weight))
            .collect();
        match *policy {
            LbPolicy::RingHash {
                minimum_ring_size,
                maximum_ring_size,
            } => Hashing::Ring(
                Ring::build(&keys, minimum_ring_size, maximum_ring_size),
                index,
            ),
            LbPolicy::Maglev { table_size } => {
                Hashing::Maglev(Table::build(&keys, table_size), index)
            }
            _ => Hashing::None,
        }
    }

    fn lookup(&self, hash: u64) -> Option<usize> {
        match self {
            Hashing::None => None,
            Hashing::Ring(r, index) => r.lookup(hash).map(|i| index[i]),
            Hashing::Maglev(t, index) => t.lookup(hash).map(|i| index[i]),
        }
    }
}

/// A host of `u` by its cluster's policy without a request hash; None (503 UH) when there
/// is none to use.
pub fn pick(u: &Upstream) -> Option<&Host> {
    pick_hashed(u, None)
}

/// A host of `u` by its cluster's policy; `hash` feeds RING_HASH and MAGLEV (without one
/// they pick at random).
pub fn pick_hashed(u: &Upstream, hash: Option<u64>) -> Option<&Host> {
    if u.hosts.is_empty() {
        return None;
    }
    let usable = Usable::of(&u.hosts, Instant::now());
    let healthy = usable.count();
    let panic = (healthy as f64) * 100.0 < u.config.healthy_panic_threshold * u.hosts.len() as f64;
    let candidates = Candidates {
        hosts: &u.hosts,
        usable: (!panic).then_some(usable),
        len: if panic { u.hosts.len() } else { healthy },
    };
    if candidates.len == 0 {
        return None;
    }
    if let (Some(hash), LbPolicy::RingHash { .. } | LbPolicy::Maglev { .. }) =
        (hash, u.config.lb_policy)
    {
        // Rehashing deterministically keeps a key on the same fallback host while its
        // first choice is ejected.
        for probe in 0..HASH_PROBES {
            let h = if probe == 0 {
                hash
            } else {
                super::xxhash64(&hash.to_le_bytes(), probe)
            };
            if let Some(i) = u.hashing.lookup(h) {
                if candidates.contains(i) {
                    return Some(&u.hosts[i]);
                }
            }
        }
    }
    if candidates.len == 1 {
        return candidates.iter().next();
    }
    Some(match u.config.lb_policy {
        LbPolicy::RoundRobin => weighted_nth(&candidates, u.ticket()),
        LbPolicy::LeastRequest { choice_count } => least_of(&candidates, choice_count),
        LbPolicy::Random | LbPolicy::RingHash { .. } | LbPolicy::Maglev { .. } => {
            let total = candidates.total_weight();
            weighted_nth(&candidates, rand::rng().random_range(0..total))
        }
    })
}

/// Which hosts are healthy and not ejected, decided once per pick (each ejection check
/// takes the host's lock). Inline for up to 64 hosts, so a pick allocates nothing there.
enum Usable {
    Bits(u64),
    Flags(Vec<bool>),
}

impl Usable {
    fn of(hosts: &[Host], now: Instant) -> Usable {
        let usable = |h: &Host| h.endpoint.healthy && !h.outlier.ejected(now);
        if hosts.len() <= 64 {
            Usable::Bits(
                hosts
                    .iter()
                    .enumerate()
                    .filter(|(_, h)| usable(h))
                    .fold(0, |bits, (i, _)| bits | 1 << i),
            )
        } else {
            Usable::Flags(hosts.iter().map(usable).collect())
        }
    }

    fn get(&self, i: usize) -> bool {
        match self {
            Usable::Bits(bits) => bits >> i & 1 == 1,
            Usable::Flags(flags) => flags[i],
        }
    }

    fn count(&self) -> usize {
        match self {
            Usable::Bits(bits) => bits.count_ones() as usize,
            Usable::Flags(flags) => flags.iter().filter(|f| **f).count(),
        }
    }
}

/// The hosts a pick chooses among: the usable ones, or all of them in panic mode.
struct Candidates<'a> {
    hosts: &'a [Host],
    /// None in panic mode.
    usable: Option<Usable>,
    len: usize,
}

impl<'a> Candidates<'a> {
    fn contains(&self, i: usize) -> bool {
        self.usable.as_ref().is_none_or(|u| u.get(i))
    }

    fn iter(&self) -> impl Iterator<Item = &'a Host> + '_ {
        let hosts = self.hosts;
        (0..hosts.len())
            .filter(|i| self.contains(*i))
            .map(move |i| &hosts[i])
    }

    fn total_weight(&self) -> usize {
        self.iter()
            .map(|h| h.endpoint.weight as usize)
            .sum::<usize>()
            .max(1)
    }
}

/// The host owning slot `n` when each host holds `weight` consecutive slots.
fn weighted_nth<'a>(hosts: &Candidates<'a>, n: usize) -> &'a Host {
    let mut slot = n % hosts.total_weight();
    let mut first = None;
    for h in hosts.iter() {
        first.get_or_insert(h);
        let w = h.endpoint.weight as usize;
        if slot < w {
            return h;
        }
        slot -= w;
    }
    first.unwrap_or(&hosts.hosts[0])
}

/// Envoy's LEAST_REQUEST with equal weights: `choices` random hosts, the one with fewest
/// requests in flight wins.
fn least_of<'a>(hosts: &Candidates<'a>, choices: u32) -> &'a Host {
    let mut rng = rand::rng();
    let load = |h: &Host| h.active.load(Ordering::Relaxed);
    let mut nth = || {
        hosts
            .iter()
            .nth(rng.random_range(0..hosts.len))
            .unwrap_or(&hosts.hosts[0])
    };
    let mut best = nth();
    for _ in 1..choices.max(2) {
        let other = nth();
        if load(other) < load(best) {
            best = other;
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::outlier::Outcome;
    use crate::model::{Cluster, Discovery, Endpoint, OutlierDetection};
    use std::collections::BTreeMap;

    fn upstream(policy: LbPolicy, hosts: &[(u16, u32, bool)]) -> Upstream {
        let config = Cluster::new("c", Discovery::Static, policy);
        let endpoints = hosts
            .iter()
            .map(|&(port, weight, healthy)| Endpoint {
                host: "127.0.0.1".into(),
                port,
                weight,
                healthy,
                workload: None,
                transport_socket_match: Default::default(),
            })
            .collect();
        Upstream::new(config, endpoints, None, Default::default())
    }

    fn counts(u: &Upstream, n: usize, hash: impl Fn(usize) -> Option<u64>) -> BTreeMap<u16, usize> {
        let mut out = BTreeMap::new();
        for i in 0..n {
            *out.entry(pick_hashed(u, hash(i)).unwrap().endpoint.port)
                .or_default() += 1;
        }
        out
    }

    const RING: LbPolicy = LbPolicy::RingHash {
        minimum_ring_size: 1024,
        maximum_ring_size: 8 << 20,
    };
    const MAGLEV: LbPolicy = LbPolicy::Maglev { table_size: 65537 };

    #[tokio::test]
    async fn round_robin_follows_weights_and_skips_unhealthy() {
        let u = upstream(
            LbPolicy::RoundRobin,
            &[(1, 1, true), (2, 3, true), (3, 5, false)],
        );
        assert_eq!(
            counts(&u, 400, |_| None),
            BTreeMap::from([(1, 100), (2, 300)])
        );
    }

    #[tokio::test]
    async fn no_host_is_none_and_all_unhealthy_is_panic_mode() {
        let empty = upstream(LbPolicy::RoundRobin, &[]);
        assert!(pick(&empty).is_none());
        // Below the 50% panic threshold Envoy spreads over every host.
        let u = upstream(LbPolicy::RoundRobin, &[(1, 1, false)]);
        assert_eq!(pick(&u).unwrap().endpoint.port, 1);
        let mut strict = upstream(LbPolicy::RoundRobin, &[(1, 1, false)]);
        strict.config.healthy_panic_threshold = 0.0;
        assert!(pick(&strict).is_none());
    }

    #[tokio::test]
    async fn least_request_avoids_the_busy_host() {
        let u = upstream(
            LbPolicy::LeastRequest { choice_count: 2 },
            &[(1, 1, true), (2, 1, true)],
        );
        u.hosts[0].active.store(10, Ordering::Relaxed);
        let c = counts(&u, 200, |_| None);
        // Both random choices land on the busy host a quarter of the time.
        assert!(c[&2] > 120 && c.get(&1).copied().unwrap_or(0) < 80, "{c:?}");
    }

    #[tokio::test]
    async fn random_reaches_every_host() {
        let u = upstream(LbPolicy::Random, &[(1, 1, true), (2, 1, true)]);
        assert_eq!(counts(&u, 200, |_| None).len(), 2);
    }

    #[tokio::test]
    async fn hashing_is_sticky_per_key_and_spreads_keys() {
        for policy in [RING, MAGLEV] {
            let u = upstream(policy, &[(1, 1, true), (2, 1, true), (3, 1, true)]);
            for key in 0..50u64 {
                let one = counts(&u, 20, |_| Some(xxh(key)));
                assert_eq!(one.len(), 1, "{policy:?} key {key}: {one:?}");
            }
            let spread = counts(&u, 3000, |i| Some(xxh(i as u64)));
            assert!(spread.values().all(|c| *c > 700), "{policy:?}: {spread:?}");
            // Without a hash: random.
            assert_eq!(counts(&u, 100, |_| None).len(), 3);
        }
    }

    #[tokio::test]
    async fn hashing_skips_an_ejected_host_and_stays_sticky() {
        let mut u = upstream(RING, &[(1, 1, true), (2, 1, true), (3, 1, true)]);
        u.config.outlier_detection = Some(OutlierDetection {
            consecutive_5xx: 1,
            ..Default::default()
        });
        let od = u.config.outlier_detection.unwrap();
        let key = xxh(7);
        let first = pick_hashed(&u, Some(key)).unwrap().endpoint.port;
        let host = u.hosts.iter().find(|h| h.endpoint.port == first).unwrap();
        assert!(host
            .outlier
            .record(&od, Outcome::Status(500), Instant::now(), || true));
        let next = counts(&u, 20, |_| Some(key));
        assert_eq!(next.len(), 1);
        assert!(!next.contains_key(&first));
    }

    fn xxh(k: u64) -> u64 {
        super::super::xxhash64(&k.to_le_bytes(), 0)
    }
}
