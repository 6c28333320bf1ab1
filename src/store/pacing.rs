//! Pacing inside a claim. How several daemons keep one limit: a gate (a skill or an agent)
//! is read and used only under a transaction-scoped advisory lock taken with
//! `pg_try_advisory_xact_lock`, held until the claim commits. The count of callbacks in
//! flight is read *after* the lock is taken (a new statement, so a new snapshot under READ
//! COMMITTED), and only a claim holding the lock can add to it (by recording a
//! publication), so no two claims can both see room for the last place. A gate another claim
//! holds is not waited for: its callbacks wait for the next pass.
//!
//! Held callbacks keep `state = 'pending'` and are marked with `paced_at` and `paced_gate`,
//! which moves them from the dispatcher's walk of due callbacks (`callbacks_ready`) to a
//! per-gate index (`callbacks_paced`): however many are held, the claim's walk does not
//! read them again, and each gate takes its own oldest first.

use chrono::{DateTime, Utc};
use sqlx::FromRow;
use uuid::Uuid;

use super::StoreError;
use super::dispatch::{Claim, Claimed, ClaimedRow, Due};
use crate::domain::{CallbackId, Gate, GateReading, SkillId};

/// The text of [`HELD_GATES`], as a literal so that the claim ([`CLAIM_DUE`]) can carry it.
///
/// [`CLAIM_DUE`]: super::dispatch::CLAIM_DUE
macro_rules! held_gates_sql {
    () => {
        "WITH RECURSIVE gates AS (
        (SELECT paced_gate FROM callbacks
         WHERE ended_on = 'infinity' AND state = 'pending' AND paced_at IS NOT NULL
         ORDER BY paced_gate LIMIT 1)
        UNION ALL
        SELECT (SELECT c.paced_gate FROM callbacks c
                WHERE c.ended_on = 'infinity' AND c.state = 'pending' AND c.paced_at IS NOT NULL
                  AND c.paced_gate > gates.paced_gate
                ORDER BY c.paced_gate LIMIT 1)
        FROM gates WHERE gates.paced_gate IS NOT NULL
     )
     SELECT paced_gate FROM gates WHERE paced_gate IS NOT NULL"
    };
}
pub(super) use held_gates_sql;

/// The gates holding callbacks: a recursive skip scan of `callbacks_paced`, one probe per
/// gate, however many callbacks each holds. The claim reads them in the same statement.
pub const HELD_GATES: &str = held_gates_sql!();

/// Each gate's try-lock (`$1`: the gates, stored form): one namespace hashed with the gate.
/// Try-locks never wait, so the order they are taken in cannot deadlock.
pub const GATE_LOCKS: &str = "SELECT g.gate,
            pg_try_advisory_xact_lock(hashtextextended('callbackd/pace/' || g.gate, 0))
     FROM unnest($1::bigint[]) AS g(gate)";

/// Each locked gate's callbacks in flight (through `callbacks_in_flight_by_skill` /
/// `…_by_agent`) and its limits (`$1`: the locked gates), read after the locks were taken.
pub const GATE_READINGS: &str = "SELECT g.gate,
            CASE WHEN g.gate > 0 THEN
                (SELECT count(*) FROM callbacks c
                 WHERE c.ended_on = 'infinity' AND c.skill_id = g.gate
                   AND c.state IN ('dispatched', 'accepted'))
            ELSE
                (SELECT count(*) FROM callbacks c
                 WHERE c.ended_on = 'infinity' AND c.target_agent_id = -g.gate AND c.fell_back_at IS NULL
                   AND c.target_agent_id IS NOT NULL
                   AND c.state IN ('dispatched', 'accepted'))
            END AS in_flight,
            s.max_in_flight, s.max_per_minute, p.next_at,
            COALESCE(s.routing ? 'paused', false) AS paused
     FROM unnest($1::bigint[]) AS g(gate)
     LEFT JOIN skills s ON g.gate > 0 AND s.id = g.gate
     LEFT JOIN skill_pace p ON g.gate > 0 AND p.skill_id = g.gate";

