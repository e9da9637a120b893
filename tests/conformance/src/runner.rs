//! Runs scenarios one after another on the shared mesh and reports what a user would see.

use crate::client::{Response, Via};
use crate::control::ResourceKey;
use crate::mesh::Mesh;
use crate::scenario::{Check, Scenario};
use crate::verdict::judge_all;
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

/// How long a scenario's first check is retried while its config reaches the data plane.
const CONVERGE: Duration = Duration::from_secs(5);
/// The same for pending scenarios: they are expected to fail, so they should fail fast;
/// config that works normally converges well inside this.
const CONVERGE_PENDING: Duration = Duration::from_secs(2);
/// Bound on waiting for weftd to report every push ACKed.
const SYNC_WAIT: Duration = Duration::from_secs(2);

/// How one scenario ended.
#[derive(Debug)]
pub struct Outcome {
    pub name: &'static str,
    pub pending: Option<&'static str>,
    /// Why it failed, or None when every check passed.
    pub failure: Option<String>,
    pub elapsed: Duration,
}

impl Outcome {
    /// Counted as a failure of the run: a real failure, or a pending scenario that passes.
    pub fn fails_run(&self) -> bool {
        self.failure.is_some() != self.pending.is_some()
    }
}

/// The suite's tally.
#[derive(Debug, Default)]
pub struct Report {
    pub outcomes: Vec<Outcome>,
    /// Where a pending scenario's marker lives (`WEFT_PENDING`), named when it passes;
    /// None for the tables' own `pending`.
    pub pending_list: Option<&'static str>,
}

impl Report {
    pub fn passed(&self) -> usize {
        self.outcomes
            .iter()
            .filter(|o| o.failure.is_none() && o.pending.is_none())
            .count()
    }
    pub fn failed(&self) -> usize {
        self.outcomes.iter().filter(|o| o.fails_run()).count()
    }
    pub fn pending(&self) -> usize {
        self.outcomes
            .iter()
            .filter(|o| o.pending.is_some() && o.failure.is_some())
            .count()
    }

    /// One line per scenario, then the summary line.
    pub fn render(&self, data_plane: &str) -> String {
        let mut out = String::new();
        for o in &self.outcomes {
            let line = match (&o.failure, o.pending) {
                (None, None) => format!("PASS     {}", o.name),
                (Some(why), None) => format!("FAIL     {}: {why}", o.name),
                (Some(why), Some(reason)) => {
                    format!("PENDING  {} ({reason}); fails with: {why}", o.name)
                }
                (None, Some(reason)) => format!(
                    "FAIL     {}: passes now, remove it from {} (\"{reason}\")",
                    o.name,
                    self.pending_list.unwrap_or("pending")
                ),
            };
            out.push_str(&format!("{line}  [{:.1}s]\n", o.elapsed.as_secs_f64()));
        }
        out.push_str(&format!(
            "conformance ({data_plane}): {} passed, {} failed, {} pending\n",
            self.passed(),
            self.failed(),
            self.pending()
        ));
        out
    }
}

/// Runs every scenario in order on `mesh`, printing each outcome as it ends.
pub fn run(mesh: &Mesh, scenarios: &[Scenario]) -> Report {
    run_with(mesh, scenarios, None)
}

/// [`run`] for scenarios whose `pending` markers come from `pending_list` (a data plane's
/// expected failures, see [`crate::pending`]), named when one of them passes.
pub fn run_with(mesh: &Mesh, scenarios: &[Scenario], pending_list: Option<&'static str>) -> Report {
    let mut report = Report {
        outcomes: Vec::new(),
        pending_list,
    };
    // `WEFT_CONFORMANCE_ONLY=text`: run only the scenarios whose name contains it, to
    // iterate on one feature quickly.
    let only = std::env::var("WEFT_CONFORMANCE_ONLY").unwrap_or_default();
    for scenario in scenarios.iter().filter(|s| s.name.contains(&only)) {
        let start = Instant::now();
        let failure = run_one(mesh, scenario).err();
        let outcome = Outcome {
            name: scenario.name,
            pending: scenario.pending,
            failure,
            elapsed: start.elapsed(),
        };
        let single = Report {
            outcomes: vec![outcome],
            pending_list,
        };
        let text = single.render("");
        eprint!(
            "{}",
            text.lines()
                .next()
                .map(|l| format!("{l}\n"))
                .unwrap_or_default()
        );
        report.outcomes.extend(single.outcomes);
    }
    report
}

/// Writes a line to stderr past the test harness's output capture, so progress and the
/// summary show even when the suite passes.
pub fn say(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{line}");
}

