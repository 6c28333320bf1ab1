//! Changing pending callbacks: reschedule, reassign, notes, expiry, cancel — and retrying a
//! failed or expired one; one at a time
//! (a bulk change, `super::bulk`, is a loop over the same steps).

use super::{App, AppError, require};
use crate::domain::{
    AgentId, Callback, CallbackId, CallbackState, ChangeInput, DateError, Permission, RequestError,
    SecurityUser, check_reason, contact_zone, parse_time_zone, plan_change, plan_retry,
};
use crate::store::CallbackChange;

/// Why a person changed or cancelled a callback, and whether the delivery asks for it: a
/// change made by hand (console, CLI) or in bulk must say why, a script's need not.
#[derive(Debug, Clone, Copy)]
pub struct Why<'a> {
    pub reason: Option<&'a str>,
    pub required: bool,
}

impl<'a> Why<'a> {
    pub fn optional(reason: Option<&'a str>) -> Self {
        Self {
            reason,
            required: false,
        }
    }

    pub fn required(reason: Option<&'a str>) -> Self {
        Self {
            reason,
            required: true,
        }
    }

    pub(super) fn check(self) -> Result<Option<String>, AppError> {
        Ok(check_reason(self.reason, self.required)?)
    }
}

/// Reschedules, reassigns, or changes the notes or expiry of a pending callback, through the
/// create's rules. A change that changes nothing writes nothing and answers the callback as
/// it is.
pub async fn change(
    app: &App,
    user: &SecurityUser,
    id: CallbackId,
    input: ChangeInput,
    why: Why<'_>,
) -> Result<Callback, AppError> {
    require(user, Permission::CallbacksUpdate)?;
    let reason = why.check()?;
    let target_agents = input.requested()?;
    let locked = pending(locked(app, user, id).await?, "changed")?;
    let updated = apply_change(app, locked, &input, target_agents, reason, &user.name).await?;
    tracing::info!(
        callback_id = %id,
        skill_id = updated.skill_id.get(),
        route = updated.route().kind(),
        due_at = %updated.due_at.to_rfc3339(),
        security_user = %user.name,
        "callback updated"
    );
    Ok(updated)
}

/// Cancels a pending callback, giving back its slot; the reason goes into the event.
pub async fn cancel(
    app: &App,
    user: &SecurityUser,
    id: CallbackId,
    why: Why<'_>,
) -> Result<Callback, AppError> {
    require(user, Permission::CallbacksCancel)?;
    let reason = why.check()?;
    let locked = pending(locked(app, user, id).await?, "cancelled")?;
    let cancelled = locked.cancel(&user.name, reason.as_deref()).await?;
    tracing::info!(callback_id = %id, skill_id = cancelled.skill_id.get(), security_user = %user.name, "callback cancelled");
    Ok(cancelled)
}

/// Another attempt at a failed or expired callback: due now, or at `at` (read in
/// `time_zone`, else the contact's zone) as a new promise.
pub async fn retry(
    app: &App,
    user: &SecurityUser,
    id: CallbackId,
    at: Option<&str>,
    time_zone: Option<&str>,
    why: Why<'_>,
) -> Result<Callback, AppError> {
    require(user, Permission::CallbacksUpdate)?;
    let reason = why.check()?;
    let locked = retryable(locked(app, user, id).await?)?;
    let retried = apply_retry(app, locked, at, time_zone, reason.as_deref(), &user.name).await?;
    tracing::info!(
        callback_id = %id,
        skill_id = retried.skill_id.get(),
        due_at = %retried.due_at.to_rfc3339(),
        security_user = %user.name,
        "callback retried"
    );
    Ok(retried)
}

/// Plans a retry of the locked, failed or expired callback and applies it.
pub(super) async fn apply_retry(
    app: &App,
    locked: CallbackChange,
    at: Option<&str>,
    time_zone: Option<&str>,
    reason: Option<&str>,
    actor: &str,
) -> Result<Callback, AppError> {
    let zone = match time_zone.filter(|z| !z.is_empty()) {
        Some(name) => {
            parse_time_zone(name).map_err(|e| RequestError::Date(DateError::new("timeZone", e)))?
        }
        None => contact_zone(
            locked.record.time_zone,
            locked.skill.time_zone,
            app.rules.default_time_zone,
        ),
    };
    let at = at.filter(|a| !a.trim().is_empty());
    let plan = plan_retry(&locked.record, at, zone, locked.now, &app.rules, reason)?;
    Ok(locked.retry(&plan, actor).await?)
}

/// Only a failed or expired callback can be retried.
pub(super) fn retryable(locked: CallbackChange) -> Result<CallbackChange, AppError> {
    if locked.record.state.may_retry() {
        Ok(locked)
    } else {
        Err(AppError::NotRetryable {
            id: locked.record.id,
            state: locked.record.state,
        })
    }
}

/// Locks a callback `user` may see, for a change; [`AppError::NoSuchCallback`] otherwise.
pub(super) async fn locked(
    app: &App,
    user: &SecurityUser,
    id: CallbackId,
) -> Result<CallbackChange, AppError> {
    match app.store.begin_change(id).await? {
        Some(change) if user.may_use_skill(change.record.skill_id) => Ok(change),
        _ => Err(AppError::NoSuchCallback(id)),
    }
}

/// Only a pending callback can be changed or cancelled.
pub(super) fn pending(
    locked: CallbackChange,
    verb: &'static str,
) -> Result<CallbackChange, AppError> {
    if locked.record.state == CallbackState::Pending {
        Ok(locked)
    } else {
        Err(AppError::NotPending {
            id: locked.record.id,
            state: locked.record.state,
            verb,
        })
    }
}

/// Plans a change of the locked, pending callback and applies it, unless it changes
/// nothing (then the lock is let go and nothing is written).
pub(super) async fn apply_change(
    app: &App,
    mut locked: CallbackChange,
    input: &ChangeInput,
    target_agents: Option<Vec<AgentId>>,
    reason: Option<String>,
    actor: &str,
) -> Result<Callback, AppError> {
    let mut agents = Vec::new();
    for id in target_agents.iter().flatten() {
        agents.extend(locked.agent(*id).await?);
    }
    let mut changes = plan_change(
        input.clone(),
        target_agents,
        &agents,
        &locked.record,
        &locked.skill,
        locked.now,
        &app.rules,
    )?;
    if !changes.alters(&locked.record) {
        return Ok(locked.record);
    }
    changes.reason = reason;
    Ok(locked.apply(&changes, actor).await?)
}
