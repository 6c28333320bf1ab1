//! Periodic jobs on cron schedules (tokio-cron-scheduler): the backlog report, the timers
//! and the retention purge (their use cases are `app::timers`). Each is a small unit; a
//! failed run logs and waits for the next.
//!
//! A run that outlasts its period is not overlapped by the next one (it is skipped), and
//! across daemons the statements take their rows with `SKIP LOCKED`, so instances sharing a
//! database never wait on, or deadlock with, each other's timers.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio_cron_scheduler::{Job, JobScheduler, JobSchedulerError};

use crate::app::timers;
use crate::config::MaintenanceSettings;
use crate::liveness::Progress;
use crate::store::Store;

/// `default_zone`: the contacts' zone where neither a callback nor its skill names one (for
/// reminders' calling hours).
/// `past_grace`: how far in the past a create may book (the report's roll-up waits past it).
pub async fn start(
    settings: &MaintenanceSettings,
    default_zone: chrono_tz::Tz,
    past_grace: chrono::Duration,
    base_url: Option<String>,
    store: Store,
    progress: Progress,
) -> Result<JobScheduler, JobSchedulerError> {
    let zone = settings.time_zone.0;
    let scheduler = JobScheduler::new().await?;

    let days_store = store.clone();
    let retention_days = settings.retention_days;
    tokio::spawn(async move { timers::make_history_days(&days_store, retention_days).await });

    let backlog_store = store.clone();
    scheduler
        .add(Job::new_async_tz(
            settings.backlog_report.as_str(),
            zone,
            move |_, _| {
                let store = backlog_store.clone();
                let progress = progress.clone();
                Box::pin(async move { report_backlog(&store, &progress).await })
            },
        )?)
        .await?;

    let timers_store = store.clone();
    let timers_running = Running::default();
    scheduler
        .add(Job::new_async_tz(
            settings.timers.as_str(),
            zone,
            move |_, _| {
                let store = timers_store.clone();
                let running = timers_running.clone();
                let base_url = base_url.clone();
                Box::pin(async move {
                    if let Some(_run) = running.start("timers") {
                        timers::run(&store).await;
                        timers::remind(&store, default_zone, base_url.as_deref()).await;
                        timers::roll_up_promises(&store, past_grace).await;
                    }
                })
            },
        )?)
        .await?;

    let purge_running = Running::default();
    scheduler
        .add(Job::new_async_tz(
            settings.purge.as_str(),
            zone,
            move |_, _| {
                let store = store.clone();
                let running = purge_running.clone();
                Box::pin(async move {
                    if let Some(_run) = running.start("retention purge") {
                        timers::purge(&store, retention_days).await;
                    }
                })
            },
        )?)
        .await?;

    scheduler.start().await?;
    Ok(scheduler)
}

/// Whether a job's run is in progress in this daemon.
#[derive(Clone, Default)]
struct Running(Arc<AtomicBool>);

/// Marks the run in progress until dropped.
struct RunGuard(Arc<AtomicBool>);

impl Running {
    /// `None` (and a debug line) when the previous run has not finished.
    fn start(&self, job: &'static str) -> Option<RunGuard> {
        if self.0.swap(true, Ordering::AcqRel) {
            tracing::debug!(job, "previous run still in progress; this one is skipped");
            return None;
        }
        Some(RunGuard(self.0.clone()))
    }
}

impl Drop for RunGuard {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

/// Logs the backlog and shows it in systemd's status line.
pub async fn report_backlog(store: &Store, progress: &Progress) {
    match store.backlog().await {
        Ok(b) => {
            // `101:1980/340s` — skill, callbacks held, the longest-held one's wait.
            let paced_by_skill: Vec<String> = b
                .paced_by_skill
                .iter()
                .map(|p| {
                    format!(
                        "{}:{}/{}s",
                        p.skill_id,
                        p.held,
                        p.oldest_held_seconds.round()
                    )
                })
                .collect();
            tracing::info!(
                pending = b.pending,
                due_now = b.due_now,
                oldest_overdue_seconds = b.oldest_overdue_seconds.round() as i64,
                awaiting_outcome = b.awaiting_outcome,
                paced = b.paced,
                paced_by_skill = paced_by_skill.join(","),
                dispatched_total = progress.dispatched(),
                "backlog"
            );
            crate::systemd::status(&format!(
                "pending {}, due now {}, oldest overdue {} s, awaiting outcome {}, held by pacing {}, dispatched {}",
                b.pending,
                b.due_now,
                b.oldest_overdue_seconds.round() as i64,
                b.awaiting_outcome,
                b.paced,
                progress.dispatched()
            ));
        }
        Err(e) => tracing::warn!(error = %e, "backlog report failed"),
    }
}
