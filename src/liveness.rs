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
    /// The lateness of the latest dispatches (milliseconds), for the console.
    recent_lateness: Arc<std::sync::Mutex<std::collections::VecDeque<f64>>>,
}

/// Dispatches whose lateness the console's percentile covers.
const RECENT_LATENESS: usize = 10_000;

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
            recent_lateness: Arc::default(),
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

    /// Records how late a dispatched callback went out (record time − due time).
    pub fn record_lateness(&self, lateness_ms: f64) {
        let mut recent = self
            .recent_lateness
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if recent.len() == RECENT_LATENESS {
            recent.pop_front();
        }
        recent.push_back(lateness_ms);
    }

    /// The 99th percentile of the latest dispatches' lateness (this daemon's), if any.
    pub fn recent_lateness_p99(&self) -> Option<f64> {
        let mut values: Vec<f64> = self
            .recent_lateness
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .copied()
            .collect();
        if values.is_empty() {
            return None;
        }
        values.sort_by(f64::total_cmp);
        let index = ((values.len() as f64) * 0.99).ceil() as usize;
        values
            .get(index.saturating_sub(1).min(values.len() - 1))
            .copied()
    }

    /// Callbacks this process has dispatched.
    pub fn dispatched(&self) -> u64 {
        self.dispatched.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recent_lateness_p99_covers_the_latest_dispatches_only() {
        let progress = Progress::new(1);
        assert_eq!(progress.recent_lateness_p99(), None);
        for ms in 1..=100 {
            progress.record_lateness(f64::from(ms));
        }
        assert_eq!(progress.recent_lateness_p99(), Some(99.0));
        // Older ones fall out once the window is full.
        for _ in 0..RECENT_LATENESS {
            progress.record_lateness(5.0);
        }
        assert_eq!(progress.recent_lateness_p99(), Some(5.0));
    }
}
