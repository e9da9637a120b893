//! Small conversions from Istio's value types to Envoy protobuf values.

use envoy_types::pb::envoy::r#type::matcher::v3::{string_matcher, RegexMatcher, StringMatcher};
use envoy_types::pb::envoy::r#type::v3::{fractional_percent::DenominatorType, FractionalPercent};
use envoy_types::pb::google::protobuf::Duration;
use weft_config::networking::shared::Percent;
use weft_config::networking::virtual_service::StringMatch;

/// A duration as protobuf wants it; negative values (rejected by validation) become zero.
pub fn duration(d: weft_config::common::Duration) -> Duration {
    let nanos = d.nanos.max(0);
    Duration {
        seconds: i64::try_from(nanos / 1_000_000_000).unwrap_or(i64::MAX),
        nanos: (nanos % 1_000_000_000) as i32,
    }
}

/// Zero seconds: Envoy reads a zero route timeout as "no timeout".
pub fn zero_duration() -> Duration {
    Duration::default()
}

/// Istio's `Percent` (a double, 0..100) at Envoy's finest granularity, parts per million,
/// so fractional percentages such as 0.1% survive.
pub fn percent(p: &Percent) -> FractionalPercent {
    FractionalPercent {
        numerator: (p.value.clamp(0.0, 100.0) * 10_000.0) as u32,
        denominator: DenominatorType::Million as i32,
    }
}

/// An integer percentage (Istio's deprecated fields), out of a hundred.
pub fn integer_percent(p: u32) -> FractionalPercent {
    FractionalPercent {
        numerator: p.min(100),
        denominator: DenominatorType::Hundred as i32,
    }
}

/// Istio's `StringMatch` as an Envoy `StringMatcher`; `None` when no variant is set.
pub fn string_matcher(m: &StringMatch) -> Option<StringMatcher> {
    let pattern = if let Some(exact) = &m.exact {
        string_matcher::MatchPattern::Exact(exact.clone())
    } else if let Some(prefix) = &m.prefix {
        string_matcher::MatchPattern::Prefix(prefix.clone())
    } else if let Some(regex) = &m.regex {
        string_matcher::MatchPattern::SafeRegex(regex_matcher(regex))
    } else {
        return None;
    };
    Some(StringMatcher {
        match_pattern: Some(pattern),
        ignore_case: false,
    })
}

/// A RE2 regex matcher (Envoy's default engine, the one Istio validates against).
pub fn regex_matcher(regex: &str) -> RegexMatcher {
    RegexMatcher {
        regex: regex.to_string(),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_split_into_seconds_and_nanos() {
        let d = duration(weft_config::common::Duration::from_millis(1500));
        assert_eq!((d.seconds, d.nanos), (1, 500_000_000));
    }

    #[test]
    fn fractional_percent_keeps_tenths() {
        let p = percent(&Percent { value: 0.1 });
        assert_eq!(p.numerator, 1000);
        assert_eq!(p.denominator, DenominatorType::Million as i32);
    }
}
