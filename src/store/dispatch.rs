//! What the dispatcher and the maintenance jobs ask of the database.
//!
//! A claim is `SELECT … FOR UPDATE SKIP LOCKED` inside a transaction that stays open while
//! the batch is published: other dispatchers skip the locked rows, and if this process dies
//! the transaction rolls back and the rows are simply pending again.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions};
use sqlx::types::Json;
use sqlx::{FromRow, Postgres, Transaction};
use uuid::Uuid;

use super::cache::Cache;
use super::directory::AgentRow;
use super::directory::{RoutingJson, SkillRow, SlotsByHour, StoredCalendar};
use super::dnc::DncMatch;
use super::record::CallbackRow;
use super::{Store, StoreError};
use crate::config::DatabaseSettings;
use crate::domain::{
    Agent, AgentId, Callback, CallbackId, CallbackState, CallingHoursJson, EventKind, Gate, Route,
    Skill, SkillId, Suppression,
};

/// The channel the `callbacks_notify_due` trigger notifies.
const DUE_CHANNEL: &str = "callbackd_due";

/// A server-side bound on how long a claim may sit idle (the daemon's host vanished without
/// closing its connection): PostgreSQL then ends the session and the claim rolls back.
const CLAIM_IDLE_LIMIT_MS: u64 = crate::config::CLAIM_IDLE_LIMIT_MS;

/// A claimed callback, with its skill and the do-not-call entry that now lists its number.
#[derive(Debug, Clone)]
pub struct Due {
    pub callback: Callback,
    pub skill: Skill,
    pub suppression: Option<Suppression>,
    /// Since when pacing has held it, if it has.
    pub paced_since: Option<DateTime<Utc>>,
    /// When it chooses among several preferred agents: those that are active, in order.
    pub active_agents: Vec<AgentId>,
}

/// A confirmed publication, as recorded.
#[derive(Debug, Clone, Copy)]
pub struct DispatchedRow {
    /// Its place in the slice given to [`Claim::mark_dispatched`].
    pub index: usize,
    pub attempt: i32,
    pub dispatched_at: DateTime<Utc>,
    /// Record time minus due time, by the database clock.
    pub lateness_ms: f64,
}

/// A publication the broker confirmed, with the clocks it starts.
#[derive(Debug, Clone, Copy)]
pub struct Confirmed {
    pub id: CallbackId,
    pub route: Route,
    /// Routed to an agent: how long it waits to be accepted before falling back.
    pub agent_fallback: Option<Duration>,
    /// How long it waits for a final outcome before it fails.
    pub outcome_deadline: Duration,
}

/// Why the broker did not take a publication.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// No queue is bound for its routing key (`basic.return`).
    Returned,
    /// The broker refused it (a negative acknowledgement).
    Nacked,
}

impl Failure {
    /// The event it writes.
    pub fn event(self) -> EventKind {
        match self {
            Self::Returned => EventKind::Returned,
            Self::Nacked => EventKind::Nacked,
        }
    }

    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Returned => "returned",
            Self::Nacked => "nacked",
        }
    }
}

/// A due callback moved to the next opening of its calling hours.
#[derive(Debug, Clone)]
pub struct Deferral {
    pub id: CallbackId,
    pub until: DateTime<Utc>,
    pub reason: String,
}

/// A due callback that will never be published, and why.
#[derive(Debug, Clone)]
pub struct Ending {
    pub id: CallbackId,
    pub state: CallbackState,
    pub reason: String,
}

/// A callback the broker did not take, and why.
#[derive(Debug, Clone)]
pub struct Undeliverable {
    pub id: CallbackId,
    pub failure: Failure,
    pub reason: String,
}

/// An undeliverable callback, as pushed back.
#[derive(Debug, Clone, Copy)]
pub struct RetryRow {
    /// Its place in the slice given to [`Claim::mark_undeliverable`].
    pub index: usize,
    pub failures: i32,
    pub retry_at: DateTime<Utc>,
}

/// What a claim took: the database clock at the claim, the gates holding callbacks
/// (pacing's), and the due callbacks it locked, in due order.
#[derive(Debug)]
pub struct DueBatch {
    pub now: DateTime<Utc>,
    pub held_gates: Vec<Gate>,
    pub ready: Vec<Due>,
}

