//! One measured run: connect N proxies, wait until every one is in sync, then apply changes
//! with the real `weft` CLI and time, per proxy, the last ACK each change caused.

use crate::mesh::{self, Mesh, Service, Shape, SHARED};
use crate::procfs;
use crate::proxy::{self, Shared, Stats};
use serde::Serialize;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tonic::transport::{Channel, Endpoint};

/// Everything a run needs to know.
#[derive(Clone, Debug)]
pub struct Plan {
    pub label: String,
    pub xds: String,
    pub server: String,
    pub data_dir: PathBuf,
    pub weft: PathBuf,
    pub weftd_pid: u32,
    pub proxies: usize,
    pub streams_per_connection: usize,
    pub vs_changes: usize,
    pub churn: usize,
    pub quiet: Duration,
    pub sync_timeout: Duration,
    pub scoped: bool,
    pub shape: Shape,
    /// weftd's RSS above which the run stops, so a runaway weftd cannot take the machine.
    pub max_weftd_rss_mb: f64,
}

#[derive(Debug, Default, Serialize)]
pub struct Memory {
    pub rss_mb: f64,
    pub hwm_mb: f64,
}

fn memory(pid: u32) -> Memory {
    let (rss, hwm) = procfs::memory(pid).unwrap_or_default();
    Memory {
        rss_mb: rss as f64 / 1048576.0,
        hwm_mb: hwm as f64 / 1048576.0,
    }
}

fn cpu(pid: u32) -> f64 {
    procfs::cpu(pid).unwrap_or_default().as_secs_f64()
}

#[derive(Debug, Serialize)]
pub struct Connect {
    pub seconds_to_all_synced: f64,
    pub synced: usize,
    pub sync_p50_s: f64,
    pub sync_p99_s: f64,
    pub bytes_total: u64,
    pub bytes_per_proxy: u64,
    pub weftd_cpu_s: f64,
}

#[derive(Debug, Serialize)]
pub struct Change {
    pub kind: &'static str,
    pub index: usize,
    /// How long the `weft` command itself took (CLI start, HTTP, fsync).
    pub apply_s: f64,
    /// Proxies that received and ACKed at least one response after the change.
    pub affected: usize,
    /// Proxies whose EDS/RDS carried the change's marker (VS revision or new address).
    pub marker_seen: usize,
    pub p50_s: f64,
    pub p99_s: f64,
    pub max_s: f64,
    pub bytes_total: u64,
    pub bytes_per_affected_proxy: u64,
    pub responses: u64,
    pub weftd_cpu_s: f64,
}

#[derive(Debug, Default, Serialize)]
pub struct Summary {
    pub changes: usize,
    /// Pooled over every (change, proxy) sample.
    pub p50_s: f64,
    pub p99_s: f64,
    /// Worst "last proxy ACKed" over the changes.
    pub max_s: f64,
    /// Median over changes of the time to the very last ACK.
    pub median_last_ack_s: f64,
    pub mean_bytes_total: u64,
    pub mean_bytes_per_proxy: u64,
    pub mean_weftd_cpu_s: f64,
    pub min_affected: usize,
    pub min_marker_seen: usize,
}

#[derive(Debug, Serialize)]
pub struct RunResult {
    pub label: String,
    pub proxies: usize,
    pub scoped: bool,
    pub services: usize,
    pub endpoints: usize,
    pub namespaces: usize,
    pub streams_per_connection: usize,
    pub connections: usize,
    pub weftd_before_connect: Memory,
    pub connect: Connect,
    pub weftd_after_sync: Memory,
    pub changes: Vec<Change>,
    pub vs: Summary,
    pub join: Summary,
    pub leave: Summary,
    pub weftd_final: Memory,
    pub weftd_cpu_total_s: f64,
    pub load_tool_cpu_s: f64,
    pub failed_streams: usize,
}

/// Nearest-rank percentile of sorted samples.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn sorted(mut v: Vec<f64>) -> Vec<f64> {
    v.sort_by(f64::total_cmp);
    v
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("cannot connect to weftd's xDS at {addr}: {source}")]
    Connect {
        addr: String,
        source: tonic::transport::Error,
    },
    #[error(
        "only {synced} of {wanted} proxies were in sync after {after:?} ({failed} streams failed)"
    )]
    NotSynced {
        synced: usize,
        wanted: usize,
        failed: usize,
        after: Duration,
    },
    #[error("`{command}` failed: {reason}")]
    Weft { command: String, reason: String },
    #[error("weftd's RSS passed the cap of {cap_mb} MB ({rss_mb:.0} MB); rerun with a higher --max-weftd-rss-mb on a machine with the memory")]
    RssCap { cap_mb: f64, rss_mb: f64 },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

