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

/// Makes the coming days' partitions of history (at start, and before each purge).
pub async fn make_history_days(store: &Store, retention_days: u32) {
    match store.make_history_days(retention_days).await {
        Ok(0) => {}
        Ok(made) => tracing::info!(made, "history: day partitions made"),
        Err(e) => tracing::warn!(
            error = %e,
            "history: making day partitions failed (callbacks ending on a day without one are kept in the default partition and purged by row); tried again at the next purge"
        ),
    }
}

/// Removes terminal callbacks that ended more than `retention_days` ago (with their
/// events), then console sessions past their end and sign-ins never finished.
pub async fn purge(store: &Store, retention_days: u32) {
    make_history_days(store, retention_days).await;
    match store.purge_terminal(retention_days).await {
        Ok(deleted) => tracing::info!(deleted, retention_days, "retention purge"),
        Err(e) => tracing::warn!(error = %e, "retention purge failed"),
    }
    match store.purge_throughput(retention_days).await {
        Ok(deleted) => tracing::info!(deleted, "throughput counts purged"),
        Err(e) => tracing::warn!(error = %e, "throughput purge failed"),
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

/// Rolls up the promise-kept report's finished quarter hours, for at most about a second a run (a
/// long history after an upgrade is caught up over several runs). `past_grace`:
/// how far in the past a create may still book (the schedule's grace), so a quarter is only
/// rolled up once nothing can be booked into it.
pub async fn roll_up_promises(store: &Store, past_grace: chrono::Duration) {
    let Some(settled_before) = past_grace
        .checked_add(&chrono::Duration::minutes(10))
        .and_then(|wait| chrono::Utc::now().checked_sub_signed(wait))
    else {
        return;
    };
    let started = std::time::Instant::now();
    let mut quarters = 0;
    while started.elapsed() < std::time::Duration::from_secs(1) {
        match store.roll_up_promises(settled_before, 24).await {
            Ok(0) => break,
            Ok(n) => quarters += n,
            Err(e) => {
                tracing::warn!(error = %e, "promise report roll-up failed");
                break;
            }
        }
    }
    if quarters > 0 {
        tracing::debug!(quarters, "promise report: quarter hours rolled up");
    }
}

/// Reminders before callbacks, for skills that ask for them: each due reminder is written
/// as a `reminder` event (the event stream and webhooks carry it to a notifier).
/// `default_zone`: the contact's zone where neither the callback nor its skill names one;
/// `base_url`: where customers' links point, when they are on (each reminder carries a new
/// `manageUrl`).
pub async fn remind(store: &Store, default_zone: chrono_tz::Tz, base_url: Option<&str>) {
    let skills = match store.skills(10_000).await {
        Ok(skills) => skills,
        Err(e) => {
            tracing::warn!(error = %e, "reminders: skills could not be read");
            return;
        }
    };
    let mut sent = 0;
    for skill in skills
        .iter()
        .filter(|s| !s.policy.routing.reminders.is_empty())
    {
        match remind_skill(store, skill, default_zone, base_url).await {
            Ok(n) => sent += n,
            Err(e) => tracing::warn!(skill_id = skill.id.get(), error = %e, "reminders failed"),
        }
    }
    if sent > 0 {
        tracing::info!(reminders = sent, "reminders sent");
        crate::instruments::reminders(sent);
    }
}

async fn remind_skill(
    store: &Store,
    skill: &crate::domain::Skill,
    default_zone: chrono_tz::Tz,
    base_url: Option<&str>,
) -> Result<u64, crate::store::StoreError> {
    use crate::domain::{
        Opening, PhoneNumber, ReminderFacts, ReminderFor, ReminderStep, contact_zone,
        next_reminder, reminder_details,
    };
    use crate::store::ReminderWrite;
    let offsets = &skill.policy.routing.reminders;
    let horizon = offsets.first().copied().unwrap_or(0);
    let now = chrono::Utc::now();
    let candidates = store
        .reminder_candidates(skill.id, horizon, offsets.len())
        .await?;
    let mut writes = Vec::new();
    for c in candidates {
        let zone = contact_zone(
            c.time_zone.as_deref().and_then(|z| z.parse().ok()),
            skill.time_zone,
            default_zone,
        );
        let facts = ReminderFacts {
            due_at: c.due_at,
            created_at: c.created_at,
            done: usize::try_from(c.reminders_done).unwrap_or(0),
            open_now: matches!(skill.policy.opening(now, zone), Opening::Now),
            suppressed: c.listed,
        };
        let (done, event) = match next_reminder(offsets, facts, now) {
            ReminderStep::Wait => continue,
            ReminderStep::Skip { done } => (done, None),
            ReminderStep::Send { index, done } => {
                let phone = PhoneNumber::from_stored(c.phone_number.clone());
                let mut details = reminder_details(
                    &ReminderFor {
                        skill_id: skill.id,
                        phone_number: &phone,
                        first_name: &c.first_name,
                        last_name: &c.last_name,
                        due_at: c.due_at,
                        zone,
                    },
                    offsets[index],
                );
                if let Some(base) = base_url {
                    let link = crate::domain::LinkToken::generate();
                    let callback = crate::domain::CallbackId::from_uuid(c.id);
                    store
                        .insert_link(&link.digest, callback, crate::domain::link_expiry(c.due_at))
                        .await?;
                    if let serde_json::Value::Object(map) = &mut details {
                        map.insert("manageUrl".into(), link.url(base).into());
                    }
                }
                (done, Some(details))
            }
        };
        writes.push(ReminderWrite {
            id: c.id,
            expected: c.reminders_done,
            done: i16::try_from(done).unwrap_or(i16::MAX),
            event,
        });
    }
    store.record_reminders(&writes).await
}