/// What the dispatcher should wait for after a pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NextDue {
    /// Until the earliest callback that matured after the claim, or will (zero: already).
    pub next_in: Option<Duration>,
    /// Callbacks due at the claim that it did not get: another dispatcher holds them. Only
    /// looked for when `next_in` is beyond the pause given to [`Store::next_due`].
    pub held_elsewhere: bool,
}

/// The dispatcher's sessions' planner settings.
pub const DISPATCHER_PLANNER: [(&str, &str); 3] = [
    // Pin the claim to the due index, walked in order until the batch is full. A burst
    // inserted since the last ANALYZE makes the planner expect a handful of due rows and
    // choose a bitmap scan plus a sort of *every* due row under the lock: 66 ms instead of
    // 1 ms per claim with 100,000 due. Nothing this pool runs needs a sort or a bitmap scan
    // (the settings only price them out, not forbid them).
    ("enable_sort", "off"),
    ("enable_bitmapscan", "off"),
    // Pricing a sort out adds a huge cost, which would make PostgreSQL compile the statement
    // (JIT, 20-200 ms) if one ever planned one; these statements each take a millisecond or
    // two.
    ("jit", "off"),
];

/// The claim ([`Claim::due`]): due, unpaced, unexpired callbacks with their do-not-call
/// match, locked in due order — a walk of `callbacks_ready` that stops when the batch is
/// full. `$1`: the batch size. Each row also carries the gates holding callbacks
/// ([`HELD_GATES`](super::pacing::HELD_GATES), evaluated once): pacing needs them every
/// pass, and a statement of their own cost every pass a round trip.
///
/// A claimed row ([`ClaimedRow`]) holds the callback `c` with its do-not-call match (see
/// [`DncMatch`]) and `paced_at`; [`HELD`](super::pacing::HELD) selects the same. The skills
/// come from the cache (`Claim::with_skills`): a batch holds few skills, and reading one per
/// row cost every callback a join and 17 columns to encode and decode.
///
/// Its text is shared with the benchmark suite (`store::statements`), so it is decoded by
/// column name (`FromRow`) rather than checked by `query!`.
pub const CLAIM_DUE: &str = concat!(
    "SELECT now() AS now, ARRAY(",
    super::pacing::held_gates_sql!(),
    ") AS held_gates, claimed.* FROM (SELECT 1) AS one
         LEFT JOIN LATERAL (SELECT c.id, c.state, c.first_name, c.last_name, \
             c.phone_number, c.skill_id, c.target_agent_id, c.notes, c.time_zone, \
             c.scheduled_for, c.due_at, c.attempt, c.dispatched_at, c.last_error, \
             c.created_by, c.created_at, c.updated_at, c.expires_at, c.dial_failures, \
             c.last_outcome, c.fallback_due_at, c.fell_back_at, c.caller_id, c.orig_number, c.priority, c.target_agent_ids, c.ownership_seconds, c.number, c.paced_at, \
             dnc.dnc_skill_id, dnc.dnc_reason
               FROM callbacks c LEFT JOIN LATERAL (SELECT d.skill_id AS dnc_skill_id, \
                 d.reason AS dnc_reason
                FROM dnc_entries d
                WHERE d.phone_number = c.phone_number \
                  AND (d.skill_id IS NULL OR d.skill_id = c.skill_id)
                  AND (d.expires_at IS NULL OR d.expires_at > now())
                ORDER BY COALESCE(d.skill_id, 0) DESC LIMIT 1) AS dnc ON true \
             WHERE c.ended_on = 'infinity' AND c.state = 'pending' AND c.paced_at IS NULL \
               AND c.due_at <= now()
             AND (c.expires_at IS NULL OR c.expires_at > now())
           ORDER BY c.due_at
           LIMIT $1
           FOR UPDATE OF c SKIP LOCKED) AS claimed ON true"
);