struct Fleet {
    shared: Arc<Shared>,
    stats: Vec<Arc<Stats>>,
    pid: u32,
    max_rss_mb: f64,
}

/// Stops the run when weftd grows past the cap.
fn check_rss(pid: u32, cap_mb: f64) -> Result<(), RunError> {
    let rss_mb = memory(pid).rss_mb;
    if rss_mb > cap_mb {
        return Err(RunError::RssCap { cap_mb, rss_mb });
    }
    Ok(())
}

impl Fleet {
    fn synced(&self) -> usize {
        self.stats
            .iter()
            .filter(|s| s.synced.load(Ordering::Relaxed))
            .count()
    }

    fn failed(&self) -> usize {
        self.stats
            .iter()
            .filter(|s| s.failed.load(Ordering::Relaxed))
            .count()
    }

    fn bytes(&self) -> Vec<u64> {
        self.stats
            .iter()
            .map(|s| s.bytes.load(Ordering::Relaxed))
            .collect()
    }

    fn responses(&self) -> u64 {
        self.stats
            .iter()
            .map(|s| s.responses.load(Ordering::Relaxed))
            .sum()
    }

    fn set_marker(&self, marker: Option<&str>) {
        *self.shared.marker.write().expect("marker lock") =
            marker.map(|m| Arc::new(m.as_bytes().to_vec()));
    }

    fn markers_since(&self, t0: u64) -> usize {
        self.stats
            .iter()
            .filter(|s| s.marker_seen.load(Ordering::Relaxed) > t0)
            .count()
    }

    fn acked_since(&self, t0: u64) -> usize {
        self.stats
            .iter()
            .filter(|s| s.last_ack.load(Ordering::Relaxed) > t0)
            .count()
    }

    /// Waits until the change reached every proxy (each ACKed a response sent after `t0`
    /// and, with a marker, saw it) and then `quiet` passed without any response, for the
    /// follow-ups (EDS after CDS, RDS after LDS). Silence alone is not enough: weftd may
    /// pause for seconds between proxies while it regenerates the others. With
    /// `expect_all` false it only waits for silence. Gives up after `limit`.
    async fn settle(
        &self,
        t0: u64,
        quiet: Duration,
        marker: bool,
        expect_all: bool,
        limit: Duration,
    ) -> Result<(), RunError> {
        let started = Instant::now();
        loop {
            tokio::time::sleep(Duration::from_millis(50)).await;
            check_rss(self.pid, self.max_rss_mb)?;
            let now = self.shared.now();
            let last = self.shared.last_response.load(Ordering::Relaxed);
            let silent = Duration::from_nanos(now.saturating_sub(last.max(t0)));
            let reached = !expect_all
                || (self.acked_since(t0) == self.stats.len()
                    && (!marker || self.markers_since(t0) == self.stats.len()));
            if reached && silent >= quiet {
                return Ok(());
            }
            if started.elapsed() > limit {
                tracing::warn!(
                    acked = self.acked_since(t0),
                    marked = self.markers_since(t0),
                    "change did not reach every proxy within {limit:?}"
                );
                return Ok(());
            }
        }
    }
}

async fn connect(plan: &Plan, mesh: &Mesh) -> Result<Fleet, RunError> {
    let spread = mesh.spread();
    let shared = Arc::new(Shared::new());
    let per = plan.streams_per_connection.max(1);
    let mut channels = Vec::new();
    for _ in 0..plan.proxies.div_ceil(per) {
        let addr = format!("http://{}", plan.xds);
        let channel = Endpoint::from_shared(addr.clone())
            .map_err(|source| RunError::Connect {
                addr: addr.clone(),
                source,
            })?
            .initial_stream_window_size(1 << 20)
            .initial_connection_window_size(16 << 20)
            .connect()
            .await
            .map_err(|source| RunError::Connect { addr, source })?;
        channels.push(channel);
    }
    let mut stats = Vec::with_capacity(plan.proxies);
    for i in 0..plan.proxies {
        let (service, endpoint) = spread[i % spread.len()];
        let s = Arc::new(Stats::default());
        let channel: Channel = channels[i / per].clone();
        tokio::spawn(proxy::run(
            channel,
            proxy::node(service, endpoint),
            s.clone(),
            shared.clone(),
        ));
        stats.push(s);
    }
    Ok(Fleet {
        shared,
        stats,
        pid: plan.weftd_pid,
        max_rss_mb: plan.max_weftd_rss_mb,
    })
}

