//! Liveness of the dispatch workers: when each last completed a pass, for the systemd
//! watchdog and the backlog report. Its own small module so that those two need not know
//! the dispatcher.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Liveness of the dispatch workers, for the systemd watchdog: when each last completed a
/// pass. One stuck worker is enough to call the dispatcher stuck.
#[derive(Clone)]
pub struct Progress {
    started: Arc<std::sync::OnceLock<Instant>>,
    last_pass_ms: Arc<[AtomicU64]>,
    dispatched: Arc<AtomicU64>,
}

impl Default for Progress {
    fn default() -> Self {
        Self::new(1)
    }
}

impl Progress {
    /// For `workers` dispatch loops (at least one).
    pub fn new(workers: usize) -> Self {
        Self {
            started: Arc::default(),
            last_pass_ms: (0..workers.max(1)).map(|_| AtomicU64::new(0)).collect(),
            dispatched: Arc::default(),
        }
    }

    fn now_ms(&self) -> u64 {
        let started = self.started.get_or_init(Instant::now);
        u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    pub fn beat(&self, worker: usize) {
        if let Some(slot) = self.last_pass_ms.get(worker) {
            slot.store(self.now_ms(), Ordering::Relaxed);
        }
    }

    /// How long since the stalest worker last completed a pass.
    pub fn since_last_pass(&self) -> Duration {
        let stalest = self
            .last_pass_ms
            .iter()
            .map(|slot| slot.load(Ordering::Relaxed))
            .min()
            .unwrap_or(0);
        Duration::from_millis(self.now_ms().saturating_sub(stalest))
    }

    pub fn add_dispatched(&self, n: usize) {
        self.dispatched.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// Callbacks this process has dispatched.
    pub fn dispatched(&self) -> u64 {
        self.dispatched.load(Ordering::Relaxed)
    }
}
