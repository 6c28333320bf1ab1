//! What the maintenance jobs ask of the database: the backlog report, the timers (agent
//! fallback, expiry, the outcome deadline) and the retention purge.
//!
//! Timer statements take their rows with `FOR UPDATE SKIP LOCKED`, a slice at a time: a
//! row another daemon's timer (or a dispatcher) holds is skipped, not waited for, so
//! daemons sharing a database neither wait on nor deadlock with each other.

use sqlx::postgres::PgQueryResult;

use super::{Store, StoreError};
use crate::domain::{CallbackState, EventKind};

/// Rows a timer statement changes at most at once: each slice is its own short transaction,
/// and rows another daemon's timer (or a dispatcher) holds are skipped, not waited for.
const TIMER_SLICE: i64 = 1000;

/// Backlog figures for the periodic report.
#[derive(Debug, Clone, Default)]
pub struct Backlog {
    pub pending: i64,
    pub due_now: i64,
    /// Due within the next hour (not yet due).
    pub due_next_hour: i64,
    /// How late the longest-waiting due callback is, pacing aside: held callbacks wait by
    /// design (`paced_by_skill` says for how long).
    pub oldest_overdue_seconds: f64,
    /// Dispatched or accepted: published, waiting for the dialer's outcome.
    pub awaiting_outcome: i64,
    /// Due, but held by pacing (part of `pending` and `due_now`).
    pub paced: i64,
    /// Held by pacing, per skill.
    pub paced_by_skill: Vec<PacedSkill>,
}

/// A skill's callbacks held by pacing.
#[derive(Debug, Clone, Default)]
pub struct PacedSkill {
    pub skill_id: i64,
    pub held: i64,
    /// How long the longest-held one has waited for room.
    pub oldest_held_seconds: f64,
}

impl Store {
    /// Pending callbacks are read from their two indexes: those due (`callbacks_ready`) and
    /// those held by pacing (`callbacks_paced`).
    pub async fn backlog(&self) -> Result<Backlog, StoreError> {
        let row = sqlx::query!(
            r#"SELECT count(*) AS "pending!",
                    count(*) FILTER (WHERE due_at <= now()) AS "due_now!",
                    count(*) FILTER (WHERE due_at > now() AND due_at <= now() + interval '1 hour')
                        AS "due_next_hour!",
                    COALESCE(EXTRACT(EPOCH FROM (now() - min(due_at) FILTER (WHERE NOT held)))
                        ::float8, 0) AS "oldest!",
                    (SELECT count(*) FROM callbacks
                     WHERE state IN ('dispatched', 'accepted')) AS "awaiting_outcome!"
             FROM (SELECT due_at, false AS held FROM callbacks
                   WHERE state = 'pending' AND paced_at IS NULL
                   UNION ALL
                   SELECT due_at, true FROM callbacks
                   WHERE state = 'pending' AND paced_at IS NOT NULL)
                  AS pending"#
        )
        .fetch_one(&self.pool)
        .await?;
        let paced_by_skill = sqlx::query!(
            r#"SELECT skill_id, count(*) AS "held!",
                    EXTRACT(EPOCH FROM (now() - min(paced_at)))::float8 AS "oldest!"
             FROM callbacks WHERE state = 'pending' AND paced_at IS NOT NULL
             GROUP BY skill_id ORDER BY skill_id"#
        )
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .map(|r| PacedSkill {
            skill_id: r.skill_id,
            held: r.held,
            oldest_held_seconds: r.oldest.max(0.0),
        })
        .collect::<Vec<_>>();
        Ok(Backlog {
            paced: paced_by_skill.iter().map(|p| p.held).sum(),
            paced_by_skill,
            awaiting_outcome: row.awaiting_outcome,
            pending: row.pending,
            due_now: row.due_now,
            due_next_hour: row.due_next_hour,
            oldest_overdue_seconds: row.oldest.max(0.0),
        })
    }

