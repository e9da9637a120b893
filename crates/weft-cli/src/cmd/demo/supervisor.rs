//! The demo's child processes: each in its own process group, logged to a file, watched, and stopped together.
//!
//! A process group of its own keeps a terminal's Ctrl-C away from the children, so the demo
//! alone decides the order they stop in, and a signal to the group reaches anything a child
//! started itself.

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;
use tokio::process::{Child, Command};

/// How long children get to exit after SIGTERM before they are killed.
const STOP_GRACE: Duration = Duration::from_secs(5);
/// Lines of a child's log shown when it dies.
const LOG_TAIL_LINES: usize = 12;

/// A child that ended, or never started.
#[derive(Debug, thiserror::Error)]
pub enum ChildError {
    #[error("cannot start {name} ({program}): {source}")]
    Spawn {
        name: String,
        program: String,
        source: std::io::Error,
    },
    #[error("cannot create the log file {path}: {source}")]
    Log {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{name} exited unexpectedly ({status}); the end of its log {log}:\n{tail}")]
    Exited {
        name: String,
        status: ExitStatus,
        log: String,
        tail: String,
    },
}

struct Supervised {
    name: String,
    child: Child,
    log: PathBuf,
}

/// Every process the demo started, in start order.
pub struct Supervisor {
    logs: PathBuf,
    children: Vec<Supervised>,
}

impl Supervisor {
    /// Children log to `<logs>/<name>.log`.
    pub fn new(logs: PathBuf) -> Supervisor {
        Supervisor {
            logs,
            children: Vec::new(),
        }
    }

    /// Starts `program args...` as `name`, stdout and stderr to its log file.
    pub fn spawn(
        &mut self,
        name: &str,
        program: &Path,
        args: &[String],
    ) -> Result<u32, ChildError> {
        let log = self.logs.join(format!("{name}.log"));
        let open = || File::create(&log);
        let (out, err) = match open().and_then(|f| Ok((f.try_clone()?, f))) {
            Ok(files) => files,
            Err(source) => return Err(ChildError::Log { path: log, source }),
        };
        let child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0)
            // A safety net for a panic in the demo: dropped children are killed.
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| ChildError::Spawn {
                name: name.to_string(),
                program: program.display().to_string(),
                source,
            })?;
        let pid = child.id().unwrap_or_default();
        self.children.push(Supervised {
            name: name.to_string(),
            child,
            log,
        });
        Ok(pid)
    }

    /// The first child that has exited, as an error naming it, with the end of its log.
    pub fn check(&mut self) -> Result<(), ChildError> {
        for s in &mut self.children {
            if let Ok(Some(status)) = s.child.try_wait() {
                return Err(ChildError::Exited {
                    name: s.name.clone(),
                    status,
                    log: s.log.display().to_string(),
                    tail: tail(&s.log, LOG_TAIL_LINES),
                });
            }
        }
        Ok(())
    }

    /// Resolves when a child exits, with the error [`Supervisor::check`] gives.
    pub async fn watch(&mut self) -> ChildError {
        loop {
            if let Err(e) = self.check() {
                return e;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// SIGTERM to every group, newest first (proxies before the control plane); SIGKILL
    /// to whatever is still there after [`STOP_GRACE`]. Waits for every child.
    pub async fn shutdown(&mut self) {
        for s in self.children.iter().rev() {
            signal_group(&s.child, Signal::SIGTERM);
        }
        let deadline = tokio::time::Instant::now() + STOP_GRACE;
        for s in self.children.iter_mut().rev() {
            let waited = tokio::time::timeout_at(deadline, s.child.wait()).await;
            if waited.is_err() {
                signal_group(&s.child, Signal::SIGKILL);
                let _ = s.child.wait().await;
            }
        }
        self.children.clear();
    }
}

/// Signals the child's process group (its pid, given `process_group(0)`); a child that
/// has already been reaped has no id and nothing to signal.
fn signal_group(child: &Child, signal: Signal) {
    if let Some(pid) = child.id().and_then(|p| i32::try_from(p).ok()) {
        // ESRCH (the group is gone) is what we wanted anyway.
        let _ = killpg(Pid::from_raw(pid), signal);
    }
}

/// The last `n` lines of a log file, indented for the error message.
fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.len().saturating_sub(n);
    if lines.is_empty() {
        return "    (empty)".into();
    }
    lines[start..]
        .iter()
        .map(|l| format!("    {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_exited_child_is_named_with_its_log_and_shutdown_stops_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let mut sup = Supervisor::new(dir.path().to_path_buf());
        let sh = Path::new("/bin/sh");
        sup.spawn("sleeper", sh, &["-c".into(), "sleep 30".into()])
            .unwrap();
        sup.spawn(
            "crasher",
            sh,
            &["-c".into(), "echo boom >&2; exit 3".into()],
        )
        .unwrap();
        let err = tokio::time::timeout(Duration::from_secs(10), sup.watch())
            .await
            .expect("the crash is noticed");
        let text = err.to_string();
        assert!(text.contains("crasher exited unexpectedly"), "{text}");
        assert!(text.contains("exit status: 3"), "{text}");
        assert!(text.contains("boom"), "{text}");

        let started = std::time::Instant::now();
        sup.shutdown().await;
        assert!(
            started.elapsed() < STOP_GRACE,
            "sleep obeys SIGTERM at once"
        );
        assert!(sup.children.is_empty());
    }
}