/// Runs `weft <args>` against weftd; returns how long it took.
async fn weft(plan: &Plan, args: &[&str]) -> Result<Duration, RunError> {
    let command = format!("weft {}", args.join(" "));
    let started = Instant::now();
    let output = tokio::process::Command::new(&plan.weft)
        .arg("--server")
        .arg(&plan.server)
        .arg("--data-dir")
        .arg(&plan.data_dir)
        .args(args)
        .output()
        .await
        .map_err(|e| RunError::Weft {
            command: command.clone(),
            reason: e.to_string(),
        })?;
    if !output.status.success() {
        return Err(RunError::Weft {
            command,
            reason: String::from_utf8_lossy(&output.stderr).into_owned(),
        });
    }
    Ok(started.elapsed())
}

fn write(path: &PathBuf, value: &serde_json::Value) -> Result<(), RunError> {
    std::fs::write(path, serde_json::to_vec_pretty(value).unwrap_or_default()).map_err(|source| {
        RunError::Write {
            path: path.clone(),
            source,
        }
    })
}

/// One change: runs the command, waits for the fleet to settle, measures.
async fn measure(
    plan: &Plan,
    fleet: &Fleet,
    kind: &'static str,
    index: usize,
    marker: Option<&str>,
    args: &[&str],
) -> Result<(Change, Vec<f64>), RunError> {
    // Let the previous change fade out completely.
    fleet
        .settle(
            fleet.shared.now(),
            plan.quiet,
            false,
            false,
            Duration::from_secs(60),
        )
        .await?;
    fleet.set_marker(marker);
    let bytes0 = fleet.bytes();
    let responses0 = fleet.responses();
    let cpu0 = cpu(plan.weftd_pid);
    let t0 = fleet.shared.now();
    let apply = weft(plan, args).await?;
    fleet
        .settle(
            t0,
            plan.quiet,
            marker.is_some(),
            true,
            Duration::from_secs(300),
        )
        .await?;
    let cpu1 = cpu(plan.weftd_pid);
    let latencies = sorted(
        fleet
            .stats
            .iter()
            .map(|s| s.last_ack.load(Ordering::Relaxed))
            .filter(|t| *t > t0)
            .map(|t| (t - t0) as f64 / 1e9)
            .collect(),
    );
    let bytes_total: u64 = fleet
        .bytes()
        .iter()
        .zip(&bytes0)
        .map(|(now, before)| now - before)
        .sum();
    let affected = latencies.len();
    let change = Change {
        kind,
        index,
        apply_s: apply.as_secs_f64(),
        affected,
        marker_seen: marker.map(|_| fleet.markers_since(t0)).unwrap_or(0),
        p50_s: percentile(&latencies, 0.50),
        p99_s: percentile(&latencies, 0.99),
        max_s: latencies.last().copied().unwrap_or(0.0),
        bytes_total,
        bytes_per_affected_proxy: bytes_total / affected.max(1) as u64,
        responses: fleet.responses() - responses0,
        weftd_cpu_s: cpu1 - cpu0,
    };
    fleet.set_marker(None);
    tracing::info!(
        kind,
        index,
        affected,
        p50 = change.p50_s,
        p99 = change.p99_s,
        max = change.max_s,
        bytes = bytes_total,
        "change measured"
    );
    Ok((change, latencies))
}