/// What is due next after a claim at `$1` (its database clock): two reads of the first
/// entry of `callbacks_ready` in a range, each an ordered `LIMIT 1` so that it is always
/// planned as one index probe. (As `min(due_at)`, the planner, misled by statistics taken
/// before a bulk load, aggregated every pending entry: 30,000 rows and 15 ms a call at
/// 1,000 callbacks/s. As `EXISTS … due_at <= $1`, it was planned as a sequential scan with
/// many dispatched rows: 212 ms with nothing due at 1M pending + 1M dispatched.)
///
/// The second probe (is anything due by `$1` still pending: held by another claim) starts at
/// the front of the index, where every callback dispatched since the last VACUUM left a dead
/// entry. Its answer only shortens a sleep to `$2` seconds, so it runs only when the next due
/// callback is further away than that (a CASE evaluates its subquery only when its branch is
/// taken; the CTE is materialised so that the first probe runs once).
pub const NEXT_DUE: &str = "WITH next AS MATERIALIZED (
                 SELECT EXTRACT(EPOCH FROM (
                     (SELECT due_at FROM callbacks
                      WHERE ended_on = 'infinity' AND state = 'pending' AND paced_at IS NULL
                        AND due_at > $1
                      ORDER BY due_at LIMIT 1)
                     - now()))::float8 AS next_in)
             SELECT next_in,
                    CASE WHEN next_in <= $2 THEN false
                         ELSE COALESCE((SELECT due_at FROM callbacks
                                        WHERE ended_on = 'infinity' AND state = 'pending'
                                          AND paced_at IS NULL
                                        ORDER BY due_at LIMIT 1) <= $1,
                                       false)
                    END AS held
               FROM next";

impl Store {
    /// A second, small pool for the dispatcher: API load cannot starve it, and its sessions
    /// carry the idle-in-transaction limit that bounds a vanished claim holder. Each worker
    /// holds a claim and a `LISTEN` connection; one more serves the next-due look.
    pub async fn for_dispatcher(
        settings: &DatabaseSettings,
        workers: usize,
    ) -> Result<Self, StoreError> {
        let claim_idle_limit = format!("{CLAIM_IDLE_LIMIT_MS}ms");
        let name = super::application_name(Some(super::DISPATCH_ROLE));
        let dispatcher_options = |options: PgConnectOptions| {
            options
                .application_name(&name)
                .options([(
                    "idle_in_transaction_session_timeout",
                    claim_idle_limit.as_str(),
                )])
                .options(DISPATCHER_PLANNER)
        };
        let candidates: Vec<PgConnectOptions> = settings
            .candidates()?
            .into_iter()
            .map(dispatcher_options)
            .collect();
        let current = super::primary::first(&candidates).await;
        let pool = super::primary::open(
            candidates,
            current,
            PgPoolOptions::new()
                .max_connections(u32::try_from(workers * 2 + 1).unwrap_or(u32::MAX))
                .acquire_timeout(settings.acquire_timeout()),
            true,
        )
        .await?;
        Ok(Self::on(pool))
    }

    /// This pool with `other`'s cache of skills (the daemon's, which its listener keeps).
    pub fn sharing_cache_of(self, other: &Store) -> Self {
        Self {
            pool: self.pool,
            cache: other.cache.clone(),
            probes: None,
        }
    }

    pub async fn begin_claim(&self) -> Result<Claim, StoreError> {
        Ok(Claim {
            tx: self.pool.begin().await?,
            cache: self.cache.clone(),
        })
    }

    /// What is due next, after a claim at `claimed_at` (database clock) took every unlocked
    /// callback due by then. Pending callbacks due by `claimed_at` are therefore held by
    /// another dispatcher (or expired, awaiting the timer job); those due later matured since.
    /// Held callbacks are looked for only when nothing is due within `pause`: the caller
    /// sleeps no longer than that because of them.
    pub async fn next_due(
        &self,
        claimed_at: DateTime<Utc>,
        pause: Duration,
    ) -> Result<NextDue, StoreError> {
        let row: NextDueRow = sqlx::query_as(NEXT_DUE)
            .bind(claimed_at)
            .bind(pause.as_secs_f64())
            .fetch_one(&self.pool)
            .await?;
        Ok(NextDue {
            next_in: row.next_in.map(|s| Duration::from_secs_f64(s.max(0.0))),
            held_elsewhere: row.held,
        })
    }

    /// Subscribes to the due notifications.
    pub async fn listen_due(&self) -> Result<DueListener, StoreError> {
        let mut listener = PgListener::connect_with(&self.pool).await?;
        listener.listen(DUE_CHANNEL).await?;
        Ok(DueListener { listener })
    }
}

/// Wakes the dispatcher when callbacks become due soon.
pub struct DueListener {
    listener: PgListener,
}

