//! Draining (`POST /drain`): listeners stop accepting, open connections finish what they
//! are doing (keep-alive ones close after their current response), and the process exits 0
//! once none is left or the drain time (`--drain-time-s`) has passed.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Whether the proxy drains, and how many downstream connections are still open.
#[derive(Debug)]
pub struct Drain {
    draining: watch::Sender<bool>,
    active: Arc<AtomicUsize>,
}

impl Default for Drain {
    fn default() -> Self {
        Drain {
            draining: watch::channel(false).0,
            active: Arc::default(),
        }
    }
}

/// Counts one downstream connection while it lives.
#[derive(Debug)]
pub struct Connection(Arc<AtomicUsize>);

impl Drop for Connection {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Drain {
    /// Starts draining; false if it had already started.
    pub fn start(&self) -> bool {
        !self.draining.send_replace(true)
    }

    pub fn is_draining(&self) -> bool {
        *self.draining.borrow()
    }

    /// Resolves once draining has started (at once if it already has).
    pub fn started(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut rx = self.draining.subscribe();
        async move {
            // An error means the proxy is gone, which ends the connection anyway.
            let _ = rx.wait_for(|d| *d).await;
        }
    }

    /// Registers an accepted downstream connection until the guard drops.
    pub fn connection(&self) -> Connection {
        self.active.fetch_add(1, Ordering::Relaxed);
        Connection(self.active.clone())
    }

    /// Downstream connections still open.
    pub fn active(&self) -> usize {
        self.active.load(Ordering::Relaxed)
    }

    /// Waits until every connection has closed or `drain_time` has passed; returns the
    /// number still open then.
    pub async fn wait_closed(&self, drain_time: Duration) -> usize {
        let deadline = tokio::time::Instant::now() + drain_time;
        while self.active() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.active()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn waits_for_connections_up_to_the_drain_time() {
        let drain = Drain::default();
        let started = drain.started();
        assert!(drain.start());
        assert!(!drain.start(), "a second /drain does not restart it");
        tokio::time::timeout(Duration::from_secs(1), started)
            .await
            .expect("started() resolves once draining");

        let cx = drain.connection();
        assert_eq!(drain.active(), 1);
        let open = drain.wait_closed(Duration::from_millis(100)).await;
        assert_eq!(open, 1, "the drain time bounds the wait");

        let t = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            drop(cx);
        });
        let begun = std::time::Instant::now();
        assert_eq!(drain.wait_closed(Duration::from_secs(5)).await, 0);
        assert!(begun.elapsed() < Duration::from_secs(2));
        t.await.unwrap();
    }
}