fn run_one(mesh: &Mesh, scenario: &Scenario) -> Result<(), String> {
    if !mesh.problems.is_empty() && !mesh.converged {
        return Err(format!("mesh not ready: {}", mesh.problems.join("; ")));
    }
    let rejected_before = rejected(mesh)?;
    let mut applied = BTreeSet::new();
    let result = apply_and_check(mesh, scenario, &mut applied);
    let cleanup = restore(mesh, &applied);
    let rejected_after = rejected(mesh)?;
    result?;
    cleanup?;
    let nacks: Vec<String> = rejected_after
        .iter()
        .zip(&rejected_before)
        .filter(|(after, before)| after.1 > before.1)
        .map(|(after, before)| format!("{} rejected {}", after.0, after.1 - before.1))
        .collect();
    if !nacks.is_empty() {
        return Err(format!(
            "config updates were rejected (update_rejected): {}",
            nacks.join(", ")
        ));
    }
    Ok(())
}

fn apply_and_check(
    mesh: &Mesh,
    scenario: &Scenario,
    applied: &mut BTreeSet<ResourceKey>,
) -> Result<(), String> {
    let budget = if scenario.pending.is_some() {
        CONVERGE_PENDING
    } else {
        CONVERGE
    };
    for (i, check) in scenario.before.iter().enumerate() {
        run_check_until(mesh, check, budget)
            .map_err(|e| format!("before the config, check {}: {e}", i + 1))?;
    }
    let vars = mesh.vars();
    for source in &scenario.config {
        for doc in crate::load_source_with(source, mesh.gateway_port, &vars)? {
            let key = ResourceKey::of(&doc)?;
            mesh.control.apply(&doc)?;
            applied.insert(key);
        }
    }
    converge(mesh);
    if scenario.checks.is_empty() {
        return Err("scenario has no checks".into());
    }
    for (i, check) in scenario.checks.iter().enumerate() {
        let result = if i == 0 || check.wait {
            run_check_until(mesh, check, budget)
        } else {
            run_check(mesh, check)
        };
        result.map_err(|e| format!("check {}: {e}", i + 1))?;
    }
    Ok(())
}

/// [`run_check`] retried until it passes or `budget` runs out (at once when the mesh never
/// converged); a [`Check::wait`] check uses up connections from before first.
fn run_check_until(mesh: &Mesh, check: &Check, budget: Duration) -> Result<(), String> {
    if check.wait {
        let mut flush = check.clone();
        flush.times = 16;
        flush.concurrency = 8;
        flush.each.refused = true;
        // Answers and transport errors alike are what the old connections say.
        let _ = send_all(mesh, &flush);
    }
    let deadline = Instant::now() + budget;
    loop {
        match run_check(mesh, check) {
            Ok(()) => return Ok(()),
            Err(e) if Instant::now() > deadline || !mesh.converged => return Err(e),
            Err(_) => std::thread::sleep(Duration::from_millis(200)),
        }
    }
}

/// Puts back the base config a scenario replaced and deletes what it added.
fn restore(mesh: &Mesh, applied: &BTreeSet<ResourceKey>) -> Result<(), String> {
    for key in applied {
        match mesh.base.get(key) {
            Some(doc) => mesh.control.apply(doc)?,
            None => mesh.control.delete(key)?,
        }
    }
    converge(mesh);
    Ok(())
}

/// Waits (bounded) until the client sidecar has the config weftd holds now: applies a
/// marker service with a fresh host name after everything else and polls until the sidecar
/// routes to it. Falls back to weftd's sync report when the marker never answers; the
/// first check's retries remain the final word.
fn converge(mesh: &Mesh) {
    if mesh.converged && mesh.marker() {
        return;
    }
    mesh.control.wait_synced(SYNC_WAIT);
}

fn rejected(mesh: &Mesh) -> Result<Vec<(&'static str, u64)>, String> {
    mesh.proxies()
        .into_iter()
        .map(|(name, p)| Ok((name, p.rejected_updates()?)))
        .collect()
}

/// Sends a check's requests and judges them with the counters around them.
fn run_check(mesh: &Mesh, check: &Check) -> Result<(), String> {
    let entry = match check.request.via {
        Via::Gateway | Via::GatewayTls | Via::Tcp => mesh.gateway.as_deref(),
        Via::Sidecar | Via::SidecarHost | Via::SidecarH2c => mesh.sidecar.as_deref(),
        // Straight to a server-side sidecar.
        Via::Direct | Via::KeepAlive => mesh.servers.first().map(|p| p.as_ref()),
        Via::CanarySidecar => mesh.canary.as_deref(),
    };
    let served_before = served(mesh, check)?;
    let stats_before = stats(mesh, entry, check)?;
    let responses = send_all(mesh, check)?;
    if let Some(why) = judge_all(check, &responses) {
        return Err(why);
    }
    if !check.served_delta.is_empty() {
        // Mirrored requests are sent after the response; give them a moment to land.
        std::thread::sleep(Duration::from_millis(300));
    }
    let served_after = served(mesh, check)?;
    for (((prefix, min, max), before), after) in check
        .served_delta
        .iter()
        .zip(served_before)
        .zip(served_after)
    {
        let delta = after - before;
        if delta < *min || delta > *max {
            return Err(format!(
                "{prefix}* instances saw {delta} requests, expected {min}..={max}"
            ));
        }
    }
    let stats_after = stats(mesh, entry, check)?;
    for (((filter, min), before), after) in check
        .stat_increase
        .iter()
        .zip(stats_before)
        .zip(stats_after)
    {
        if after < before + min {
            return Err(format!(
                "proxy stat *{filter}* rose by {}, expected at least {min}",
                after.saturating_sub(before)
            ));
        }
    }
    Ok(())
}

