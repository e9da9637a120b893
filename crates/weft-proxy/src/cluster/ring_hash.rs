//! Envoy's RING_HASH: every host takes ring positions in proportion to its weight
//! (`xxHash64("<address>_<n>")`), and a request's hash goes to the first position at or
//! after it. Adding or removing one host moves only the keys next to its positions.

use super::xxhash::xxhash64;

/// A built ring: sorted positions, each naming an index into the host list it was built from.
#[derive(Debug, Default)]
pub struct Ring {
    entries: Vec<(u64, usize)>,
}

impl Ring {
    /// `hosts`: (address key, weight) in host-list order.
    pub fn build(hosts: &[(String, u32)], minimum: u64, maximum: u64) -> Ring {
        let total: f64 = hosts.iter().map(|(_, w)| f64::from(*w)).sum();
        if hosts.is_empty() || total == 0.0 {
            return Ring::default();
        }
        let min_share = hosts
            .iter()
            .map(|(_, w)| f64::from(*w) / total)
            .fold(f64::MAX, f64::min);
        // Enough entries that the lightest host gets at least one, within the bounds.
        let scale = ((min_share * minimum as f64).ceil() / min_share).min(maximum as f64);
        let mut entries = Vec::with_capacity(scale as usize + hosts.len());
        let (mut target, mut placed) = (0.0, 0.0);
        for (i, (key, w)) in hosts.iter().enumerate() {
            target += scale * f64::from(*w) / total;
            let mut n = 0u64;
            while placed < target {
                entries.push((xxhash64(format!("{key}_{n}").as_bytes(), 0), i));
                n += 1;
                placed += 1.0;
            }
        }
        entries.sort_unstable();
        Ring { entries }
    }

    /// The host index owning `hash`; None for an empty ring.
    pub fn lookup(&self, hash: u64) -> Option<usize> {
        if self.entries.is_empty() {
            return None;
        }
        let i = self.entries.partition_point(|(h, _)| *h < hash);
        Some(self.entries[i % self.entries.len()].1)
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn hosts(n: u16) -> Vec<(String, u32)> {
        (0..n).map(|p| (format!("10.0.0.{p}:80"), 1)).collect()
    }

    #[test]
    fn size_follows_minimum_and_weights() {
        assert_eq!(Ring::build(&hosts(3), 1024, 8 << 20).len(), 1026);
        let weighted = vec![("a:1".to_string(), 1), ("b:1".to_string(), 3)];
        let ring = Ring::build(&weighted, 100, 8 << 20);
        let a = ring.entries.iter().filter(|e| e.1 == 0).count();
        assert_eq!((a, ring.len() - a), (25, 75));
    }

    #[test]
    fn spreads_keys_and_moves_few_when_a_host_goes() {
        let five = Ring::build(&hosts(5), 1024, 8 << 20);
        let mut counts = BTreeMap::new();
        let keys: Vec<u64> = (0..5000u64)
            .map(|k| xxhash64(&k.to_le_bytes(), 0))
            .collect();
        for k in &keys {
            *counts.entry(five.lookup(*k).unwrap()).or_insert(0) += 1;
        }
        assert_eq!(counts.len(), 5);
        assert!(
            counts.values().all(|c| (600..1400).contains(c)),
            "{counts:?}"
        );
        // Host 4 removed: the others keep their positions (and gain a few), so most of
        // their keys stay where they were.
        let four = Ring::build(&hosts(4), 1024, 8 << 20);
        let moved = keys
            .iter()
            .filter(|k| five.lookup(**k) != Some(4) && five.lookup(**k) != four.lookup(**k))
            .count();
        assert!(
            moved < keys.len() * 15 / 100,
            "{moved} of {} keys moved",
            keys.len()
        );
    }
}