    /// Removes terminal callbacks (`CallbackState::TERMINAL`) that ended more than
    /// `retention_days` ago, with their events and what refers to them: each day of history
    /// whose every callback ended before then is dropped whole; what ended without entering
    /// its day's partition (before partitions existed, or with no partition made for its
    /// day) is deleted by row, in slices so that no single transaction holds many locks. A
    /// callback still waiting (pending, dispatched, accepted) is never removed. Returns how
    /// many callbacks went.
    pub async fn purge_terminal(&self, retention_days: u32) -> Result<u64, StoreError> {
        let mut total = self.drop_ended_days(retention_days).await?;
        let terminal: Vec<&str> = CallbackState::TERMINAL.map(CallbackState::as_str).to_vec();
        loop {
            // By row: those in the live or default partition, and any whose last change is
            // older than the day they ended on (only ever written so by hand). The tables
            // that refer to a callback are `history::REFERRING`'s (this statement is checked
            // at build time, so it names them again).
            let done: i64 = sqlx::query_scalar!(
                r#"WITH gone AS (
                    DELETE FROM callbacks WHERE id IN (
                        SELECT id FROM callbacks
                        WHERE state = ANY($2::text[])
                          AND updated_at < now() - make_interval(days => $1)
                          AND (ended_on = 'infinity'
                               OR tableoid = 'callbacks_ended_default'::regclass
                               OR updated_at < ended_on::timestamp AT TIME ZONE 'UTC')
                        LIMIT 5000
                        FOR UPDATE SKIP LOCKED)
                    RETURNING id
                 ), events AS (
                    DELETE FROM callback_events WHERE callback_id IN (SELECT id FROM gone)
                 ), outbox AS (
                    DELETE FROM event_outbox WHERE callback_id IN (SELECT id FROM gone)
                 ), outcomes AS (
                    DELETE FROM callback_outcomes WHERE callback_id IN (SELECT id FROM gone)
                 ), links AS (
                    DELETE FROM customer_links WHERE callback_id IN (SELECT id FROM gone)
                 ), keys AS (
                    DELETE FROM idempotency_keys WHERE callback_id IN (SELECT id FROM gone)
                 )
                 SELECT count(*) AS "count!" FROM gone"#,
                i32::try_from(retention_days).unwrap_or(i32::MAX),
                &terminal as &[&str]
            )
            .fetch_one(&self.pool)
            .await?;
            let done = u64::try_from(done).unwrap_or_default();
            total += done;
            if done < 5000 {
                return Ok(total);
            }
        }
    }

    /// Re-routes agent-routed callbacks not accepted in time to their skill: pending again
    /// at once, published next as a new attempt with route `skill`. Returns how many.
    pub async fn fall_back_unaccepted(&self) -> Result<u64, StoreError> {
        let kind = EventKind::AgentFallback.as_str();
        in_slices(|| {
            sqlx::query!(
                "WITH due AS (
                SELECT id FROM callbacks
                WHERE ended_on = 'infinity' AND state = 'dispatched' AND fallback_due_at <= now()
                ORDER BY fallback_due_at LIMIT $1
                FOR UPDATE SKIP LOCKED
             ), moved AS (
                UPDATE callbacks c SET state = 'pending', fell_back_at = now(), due_at = now(),
                    fallback_due_at = NULL, updated_at = now()
                FROM due WHERE c.id = due.id AND c.ended_on = 'infinity'
                RETURNING c.id, c.target_agent_id, c.skill_id, c.attempt
             )
             INSERT INTO callback_events (callback_id, actor, kind, details)
             SELECT id, 'timer', $2::text,
                    jsonb_build_object('fromAgentId', target_agent_id, 'toSkillId', skill_id,
                                       'notAcceptedAttempt', attempt)
             FROM moved",
                TIMER_SLICE,
                kind
            )
            .execute(&self.pool)
        })
        .await
    }

    /// Routes pending callbacks whose preferred agents' ownership ended (counted from the
    /// due time) to their skill, with an `ownership_ended` event: pending again at once,
    /// held no more. Returns how many.
    pub async fn end_ownership(&self) -> Result<u64, StoreError> {
        let kind = EventKind::OwnershipEnded.as_str();
        in_slices(|| {
            sqlx::query!(
                "WITH due AS (
                SELECT id FROM callbacks
                WHERE ended_on = 'infinity' AND state = 'pending' AND ownership_seconds IS NOT NULL
                  AND fell_back_at IS NULL AND due_at <= now()
                  AND target_agent_id IS NOT NULL
                  AND due_at + make_interval(secs => ownership_seconds) <= now()
                ORDER BY due_at LIMIT $1
                FOR UPDATE SKIP LOCKED
             ), moved AS (
                UPDATE callbacks c SET fell_back_at = now(), paced_at = NULL, paced_gate = NULL,
                    updated_at = now()
                FROM due WHERE c.id = due.id AND c.ended_on = 'infinity'
                RETURNING c.id, c.target_agent_id, c.target_agent_ids, c.skill_id,
                    c.ownership_seconds
             )
             INSERT INTO callback_events (callback_id, actor, kind, details)
             SELECT id, 'timer', $2::text,
                    jsonb_build_object(
                        'agentIds', COALESCE(to_jsonb(target_agent_ids),
                                             jsonb_build_array(target_agent_id)),
                        'toSkillId', skill_id, 'ownershipSeconds', ownership_seconds)
             FROM moved",
                TIMER_SLICE,
                kind
            )
            .execute(&self.pool)
        })
        .await
    }

    /// Lets go of callbacks held at an agent's gate that choose among several preferred
    /// agents, so that the next pass offers them to each again: a hold records one gate,
    /// and another listed agent may have room now. Returns how many.
    pub async fn reoffer_held(&self) -> Result<u64, StoreError> {
        let done = sqlx::query!(
            "UPDATE callbacks SET paced_at = NULL, paced_gate = NULL
             WHERE ended_on = 'infinity' AND id IN (SELECT id FROM callbacks
                          WHERE ended_on = 'infinity' AND state = 'pending' AND paced_at IS NOT NULL AND paced_gate < 0
                            AND target_agent_ids IS NOT NULL AND fell_back_at IS NULL
                          LIMIT $1 FOR UPDATE SKIP LOCKED)",
            TIMER_SLICE
        )
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    /// Fails dispatched or accepted callbacks whose final outcome did not come in time, with
    /// an `outcome_deadline` event. Returns how many.
    pub async fn end_without_outcome(&self) -> Result<u64, StoreError> {
        let kind = EventKind::OutcomeDeadline.as_str();
        in_slices(|| {
            sqlx::query!(
                "WITH due AS (
                SELECT id FROM callbacks
                WHERE ended_on = 'infinity' AND state IN ('dispatched', 'accepted')
                  AND outcome_due_at <= now()
                ORDER BY outcome_due_at LIMIT $1
                FOR UPDATE SKIP LOCKED
             ), ended AS (
                UPDATE callbacks c SET state = 'failed', ended_on = callbackd_ended_on('failed'),
                    fallback_due_at = NULL,
                    last_error = 'no final outcome was reported for attempt ' || c.attempt
                        || ' by ' || to_char(c.outcome_due_at AT TIME ZONE 'UTC',
                                             'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),
                    updated_at = now()
                FROM due WHERE c.id = due.id AND c.ended_on = 'infinity'
                RETURNING c.id, c.attempt, c.dispatched_at, c.outcome_due_at
             )
             INSERT INTO callback_events (callback_id, actor, kind, details)
             SELECT id, 'timer', $2::text,
                    jsonb_build_object('attempt', attempt,
                        'dispatchedAt', (to_jsonb(dispatched_at AT TIME ZONE 'UTC') #>> '{}') || 'Z',
                        'deadline', (to_jsonb(outcome_due_at AT TIME ZONE 'UTC') #>> '{}') || 'Z')
             FROM ended",
                TIMER_SLICE,
                kind
            )
            .execute(&self.pool)
        })
        .await
    }

    /// Expires callbacks past `expires_at` that were not completed. Returns how many.
    pub async fn expire_overdue(&self) -> Result<u64, StoreError> {
        let kind = EventKind::Expired.as_str();
        in_slices(|| {
            sqlx::query!(
                "WITH due AS (
                SELECT id FROM callbacks
                WHERE ended_on = 'infinity' AND state IN ('pending', 'dispatched', 'accepted')
                  AND expires_at <= now()
                ORDER BY expires_at LIMIT $1
                FOR UPDATE SKIP LOCKED
             ), gone AS (
                UPDATE callbacks c SET state = 'expired', ended_on = callbackd_ended_on('expired'),
                    fallback_due_at = NULL,
                    last_error = 'expired at ' || to_char(c.expires_at AT TIME ZONE 'UTC',
                                                        'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),
                    updated_at = now()
                FROM due WHERE c.id = due.id AND c.ended_on = 'infinity'
                RETURNING c.id, c.expires_at, c.state
             )
             INSERT INTO callback_events (callback_id, actor, kind, details)
             SELECT id, 'timer', $2::text, jsonb_build_object(
                    'expiresAt', (to_jsonb(expires_at AT TIME ZONE 'UTC') #>> '{}') || 'Z')
             FROM gone",
                TIMER_SLICE,
                kind
            )
            .execute(&self.pool)
        })
        .await
    }
}

/// Runs a timer statement (`$1`: the slice size, `$2`: the kind of event it writes) until a
/// slice changes fewer rows than that. Returns how many rows it changed in all.
async fn in_slices<F, Fut>(slice: F) -> Result<u64, StoreError>
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<PgQueryResult, sqlx::Error>>,
{
    let mut total = 0;
    let mut raced = 0;
    loop {
        let done = match slice().await {
            Err(e) if super::moved_away(&e) && raced < super::RACE_RETRIES => {
                raced += 1;
                continue;
            }
            done => done?,
        };
        total += done.rows_affected();
        if done.rows_affected() < TIMER_SLICE as u64 {
            return Ok(total);
        }
    }
}