impl DueListener {
    /// Returns at the next notification, having drained any others already received. When
    /// the connection is lost it is re-established on the next call; notifications sent
    /// meanwhile are lost, which the caller covers by polling.
    pub async fn notified(&mut self) -> Result<(), StoreError> {
        self.listener.recv().await?;
        while self.listener.next_buffered().is_some() {}
        Ok(())
    }
}

/// A claim on a batch of due callbacks: the transaction holding their row locks.
pub struct Claim {
    pub(super) tx: Transaction<'static, Postgres>,
    cache: std::sync::Arc<Cache>,
}

impl Claim {
    /// Locks up to `limit` due callbacks, earliest first, skipping those another dispatcher
    /// holds, with their skills. "Due" is by the database clock, whose reading comes back
    /// too. An expired callback is never claimed.
    pub async fn due(&mut self, limit: u32) -> Result<DueBatch, StoreError> {
        // The outer join returns the clock even when nothing is due (one row of NULLs): the
        // caller judges what matured since the claim against it.
        let rows = sqlx::query(CLAIM_DUE)
            .bind(i64::from(limit))
            .fetch_all(&mut *self.tx)
            .await?;
        // The clock and the held gates are the same on every row: read once, from the first.
        let first = rows
            .first()
            .ok_or(StoreError::Database(sqlx::Error::RowNotFound))?;
        let clock = ClaimClock::from_row(first)?;
        let mut claimed = Vec::with_capacity(rows.len());
        if clock.id.is_some() {
            for row in &rows {
                claimed.push(ClaimedRow::from_row(row)?.try_into()?);
            }
        }
        let held_gates = clock
            .held_gates
            .into_iter()
            .map(super::pacing::decode)
            .collect::<Result<_, _>>()?;
        Ok(DueBatch {
            now: clock.now,
            held_gates,
            ready: self.with_skills(claimed).await?,
        })
    }

    /// The claimed callbacks with their skills: from the cache, the others read in one
    /// statement (and kept).
    pub(super) async fn with_skills(
        &mut self,
        claimed: Vec<Claimed>,
    ) -> Result<Vec<Due>, StoreError> {
        let mut skills: HashMap<SkillId, Skill> = HashMap::new();
        let mut missing: Vec<i64> = Vec::new();
        for c in &claimed {
            let id = c.callback.skill_id;
            if skills.contains_key(&id) || missing.contains(&id.get()) {
                continue;
            }
            match self.cache.skill(id) {
                Some(Some(skill)) => {
                    skills.insert(id, skill);
                }
                _ => missing.push(id.get()),
            }
        }
        if !missing.is_empty() {
            let ticket = self.cache.ticket();
            let rows = sqlx::query_as!(
                SkillRow,
                r#"SELECT s.id, s.name, s.media_type, s.direction, s.active, s.time_zone,
                          s.calling_hours AS "calling_hours: Json<CallingHoursJson>",
                          s.retry_backoff_seconds, s.max_attempts, s.agent_fallback_seconds,
                          s.default_ttl_seconds, s.outcome_deadline_seconds, s.max_in_flight,
                          s.max_per_minute, s.slot_minutes, s.slot_capacity,
                          s.slot_capacity_by_hour AS "slot_capacity_by_hour: Json<SlotsByHour>",
                          s.routing AS "routing: Json<RoutingJson>",
                          (SELECT jsonb_build_object('name', k.name, 'timeZone', k.time_zone, 'days', k.days)
                           FROM calendars k WHERE k.name = s.routing->>'calendar') AS "calendar: Json<StoredCalendar>"
                   FROM skills s WHERE s.id = ANY($1)"#,
                &missing
            )
            .fetch_all(&mut *self.tx)
            .await?;
            for row in rows {
                let skill = Skill::try_from(row)?;
                self.cache
                    .keep_skill(ticket, skill.id, &Some(skill.clone()));
                skills.insert(skill.id, skill);
            }
        }
        let active = self.active_agents(&claimed).await?;
        claimed
            .into_iter()
            .map(|c| {
                let active_agents = if c.callback.chooses_agent() {
                    c.callback
                        .target_agent_ids
                        .iter()
                        .copied()
                        .filter(|id| active.contains(id))
                        .collect()
                } else {
                    Vec::new()
                };
                let skill = skills.get(&c.callback.skill_id).cloned().ok_or_else(|| {
                    StoreError::Corrupt(format!(
                        "callback {}: skill {} is missing",
                        c.callback.id, c.callback.skill_id
                    ))
                })?;
                Ok(Due {
                    callback: c.callback,
                    skill,
                    suppression: c.suppression,
                    paced_since: c.paced_since,
                    active_agents,
                })
            })
            .collect()
    }

