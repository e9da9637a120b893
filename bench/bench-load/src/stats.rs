//! Latency percentiles from every sample, and what /proc says about a process's CPU.

use std::collections::BTreeMap;
use std::time::Duration;

/// Exact percentiles (nearest rank) of latencies in microseconds, as milliseconds, keyed
/// like bench/harness/load.py's figures (`p50`, `p90`, `p99`, `p99.9`).
pub fn percentiles_ms(samples: &mut [u64]) -> BTreeMap<&'static str, f64> {
    samples.sort_unstable();
    let mut out = BTreeMap::new();
    for (name, q) in [("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("p99.9", 0.999)] {
        let v = if samples.is_empty() {
            0.0
        } else {
            let rank = ((q * samples.len() as f64).ceil() as usize).clamp(1, samples.len());
            samples[rank - 1] as f64 / 1000.0
        };
        out.insert(name, v);
    }
    out
}

/// utime + stime of `pid` so far (Linux reports clock ticks of USER_HZ = 100).
pub fn cpu(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some(Duration::from_secs_f64((utime + stime) / 100.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let mut xs: Vec<u64> = (1..=1000).map(|i| i * 1000).collect();
        xs.reverse();
        let p = percentiles_ms(&mut xs);
        assert_eq!(p["p50"], 500.0);
        assert_eq!(p["p90"], 900.0);
        assert_eq!(p["p99"], 990.0);
        assert_eq!(p["p99.9"], 999.0);
        assert_eq!(percentiles_ms(&mut [])["p99"], 0.0);
    }

    #[test]
    fn reads_this_process_cpu() {
        let spin = std::time::Instant::now();
        while spin.elapsed() < Duration::from_millis(50) {}
        assert!(cpu(std::process::id()).unwrap() > Duration::ZERO);
        assert!(cpu(u32::MAX).is_none());
    }
}
