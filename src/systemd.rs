//! systemd's notify protocol: READY, STATUS, STOPPING, and a watchdog that pings only while
//! the dispatch loop is making progress. Every call is a no-op outside systemd.

use sd_notify::NotifyState;
use tokio_util::sync::CancellationToken;

use crate::liveness::Progress;

fn send(states: &[NotifyState]) {
    if let Err(e) = sd_notify::notify(states) {
        tracing::warn!(error = %e, "cannot notify systemd");
    }
}

pub fn ready() {
    send(&[NotifyState::Ready]);
}

pub fn stopping() {
    send(&[NotifyState::Stopping]);
}

pub fn status(text: &str) {
    send(&[NotifyState::Status(text)]);
}

/// Pings the watchdog at half its interval while the dispatch loop has completed a pass
/// within the interval; a stuck loop stops the pings and systemd restarts the service.
/// `progress` is `None` when this daemon runs no dispatcher: then being alive is enough.
pub async fn watchdog(progress: Option<Progress>, shutdown: CancellationToken) {
    let Some(interval) = sd_notify::watchdog_enabled() else {
        return;
    };
    let mut ticker = tokio::time::interval(interval / 2);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = ticker.tick() => {},
        }
        let stalled = progress
            .as_ref()
            .map(Progress::since_last_pass)
            .filter(|d| *d > interval);
        match stalled {
            None => send(&[NotifyState::Watchdog]),
            Some(since) => tracing::error!(
                stalled_ms = u64::try_from(since.as_millis()).unwrap_or(u64::MAX),
                "dispatch loop stalled; withholding the watchdog ping"
            ),
        }
    }
}