fn summarize(kind: &str, changes: &[Change], samples: &[(&'static str, Vec<f64>)]) -> Summary {
    let mine: Vec<&Change> = changes.iter().filter(|c| c.kind == kind).collect();
    if mine.is_empty() {
        return Summary::default();
    }
    let pooled = sorted(
        samples
            .iter()
            .filter(|(k, _)| *k == kind)
            .flat_map(|(_, v)| v.iter().copied())
            .collect(),
    );
    let lasts = sorted(mine.iter().map(|c| c.max_s).collect());
    let n = mine.len() as u64;
    Summary {
        changes: mine.len(),
        p50_s: percentile(&pooled, 0.50),
        p99_s: percentile(&pooled, 0.99),
        max_s: lasts.last().copied().unwrap_or(0.0),
        median_last_ack_s: percentile(&lasts, 0.50),
        mean_bytes_total: mine.iter().map(|c| c.bytes_total).sum::<u64>() / n,
        mean_bytes_per_proxy: mine.iter().map(|c| c.bytes_per_affected_proxy).sum::<u64>() / n,
        mean_weftd_cpu_s: mine.iter().map(|c| c.weftd_cpu_s).sum::<f64>() / n as f64,
        min_affected: mine.iter().map(|c| c.affected).min().unwrap_or(0),
        min_marker_seen: mine.iter().map(|c| c.marker_seen).min().unwrap_or(0),
    }
}

/// The whole run: connect, sync, VirtualService changes, endpoint churn.
pub async fn run(plan: Plan) -> Result<RunResult, RunError> {
    let mesh = Mesh::generate(plan.shape);
    let pid = plan.weftd_pid;
    let tool_cpu0 = cpu(std::process::id());
    let weftd_cpu0 = cpu(pid);
    let before = memory(pid);

    let cpu_connect0 = cpu(pid);
    let started = Instant::now();
    let fleet = connect(&plan, &mesh).await?;
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        check_rss(pid, plan.max_weftd_rss_mb)?;
        let synced = fleet.synced();
        if synced == plan.proxies {
            break;
        }
        if started.elapsed() > plan.sync_timeout || fleet.failed() > 0 {
            return Err(RunError::NotSynced {
                synced,
                wanted: plan.proxies,
                failed: fleet.failed(),
                after: started.elapsed(),
            });
        }
    }
    let to_sync = started.elapsed();
    let sync_times = sorted(
        fleet
            .stats
            .iter()
            // The fleet's clock starts as the first connection opens.
            .map(|s| s.synced_at.load(Ordering::Relaxed) as f64 / 1e9)
            .collect(),
    );
    let connect_bytes: u64 = fleet.bytes().iter().sum();
    let connect = Connect {
        seconds_to_all_synced: to_sync.as_secs_f64(),
        synced: fleet.synced(),
        sync_p50_s: percentile(&sync_times, 0.5),
        sync_p99_s: percentile(&sync_times, 0.99),
        bytes_total: connect_bytes,
        bytes_per_proxy: connect_bytes / plan.proxies.max(1) as u64,
        weftd_cpu_s: cpu(pid) - cpu_connect0,
    };
    tracing::info!(?to_sync, bytes = connect_bytes, "every proxy in sync");
    fleet
        .settle(
            fleet.shared.now(),
            plan.quiet,
            false,
            false,
            Duration::from_secs(60),
        )
        .await?;
    let after_sync = memory(pid);

    let dir = std::env::temp_dir().join(format!("xds-load-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|source| RunError::Write {
        path: dir.clone(),
        source,
    })?;
    let target: &Service = mesh
        .services
        .iter()
        .find(|s| s.namespace == SHARED)
        .expect("the mesh has shared services");
    let mut changes = Vec::new();
    let mut samples = Vec::new();
    let mut record = |(change, latencies): (Change, Vec<f64>)| {
        samples.push((change.kind, latencies));
        changes.push(change);
    };
    let run_id = std::process::id();
    for k in 1..=plan.vs_changes {
        let rev = format!("bench-{run_id}-{k}");
        let file = dir.join(format!("vs-{k}.yaml"));
        write(&file, &mesh::virtual_service(target, &rev))?;
        let f = file.to_string_lossy().into_owned();
        record(measure(&plan, &fleet, "vs", k, Some(&rev), &["apply", "-f", &f]).await?);
    }
    // Endpoint churn on another shared service: a workload joins, then leaves.
    let churned = mesh
        .services
        .iter()
        .filter(|s| s.namespace == SHARED)
        .nth(1)
        .unwrap_or(target);
    for k in 1..=plan.churn {
        let endpoint = mesh::Endpoint {
            name: format!("{}-churn-{k}", churned.name),
            address: mesh::address(plan.shape.endpoints + 1000 + k),
        };
        let file = dir.join(format!("we-{k}.yaml"));
        write(&file, &mesh::workload_entry(churned, &endpoint))?;
        let f = file.to_string_lossy().into_owned();
        record(
            measure(
                &plan,
                &fleet,
                "join",
                k,
                Some(&endpoint.address),
                &["apply", "-f", &f],
            )
            .await?,
        );
        record(measure(&plan, &fleet, "leave", k, None, &["delete", "-f", &f]).await?);
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(RunResult {
        label: plan.label.clone(),
        proxies: plan.proxies,
        scoped: plan.scoped,
        services: mesh.services.len(),
        endpoints: mesh.services.iter().map(|s| s.endpoints.len()).sum(),
        namespaces: mesh.namespaces().len(),
        streams_per_connection: plan.streams_per_connection,
        connections: plan.proxies.div_ceil(plan.streams_per_connection.max(1)),
        weftd_before_connect: before,
        connect,
        weftd_after_sync: after_sync,
        vs: summarize("vs", &changes, &samples),
        join: summarize("join", &changes, &samples),
        leave: summarize("leave", &changes, &samples),
        changes,
        weftd_final: memory(pid),
        weftd_cpu_total_s: cpu(pid) - weftd_cpu0,
        load_tool_cpu_s: cpu(std::process::id()) - tool_cpu0,
        failed_streams: fleet.failed(),
    })
}
