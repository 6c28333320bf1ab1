//! Changing one callback under its row lock: a PATCH, a cancel, a dialer's outcome. Each
//! change writes its event in the same transaction.

use chrono::{DateTime, Utc};
use sqlx::{Postgres, Row, Transaction};

use super::directory::{agent_from_row, skill_from_row};
use super::record::callback_from_row;
use super::{Store, StoreError};
use crate::domain::{
    Agent, AgentId, Callback, CallbackId, Changes, Event, OutcomeKind, OutcomeWrite, Skill, Slot,
    cancelled_event, updated_event,
};

impl Store {
    /// Locks one callback for a change (PATCH, DELETE). The row stays locked until the change
    /// is applied or dropped, so a dispatcher cannot claim it half-way, and a callback the
    /// dispatcher is publishing is seen in its final state.
    pub async fn begin_change(&self, id: CallbackId) -> Result<Option<CallbackChange>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query(concat!(
            "SELECT now() AS now, ",
            skill_columns!(),
            ", ",
            callback_columns!(),
            " FROM callbacks c JOIN skills s ON s.id = c.skill_id
             WHERE c.id = $1 FOR UPDATE OF c"
        ))
        .bind(id.as_uuid())
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else { return Ok(None) };
        Ok(Some(CallbackChange {
            now: row.try_get("now")?,
            skill: skill_from_row(&row, "s_")?,
            record: callback_from_row(&row)?,
            tx,
        }))
    }
}

/// A locked callback and the transaction holding the lock.
pub struct CallbackChange {
    pub record: Callback,
    pub skill: Skill,
    /// The database clock at the time of the lock.
    pub now: DateTime<Utc>,
    tx: Transaction<'static, Postgres>,
}

impl CallbackChange {
    pub async fn agent(&mut self, id: AgentId) -> Result<Option<Agent>, StoreError> {
        let row = sqlx::query("SELECT id, username, active FROM agents WHERE id = $1")
            .bind(id.get())
            .fetch_optional(&mut *self.tx)
            .await?;
        row.map(|r| agent_from_row(&r, "")).transpose()
    }

    /// Applies the changes, records who made them and commits. A callback held by pacing is
    /// let go: its gates are judged again, as they now are, when it is next due.
    pub async fn apply(mut self, changes: &Changes, actor: &str) -> Result<Callback, StoreError> {
        if let Some(slot) = &changes.slot {
            self.move_to_slot(slot).await?;
        }
        let old = &self.record;
        let new = changes.applied_to(old);
        let event = updated_event(old, changes);

        let row = sqlx::query(concat!(
            "UPDATE callbacks c SET scheduled_for = $2, due_at = $3, time_zone = $4, notes = $5,
                target_agent_id = $6, expires_at = $7, updated_at = now(),
                paced_at = NULL, paced_gate = NULL
             WHERE c.id = $1 RETURNING ",
            callback_columns!()
        ))
        .bind(old.id.as_uuid())
        .bind(new.scheduled_for)
        .bind(new.due_at)
        .bind(new.time_zone.map(|tz| tz.name()))
        .bind(new.notes)
        .bind(new.target_agent.map(AgentId::get))
        .bind(new.expires_at)
        .fetch_one(&mut *self.tx)
        .await?;
        let updated = callback_from_row(&row)?;
        insert_event(&mut self.tx, old.id, actor, &event).await?;
        self.tx.commit().await?;
        Ok(updated)
    }

    /// Records that `outcome` for `attempt` arrived; false when it had arrived before (the
    /// idempotency key), in which case nothing else should change.
    pub async fn record_outcome(
        &mut self,
        attempt: i32,
        outcome: OutcomeKind,
        source: &str,
        applied: bool,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "INSERT INTO callback_outcomes (callback_id, attempt, outcome, source, applied)
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
        )
        .bind(self.record.id.as_uuid())
        .bind(attempt)
        .bind(outcome.as_str())
        .bind(source)
        .bind(applied)
        .execute(&mut *self.tx)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Writes a decided outcome (or records why it was ignored) and commits.
    pub async fn apply_outcome(
        mut self,
        outcome: OutcomeKind,
        write: &OutcomeWrite,
        actor: &str,
    ) -> Result<Callback, StoreError> {
        let (state, due_at, dial_failures, error, event) = match write {
            OutcomeWrite::Ignored(event) => {
                insert_event(&mut self.tx, self.record.id, actor, event).await?;
                self.tx.commit().await?;
                return Ok(self.record);
            }
            OutcomeWrite::Applied {
                state,
                due_at,
                dial_failures,
                error,
                event,
            } => (state, due_at, dial_failures, error, event),
        };
        let row = sqlx::query(concat!(
            "UPDATE callbacks c SET state = $2, due_at = COALESCE($3, c.due_at),
                dial_failures = COALESCE($4, c.dial_failures), last_outcome = $5,
                last_error = COALESCE($6, c.last_error), fallback_due_at = NULL,
                updated_at = now()
             WHERE c.id = $1 RETURNING ",
            callback_columns!()
        ))
        .bind(self.record.id.as_uuid())
        .bind(state.as_str())
        .bind(due_at)
        .bind(dial_failures)
        .bind(outcome.as_str())
        .bind(error)
        .fetch_one(&mut *self.tx)
        .await?;
        let updated = callback_from_row(&row)?;
        insert_event(&mut self.tx, self.record.id, actor, event).await?;
        self.tx.commit().await?;
        Ok(updated)
    }

    /// Takes a place in the new due time's slot and gives back the old one; a full slot
    /// is [`StoreError::SlotFull`] (and the change is dropped, so nothing is written).
    async fn move_to_slot(&mut self, slot: &Slot) -> Result<(), StoreError> {
        let held: Option<DateTime<Utc>> =
            sqlx::query_scalar("SELECT slot_start FROM callbacks WHERE id = $1")
                .bind(self.record.id.as_uuid())
                .fetch_one(&mut *self.tx)
                .await?;
        if held == Some(slot.start) {
            return Ok(());
        }
        super::slots::release(&mut self.tx, self.record.id.as_uuid()).await?;
        if super::slots::book(
            &mut self.tx,
            self.record.skill_id,
            slot,
            self.record.id.as_uuid(),
        )
        .await?
        {
            Ok(())
        } else {
            Err(StoreError::SlotFull(slot.start))
        }
    }

    /// Cancels it, with the reason when one was given (recorded in the event), and gives
    /// back its slot.
    pub async fn cancel(
        mut self,
        actor: &str,
        reason: Option<&str>,
    ) -> Result<Callback, StoreError> {
        super::slots::release(&mut self.tx, self.record.id.as_uuid()).await?;
        let row = sqlx::query(concat!(
            "UPDATE callbacks c SET state = 'cancelled', updated_at = now()
             WHERE c.id = $1 RETURNING ",
            callback_columns!()
        ))
        .bind(self.record.id.as_uuid())
        .fetch_one(&mut *self.tx)
        .await?;
        let cancelled = callback_from_row(&row)?;
        let event = cancelled_event(self.record.state, reason);
        insert_event(&mut self.tx, self.record.id, actor, &event).await?;
        self.tx.commit().await?;
        Ok(cancelled)
    }
}

/// Records one event of a change, in the change's transaction.
async fn insert_event(
    tx: &mut Transaction<'static, Postgres>,
    id: CallbackId,
    actor: &str,
    event: &Event,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO callback_events (callback_id, actor, kind, details) VALUES ($1, $2, $3, $4)",
    )
    .bind(id.as_uuid())
    .bind(actor)
    .bind(event.kind.as_str())
    .bind(&event.details)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
