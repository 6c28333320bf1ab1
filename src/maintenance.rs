//! Periodic jobs on cron schedules (tokio-cron-scheduler): the backlog report and the
//! retention purge. Each is a small unit; a failed run logs and waits for the next.

use chrono_tz::Tz;
use tokio_cron_scheduler::{Job, JobScheduler, JobSchedulerError};

use crate::config::MaintenanceSettings;
use crate::dispatch::Progress;
use crate::store::Store;

/// Whether `expr` is a cron expression the scheduler accepts (with seconds).
pub fn is_valid_cron(expr: &str) -> bool {
    Job::new_async(expr, |_, _| Box::pin(async {})).is_ok()
}

pub async fn start(
    settings: &MaintenanceSettings,
    store: Store,
    progress: Progress,
) -> Result<JobScheduler, JobSchedulerError> {
    // Config validation has checked the zone.
    let zone: Tz = settings.time_zone.parse().unwrap_or(Tz::UTC);
    let scheduler = JobScheduler::new().await?;

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
    scheduler
        .add(Job::new_async_tz(
            settings.timers.as_str(),
            zone,
            move |_, _| {
                let store = timers_store.clone();
                Box::pin(async move { run_timers(&store).await })
            },
        )?)
        .await?;

    let retention_days = settings.retention_days;
    scheduler
        .add(Job::new_async_tz(
            settings.purge.as_str(),
            zone,
            move |_, _| {
                let store = store.clone();
                Box::pin(async move {
                    match store.purge_terminal(retention_days).await {
                        Ok(deleted) => tracing::info!(deleted, retention_days, "retention purge"),
                        Err(e) => tracing::warn!(error = %e, "retention purge failed"),
                    }
                })
            },
        )?)
        .await?;

    scheduler.start().await?;
    Ok(scheduler)
}

/// Agent fallback of callbacks not accepted in time, and expiry.
pub async fn run_timers(store: &Store) {
    let fell_back = store.fall_back_unaccepted().await.unwrap_or_else(|e| {
        tracing::warn!(error = %e, "agent fallback failed");
        0
    });
    if fell_back > 0 {
        tracing::info!(
            callbacks = fell_back,
            "re-routed to their skill: not accepted by the target agent in time"
        );
    }
    let expired = store.expire_overdue().await.unwrap_or_else(|e| {
        tracing::warn!(error = %e, "expiry failed");
        0
    });
    if expired > 0 {
        tracing::info!(callbacks = expired, "expired");
    }
    crate::instruments::timers(fell_back, expired);
}

/// Logs the backlog and shows it in systemd's status line.
pub async fn report_backlog(store: &Store, progress: &Progress) {
    match store.backlog().await {
        Ok(b) => {
            tracing::info!(
                pending = b.pending,
                due_now = b.due_now,
                oldest_overdue_seconds = b.oldest_overdue_seconds.round() as i64,
                awaiting_outcome = b.awaiting_outcome,
                dispatched_total = progress.dispatched(),
                "backlog"
            );
            crate::systemd::status(&format!(
                "pending {}, due now {}, oldest overdue {} s, awaiting outcome {}, dispatched {}",
                b.pending,
                b.due_now,
                b.oldest_overdue_seconds.round() as i64,
                b.awaiting_outcome,
                progress.dispatched()
            ));
        }
        Err(e) => tracing::warn!(error = %e, "backlog report failed"),
    }
}