    /// The active agents among those the claimed callbacks choose from (see
    /// [`Callback::chooses_agent`](crate::domain::Callback::chooses_agent)): from the cache,
    /// the others read in one statement (and kept).
    async fn active_agents(&mut self, claimed: &[Claimed]) -> Result<Vec<AgentId>, StoreError> {
        let mut active = Vec::new();
        let mut missing: Vec<i64> = Vec::new();
        let listed = claimed
            .iter()
            .filter(|c| c.callback.chooses_agent())
            .flat_map(|c| c.callback.target_agent_ids.iter().copied());
        for id in listed {
            if active.contains(&id) || missing.contains(&id.get()) {
                continue;
            }
            match self.cache.agent(id) {
                Some(Some(agent)) if agent.active => active.push(id),
                Some(_) => {}
                None => missing.push(id.get()),
            }
        }
        if missing.is_empty() {
            return Ok(active);
        }
        let ticket = self.cache.ticket();
        let rows = sqlx::query_as!(
            AgentRow,
            "SELECT id, username, active, name, skill_ids FROM agents WHERE id = ANY($1)",
            &missing
        )
        .fetch_all(&mut *self.tx)
        .await?;
        let mut found = Vec::new();
        for row in rows {
            let agent = Agent::try_from(row)?;
            found.push(agent.id);
            if agent.active {
                active.push(agent.id);
            }
            self.cache.keep_agent(ticket, agent.id, &Some(agent));
        }
        for id in missing {
            if let Ok(id) = AgentId::new(id)
                && !found.contains(&id)
            {
                self.cache.keep_agent(ticket, id, &None);
            }
        }
        Ok(active)
    }

