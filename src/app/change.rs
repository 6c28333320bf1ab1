//! Changing pending callbacks: reschedule, reassign, notes, expiry (one), cancel (one), and
//! a bulk change, which is a loop over the same two functions.

use super::{App, AppError, Selection, require};
use crate::domain::{
    AgentId, Callback, CallbackId, CallbackState, ChangeInput, Permission, RawId, ResultCode,
    SecurityUser, check_reason, plan_change,
};
use crate::store::{CallbackChange, CallbackFilter};

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

    fn check(self) -> Result<Option<String>, AppError> {
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
    let target_agent = input.requested()?;
    let locked = pending(locked(app, user, id).await?, "changed")?;
    let updated = apply_change(app, locked, &input, target_agent, reason, &user.name).await?;
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
fn pending(locked: CallbackChange, verb: &'static str) -> Result<CallbackChange, AppError> {
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
async fn apply_change(
    app: &App,
    mut locked: CallbackChange,
    input: &ChangeInput,
    target_agent: Option<Option<AgentId>>,
    reason: Option<String>,
    actor: &str,
) -> Result<Callback, AppError> {
    let agent = match target_agent {
        Some(Some(agent_id)) => locked.agent(agent_id).await?,
        _ => None,
    };
    let mut changes = plan_change(
        input.clone(),
        target_agent,
        agent.as_ref(),
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

/// What a bulk change does to each pending callback it selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BulkAction {
    Cancel,
    /// To `schedule_date` (read in `time_zone`, else the contact's zone).
    Reschedule,
    /// To `target_agent_id` (`None`, or an empty id: back to the skill).
    Reassign,
}

/// A bulk change as a caller asks for it.
#[derive(Debug, Clone)]
pub struct BulkChange<'a> {
    pub action: BulkAction,
    pub selection: Selection<'a>,
    pub reason: Option<&'a str>,
    pub schedule_date: Option<String>,
    pub time_zone: Option<String>,
    pub target_agent_id: Option<Option<RawId>>,
    /// Count only: say how many would change, change nothing.
    pub dry_run: bool,
}

/// One callback a bulk change could not change, and why.
#[derive(Debug)]
pub struct BulkRefusal {
    pub callback_id: CallbackId,
    pub result: ResultCode,
    pub message: String,
}

/// What a bulk change did (or, dry, would do).
#[derive(Debug)]
pub struct BulkReport {
    pub dry_run: bool,
    /// Callbacks the filter selects.
    pub matched: usize,
    /// Changed (dry: pending, so would be changed).
    pub changed: usize,
    /// Not changed: not pending (or no longer), or refused by a rule.
    pub skipped: usize,
    /// The first refusals by a rule.
    pub refused: Vec<BulkRefusal>,
}

/// Callbacks one bulk change may select at most: a larger selection is refused (narrow the
/// filter), so that one request stays within the request time limit.
pub const BULK_MAX: u32 = 10_000;
/// Refusals listed in a bulk report at most.
const BULK_REFUSALS_SHOWN: usize = 20;

/// Cancels, reschedules or reassigns every pending callback a selection holds, each under
/// its own lock and in its own transaction, with its own event carrying the reason — the
/// same steps as [`change`] and [`cancel`].
pub async fn change_many(
    app: &App,
    user: &SecurityUser,
    req: BulkChange<'_>,
) -> Result<BulkReport, AppError> {
    require(
        user,
        match req.action {
            BulkAction::Cancel => Permission::CallbacksCancel,
            BulkAction::Reschedule | BulkAction::Reassign => Permission::CallbacksUpdate,
        },
    )?;
    let reason = Why::required(req.reason).check()?;
    let input = match req.action {
        BulkAction::Cancel => None,
        BulkAction::Reschedule => Some(ChangeInput {
            schedule_date: Some(
                req.schedule_date
                    .ok_or_else(|| AppError::unacceptable("reschedule needs a scheduleDate"))?,
            ),
            time_zone: req.time_zone,
            ..ChangeInput::default()
        }),
        BulkAction::Reassign => Some(ChangeInput {
            target_agent_id: Some(req.target_agent_id.ok_or_else(|| {
                AppError::unacceptable("reassign needs a targetAgentId (\"\" or null: the skill)")
            })?),
            ..ChangeInput::default()
        }),
    };
    // The first rules (a bad agent id, a time zone without a date) fail every callback alike.
    let target_agent = input.as_ref().map(ChangeInput::requested).transpose()?;
    let selected = app
        .store
        .list_callback_states(&CallbackFilter {
            limit: BULK_MAX + 1,
            ..req.selection.filter(user)?
        })
        .await?;
    if selected.len() > BULK_MAX as usize {
        return Err(AppError::unacceptable(format!(
            "the filter selects more than {BULK_MAX} callbacks; narrow it (by skill, agent or due range)"
        )));
    }
    let matched = selected.len();
    let pending: Vec<CallbackId> = selected
        .iter()
        .filter(|(_, state)| *state == CallbackState::Pending)
        .map(|(id, _)| *id)
        .collect();
    if req.dry_run {
        return Ok(BulkReport {
            dry_run: true,
            matched,
            changed: pending.len(),
            skipped: matched - pending.len(),
            refused: Vec::new(),
        });
    }
    let mut changed = 0;
    let mut refused = Vec::new();
    let mut refused_count = 0;
    for id in pending {
        let done = match &input {
            None => bulk_cancel(app, user, id, reason.as_deref()).await,
            Some(input) => bulk_change(app, user, id, input, target_agent.flatten(), &reason).await,
        };
        match done {
            Ok(()) => changed += 1,
            // No longer pending (dispatched or changed meanwhile): skipped.
            Err(AppError::NoSuchCallback(_) | AppError::NotPending { .. }) => {}
            Err(AppError::Store(e)) => return Err(AppError::Store(e)),
            Err(e) => {
                refused_count += 1;
                if refused.len() < BULK_REFUSALS_SHOWN {
                    refused.push(BulkRefusal {
                        callback_id: id,
                        result: e.code(),
                        message: e.to_string(),
                    });
                }
            }
        }
    }
    tracing::info!(matched, changed, refused = refused_count, security_user = %user.name, "bulk change");
    Ok(BulkReport {
        dry_run: false,
        matched,
        changed,
        skipped: matched - changed,
        refused,
    })
}

async fn bulk_cancel(
    app: &App,
    user: &SecurityUser,
    id: CallbackId,
    reason: Option<&str>,
) -> Result<(), AppError> {
    let locked = pending(locked(app, user, id).await?, "cancelled")?;
    locked.cancel(&user.name, reason).await?;
    Ok(())
}

async fn bulk_change(
    app: &App,
    user: &SecurityUser,
    id: CallbackId,
    input: &ChangeInput,
    target_agent: Option<Option<AgentId>>,
    reason: &Option<String>,
) -> Result<(), AppError> {
    let locked = pending(locked(app, user, id).await?, "changed")?;
    apply_change(app, locked, input, target_agent, reason.clone(), &user.name).await?;
    Ok(())
}
