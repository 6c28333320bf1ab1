//! A bulk change: cancel, reschedule or reassign every pending callback a selection holds,
//! each under its own lock, in its own transaction, with its own event — the same steps as
//! a single change.
//!
//! It is recorded (`bulk_changes`) as it goes and runs to the end on its own task, so a
//! request that ends first (its time limit, a lost connection) stops nothing half-way: the
//! client reads where it stands by its id, or by repeating the request with its
//! `Idempotency-Key`.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::change::{apply_change, apply_retry, locked, pending, retryable};
use super::{App, AppError, Selection, require};
use crate::domain::{
    AgentId, CallbackId, CallbackState, ChangeInput, Permission, RawId, SecurityUser,
};
use crate::store::{
    BulkBegun, BulkProgress, BulkRecord, BulkRefusal, CallbackFilter, IdempotencyKey, NewBulk,
    StoreError,
};

/// Callbacks one bulk change may select at most: a larger selection is refused (narrow the
/// filter), so that one change stays a bounded piece of work.
pub const BULK_MAX: u32 = 10_000;
/// Refusals listed in a bulk report at most.
const BULK_REFUSALS_SHOWN: usize = 20;
/// Progress is written after this many callbacks, or this long, whichever comes first.
const PROGRESS_EVERY: usize = 100;
const PROGRESS_INTERVAL: Duration = Duration::from_secs(1);
/// A change whose progress has not moved for this long has stopped with its daemon.
const STALE_AFTER: chrono::Duration = chrono::Duration::seconds(30);
/// Bulk changes a user's list shows at most.
pub const BULK_LISTED: u32 = 50;

/// What a bulk change does to each pending callback it selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BulkAction {
    Cancel,
    /// To `schedule_date` (read in `time_zone`, else the contact's zone).
    Reschedule,
    /// To `target_agent_ids`, or `target_agent_id` (`None`, or an empty id or list: back to
    /// the skill).
    Reassign,
    /// To base priority `priority`.
    Reprioritize,
    /// Failed or expired callbacks: another attempt, now or at `schedule_date`.
    Retry,
}

impl BulkAction {
    const ALL: [BulkAction; 5] = [
        Self::Cancel,
        Self::Reschedule,
        Self::Reassign,
        Self::Reprioritize,
        Self::Retry,
    ];

    /// Whether a callback in `state` is one this action changes (the others selected are
    /// skipped): failed or expired ones for a retry, pending ones otherwise.
    fn applies_to(self, state: CallbackState) -> bool {
        match self {
            Self::Retry => state.may_retry(),
            _ => state == CallbackState::Pending,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Cancel => "cancel",
            Self::Reschedule => "reschedule",
            Self::Reassign => "reassign",
            Self::Reprioritize => "reprioritize",
            Self::Retry => "retry",
        }
    }
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
    /// With `reassign`: the preferred agents in order (instead of `target_agent_id`).
    pub target_agent_ids: Option<Vec<RawId>>,
    /// With `reprioritize`.
    pub priority: Option<i64>,
    /// Count only: say how many would change, change nothing.
    pub dry_run: bool,
}

/// Where a bulk change stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BulkState {
    /// Still going through its selection.
    Running,
    /// Gone through all of it.
    Done,
    /// Its daemon stopped before the end: what it changed is changed, the rest is not.
    Interrupted,
}

impl BulkState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Done => "done",
            Self::Interrupted => "interrupted",
        }
    }
}

/// What a bulk change did (or, dry, would do).
#[derive(Debug)]
pub struct BulkReport {
    /// `None` for a dry run (not recorded).
    pub id: Option<Uuid>,
    pub state: BulkState,
    pub dry_run: bool,
    pub action: BulkAction,
    /// Callbacks the filter selects.
    pub matched: usize,
    /// Changed (dry: pending, so would be changed).
    pub changed: usize,
    /// Not changed: not pending (or no longer), or refused by a rule.
    pub skipped: usize,
    /// Refused by a rule (counted in `skipped`).
    pub refused_count: usize,
    /// The first refusals by a rule.
    pub refused: Vec<BulkRefusal>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    /// This answers an earlier request with the same idempotency key.
    pub replayed: bool,
}

impl BulkReport {
    /// Selected callbacks not yet gone through.
    pub fn remaining(&self) -> usize {
        self.matched.saturating_sub(self.changed + self.skipped)
    }