    /// Moves callbacks that matured outside their calling hours to the next opening.
    pub async fn defer(&mut self, deferred: &[Deferral], instance: &str) -> Result<(), StoreError> {
        if deferred.is_empty() {
            return Ok(());
        }
        let ids: Vec<Uuid> = deferred.iter().map(|d| d.id.as_uuid()).collect();
        let until: Vec<DateTime<Utc>> = deferred.iter().map(|d| d.until).collect();
        let reasons: Vec<&str> = deferred.iter().map(|d| d.reason.as_str()).collect();
        sqlx::query!(
            "WITH moved AS (
                UPDATE callbacks c SET due_at = d.until, updated_at = clock_timestamp(),
                    paced_at = NULL, paced_gate = NULL
                FROM unnest($1::uuid[], $2::timestamptz[], $3::text[]) AS d(id, until, reason)
                WHERE c.id = d.id AND c.ended_on = 'infinity'
                RETURNING c.id, d.until, d.reason
             )
             INSERT INTO callback_events (callback_id, actor, kind, details)
             SELECT id, 'dispatcher', $5::text,
                    jsonb_build_object(
                        'to', (to_jsonb(until AT TIME ZONE 'UTC') #>> '{}') || 'Z',
                        'reason', reason, 'instance', $4::text)
             FROM moved",
            &ids,
            &until,
            &reasons as &[&str],
            instance,
            EventKind::Deferred.as_str()
        )
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    /// Ends callbacks that will never be published: `expired` or `failed`, with the reason.
    pub async fn end_unsent(&mut self, ended: &[Ending], instance: &str) -> Result<(), StoreError> {
        if ended.is_empty() {
            return Ok(());
        }
        let ids: Vec<Uuid> = ended.iter().map(|e| e.id.as_uuid()).collect();
        let states: Vec<&str> = ended.iter().map(|e| e.state.as_str()).collect();
        let kinds = ended
            .iter()
            .map(|e| {
                EventKind::ending_in(e.state)
                    .map(EventKind::as_str)
                    .ok_or_else(|| {
                        StoreError::Corrupt(format!("callback {} cannot end as {}", e.id, e.state))
                    })
            })
            .collect::<Result<Vec<&str>, StoreError>>()?;
        let reasons: Vec<&str> = ended.iter().map(|e| e.reason.as_str()).collect();
        sqlx::query!(
            "WITH ended AS (
                UPDATE callbacks c SET state = e.state, ended_on = callbackd_ended_on(e.state),
                    last_error = e.reason,
                    updated_at = clock_timestamp(), paced_at = NULL, paced_gate = NULL
                FROM unnest($1::uuid[], $2::text[], $3::text[], $5::text[])
                     AS e(id, state, reason, kind)
                WHERE c.id = e.id AND c.ended_on = 'infinity'
                RETURNING c.id, e.kind, e.reason
             )
             INSERT INTO callback_events (callback_id, actor, kind, details)
             SELECT id, 'dispatcher', kind,
                    jsonb_build_object('reason', reason, 'instance', $4::text)
             FROM ended",
            &ids,
            &states as &[&str],
            &reasons as &[&str],
            instance,
            &kinds as &[&str]
        )
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    /// Records confirmed publications, with a `dispatched` event each, in one statement.
    pub async fn mark_dispatched(
        &mut self,
        confirmed: &[Confirmed],
        instance: &str,
    ) -> Result<Vec<DispatchedRow>, StoreError> {
        if confirmed.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<Uuid> = confirmed.iter().map(|c| c.id.as_uuid()).collect();
        let routing_keys: Vec<String> = confirmed.iter().map(|c| c.route.routing_key()).collect();
        let agents: Vec<Option<i64>> = confirmed
            .iter()
            .map(|c| match c.route {
                Route::Agent(agent) => Some(agent.get()),
                Route::Skill(_) => None,
            })
            .collect();
        let fallback_seconds: Vec<Option<f64>> = confirmed
            .iter()
            .map(|c| c.agent_fallback.map(|d| d.as_secs_f64()))
            .collect();
        let deadline_seconds: Vec<f64> = confirmed
            .iter()
            .map(|c| c.outcome_deadline.as_secs_f64())
            .collect();
        let rows = sqlx::query!(
            r#"WITH done AS (
                UPDATE callbacks c
                SET state = 'dispatched', attempt = c.attempt + 1, dispatch_failures = 0,
                    last_error = NULL, dispatched_at = clock_timestamp(),
                    updated_at = clock_timestamp(), paced_at = NULL, paced_gate = NULL,
                    fallback_due_at = clock_timestamp() + make_interval(secs => d.fallback),
                    outcome_due_at = clock_timestamp() + make_interval(secs => d.deadline),
                    -- The agent a preferred-agent callback went to; one sent to its skill
                    -- with agents named has left them.
                    target_agent_id = COALESCE(d.agent, c.target_agent_id),
                    first_lateness_ms = COALESCE(c.first_lateness_ms,
                        GREATEST(EXTRACT(EPOCH FROM (clock_timestamp() - c.due_at)) * 1000, 0)),
                    fell_back_at = CASE WHEN d.agent IS NULL AND c.target_agent_id IS NOT NULL
                                        THEN COALESCE(c.fell_back_at, clock_timestamp())
                                        ELSE c.fell_back_at END
                FROM unnest($1::uuid[], $3::float8[], $4::float8[], $5::text[], $7::int8[])
                     WITH ORDINALITY AS d(id, fallback, deadline, routing_key, agent, n)
                WHERE c.id = d.id AND c.ended_on = 'infinity'
                RETURNING c.id, c.attempt, c.due_at, c.dispatched_at, d.routing_key, d.n
             ), events AS (
                INSERT INTO callback_events (callback_id, at, actor, kind, details)
                SELECT id, dispatched_at, 'dispatcher', $6::text,
                       jsonb_build_object('attempt', attempt, 'routingKey', routing_key,
                                          'instance', $2::text)
                FROM done
             )
             SELECT n AS "n!", attempt AS "attempt!", dispatched_at AS "dispatched_at!",
                    (EXTRACT(EPOCH FROM (dispatched_at - due_at)) * 1000)::float8
                        AS "lateness_ms!"
             FROM done"#,
            &ids,
            instance,
            &fallback_seconds as &[Option<f64>],
            &deadline_seconds,
            &routing_keys,
            EventKind::Dispatched.as_str(),
            &agents as &[Option<i64>]
        )
        .fetch_all(&mut *self.tx)
        .await?;
        rows.into_iter()
            .map(|row| {
                Ok(DispatchedRow {
                    index: ordinal(row.n)?,
                    attempt: row.attempt,
                    dispatched_at: row.dispatched_at,
                    lateness_ms: row.lateness_ms,
                })
            })
            .collect()
    }

