//! Changing one callback under its row lock: a PATCH, a cancel, a dialer's outcome. Each
//! change writes its event in the same transaction.

use chrono::{DateTime, Utc};
use sqlx::types::Json;
use sqlx::{Postgres, Transaction};

use super::directory::{AgentRow, RoutingJson, SkillRow, SlotsByHour, StoredCalendar};
use super::record::CallbackRow;
use super::{Store, StoreError};
use crate::domain::{
    Agent, AgentId, Callback, CallbackId, CallingHoursJson, Changes, Event, OutcomeKind,
    OutcomeWrite, PhoneNumber, Retry, Skill, Slot, cancelled_event, updated_event,
};

impl Store {
    /// Locks one callback for a change (PATCH, DELETE). The row stays locked until the change
    /// is applied or dropped, so a dispatcher cannot claim it half-way, and a callback the
    /// dispatcher is publishing is seen in its final state.
    pub async fn begin_change(&self, id: CallbackId) -> Result<Option<CallbackChange>, StoreError> {
        let mut tries = 0;
        loop {
            match self.lock_for_change(id).await {
                Err(e) if e.raced() && tries < super::RACE_RETRIES => tries += 1,
                locked => return locked,
            }
        }
    }

    async fn lock_for_change(&self, id: CallbackId) -> Result<Option<CallbackChange>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query!(
            r#"SELECT now() AS "now!",
                    s.id AS s_id, s.name AS s_name, s.media_type AS s_media_type,
                    s.direction AS s_direction, s.active AS s_active, s.time_zone AS s_time_zone,
                    s.calling_hours AS "s_calling_hours: Json<CallingHoursJson>",
                    s.retry_backoff_seconds AS s_retry_backoff_seconds,
                    s.max_attempts AS s_max_attempts,
                    s.agent_fallback_seconds AS s_agent_fallback_seconds,
                    s.default_ttl_seconds AS s_default_ttl_seconds,
                    s.outcome_deadline_seconds AS s_outcome_deadline_seconds,
                    s.max_in_flight AS s_max_in_flight, s.max_per_minute AS s_max_per_minute,
                    s.slot_minutes AS s_slot_minutes, s.slot_capacity AS s_slot_capacity,
                    s.slot_capacity_by_hour AS "s_slot_capacity_by_hour: Json<SlotsByHour>",
                    s.routing AS "s_routing: Json<RoutingJson>",
                    (SELECT jsonb_build_object('name', k.name, 'timeZone', k.time_zone, 'days', k.days)
                       FROM calendars k WHERE k.name = s.routing->>'calendar') AS "s_calendar: Json<StoredCalendar>",
                    c.id, c.state, c.first_name, c.last_name, c.phone_number, c.skill_id,
                    c.target_agent_id, c.notes, c.time_zone, c.scheduled_for, c.due_at, c.attempt,
                    c.dispatched_at, c.last_error, c.created_by, c.created_at, c.updated_at,
                    c.expires_at, c.dial_failures, c.last_outcome, c.fallback_due_at,
                    c.fell_back_at, c.caller_id, c.orig_number, c.priority, c.target_agent_ids, c.ownership_seconds, c.number
             FROM callbacks c JOIN skills s ON s.id = c.skill_id
             WHERE c.id = $1 FOR UPDATE OF c"#,
            id.as_uuid()
        )
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let skill = SkillRow {
            id: row.s_id,
            name: row.s_name,
            media_type: row.s_media_type,
            direction: row.s_direction,
            active: row.s_active,
            time_zone: row.s_time_zone,
            calling_hours: row.s_calling_hours,
            retry_backoff_seconds: row.s_retry_backoff_seconds,
            max_attempts: row.s_max_attempts,
            agent_fallback_seconds: row.s_agent_fallback_seconds,
            default_ttl_seconds: row.s_default_ttl_seconds,
            outcome_deadline_seconds: row.s_outcome_deadline_seconds,
            max_in_flight: row.s_max_in_flight,
            max_per_minute: row.s_max_per_minute,
            slot_minutes: row.s_slot_minutes,
            slot_capacity: row.s_slot_capacity,
            slot_capacity_by_hour: row.s_slot_capacity_by_hour,
            routing: row.s_routing,
            calendar: row.s_calendar,
        };
        let record = CallbackRow {
            id: row.id,
            state: row.state,
            first_name: row.first_name,
            last_name: row.last_name,
            phone_number: row.phone_number,
            skill_id: row.skill_id,
            target_agent_id: row.target_agent_id,
            notes: row.notes,
            time_zone: row.time_zone,
            scheduled_for: row.scheduled_for,
            due_at: row.due_at,
            attempt: row.attempt,
            dispatched_at: row.dispatched_at,
            last_error: row.last_error,
            created_by: row.created_by,
            created_at: row.created_at,
            updated_at: row.updated_at,
            expires_at: row.expires_at,
            dial_failures: row.dial_failures,
            last_outcome: row.last_outcome,
            fallback_due_at: row.fallback_due_at,
            fell_back_at: row.fell_back_at,
            caller_id: row.caller_id,
            orig_number: row.orig_number,
            priority: row.priority,
            target_agent_ids: row.target_agent_ids,
            ownership_seconds: row.ownership_seconds,
            number: row.number,
        };
        Ok(Some(CallbackChange {
            now: row.now,
            skill: skill.try_into()?,
            record: record.try_into()?,
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
        let row = sqlx::query_as!(
            AgentRow,
            "SELECT id, username, active, name, skill_ids FROM agents WHERE id = $1",
            id.get()
        )
        .fetch_optional(&mut *self.tx)
        .await?;
        row.map(Agent::try_from).transpose()
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

        let row = sqlx::query_as!(
            CallbackRow,
            "UPDATE callbacks c SET scheduled_for = $2, due_at = $3, time_zone = $4, notes = $5,
                target_agent_id = $6, expires_at = $7, caller_id = $8, priority = $9,
                target_agent_ids = $10::text::bigint[], ownership_seconds = $11,
                -- A reassignment is a new instruction: the new agents have priority again.
                fell_back_at = CASE WHEN $12 THEN NULL ELSE c.fell_back_at END,
                -- A new due time is a new promise: its reminders start again.
                reminders_done = CASE WHEN c.due_at <> $3 THEN 0 ELSE c.reminders_done END,
                updated_at = now(),
                paced_at = NULL, paced_gate = NULL
             WHERE c.id = $1
             RETURNING c.id, c.state, c.first_name, c.last_name, c.phone_number, c.skill_id,
                c.target_agent_id, c.notes, c.time_zone, c.scheduled_for, c.due_at, c.attempt,
                c.dispatched_at, c.last_error, c.created_by, c.created_at, c.updated_at,
                c.expires_at, c.dial_failures, c.last_outcome, c.fallback_due_at,
                c.fell_back_at, c.caller_id, c.orig_number, c.priority, c.target_agent_ids, c.ownership_seconds, c.number",
            old.id.as_uuid(),
            new.scheduled_for,
            new.due_at,
            new.time_zone.map(|tz| tz.name()),
            new.notes,
            new.target_agent.map(AgentId::get),
            new.expires_at,
            new.caller_id.map(PhoneNumber::as_str),
            i32::try_from(new.priority).unwrap_or(0),
            super::create::agent_list(new.target_agents),
            new.ownership_seconds
                .map(|s| i32::try_from(s).unwrap_or(i32::MAX)),
            changes.target_agents.is_some()
        )
        .fetch_one(&mut *self.tx)
        .await?;
        let updated = Callback::try_from(row)?;
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
        let done = sqlx::query!(
            "INSERT INTO callback_outcomes (callback_id, attempt, outcome, source, applied)
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
            self.record.id.as_uuid(),
            attempt,
            outcome.as_str(),
            source,
            applied
        )
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
        let row = sqlx::query_as!(
            CallbackRow,
            "UPDATE callbacks c SET state = $2, ended_on = callbackd_ended_on($2),
                due_at = COALESCE($3, c.due_at),
                dial_failures = COALESCE($4, c.dial_failures), last_outcome = $5,
                last_error = COALESCE($6, c.last_error), fallback_due_at = NULL,
                updated_at = now()
             WHERE c.id = $1
             RETURNING c.id, c.state, c.first_name, c.last_name, c.phone_number, c.skill_id,
                c.target_agent_id, c.notes, c.time_zone, c.scheduled_for, c.due_at, c.attempt,
                c.dispatched_at, c.last_error, c.created_by, c.created_at, c.updated_at,
                c.expires_at, c.dial_failures, c.last_outcome, c.fallback_due_at,
                c.fell_back_at, c.caller_id, c.orig_number, c.priority, c.target_agent_ids, c.ownership_seconds, c.number",
            self.record.id.as_uuid(),
            state.as_str(),
            *due_at,
            *dial_failures,
            outcome.as_str(),
            error.as_deref()
        )
        .fetch_one(&mut *self.tx)
        .await?;
        let updated = Callback::try_from(row)?;
        insert_event(&mut self.tx, self.record.id, actor, event).await?;
        self.tx.commit().await?;
        Ok(updated)
    }

    /// Takes a place in the new due time's slot and gives back the old one; a full slot
    /// is [`StoreError::SlotFull`] (and the change is dropped, so nothing is written).
    async fn move_to_slot(&mut self, slot: &Slot) -> Result<(), StoreError> {
        let held: Option<DateTime<Utc>> = sqlx::query_scalar!(
            "SELECT slot_start FROM callbacks WHERE id = $1",
            self.record.id.as_uuid()
        )
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
        let row = sqlx::query_as!(
            CallbackRow,
            "UPDATE callbacks c SET state = 'cancelled', ended_on = callbackd_ended_on('cancelled'),
                updated_at = now()
             WHERE c.id = $1
             RETURNING c.id, c.state, c.first_name, c.last_name, c.phone_number, c.skill_id,
                c.target_agent_id, c.notes, c.time_zone, c.scheduled_for, c.due_at, c.attempt,
                c.dispatched_at, c.last_error, c.created_by, c.created_at, c.updated_at,
                c.expires_at, c.dial_failures, c.last_outcome, c.fallback_due_at,
                c.fell_back_at, c.caller_id, c.orig_number, c.priority, c.target_agent_ids, c.ownership_seconds, c.number",
            self.record.id.as_uuid()
        )
        .fetch_one(&mut *self.tx)
        .await?;
        let cancelled = Callback::try_from(row)?;
        let event = cancelled_event(self.record.state, reason);
        insert_event(&mut self.tx, self.record.id, actor, &event).await?;
        self.tx.commit().await?;
        Ok(cancelled)
    }

    /// Makes a failed or expired callback pending again, as `retry` plans: a new attempt
    /// with a fresh count of unanswered calls and no trace of its last route's timers. Its
    /// quarter of the promise-kept report is rolled up again.
    pub async fn retry(mut self, retry: &Retry, actor: &str) -> Result<Callback, StoreError> {
        let row = sqlx::query_as!(
            CallbackRow,
            "UPDATE callbacks c SET state = 'pending', ended_on = 'infinity', due_at = $2,
                scheduled_for = COALESCE($3, c.scheduled_for), expires_at = $4,
                dial_failures = 0, last_error = NULL, outcome_due_at = NULL,
                fallback_due_at = NULL, fell_back_at = NULL, paced_at = NULL, paced_gate = NULL,
                reminders_done = 0, updated_at = now()
             WHERE c.id = $1
             RETURNING c.id, c.state, c.first_name, c.last_name, c.phone_number, c.skill_id,
                c.target_agent_id, c.notes, c.time_zone, c.scheduled_for, c.due_at, c.attempt,
                c.dispatched_at, c.last_error, c.created_by, c.created_at, c.updated_at,
                c.expires_at, c.dial_failures, c.last_outcome, c.fallback_due_at,
                c.fell_back_at, c.caller_id, c.orig_number, c.priority, c.target_agent_ids, c.ownership_seconds, c.number",
            self.record.id.as_uuid(),
            retry.due_at,
            retry.scheduled_for,
            retry.expires_at
        )
        .fetch_one(&mut *self.tx)
        .await?;
        let retried = Callback::try_from(row)?;
        // Its quarter may be rolled up already: from there on, the report reads callbacks
        // again until the roll-up passes it anew. Its skill's row of that quarter goes too:
        // a retry at a new time leaves the quarter, and a quarter rolled up again writes
        // rows only for the skills it still has.
        sqlx::query!(
            "WITH reopened AS (
                 SELECT date_bin('15 minutes', $1::timestamptz, timestamptz '2000-01-01') AS q),
             gone AS (
                 DELETE FROM promise_rollup
                 WHERE quarter = (SELECT q FROM reopened) AND skill_id = $2)
             UPDATE promise_rollup_state
             SET watermark = LEAST(watermark, (SELECT q FROM reopened))",
            self.record.scheduled_for,
            self.record.skill_id.get()
        )
        .execute(&mut *self.tx)
        .await?;
        insert_event(&mut self.tx, self.record.id, actor, &retry.event).await?;
        self.tx.commit().await?;
        Ok(retried)
    }
}

/// Records one event of a change, in the change's transaction.
async fn insert_event(
    tx: &mut Transaction<'static, Postgres>,
    id: CallbackId,
    actor: &str,
    event: &Event,
) -> Result<(), StoreError> {
    sqlx::query!(
        // Into the partition of the day the callback ended, if it has (see 0035's note).
        "INSERT INTO callback_events (callback_id, actor, kind, details, ended_on)
         VALUES ($1, $2, $3, $4,
                 COALESCE((SELECT c.ended_on FROM callbacks c WHERE c.id = $1), 'infinity'))",
        id.as_uuid(),
        actor,
        event.kind.as_str(),
        &event.details
    )
    .execute(&mut **tx)
    .await?;
    Ok(())
}
