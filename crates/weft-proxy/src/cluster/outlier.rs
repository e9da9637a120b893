//! Outlier detection (passive health checking), per host: errors in a row eject the host
//! for `base_ejection_time` times its number of ejections (capped), as Envoy does.

use crate::model::OutlierDetection;
use rand::Rng;
use std::sync::Mutex;
use std::time::Instant;

/// What one response (or failure to get one) says about a host.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Response headers with this status.
    Status(u16),
    /// No connection, or reset before headers: counted as a gateway failure (503).
    ConnectFailure,
}

/// A host's error streaks and ejection history; survives config updates.
#[derive(Debug, Default)]
pub struct HostOutlier(Mutex<State>);

#[derive(Debug, Default)]
struct State {
    consecutive_5xx: u32,
    consecutive_gateway: u32,
    /// Ejections so far; the next ejection lasts this many base times. Decays by one per
    /// `interval` spent not ejected.
    ejections: u32,
    ejected_until: Option<Instant>,
    last_unejected: Option<Instant>,
}

impl HostOutlier {
    /// Whether the host is ejected at `now`; an expired ejection ends here.
    pub fn ejected(&self, now: Instant) -> bool {
        let mut s = self.0.lock().expect("outlier state");
        match s.ejected_until {
            Some(t) if t > now => true,
            Some(_) => {
                s.ejected_until = None;
                s.last_unejected = Some(now);
                false
            }
            None => false,
        }
    }

    /// Records `outcome`; returns true when it ejects the host. `may_eject` says whether the
    /// cluster's `max_ejection_percent` leaves room for one more ejected host.
    pub fn record(
        &self,
        config: &OutlierDetection,
        outcome: Outcome,
        now: Instant,
        may_eject: impl FnOnce() -> bool,
    ) -> bool {
        let mut s = self.0.lock().expect("outlier state");
        let (is_5xx, is_gateway) = match outcome {
            Outcome::Status(code) => (code >= 500, matches!(code, 502..=504)),
            Outcome::ConnectFailure => (true, true),
        };
        if !is_5xx {
            s.consecutive_5xx = 0;
            s.consecutive_gateway = 0;
            return false;
        }
        s.consecutive_5xx += 1;
        s.consecutive_gateway = if is_gateway {
            s.consecutive_gateway + 1
        } else {
            0
        };
        if s.ejected_until.is_some_and(|t| t > now) {
            return false;
        }
        let roll = |percent: u32| percent > 0 && rand::rng().random_range(0..100) < percent;
        let by_5xx = config.consecutive_5xx > 0
            && s.consecutive_5xx >= config.consecutive_5xx
            && roll(config.enforcing_consecutive_5xx);
        let by_gateway = config.consecutive_gateway_failure > 0
            && s.consecutive_gateway >= config.consecutive_gateway_failure
            && roll(config.enforcing_consecutive_gateway_failure);
        if s.consecutive_5xx >= config.consecutive_5xx {
            s.consecutive_5xx = 0;
        }
        if s.consecutive_gateway >= config.consecutive_gateway_failure {
            s.consecutive_gateway = 0;
        }
        if !(by_5xx || by_gateway) || !may_eject() {
            return false;
        }
        if let Some(since) = s.last_unejected {
            let quiet =
                now.saturating_duration_since(since).as_nanos() / config.interval.as_nanos().max(1);
            s.ejections = s
                .ejections
                .saturating_sub(quiet.min(u32::MAX as u128) as u32);
        }
        s.ejections += 1;
        let cap = config.max_ejection_time.max(config.base_ejection_time);
        let time = config
            .base_ejection_time
            .saturating_mul(s.ejections)
            .min(cap);
        s.ejected_until = Some(now + time);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn config() -> OutlierDetection {
        OutlierDetection {
            consecutive_5xx: 3,
            base_ejection_time: Duration::from_secs(10),
            max_ejection_time: Duration::from_secs(25),
            ..Default::default()
        }
    }

    #[test]
    fn ejects_after_n_5xx_in_a_row_and_a_success_resets() {
        let (h, c, t0) = (HostOutlier::default(), config(), Instant::now());
        let rec = |o| h.record(&c, o, t0, || true);
        assert!(!rec(Outcome::Status(500)));
        assert!(!rec(Outcome::Status(503)));
        assert!(!rec(Outcome::Status(200)));
        assert!(!rec(Outcome::Status(500)));
        assert!(!rec(Outcome::ConnectFailure));
        assert!(rec(Outcome::Status(500)));
        assert!(h.ejected(t0 + Duration::from_secs(9)));
        assert!(!h.ejected(t0 + Duration::from_secs(10)));
    }

    #[test]
    fn ejection_time_grows_with_ejections_up_to_the_cap() {
        let (h, c, mut now) = (HostOutlier::default(), config(), Instant::now());
        let mut times = Vec::new();
        for _ in 0..3 {
            for _ in 0..3 {
                h.record(&c, Outcome::Status(500), now, || true);
            }
            let start = now;
            while h.ejected(now) {
                now += Duration::from_secs(1);
            }
            times.push((now - start).as_secs());
        }
        // 10s, 20s, then capped at 25s (the 10s interval between is too short to decay).
        assert_eq!(times, vec![10, 20, 25]);
    }

    #[test]
    fn gateway_failures_eject_only_when_enforced_and_room_is_left() {
        let c = OutlierDetection {
            consecutive_5xx: 0,
            consecutive_gateway_failure: 2,
            enforcing_consecutive_gateway_failure: 100,
            ..Default::default()
        };
        let (h, t0) = (HostOutlier::default(), Instant::now());
        assert!(!h.record(&c, Outcome::Status(502), t0, || true));
        assert!(!h.record(&c, Outcome::Status(504), t0, || false));
        assert!(!h.ejected(t0));
        assert!(!h.record(&c, Outcome::Status(500), t0, || true));
        assert!(!h.record(&c, Outcome::Status(503), t0, || true));
        assert!(h.record(&c, Outcome::ConnectFailure, t0, || true));
    }
}
