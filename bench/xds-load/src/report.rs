//! Markdown from result JSON: one table row per run, against the targets.

use crate::scenario::RunResult;
use serde_json::Value;
use std::fmt::Write as _;
use std::path::PathBuf;

/// Targets of issue 7 at 5,000 proxies; reported against, never asserted.
const TARGET_P99_S: f64 = 1.0;
const TARGET_RSS_MB: f64 = 200.0;

pub fn one_line(r: &RunResult) -> String {
    format!(
        "{}: {} proxies synced in {:.1}s; VS p50/p99/last {:.3}/{:.3}/{:.3}s; join p99 {:.3}s; \
         leave p99 {:.3}s; RSS {:.0} MB (peak {:.0} MB)",
        r.label,
        r.proxies,
        r.connect.seconds_to_all_synced,
        r.vs.p50_s,
        r.vs.p99_s,
        r.vs.max_s,
        r.join.p99_s,
        r.leave.p99_s,
        r.weftd_final.rss_mb,
        r.weftd_final.hwm_mb
    )
}

fn f(v: &Value, path: &[&str]) -> f64 {
    path.iter()
        .fold(v, |v, k| &v[*k])
        .as_f64()
        .unwrap_or(f64::NAN)
}

fn kb(bytes: f64) -> String {
    if bytes >= 1e6 {
        format!("{:.1} MB", bytes / 1e6)
    } else {
        format!("{:.1} KB", bytes / 1e3)
    }
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "missed"
    }
}

pub fn write(
    files: &[PathBuf],
    command: &str,
    conditions: &str,
    out: &PathBuf,
) -> Result<(), String> {
    let runs: Vec<Value> = files
        .iter()
        .map(|p| {
            let text = std::fs::read_to_string(p)
                .map_err(|e| format!("cannot read {}: {e}", p.display()))?;
            serde_json::from_str(&text).map_err(|e| format!("{}: {e}", p.display()))
        })
        .collect::<Result<_, String>>()?;
    let mut md = String::new();
    let _ = writeln!(md, "# weftd control-plane benchmark\n");
    let _ = writeln!(md, "Command: `{command}`\n");
    if !conditions.is_empty() {
        let _ = writeln!(md, "Conditions: {conditions}\n");
    }
    let _ = writeln!(
        md,
        "Times are from the start of the `weft` command to each proxy's last ACK caused by \
         the change; p50/p99 are over proxies (pooled over the changes), \"last\" is the \
         slowest proxy of the worst change.\n"
    );
    let _ = writeln!(md, "## Propagation\n");
    let _ = writeln!(
        md,
        "| run | proxies | scoped | change | n | p50 | p99 | last | weftd CPU/change | pushed/change | per proxy |"
    );
    let _ = writeln!(md, "|---|---:|---|---|---:|---:|---:|---:|---:|---:|---:|");
    for r in &runs {
        for kind in ["vs", "join", "leave"] {
            let s = &r[kind];
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} | {:.3} s | {:.3} s | {:.3} s | {:.2} s | {} | {} |",
                r["label"].as_str().unwrap_or(""),
                r["proxies"],
                r["scoped"],
                kind,
                s["changes"],
                f(s, &["p50_s"]),
                f(s, &["p99_s"]),
                f(s, &["max_s"]),
                f(s, &["mean_weftd_cpu_s"]),
                kb(f(s, &["mean_bytes_total"])),
                kb(f(s, &["mean_bytes_per_proxy"])),
            );
        }
    }
    let _ = writeln!(md, "\n## Connect, memory, CPU\n");
    let _ = writeln!(
        md,
        "| run | proxies | all synced | initial push | per proxy | weftd CPU to sync | RSS idle (registry) | RSS synced | RSS end | peak (VmHWM) | weftd CPU total | load tool CPU |"
    );
    let _ = writeln!(
        md,
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    for r in &runs {
        let _ = writeln!(
            md,
            "| {} | {} | {:.1} s | {} | {} | {:.1} s | {:.0} MB | {:.0} MB | {:.0} MB | {:.0} MB | {:.1} s | {:.1} s |",
            r["label"].as_str().unwrap_or(""),
            r["proxies"],
            f(r, &["connect", "seconds_to_all_synced"]),
            kb(f(r, &["connect", "bytes_total"])),
            kb(f(r, &["connect", "bytes_per_proxy"])),
            f(r, &["connect", "weftd_cpu_s"]),
            f(r, &["weftd_before_connect", "rss_mb"]),
            f(r, &["weftd_after_sync", "rss_mb"]),
            f(r, &["weftd_final", "rss_mb"]),
            f(r, &["weftd_final", "hwm_mb"]),
            f(r, &["weftd_cpu_total_s"]),
            f(r, &["load_tool_cpu_s"]),
        );
    }
    let _ = writeln!(md, "\n## Against the targets (5,000 proxies)\n");
    let at_target_scale: Vec<&Value> = runs
        .iter()
        .filter(|r| r["proxies"].as_u64() == Some(5000))
        .collect();
    if at_target_scale.is_empty() {
        let _ = writeln!(md, "No run with 5,000 proxies in this report.");
    }
    for r in at_target_scale {
        let p99 = ["vs", "join", "leave"]
            .iter()
            .map(|k| f(&r[*k], &["p99_s"]))
            .fold(0.0, f64::max);
        let hwm = f(r, &["weftd_final", "hwm_mb"]);
        let _ = writeln!(
            md,
            "- {}: worst p99 {:.3} s vs target {TARGET_P99_S} s: {}; peak RSS {:.0} MB vs target {TARGET_RSS_MB} MB: {}",
            r["label"].as_str().unwrap_or(""),
            p99,
            verdict(p99 <= TARGET_P99_S),
            hwm,
            verdict(hwm <= TARGET_RSS_MB),
        );
    }
    let _ = writeln!(md, "\n## Every change\n");
    let _ = writeln!(
        md,
        "| run | change | weft cmd | affected | saw marker | p50 | p99 | last | pushed | weftd CPU |"
    );
    let _ = writeln!(md, "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in &runs {
        for c in r["changes"].as_array().into_iter().flatten() {
            let _ = writeln!(
                md,
                "| {} | {} {} | {:.3} s | {} | {} | {:.3} s | {:.3} s | {:.3} s | {} | {:.2} s |",
                r["label"].as_str().unwrap_or(""),
                c["kind"].as_str().unwrap_or(""),
                c["index"],
                f(c, &["apply_s"]),
                c["affected"],
                c["marker_seen"],
                f(c, &["p50_s"]),
                f(c, &["p99_s"]),
                f(c, &["max_s"]),
                kb(f(c, &["bytes_total"])),
                f(c, &["weftd_cpu_s"]),
            );
        }
    }
    std::fs::write(out, md).map_err(|e| format!("cannot write {}: {e}", out.display()))
}
