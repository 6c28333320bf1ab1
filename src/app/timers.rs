//! What time does to callbacks, on the maintenance schedule: an agent callback not accepted
//! in time falls back to its skill, as does one whose preferred agents' ownership ended (and
//! one held at a preferred agent's gate is offered to each of them again), a callback past its expiry expires, one published
//! without a final outcome by its deadline fails; and the retention purge. Each statement
//! takes its rows with `SKIP LOCKED`, in slices, so daemons sharing a database never wait
//! on each other's timers. A failure is logged and the next run tries again.

use crate::store::Store;

/// Agent fallback of callbacks not accepted in time, expiry, and the outcome deadline.
pub async fn run(store: &Store) {
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
    let owned = store.end_ownership().await.unwrap_or_else(|e| {
        tracing::warn!(error = %e, "ownership timer failed");
        0
    });
    if owned > 0 {
        tracing::info!(
            callbacks = owned,
            "re-routed to their skill: their preferred agents' ownership ended"
        );
    }
    if let Err(e) = store.reoffer_held().await {
        tracing::warn!(error = %e, "re-offering held callbacks to their preferred agents failed");
    }
    let expired = store.expire_overdue().await.unwrap_or_else(|e| {
        tracing::warn!(error = %e, "expiry failed");
        0
    });
    if expired > 0 {
        tracing::info!(callbacks = expired, "expired");
    }
    let unreported = store.end_without_outcome().await.unwrap_or_else(|e| {
        tracing::warn!(error = %e, "outcome deadline failed");
        0
    });
    if unreported > 0 {
        tracing::warn!(
            callbacks = unreported,
            "failed: no final outcome reported by the outcome deadline"
        );
    }
    crate::instruments::timers(fell_back, owned, expired, unreported);
}

/// Deletes terminal callbacks unchanged for `retention_days` (with their events), then
/// console sessions past their end and sign-ins never finished.
pub async fn purge(store: &Store, retention_days: u32) {
    match store.purge_terminal(retention_days).await {
        Ok(deleted) => tracing::info!(deleted, retention_days, "retention purge"),
        Err(e) => tracing::warn!(error = %e, "retention purge failed"),
    }
    match store.purge_bulks(retention_days).await {
        Ok(deleted) => tracing::info!(deleted, retention_days, "bulk change records purged"),
        Err(e) => tracing::warn!(error = %e, "bulk change purge failed"),
    }
    match store.purge_webhook_deliveries(retention_days).await {
        Ok(deleted) => tracing::info!(deleted, "finished webhook deliveries purged"),
        Err(e) => tracing::warn!(error = %e, "webhook delivery purge failed"),
    }
    // Admission counts matter for their day only; two days back covers every zone.
    let before = (chrono::Utc::now() - chrono::Duration::days(2)).date_naive();
    match store.purge_admissions(before).await {
        Ok(deleted) => tracing::info!(deleted, "per-number admission counts purged"),
        Err(e) => tracing::warn!(error = %e, "admission count purge failed"),
    }
    match store.purge_expired_sessions().await {
        Ok(deleted) => tracing::info!(deleted, "expired console sessions purged"),
        Err(e) => tracing::warn!(error = %e, "console session purge failed"),
    }
}