    /// Pushes back callbacks the broker did not take: due again after a backoff that doubles
    /// with each consecutive failure, with the reason in `last_error` and an event.
    pub async fn mark_undeliverable(
        &mut self,
        failed: &[Undeliverable],
        instance: &str,
        retry_initial: Duration,
        retry_max: Duration,
    ) -> Result<Vec<RetryRow>, StoreError> {
        if failed.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<Uuid> = failed.iter().map(|f| f.id.as_uuid()).collect();
        let kinds: Vec<&str> = failed.iter().map(|f| f.failure.event().as_str()).collect();
        let reasons: Vec<&str> = failed.iter().map(|f| f.reason.as_str()).collect();
        let rows = sqlx::query!(
            r#"WITH retry AS (
                UPDATE callbacks c
                SET dispatch_failures = c.dispatch_failures + 1,
                    due_at = clock_timestamp() + make_interval(secs =>
                        LEAST($5::float8, $4::float8 * power(2, LEAST(c.dispatch_failures, 30)))),
                    last_error = f.reason, updated_at = clock_timestamp(),
                    paced_at = NULL, paced_gate = NULL
                FROM unnest($1::uuid[], $2::text[], $3::text[])
                     WITH ORDINALITY AS f(id, kind, reason, n)
                WHERE c.id = f.id AND c.ended_on = 'infinity'
                RETURNING c.id, f.kind, f.reason, c.dispatch_failures, c.due_at, f.n
             ), events AS (
                INSERT INTO callback_events (callback_id, actor, kind, details)
                SELECT id, 'dispatcher', kind,
                       jsonb_build_object('reason', reason, 'failures', dispatch_failures,
                                          'retryAt',
                                          (to_jsonb(due_at AT TIME ZONE 'UTC') #>> '{}') || 'Z',
                                          'instance', $6::text)
                FROM retry
             )
             SELECT n AS "n!", dispatch_failures AS "dispatch_failures!", due_at AS "due_at!"
             FROM retry"#,
            &ids,
            &kinds as &[&str],
            &reasons as &[&str],
            retry_initial.as_secs_f64(),
            retry_max.as_secs_f64(),
            instance
        )
        .fetch_all(&mut *self.tx)
        .await?;
        rows.into_iter()
            .map(|row| {
                Ok(RetryRow {
                    index: ordinal(row.n)?,
                    failures: row.dispatch_failures,
                    retry_at: row.due_at,
                })
            })
            .collect()
    }

    pub async fn commit(self) -> Result<(), StoreError> {
        self.tx.commit().await?;
        Ok(())
    }
}

/// A claimed row, before its skill is looked up.
pub(super) struct Claimed {
    callback: Callback,
    suppression: Option<Suppression>,
    paced_since: Option<DateTime<Utc>>,
}

/// A row of [`CLAIM_DUE`] or [`HELD`](super::pacing::HELD): the callback, its do-not-call
/// match and `paced_at`.
#[derive(FromRow)]
pub(super) struct ClaimedRow {
    #[sqlx(flatten)]
    callback: CallbackRow,
    paced_at: Option<DateTime<Utc>>,
    #[sqlx(flatten)]
    dnc: DncMatch,
}

impl TryFrom<ClaimedRow> for Claimed {
    type Error = StoreError;

    fn try_from(row: ClaimedRow) -> Result<Self, StoreError> {
        Ok(Claimed {
            callback: row.callback.try_into()?,
            suppression: row.dnc.suppression()?,
            paced_since: row.paced_at,
        })
    }
}

/// The clock and held gates of a [`CLAIM_DUE`] row, and whether it holds a callback (the
/// outer join gives one row of NULLs when nothing is due).
#[derive(FromRow)]
struct ClaimClock {
    now: DateTime<Utc>,
    held_gates: Vec<i64>,
    id: Option<Uuid>,
}

/// A row of [`NEXT_DUE`].
#[derive(FromRow)]
struct NextDueRow {
    next_in: Option<f64>,
    held: bool,
}

/// A 1-based `WITH ORDINALITY` number as an index into the slice it came from.
fn ordinal(n: i64) -> Result<usize, StoreError> {
    usize::try_from(n - 1).map_err(|_| StoreError::Corrupt(format!("ordinality {n}")))
}
