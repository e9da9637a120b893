//! Envoy's MAGLEV: a lookup table of prime size where each host fills slots along its own
//! permutation (offset and skip from xxHash64 of its address), weighted hosts more often;
//! a request's hash picks slot `hash % size`.

use super::xxhash::xxhash64;

#[derive(Debug, Default)]
pub struct Table {
    slots: Vec<usize>,
}

impl Table {
    /// `hosts`: (address key, weight) in host-list order; `size` is prime.
    pub fn build(hosts: &[(String, u32)], size: u64) -> Table {
        let max_weight = hosts.iter().map(|(_, w)| *w).max().unwrap_or(0);
        if hosts.is_empty() || max_weight == 0 || size < 2 {
            return Table::default();
        }
        let m = size as usize;
        let perms: Vec<(u64, u64)> = hosts
            .iter()
            .map(|(k, _)| {
                let offset = xxhash64(k.as_bytes(), 0) % size;
                let skip = xxhash64(k.as_bytes(), 1) % (size - 1) + 1;
                (offset, skip)
            })
            .collect();
        let mut next = vec![0u64; hosts.len()];
        let mut credit = vec![0f64; hosts.len()];
        let mut slots = vec![usize::MAX; m];
        let mut filled = 0;
        'fill: loop {
            for (i, (_, w)) in hosts.iter().enumerate() {
                // A host of weight w takes a turn in w / max_weight of the rounds.
                credit[i] += f64::from(*w) / f64::from(max_weight);
                if credit[i] < 1.0 {
                    continue;
                }
                credit[i] -= 1.0;
                let (offset, skip) = perms[i];
                loop {
                    let c = ((offset + next[i] * skip) % size) as usize;
                    next[i] += 1;
                    if slots[c] == usize::MAX {
                        slots[c] = i;
                        filled += 1;
                        break;
                    }
                }
                if filled == m {
                    break 'fill;
                }
            }
        }
        Table { slots }
    }

    pub fn lookup(&self, hash: u64) -> Option<usize> {
        (!self.slots.is_empty()).then(|| self.slots[(hash % self.slots.len() as u64) as usize])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fills_the_table_by_weight() {
        let hosts = vec![("a:1".to_string(), 1), ("b:1".to_string(), 3)];
        let t = Table::build(&hosts, 65537);
        let a = t.slots.iter().filter(|i| **i == 0).count();
        assert_eq!(t.slots.len(), 65537);
        assert!((15_000..18_000).contains(&a), "{a}");
    }

    #[test]
    fn same_hash_same_host_and_keys_spread() {
        let hosts: Vec<_> = (0..3).map(|p| (format!("10.0.0.{p}:80"), 1)).collect();
        let t = Table::build(&hosts, 251);
        assert_eq!(t.lookup(12345), Table::build(&hosts, 251).lookup(12345));
        let seen: std::collections::BTreeSet<_> = (0..100u64)
            .map(|k| t.lookup(xxhash64(&k.to_le_bytes(), 0)).unwrap())
            .collect();
        assert_eq!(seen.len(), 3);
    }
}
