//! kubectl-style tables: aligned columns, AGE, and per-kind `-o wide` summaries.

use serde_json::Value;
use std::time::{SystemTime, UNIX_EPOCH};
use weft_config::Kind;

/// Aligns rows under a header, three spaces between columns, like kubectl's tabwriter.
pub fn render(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let header: Vec<String> = header.iter().map(|h| h.to_string()).collect();
    for row in std::iter::once(&header).chain(rows) {
        let mut line = String::new();
        for (i, (cell, w)) in row.iter().zip(&widths).enumerate() {
            if i > 0 {
                line.push_str("   ");
            }
            line.push_str(cell);
            line.extend(std::iter::repeat_n(' ', w - cell.chars().count()));
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// The extra `-o wide` columns of a kind: the same ones Istio's CRDs declare as
/// additionalPrinterColumns, so `kubectl get` and `weft get -o wide` agree.
pub fn wide_columns(kind: Kind) -> &'static [(&'static str, &'static str)] {
    match kind {
        Kind::VirtualService => &[("GATEWAYS", "/spec/gateways"), ("HOSTS", "/spec/hosts")],
        Kind::DestinationRule => &[("HOST", "/spec/host")],
        Kind::ServiceEntry => &[
            ("HOSTS", "/spec/hosts"),
            ("LOCATION", "/spec/location"),
            ("RESOLUTION", "/spec/resolution"),
        ],
        Kind::WorkloadEntry => &[("ADDRESS", "/spec/address")],
        Kind::PeerAuthentication => &[("MODE", "/spec/mtls/mode")],
        Kind::AuthorizationPolicy => &[("ACTION", "/spec/action")],
        _ => &[],
    }
}

/// A cell for a JSON value: strings bare, lists as kubectl's JSONPath prints them.
pub fn cell(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

/// AGE from an RFC 3339 `creationTimestamp`, or `<unknown>`.
pub fn age(creation_timestamp: Option<&str>) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    match creation_timestamp.and_then(unix_seconds) {
        Some(t) => human_duration((now - t).max(0) as u64),
        None => "<unknown>".into(),
    }
}

/// Parses `YYYY-MM-DDTHH:MM:SS` (fraction and `Z`/offset tolerated) to Unix seconds.
fn unix_seconds(ts: &str) -> Option<i64> {
    let num = |r: std::ops::Range<usize>| ts.get(r)?.parse::<i64>().ok();
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, s) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let offset = match ts[19..].trim_start_matches(|c: char| c == '.' || c.is_ascii_digit()) {
        "" | "Z" | "z" => 0,
        tz => {
            let sign = if tz.starts_with('-') { -1 } else { 1 };
            let hh = tz.get(1..3)?.parse::<i64>().ok()?;
            let mm = tz.get(4..6)?.parse::<i64>().ok()?;
            sign * (hh * 3600 + mm * 60)
        }
    };
    Some(days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + s - offset)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

/// kubectl's HumanDuration: precise when young, coarse when old ("45s", "3m2s", "5d").
pub fn human_duration(secs: u64) -> String {
    let (m, h, d) = (secs / 60, secs / 3600, secs / 86400);
    match () {
        _ if secs < 120 => format!("{secs}s"),
        _ if m < 10 => match secs % 60 {
            0 => format!("{m}m"),
            s => format!("{m}m{s}s"),
        },
        _ if m < 180 => format!("{m}m"),
        _ if h < 8 => match m % 60 {
            0 => format!("{h}h"),
            mm => format!("{h}h{mm}m"),
        },
        _ if h < 48 => format!("{h}h"),
        _ if h < 24 * 8 => match h % 24 {
            0 => format!("{d}d"),
            hh => format!("{d}d{hh}h"),
        },
        _ if d < 365 * 2 => format!("{d}d"),
        _ if d < 365 * 8 => match d % 365 {
            0 => format!("{}y", d / 365),
            dd => format!("{}y{dd}d", d / 365),
        },
        _ => format!("{}y", d / 365),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn columns_align_and_lines_have_no_trailing_space() {
        let out = render(
            &["NAME", "HOSTS", "AGE"],
            &[
                vec!["productpage".into(), "".into(), "5s".into()],
                vec!["ra".into(), "[\"r\"]".into(), "10m".into()],
            ],
        );
        assert_eq!(
            out,
            "NAME          HOSTS   AGE\nproductpage           5s\nra            [\"r\"]   10m\n"
        );
    }

    #[test]
    fn timestamps_parse_to_unix_seconds() {
        assert_eq!(unix_seconds("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(unix_seconds("2024-03-01T12:30:05Z"), Some(1709296205));
        assert_eq!(
            unix_seconds("2024-03-01T12:30:05.123456Z"),
            Some(1709296205)
        );
        assert_eq!(unix_seconds("2024-03-01T14:30:05+02:00"), Some(1709296205));
        assert_eq!(unix_seconds("yesterday"), None);
        assert_eq!(age(None), "<unknown>");
    }

    #[test]
    fn durations_read_like_kubectl() {
        assert_eq!(human_duration(5), "5s");
        assert_eq!(human_duration(119), "119s");
        assert_eq!(human_duration(185), "3m5s");
        assert_eq!(human_duration(600), "10m");
        assert_eq!(human_duration(3 * 3600 + 120), "3h2m");
        assert_eq!(human_duration(30 * 3600), "30h");
        assert_eq!(human_duration(3 * 86400 + 3600), "3d1h");
        assert_eq!(human_duration(100 * 86400), "100d");
        assert_eq!(human_duration(3 * 365 * 86400 + 86400), "3y1d");
    }

    #[test]
    fn list_cells_print_as_json() {
        let vs = json!({"spec": {"hosts": ["reviews", "ratings"]}});
        assert_eq!(cell(vs.pointer("/spec/hosts")), r#"["reviews","ratings"]"#);
        assert_eq!(cell(vs.pointer("/spec/gateways")), "");
        assert_eq!(wide_columns(Kind::VirtualService)[1].0, "HOSTS");
    }
}