/// Up to `n` held, due callbacks of each gate, the highest effective priority first, then
/// the oldest, locked (`$1`: gates, `$2`: how many each). Each gate's candidates are its
/// 128 oldest (`callbacks_paced`) and its 128 of highest base priority
/// (`callbacks_paced_priority`), ranked by the effective priority `domain::PriorityRules`
/// computes: bounded reads, however many are held, and exact while a gate holds at most
/// 128 (beyond that, a callback neither among the oldest nor among the highest base
/// priorities waits until it is one or the other). Its rows are [`CLAIM_DUE`]'s
/// ([`ClaimedRow`]).
///
/// [`CLAIM_DUE`]: super::dispatch::CLAIM_DUE
pub const HELD: &str = "SELECT held.* FROM unnest($1::bigint[], $2::bigint[]) AS t(gate, n)
     CROSS JOIN LATERAL (SELECT c.id, c.state, c.first_name, c.last_name, \
         c.phone_number, c.skill_id, c.target_agent_id, c.notes, c.time_zone, \
         c.scheduled_for, c.due_at, c.attempt, c.dispatched_at, c.last_error, \
         c.created_by, c.created_at, c.updated_at, c.expires_at, c.dial_failures, \
         c.last_outcome, c.fallback_due_at, c.fell_back_at, c.caller_id, c.orig_number, c.priority, c.target_agent_ids, c.ownership_seconds, c.number, c.paced_at, \
         dnc.dnc_skill_id, dnc.dnc_reason
               FROM ((SELECT h.id FROM callbacks h
                      WHERE h.ended_on = 'infinity' AND h.state = 'pending' AND h.paced_at IS NOT NULL
                        AND h.paced_gate = t.gate
                        AND h.due_at <= now() AND (h.expires_at IS NULL OR h.expires_at > now())
                      ORDER BY h.due_at LIMIT 128)
                     UNION
                     (SELECT h.id FROM callbacks h
                      WHERE h.ended_on = 'infinity' AND h.state = 'pending' AND h.paced_at IS NOT NULL
                        AND h.paced_gate = t.gate
                        AND h.due_at <= now() AND (h.expires_at IS NULL OR h.expires_at > now())
                      ORDER BY h.priority DESC, h.due_at LIMIT 128)) AS candidate
               JOIN callbacks c ON c.id = candidate.id AND c.ended_on = 'infinity'
               JOIN skills s ON s.id = c.skill_id
               LEFT JOIN LATERAL (SELECT d.skill_id AS dnc_skill_id, \
                 d.reason AS dnc_reason
                FROM dnc_entries d
                WHERE d.phone_number = c.phone_number \
                  AND (d.skill_id IS NULL OR d.skill_id = c.skill_id)
                  AND (d.expires_at IS NULL OR d.expires_at > now())
                ORDER BY COALESCE(d.skill_id, 0) DESC LIMIT 1) AS dnc ON true \
         WHERE c.state = 'pending' AND c.paced_gate = t.gate
       ORDER BY LEAST(COALESCE((s.routing->>'maxPriority')::float8, 1000),
                      c.priority + COALESCE((s.routing->>'priorityAcceleration')::float8, 0)
                        * GREATEST(EXTRACT(EPOCH FROM now() - c.due_at)::float8, 0) / 60) DESC,
                c.due_at, c.id
       LIMIT t.n
       FOR UPDATE OF c SKIP LOCKED) AS held";

/// Marks callbacks held at their gate (`$1`: ids, `$2`: gates); one already held there is
/// not written again.
pub const HOLD: &str = "UPDATE callbacks c
     SET paced_at = COALESCE(c.paced_at, clock_timestamp()), paced_gate = h.gate
     FROM unnest($1::uuid[], $2::bigint[]) AS h(id, gate)
     WHERE c.id = h.id AND c.ended_on = 'infinity' AND c.paced_gate IS DISTINCT FROM h.gate";