    /// A stored change's report; one whose action this build does not know is corrupt.
    fn of(record: BulkRecord, replayed: bool) -> Result<Self, AppError> {
        let state = match record.finished_at {
            Some(_) => BulkState::Done,
            None if record.read_at - record.updated_at > STALE_AFTER => BulkState::Interrupted,
            None => BulkState::Running,
        };
        let action = BulkAction::ALL
            .into_iter()
            .find(|a| a.as_str() == record.action)
            .ok_or_else(|| {
                AppError::Store(StoreError::Corrupt(format!(
                    "bulk change {}: unknown action `{}`",
                    record.id, record.action
                )))
            })?;
        Ok(BulkReport {
            id: Some(record.id),
            state,
            dry_run: false,
            action,
            matched: record.matched,
            changed: record.progress.changed,
            skipped: record.progress.skipped,
            refused_count: record.progress.refused_count,
            refused: record.progress.refused,
            started_at: Some(record.started_at),
            finished_at: record.finished_at,
            replayed,
        })
    }
}

/// Runs a bulk change and answers its report once it has gone through its selection. With
/// `idempotency`, a repeat of the same user's request answers the change that key began —
/// finished, or where it stands — and starts nothing.
pub async fn change_many(
    app: &App,
    user: &SecurityUser,
    req: BulkChange<'_>,
    idempotency: Option<IdempotencyKey>,
) -> Result<BulkReport, AppError> {
    require(
        user,
        match req.action {
            BulkAction::Cancel => Permission::CallbacksCancel,
            BulkAction::Reschedule
            | BulkAction::Reassign
            | BulkAction::Reprioritize
            | BulkAction::Retry => Permission::CallbacksUpdate,
        },
    )?;
    // A repeat is answered before anything is judged again (what changed meanwhile — the
    // selection, the rules — must not turn a retry into a second change).
    if !req.dry_run
        && let Some(key) = &idempotency
        && let Some(earlier) = app.store.bulk_by_key(user.id, Some(&key.key)).await?
    {
        return replay(earlier, key);
    }
    let reason = super::Why::required(req.reason).check()?;
    let step = match req.action {
        BulkAction::Cancel => Step::Cancel,
        BulkAction::Retry => Step::Retry {
            at: req.schedule_date,
            time_zone: req.time_zone,
        },
        BulkAction::Reschedule => Step::Change(ChangeInput {
            schedule_date: Some(
                req.schedule_date
                    .ok_or_else(|| AppError::unacceptable("reschedule needs a scheduleDate"))?,
            ),
            time_zone: req.time_zone,
            ..ChangeInput::default()
        }),
        BulkAction::Reassign => {
            if req.target_agent_id.is_none() && req.target_agent_ids.is_none() {
                return Err(AppError::unacceptable(
                    "reassign needs a targetAgentId (\"\" or null: the skill) or targetAgentIds",
                ));
            }
            Step::Change(ChangeInput {
                target_agent_id: req.target_agent_id,
                target_agent_ids: req.target_agent_ids,
                ..ChangeInput::default()
            })
        }
        BulkAction::Reprioritize => Step::Change(ChangeInput {
            priority: Some(
                req.priority
                    .ok_or_else(|| AppError::unacceptable("reprioritize needs a priority"))?,
            ),
            ..ChangeInput::default()
        }),
    };
    // The first rules (a bad agent id, a time zone without a date) fail every callback alike.
    let target_agents = match &step {
        Step::Change(input) => input.requested()?,
        _ => None,
    };
    let selected = app
        .store
        .list_callback_states(&CallbackFilter {
            limit: BULK_MAX + 1,
            ..req.selection.filter(user, app.rules.default_region)?
        })
        .await?;
    if selected.len() > BULK_MAX as usize {
        return Err(AppError::unacceptable(format!(
            "the filter selects more than {BULK_MAX} callbacks; narrow it (by skill, agent or due range)"
        )));
    }
    let matched = selected.len();
    let pending_ids: Vec<CallbackId> = selected
        .iter()
        .filter(|(_, state)| req.action.applies_to(*state))
        .map(|(id, _)| *id)
        .collect();
    if req.dry_run {
        return Ok(BulkReport {
            id: None,
            state: BulkState::Done,
            dry_run: true,
            action: req.action,
            matched,
            changed: pending_ids.len(),
            skipped: matched - pending_ids.len(),
            refused_count: 0,
            refused: Vec::new(),
            started_at: None,
            finished_at: None,
            replayed: false,
        });
    }
    let id = Uuid::now_v7();
    let reason = reason.unwrap_or_default();
    let begun = app
        .store
        .begin_bulk(&NewBulk {
            id,
            security_user_id: user.id,
            idempotency: idempotency.as_ref(),
            action: req.action.as_str(),
            reason: &reason,
            matched,
            skipped: matched - pending_ids.len(),
        })
        .await?;
    if let (BulkBegun::Existing(earlier), Some(key)) = (begun, &idempotency) {
        // The same key, sent twice at once: the other request began it.
        return replay(*earlier, key);
    }
    let work = Work {
        app: app.clone(),
        user: user.clone(),
        id,
        step,
        target_agents,
        reason,
        progress: BulkProgress {
            skipped: matched - pending_ids.len(),
            ..BulkProgress::default()
        },
    };
    // On a task of its own: the request may end first, the change goes on to the end.
    let finished = tokio::spawn(work.run(pending_ids))
        .await
        .map_err(|e| AppError::Internal(format!("bulk change {id} stopped: {e}")))??;
    tracing::info!(
        bulk_id = %id,
        action = req.action.as_str(),
        matched,
        changed = finished.changed,
        refused = finished.refused_count,
        security_user = %user.name,
        "bulk change"
    );
    match app.store.bulk(user.id, id).await? {
        Some(record) => BulkReport::of(record, false),
        None => Err(AppError::Internal(format!("bulk change {id} vanished"))),
    }
}