fn served(mesh: &Mesh, check: &Check) -> Result<Vec<u64>, String> {
    check
        .served_delta
        .iter()
        .map(|(prefix, _, _)| mesh.served(prefix))
        .collect()
}

fn stats(
    mesh: &Mesh,
    entry: Option<&dyn crate::dataplane::RunningProxy>,
    check: &Check,
) -> Result<Vec<u64>, String> {
    if check.stat_increase.is_empty() {
        return Ok(Vec::new());
    }
    let proxy = entry.ok_or("the proxy this request enters is not running")?;
    let vars = mesh.vars();
    check
        .stat_increase
        .iter()
        .map(|(filter, _)| proxy.stat_sum(&vars.render(filter)?))
        .collect()
}

/// Sends `times` requests, `concurrency` at a time, in a bounded number of threads.
fn send_all(mesh: &Mesh, check: &Check) -> Result<Vec<Response>, String> {
    let vars = mesh.vars();
    let mut template = check.request.clone();
    template.url = vars.render(&template.url)?;
    if let Some(cookie) = check.resend_cookie {
        return send_resending_cookie(mesh, &template, check.times, cookie);
    }
    let template = &template;
    let workers = check.concurrency.clamp(1, 32);
    let per_worker = check.times.div_ceil(workers);
    let client = &mesh.client;
    let results: Vec<Result<Vec<Response>, String>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..workers)
            .map(|w| {
                let n = per_worker.min(check.times.saturating_sub(w * per_worker));
                s.spawn(move || {
                    (0..n)
                        .map(|i| {
                            let sent = client.send(&template.numbered(w * per_worker + i + 1));
                            answer_or_refusal(sent, check.each.refused)
                        })
                        .collect::<Result<Vec<_>, _>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err("request thread panicked".into()))
            })
            .collect()
    });
    let mut all = Vec::with_capacity(check.times);
    for r in results {
        all.extend(r?);
    }
    Ok(all)
}

/// A transport error as a status-0 response when the check expects one (the verdict
/// then judges it), else as the error it is.
fn answer_or_refusal(
    sent: Result<Response, String>,
    refusal_expected: bool,
) -> Result<Response, String> {
    match sent {
        Err(why) if refusal_expected => Ok(Response {
            status: 0,
            headers: Default::default(),
            body: why,
            elapsed: Duration::ZERO,
        }),
        other => other,
    }
}

/// Sends the request once, then `times - 1` more with the cookie the first answer set.
fn send_resending_cookie(
    mesh: &Mesh,
    request: &crate::client::Request,
    times: usize,
    cookie: &str,
) -> Result<Vec<Response>, String> {
    let first = mesh.client.send(&request.numbered(1))?;
    // `name=value; Max-Age=...`: only `name=value` goes back, as a browser would send it.
    let pair = first
        .headers
        .get("set-cookie")
        .and_then(|c| c.split(';').next())
        .filter(|p| p.starts_with(&format!("{cookie}=")))
        .map(str::to_owned);
    let mut all = vec![first];
    let Some(pair) = pair else {
        // The verdict reports the missing cookie.
        return Ok(all);
    };
    for n in 2..=times {
        let mut next = request.numbered(n);
        next.headers.push(("cookie".into(), pair.clone()));
        all.push(mesh.client.send(&next)?);
    }
    Ok(all)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(pending: Option<&'static str>, failure: Option<&str>) -> Outcome {
        Outcome {
            name: "s",
            pending,
            failure: failure.map(str::to_owned),
            elapsed: Duration::ZERO,
        }
    }

    #[test]
    fn pending_is_counted_apart_and_must_be_removed_once_passing() {
        let mut report = Report {
            pending_list: None,
            outcomes: vec![
                outcome(None, None),
                outcome(None, Some("boom")),
                outcome(Some("not yet"), Some("boom")),
                outcome(Some("not yet"), None),
            ],
        };
        assert_eq!(
            (report.passed(), report.failed(), report.pending()),
            (1, 2, 1)
        );
        let text = report.render("envoy");
        assert!(text.contains("passes now, remove it from pending"));
        assert!(text.ends_with("conformance (envoy): 1 passed, 2 failed, 1 pending\n"));
        report.pending_list = Some("WEFT_PENDING");
        assert!(report
            .render("weft")
            .contains("passes now, remove it from WEFT_PENDING"));
    }
}
