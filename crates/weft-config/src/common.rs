//! Types shared by several Istio kinds: durations, workload selectors, policy target refs.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::BTreeMap;
use std::fmt;

/// A protobuf `Duration` as Istio's YAML writes it: Go syntax such as "7s", "100ms",
/// "1h30m" or "1.5s". Kept as signed nanoseconds so that validation can report
/// negative values instead of failing to parse them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Duration {
    pub nanos: i128,
}

impl Duration {
    pub const fn from_millis(ms: i64) -> Self {
        Duration {
            nanos: ms as i128 * 1_000_000,
        }
    }

    pub const fn from_secs(s: i64) -> Self {
        Duration {
            nanos: s as i128 * 1_000_000_000,
        }
    }

    /// The value as a std duration, or None if negative.
    pub fn to_std(self) -> Option<std::time::Duration> {
        u64::try_from(self.nanos)
            .ok()
            .map(std::time::Duration::from_nanos)
    }

    pub fn is_negative(self) -> bool {
        self.nanos < 0
    }

    /// Parses Go's `time.ParseDuration` syntax, which is what Istio's CRD schemas accept.
    pub fn parse(s: &str) -> Result<Duration, String> {
        let bad = || {
            format!("invalid duration {s:?}: expected a number with a unit (ns, us, ms, s, m, h), e.g. \"100ms\" or \"1m30s\"")
        };
        let (neg, mut rest) = match s.as_bytes().first() {
            Some(b'-') => (true, &s[1..]),
            Some(b'+') => (false, &s[1..]),
            _ => (false, s),
        };
        if rest == "0" {
            return Ok(Duration::default());
        }
        if rest.is_empty() {
            return Err(bad());
        }
        let mut total: i128 = 0;
        while !rest.is_empty() {
            let num_end = rest
                .find(|c: char| !(c.is_ascii_digit() || c == '.'))
                .ok_or_else(bad)?;
            let (num, tail) = rest.split_at(num_end);
            if num.is_empty() || num == "." {
                return Err(bad());
            }
            let unit_end = tail
                .find(|c: char| c.is_ascii_digit() || c == '.')
                .unwrap_or(tail.len());
            let (unit, tail) = tail.split_at(unit_end);
            let scale: i128 = match unit {
                "ns" => 1,
                "us" | "µs" | "μs" => 1_000,
                "ms" => 1_000_000,
                "s" => 1_000_000_000,
                "m" => 60_000_000_000,
                "h" => 3_600_000_000_000,
                _ => return Err(bad()),
            };
            let (int, frac) = num.split_once('.').unwrap_or((num, ""));
            let int: i128 = if int.is_empty() {
                0
            } else {
                int.parse().map_err(|_| bad())?
            };
            let mut value = int.checked_mul(scale).ok_or_else(bad)?;
            let mut div = 1i128;
            for d in frac.bytes().take(18) {
                div *= 10;
                value += i128::from(d - b'0') * scale / div;
            }
            total = total.checked_add(value).ok_or_else(bad)?;
            rest = tail;
        }
        Ok(Duration {
            nanos: if neg { -total } else { total },
        })
    }
}

impl fmt::Display for Duration {
    /// Writes the protobuf JSON form ("1.5s"), which Envoy and Istio both accept.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.nanos < 0 { "-" } else { "" };
        let n = self.nanos.unsigned_abs();
        let (secs, frac) = (n / 1_000_000_000, n % 1_000_000_000);
        if frac == 0 {
            write!(f, "{sign}{secs}s")
        } else {
            let frac = format!("{frac:09}");
            write!(f, "{sign}{secs}.{}s", frac.trim_end_matches('0'))
        }
    }
}

impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Duration;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration string such as \"5s\"")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Duration, E> {
                Duration::parse(v).map_err(E::custom)
            }
        }
        d.deserialize_str(V)
    }
}

/// `istio.type.v1beta1.WorkloadSelector`, used by security, telemetry and extension kinds.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WorkloadSelector {
    #[serde(default)]
    pub match_labels: BTreeMap<String, String>,
}

/// `istio.type.v1beta1.PolicyTargetReference`: a Gateway API object a policy attaches to.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PolicyTargetReference {
    #[serde(default)]
    pub group: Option<String>,
    #[serde(default)]
    pub kind: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub namespace: Option<String>,
}

/// `istio.type.v1beta1.PortSelector`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PortSelector {
    #[serde(default)]
    pub number: Option<u32>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_go_durations() {
        assert_eq!(Duration::parse("7s").unwrap(), Duration::from_secs(7));
        assert_eq!(
            Duration::parse("100ms").unwrap(),
            Duration::from_millis(100)
        );
        assert_eq!(
            Duration::parse("1.5s").unwrap(),
            Duration::from_millis(1500)
        );
        assert_eq!(Duration::parse("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(Duration::parse("-1s").unwrap().nanos, -1_000_000_000);
        assert_eq!(Duration::parse("0").unwrap(), Duration::default());
        for bad in ["", "5", "s", "1x", "1.s.", "abc", "1s5"] {
            assert!(Duration::parse(bad).is_err(), "{bad} should fail");
        }
    }

    #[test]
    fn displays_protobuf_json() {
        assert_eq!(Duration::from_millis(1500).to_string(), "1.5s");
        assert_eq!(Duration::from_secs(3).to_string(), "3s");
        assert_eq!(Duration::from_millis(1).to_string(), "0.001s");
    }
}
