//! The daemon's dispatch statements, copied from `src/store/dispatch.rs` and
//! `src/store/pacing.rs` (the column lists from the `skill_columns!`, `callback_columns!` and
//! `dnc_match!` macros, which the library does not export). The suite needs their text to
//! `EXPLAIN` them; keep them in step with the daemon's.

use sqlx::PgConnection;
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection};

macro_rules! skill_columns {
    () => {
        "s.id AS s_id, s.name AS s_name, s.media_type AS s_media_type, \
         s.direction AS s_direction, s.active AS s_active, s.time_zone AS s_time_zone, \
         s.calling_hours AS s_calling_hours, s.retry_backoff_seconds AS s_retry_backoff_seconds, \
         s.max_attempts AS s_max_attempts, s.agent_fallback_seconds AS s_agent_fallback_seconds, \
         s.default_ttl_seconds AS s_default_ttl_seconds, \
         s.outcome_deadline_seconds AS s_outcome_deadline_seconds, \
         s.max_in_flight AS s_max_in_flight, s.max_per_minute AS s_max_per_minute, \
         s.slot_minutes AS s_slot_minutes, s.slot_capacity AS s_slot_capacity, \
         s.slot_capacity_by_hour AS s_slot_capacity_by_hour"
    };
}

macro_rules! callback_columns {
    () => {
        "c.id, c.state, c.first_name, c.last_name, c.phone_number, c.skill_id, c.target_agent_id, \
         c.notes, c.time_zone, c.scheduled_for, c.due_at, c.attempt, c.dispatched_at, \
         c.last_error, c.created_by, c.created_at, c.updated_at, c.expires_at, c.dial_failures, \
         c.last_outcome, c.fallback_due_at, c.fell_back_at"
    };
}

macro_rules! dnc_match {
    () => {
        " LEFT JOIN LATERAL (SELECT d.skill_id AS dnc_skill_id, d.reason AS dnc_reason
                FROM dnc_entries d
                WHERE d.phone_number = c.phone_number AND (d.skill_id IS NULL OR d.skill_id = c.skill_id)
                  AND (d.expires_at IS NULL OR d.expires_at > now())
                ORDER BY COALESCE(d.skill_id, 0) DESC LIMIT 1) AS dnc ON true"
    };
}

/// `Claim::due`: due, unpaced, unexpired callbacks with their skills and do-not-call match,
/// locked in due order (the walk of `callbacks_ready`).
pub const CLAIM: &str = concat!(
    "SELECT now() AS now, claimed.* FROM (SELECT 1) AS one
     LEFT JOIN LATERAL (SELECT ",
    skill_columns!(),
    ", ",
    callback_columns!(),
    ", c.paced_at, dnc.dnc_skill_id, dnc.dnc_reason
       FROM callbacks c JOIN skills s ON s.id = c.skill_id",
    dnc_match!(),
    " WHERE c.state = 'pending' AND c.paced_at IS NULL AND c.due_at <= now()
         AND (c.expires_at IS NULL OR c.expires_at > now())
       ORDER BY c.due_at
       LIMIT $1
       FOR UPDATE OF c SKIP LOCKED) AS claimed ON true"
);

/// `Store::next_due($1 = the claim's clock)`: two probes of `callbacks_ready`.
pub const NEXT_DUE: &str = "SELECT EXTRACT(EPOCH FROM (
                (SELECT min(due_at) FROM callbacks
                 WHERE state = 'pending' AND paced_at IS NULL AND due_at > $1)
                - now()))::float8 AS next_in,
            COALESCE((SELECT min(due_at) FROM callbacks
                      WHERE state = 'pending' AND paced_at IS NULL) <= $1, false)
                AS held";

/// `Claim::held_gates`: a recursive skip scan of `callbacks_paced`.
pub const HELD_GATES: &str = "WITH RECURSIVE gates AS (
        (SELECT paced_gate FROM callbacks
         WHERE state = 'pending' AND paced_at IS NOT NULL
         ORDER BY paced_gate LIMIT 1)
        UNION ALL
        SELECT (SELECT c.paced_gate FROM callbacks c
                WHERE c.state = 'pending' AND c.paced_at IS NOT NULL
                  AND c.paced_gate > gates.paced_gate
                ORDER BY c.paced_gate LIMIT 1)
        FROM gates WHERE gates.paced_gate IS NOT NULL
     )
     SELECT paced_gate FROM gates WHERE paced_gate IS NOT NULL";

/// `Claim::read_gates`, first statement: each gate's try-lock.
pub const GATE_LOCKS: &str = "SELECT g.gate,
            pg_try_advisory_xact_lock(hashtextextended('callbackd/pace/' || g.gate, 0))
     FROM unnest($1::bigint[]) AS g(gate)";

/// `Claim::read_gates`, second statement: in flight per locked gate, and its limits.
pub const GATE_READINGS: &str = "SELECT g.gate,
            CASE WHEN g.gate > 0 THEN
                (SELECT count(*) FROM callbacks c
                 WHERE c.skill_id = g.gate AND c.state IN ('dispatched', 'accepted'))
            ELSE
                (SELECT count(*) FROM callbacks c
                 WHERE c.target_agent_id = -g.gate AND c.fell_back_at IS NULL
                   AND c.target_agent_id IS NOT NULL
                   AND c.state IN ('dispatched', 'accepted'))
            END AS in_flight,
            s.max_in_flight, s.max_per_minute, p.next_at
     FROM unnest($1::bigint[]) AS g(gate)
     LEFT JOIN skills s ON g.gate > 0 AND s.id = g.gate
     LEFT JOIN skill_pace p ON g.gate > 0 AND p.skill_id = g.gate";

/// `Claim::held`: up to `n` held, due callbacks of each gate, oldest first (`callbacks_paced`).
pub const HELD: &str = concat!(
    "SELECT held.* FROM unnest($1::bigint[], $2::bigint[]) AS t(gate, n)
     CROSS JOIN LATERAL (SELECT ",
    skill_columns!(),
    ", ",
    callback_columns!(),
    ", c.paced_at, dnc.dnc_skill_id, dnc.dnc_reason
       FROM callbacks c JOIN skills s ON s.id = c.skill_id",
    dnc_match!(),
    " WHERE c.state = 'pending' AND c.paced_at IS NOT NULL AND c.paced_gate = t.gate
         AND c.due_at <= now()
         AND (c.expires_at IS NULL OR c.expires_at > now())
       ORDER BY c.due_at
       LIMIT t.n
       FOR UPDATE OF c SKIP LOCKED) AS held"
);

/// `Claim::hold`: marks callbacks held at their gate.
pub const HOLD: &str = "UPDATE callbacks c
     SET paced_at = COALESCE(c.paced_at, clock_timestamp()), paced_gate = h.gate
     FROM unnest($1::uuid[], $2::bigint[]) AS h(id, gate)
     WHERE c.id = h.id AND c.paced_gate IS DISTINCT FROM h.gate";

/// A connection with the dispatcher pool's session settings (`Store::for_dispatcher`):
/// sorts and bitmap scans priced out, JIT off.
pub async fn dispatcher_connection(url: &str) -> anyhow::Result<PgConnection> {
    let options: PgConnectOptions = url
        .parse::<PgConnectOptions>()?
        .disable_statement_logging()
        .options([
            ("enable_sort", "off"),
            ("enable_bitmapscan", "off"),
            ("jit", "off"),
        ]);
    Ok(PgConnection::connect_with(&options).await?)
}