/// The report of a bulk change begun under `key`, if the request is the same.
fn replay(earlier: BulkRecord, key: &IdempotencyKey) -> Result<BulkReport, AppError> {
    if earlier.request_sha256 != Some(key.request_sha256) {
        return Err(AppError::unacceptable(
            "this Idempotency-Key was used for a different bulk change",
        ));
    }
    BulkReport::of(earlier, true)
}

/// One of the user's bulk changes (another user's is not found).
pub async fn bulk_report(app: &App, user: &SecurityUser, id: Uuid) -> Result<BulkReport, AppError> {
    match app.store.bulk(user.id, id).await? {
        Some(record) => BulkReport::of(record, false),
        None => Err(AppError::NotFound(format!("you have no bulk change {id}"))),
    }
}

/// The user's latest bulk changes, newest first.
pub async fn bulk_reports(app: &App, user: &SecurityUser) -> Result<Vec<BulkReport>, AppError> {
    app.store
        .bulks(user.id, BULK_LISTED)
        .await?
        .into_iter()
        .map(|r| BulkReport::of(r, false))
        .collect()
}

/// What a bulk change does to each callback.
enum Step {
    Cancel,
    Change(ChangeInput),
    Retry {
        at: Option<String>,
        time_zone: Option<String>,
    },
}

/// A bulk change going through its callbacks.
struct Work {
    app: App,
    user: SecurityUser,
    id: Uuid,
    step: Step,
    target_agents: Option<Vec<AgentId>>,
    reason: String,
    progress: BulkProgress,
}

impl Work {
    async fn run(mut self, ids: Vec<CallbackId>) -> Result<BulkProgress, AppError> {
        let mut written = Instant::now();
        let mut since_written = 0;
        for id in ids {
            let done = self.one(id).await;
            let p = &mut self.progress;
            match done {
                Ok(()) => p.changed += 1,
                // No longer in a state the action applies to (changed meanwhile): skipped.
                Err(
                    AppError::NoSuchCallback(_)
                    | AppError::NotPending { .. }
                    | AppError::NotRetryable { .. },
                ) => p.skipped += 1,
                Err(AppError::Store(e)) => {
                    // Written as far as it went; the row goes stale and reads "interrupted".
                    if let Err(also) = self.app.store.bulk_progress(self.id, p, false).await {
                        tracing::warn!(bulk_id = %self.id, error = %also, "bulk change progress not recorded");
                    }
                    return Err(AppError::Store(e));
                }
                Err(e) => {
                    p.skipped += 1;
                    p.refused_count += 1;
                    if p.refused.len() < BULK_REFUSALS_SHOWN {
                        p.refused.push(BulkRefusal {
                            callback_id: id,
                            result: e.code(),
                            message: e.to_string(),
                        });
                    }
                }
            }
            since_written += 1;
            if since_written >= PROGRESS_EVERY || written.elapsed() >= PROGRESS_INTERVAL {
                self.app
                    .store
                    .bulk_progress(self.id, &self.progress, false)
                    .await?;
                written = Instant::now();
                since_written = 0;
            }
        }
        self.app
            .store
            .bulk_progress(self.id, &self.progress, true)
            .await?;
        Ok(self.progress)
    }

    async fn one(&self, id: CallbackId) -> Result<(), AppError> {
        let reason = Some(self.reason.as_str()).filter(|r| !r.is_empty());
        let locked = locked(&self.app, &self.user, id).await?;
        match &self.step {
            Step::Cancel => {
                pending(locked, "cancelled")?
                    .cancel(&self.user.name, reason)
                    .await?;
            }
            Step::Retry { at, time_zone } => {
                apply_retry(
                    &self.app,
                    retryable(locked)?,
                    at.as_deref(),
                    time_zone.as_deref(),
                    reason,
                    &self.user.name,
                )
                .await?;
            }
            Step::Change(input) => {
                let locked = pending(locked, "changed")?;
                apply_change(
                    &self.app,
                    locked,
                    input,
                    self.target_agents.clone(),
                    reason.map(str::to_owned),
                    &self.user.name,
                )
                .await?;
            }
        }
        Ok(())
    }
}