impl Claim {
    /// Takes each gate's lock if no other claim holds it, then reads the locked gates: the
    /// count in flight (read after the lock, see the module's note) and the limits.
    /// `agent_max_in_flight` is the configured cap for agents.
    pub async fn read_gates(
        &mut self,
        gates: &[Gate],
        agent_max_in_flight: Option<u32>,
    ) -> Result<Vec<(Gate, GateReading)>, StoreError> {
        if gates.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<i64> = gates.iter().map(|g| g.encode()).collect();
        let locked: Vec<(i64, bool)> = sqlx::query_as(GATE_LOCKS)
            .bind(&keys)
            .fetch_all(&mut *self.tx)
            .await?;
        let held: Vec<i64> = locked.iter().filter(|(_, l)| *l).map(|(g, _)| *g).collect();
        let rows: Vec<GateReadingRow> = sqlx::query_as(GATE_READINGS)
            .bind(&held)
            .fetch_all(&mut *self.tx)
            .await?;
        let mut readings = Vec::with_capacity(locked.len());
        for row in rows {
            let gate = decode(row.gate)?;
            let limit = |v: Option<i32>| v.map(|n| n.max(1) as u32);
            let (max_in_flight, max_per_minute) = match gate {
                // A paused skill's gate has room for none: its due callbacks are held there.
                Gate::Skill(_) if row.paused => (Some(0), None),
                Gate::Skill(_) => (limit(row.max_in_flight), limit(row.max_per_minute)),
                Gate::Agent(_) => (agent_max_in_flight, None),
            };
            readings.push((
                gate,
                GateReading {
                    locked: true,
                    in_flight: u32::try_from(row.in_flight).unwrap_or(u32::MAX),
                    max_in_flight,
                    max_per_minute,
                    next_at: row.next_at,
                },
            ));
        }
        for (gate, _) in locked.iter().filter(|(_, l)| !*l) {
            readings.push((
                decode(*gate)?,
                GateReading {
                    locked: false,
                    in_flight: 0,
                    max_in_flight: None,
                    max_per_minute: None,
                    next_at: None,
                },
            ));
        }
        Ok(readings)
    }

    /// Locks up to `n` of each gate's held callbacks that are due, oldest first.
    pub async fn held(&mut self, takes: &[(Gate, u32)]) -> Result<Vec<Due>, StoreError> {
        if takes.is_empty() {
            return Ok(Vec::new());
        }
        let gates: Vec<i64> = takes.iter().map(|(g, _)| g.encode()).collect();
        let limits: Vec<i64> = takes.iter().map(|(_, n)| i64::from(*n)).collect();
        let rows: Vec<ClaimedRow> = sqlx::query_as(HELD)
            .bind(&gates)
            .bind(&limits)
            .fetch_all(&mut *self.tx)
            .await?;
        let claimed = rows
            .into_iter()
            .map(Claimed::try_from)
            .collect::<Result<Vec<_>, _>>()?;
        self.with_skills(claimed).await
    }

    /// Holds callbacks at the gate that stopped them (pending; out of the due walk). One
    /// already held there is not written again.
    pub async fn hold(&mut self, held: &[(CallbackId, Gate)]) -> Result<(), StoreError> {
        if held.is_empty() {
            return Ok(());
        }
        let ids: Vec<Uuid> = held.iter().map(|(id, _)| id.as_uuid()).collect();
        let gates: Vec<i64> = held.iter().map(|(_, g)| g.encode()).collect();
        sqlx::query(HOLD)
            .bind(&ids)
            .bind(&gates)
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    /// Stores when each rate-paced skill's next publication may go.
    pub async fn set_pace(&mut self, next: &[(SkillId, DateTime<Utc>)]) -> Result<(), StoreError> {
        if next.is_empty() {
            return Ok(());
        }
        let skills: Vec<i64> = next.iter().map(|(s, _)| s.get()).collect();
        let times: Vec<DateTime<Utc>> = next.iter().map(|(_, t)| *t).collect();
        sqlx::query!(
            "INSERT INTO skill_pace (skill_id, next_at)
             SELECT * FROM unnest($1::bigint[], $2::timestamptz[])
             ON CONFLICT (skill_id) DO UPDATE SET next_at = EXCLUDED.next_at",
            &skills,
            &times
        )
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }
}

/// A row of [`GATE_READINGS`]: its text is shared with the benchmark suite
/// (`store::statements`), so it is decoded by column name rather than checked by `query!`.
#[derive(FromRow)]
struct GateReadingRow {
    gate: i64,
    in_flight: i64,
    max_in_flight: Option<i32>,
    max_per_minute: Option<i32>,
    next_at: Option<DateTime<Utc>>,
    paused: bool,
}

pub(super) fn decode(stored: i64) -> Result<Gate, StoreError> {
    Gate::decode(stored).map_err(|e| StoreError::Corrupt(format!("paced_gate {stored}: {e}")))
}
