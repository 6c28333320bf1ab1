use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde_json::{Value, json};
use sqlx::postgres::PgRow;
use sqlx::{Postgres, Row, Transaction};
use uuid::Uuid;

use super::directory::{agent_from_row, skill_from_row};
use super::{Store, StoreError};
use crate::domain::{
    Agent, AgentId, CallbackId, CallbackState, Decision, NewCallback, OutcomeKind, PhoneNumber,
    Route, SecurityUser, Skill, SkillId,
};

macro_rules! callback_columns {
    () => {
        "c.id, c.state, c.first_name, c.last_name, c.phone_number, c.skill_id, c.target_agent_id, \
         c.notes, c.time_zone, c.scheduled_for, c.due_at, c.attempt, c.dispatched_at, \
         c.last_error, c.created_by, c.created_at, c.updated_at, c.expires_at, c.dial_failures, \
         c.last_outcome, c.fallback_due_at, c.fell_back_at"
    };
}

/// A callback as stored.
#[derive(Debug, Clone)]
pub struct CallbackRecord {
    pub id: CallbackId,
    pub state: CallbackState,
    pub first_name: String,
    pub last_name: String,
    pub phone_number: PhoneNumber,
    pub skill_id: SkillId,
    pub target_agent_id: Option<AgentId>,
    pub notes: String,
    pub time_zone: Option<Tz>,
    pub scheduled_for: DateTime<Utc>,
    pub due_at: DateTime<Utc>,
    pub attempt: i32,
    pub dispatched_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub dial_failures: i32,
    pub last_outcome: Option<String>,
    /// While waiting for the target agent to accept: when it falls back to the skill.
    pub fallback_due_at: Option<DateTime<Utc>>,
    /// When it fell back from its target agent to the skill.
    pub fell_back_at: Option<DateTime<Utc>>,
}

impl CallbackRecord {
    /// The target agent has priority, until the callback fell back to its skill.
    pub fn route(&self) -> Route {
        let agent = self.target_agent_id.filter(|_| self.fell_back_at.is_none());
        Route::new(self.skill_id, agent)
    }

    pub(super) fn from_row(row: &PgRow) -> Result<Self, StoreError> {
        let corrupt = |e: String| StoreError::Corrupt(e);
        let state: String = row.try_get("state")?;
        let skill_id: i64 = row.try_get("skill_id")?;
        let agent_id: Option<i64> = row.try_get("target_agent_id")?;
        let time_zone: Option<String> = row.try_get("time_zone")?;
        Ok(Self {
            id: CallbackId::from_uuid(row.try_get("id")?),
            state: state.parse().map_err(corrupt)?,
            first_name: row.try_get("first_name")?,
            last_name: row.try_get("last_name")?,
            phone_number: PhoneNumber::from_stored(row.try_get("phone_number")?),
            skill_id: SkillId::new(skill_id).map_err(|e| corrupt(e.to_string()))?,
            target_agent_id: agent_id
                .map(AgentId::new)
                .transpose()
                .map_err(|e| corrupt(e.to_string()))?,
            notes: row.try_get("notes")?,
            time_zone: time_zone
                .map(|tz| {
                    tz.parse::<Tz>()
                        .map_err(|_| corrupt(format!("time zone `{tz}`")))
                })
                .transpose()?,
            scheduled_for: row.try_get("scheduled_for")?,
            due_at: row.try_get("due_at")?,
            attempt: row.try_get("attempt")?,
            dispatched_at: row.try_get("dispatched_at")?,
            last_error: row.try_get("last_error")?,
            created_by: row.try_get("created_by")?,
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
            expires_at: row.try_get("expires_at")?,
            dial_failures: row.try_get("dial_failures")?,
            last_outcome: row.try_get("last_outcome")?,
            fallback_due_at: row.try_get("fallback_due_at")?,
            fell_back_at: row.try_get("fell_back_at")?,
        })
    }
}

/// One entry of a callback's history.
#[derive(Debug, Clone)]
pub struct EventRecord {
    pub id: i64,
    pub at: DateTime<Utc>,
    pub actor: String,
    pub kind: String,
    pub details: Value,
}

/// What validating a create request needs from the database, in one round trip: the
/// database clock, the skill and the target agent.
#[derive(Debug, Clone)]
pub struct CreateContext {
    pub now: DateTime<Utc>,
    pub skill: Option<Skill>,
    pub agent: Option<Agent>,
}

/// The `Idempotency-Key` of a create request and a digest of its body.
#[derive(Debug, Clone)]
pub struct IdempotencyKey {
    pub key: String,
    pub request_sha256: [u8; 32],
}

/// A validated create, with who asked and the answer a repeat of its idempotency key gets.
#[derive(Debug)]
pub struct NewCreate {
    pub callback: NewCallback,
    pub actor: SecurityUser,
    pub idempotency: Option<IdempotencyKey>,
    pub response: Value,
}

#[derive(Debug)]
pub enum Inserted {
    Created,
    /// The key was used before with the same body: here is the first answer.
    Replayed(Value),
    /// The key was used before with a different body.
    KeyReused,
}

/// Position in a listing ordered by `(due_at, id)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListCursor {
    pub due_at: DateTime<Utc>,
    pub id: Uuid,
}

impl ListCursor {
    /// Opaque to clients: hex of `<due_at micros>.<uuid>`.
    pub fn encode(&self) -> String {
        hex::encode(format!("{}.{}", self.due_at.timestamp_micros(), self.id))
    }

    pub fn decode(s: &str) -> Option<Self> {
        let raw = String::from_utf8(hex::decode(s).ok()?).ok()?;
        let (micros, id) = raw.split_once('.')?;
        Some(Self {
            due_at: DateTime::from_timestamp_micros(micros.parse().ok()?)?,
            id: Uuid::parse_str(id).ok()?,
        })
    }
}

#[derive(Debug, Clone, Default)]
pub struct CallbackFilter {
    pub state: Option<CallbackState>,
    pub skill_id: Option<SkillId>,
    pub agent_id: Option<AgentId>,
    /// Exclusive.
    pub due_before: Option<DateTime<Utc>>,
    /// Inclusive.
    pub due_after: Option<DateTime<Utc>>,
    /// The caller's skill allow-list, when it has one.
    pub allowed_skills: Option<Vec<SkillId>>,
    pub after: Option<ListCursor>,
    pub limit: u32,
}

/// What a PATCH changes; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct Changes {
    /// New `(scheduled_for, due_at, time_zone)`.
    pub schedule: Option<(DateTime<Utc>, DateTime<Utc>, Option<Tz>)>,
    pub notes: Option<String>,
    /// `Some(None)` removes the target agent: route to the skill.
    pub target_agent: Option<Option<AgentId>>,
    pub expires_at: Option<DateTime<Utc>>,
}

impl Store {
    pub async fn create_context(
        &self,
        skill: SkillId,
        agent: Option<AgentId>,
    ) -> Result<CreateContext, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT now() AS now, ",
            skill_columns!(),
            ",
                    a.id AS a_id, a.username AS a_username, a.active AS a_active
             FROM (SELECT 1) AS one
             LEFT JOIN skills s ON s.id = $1
             LEFT JOIN agents a ON a.id = $2"
        ))
        .bind(skill.get())
        .bind(agent.map(AgentId::get))
        .fetch_one(&self.pool)
        .await?;
        let skill_found: Option<i64> = row.try_get("s_id")?;
        let agent_found: Option<i64> = row.try_get("a_id")?;
        Ok(CreateContext {
            now: row.try_get("now")?,
            skill: skill_found
                .map(|_| skill_from_row(&row, "s_"))
                .transpose()?,
            agent: agent_found
                .map(|_| agent_from_row(&row, "a_"))
                .transpose()?,
        })
    }

    /// Stores a new callback with its events, atomically. With an idempotency key, a repeat
    /// (even a concurrent one) creates nothing and gets the first answer back. The API goes
    /// through [`CreateQueue`](super::CreateQueue), which writes concurrent creates together.
    pub async fn insert_callback(&self, create: &NewCreate) -> Result<Inserted, StoreError> {
        if let Some(earlier) = self.replay(create).await? {
            return Ok(earlier);
        }
        let stored = self.store_creates(&[create]).await?;
        self.settle(create, stored.contains(&create.callback.id.as_uuid()))
            .await
    }

    /// The first answer, when this create's idempotency key was used before.
    pub(super) async fn replay(&self, create: &NewCreate) -> Result<Option<Inserted>, StoreError> {
        match &create.idempotency {
            Some(key) => self.idempotent_answer(&create.actor, key).await,
            None => Ok(None),
        }
    }

    /// The answer to a create once its group was written: created, or (its key having been
    /// stored first by a concurrent request) that request's answer.
    pub(super) async fn settle(
        &self,
        create: &NewCreate,
        stored: bool,
    ) -> Result<Inserted, StoreError> {
        if stored {
            return Ok(Inserted::Created);
        }
        let Some(key) = &create.idempotency else {
            return Err(StoreError::Conflict("the callback was not stored".into()));
        };
        self.idempotent_answer(&create.actor, key)
            .await?
            .ok_or_else(|| StoreError::Conflict("idempotency key vanished".into()))
    }

    /// Writes creates in one statement — one round trip, one commit, one WAL flush for the
    /// lot — with their events and idempotency keys. A create with a key is stored only if
    /// its key was new (a concurrent request that stored it first wins). Returns the ids
    /// stored. Atomic: if any row fails, none is stored.
    pub(super) async fn store_creates(
        &self,
        creates: &[&NewCreate],
    ) -> Result<std::collections::HashSet<Uuid>, StoreError> {
        let n = creates.len();
        let mut ids = Vec::with_capacity(n);
        let mut first_names = Vec::with_capacity(n);
        let mut last_names = Vec::with_capacity(n);
        let mut phones = Vec::with_capacity(n);
        let mut skills = Vec::with_capacity(n);
        let mut agents = Vec::with_capacity(n);
        let mut notes = Vec::with_capacity(n);
        let mut zones = Vec::with_capacity(n);
        let mut scheduled = Vec::with_capacity(n);
        let mut due = Vec::with_capacity(n);
        let mut actors = Vec::with_capacity(n);
        let mut expires = Vec::with_capacity(n);
        let mut users = Vec::with_capacity(n);
        let mut keys = Vec::with_capacity(n);
        let mut digests = Vec::with_capacity(n);
        let mut responses = Vec::with_capacity(n);
        let (mut event_ids, mut event_kinds, mut event_details) =
            (Vec::new(), Vec::new(), Vec::new());
        for create in creates {
            let c = &create.callback;
            ids.push(c.id.as_uuid());
            first_names.push(c.first_name.as_str());
            last_names.push(c.last_name.as_str());
            phones.push(c.phone_number.as_str());
            skills.push(c.skill_id.get());
            agents.push(c.target_agent_id.map(AgentId::get));
            notes.push(c.notes.as_str());
            zones.push(c.time_zone.map(|tz| tz.name()));
            scheduled.push(c.scheduled_for);
            due.push(c.due_at);
            actors.push(create.actor.name.as_str());
            expires.push(c.expires_at);
            users.push(create.actor.id);
            keys.push(create.idempotency.as_ref().map(|k| k.key.as_str()));
            digests.push(
                create
                    .idempotency
                    .as_ref()
                    .map(|k| k.request_sha256.to_vec()),
            );
            responses.push(create.response.clone());
            for (kind, details) in create_events(c) {
                event_ids.push(c.id.as_uuid());
                event_kinds.push(kind);
                event_details.push(details);
            }
        }
        let stored: Vec<Uuid> = sqlx::query_scalar(
            "WITH input AS (
                SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::int8[],
                    $6::int8[], $7::text[], $8::text[], $9::timestamptz[], $10::timestamptz[],
                    $11::text[], $12::timestamptz[], $13::int8[], $14::text[], $15::bytea[],
                    $16::jsonb[])
                WITH ORDINALITY AS i(id, first_name, last_name, phone_number, skill_id,
                    target_agent_id, notes, time_zone, scheduled_for, due_at, created_by,
                    expires_at, user_id, key, request_sha256, response, n)
             ), key AS (
                INSERT INTO idempotency_keys
                    (security_user_id, key, request_sha256, callback_id, response)
                SELECT user_id, key, request_sha256, id, response FROM input
                WHERE key IS NOT NULL ORDER BY n
                ON CONFLICT DO NOTHING
                RETURNING callback_id
             ), stored AS (
                INSERT INTO callbacks (id, first_name, last_name, phone_number, skill_id,
                    target_agent_id, notes, time_zone, scheduled_for, due_at, created_by,
                    expires_at)
                SELECT id, first_name, last_name, phone_number, skill_id, target_agent_id,
                       notes, time_zone, scheduled_for, due_at, created_by, expires_at
                FROM input
                WHERE key IS NULL OR id IN (SELECT callback_id FROM key)
                ORDER BY n
                RETURNING id
             ), events AS (
                INSERT INTO callback_events (callback_id, actor, kind, details)
                SELECT e.id, i.created_by, e.kind, e.details
                FROM unnest($17::uuid[], $18::text[], $19::jsonb[])
                     WITH ORDINALITY AS e(id, kind, details, n)
                JOIN input i ON i.id = e.id
                WHERE e.id IN (SELECT id FROM stored)
                ORDER BY e.n
             )
             SELECT id FROM stored",
        )
        .bind(&ids)
        .bind(&first_names)
        .bind(&last_names)
        .bind(&phones)
        .bind(&skills)
        .bind(&agents)
        .bind(&notes)
        .bind(&zones)
        .bind(&scheduled)
        .bind(&due)
        .bind(&actors)
        .bind(&expires)
        .bind(&users)
        .bind(&keys)
        .bind(&digests)
        .bind(&responses)
        .bind(&event_ids)
        .bind(&event_kinds)
        .bind(&event_details)
        .fetch_all(&self.pool)
        .await?;
        Ok(stored.into_iter().collect())
    }

    async fn idempotent_answer(
        &self,
        actor: &SecurityUser,
        key: &IdempotencyKey,
    ) -> Result<Option<Inserted>, StoreError> {
        let row = sqlx::query(
            "SELECT request_sha256, response FROM idempotency_keys
             WHERE security_user_id = $1 AND key = $2",
        )
        .bind(actor.id)
        .bind(&key.key)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let digest: Vec<u8> = row.try_get("request_sha256")?;
        Ok(Some(if digest == key.request_sha256 {
            Inserted::Replayed(row.try_get("response")?)
        } else {
            Inserted::KeyReused
        }))
    }

    pub async fn callback(&self, id: CallbackId) -> Result<Option<CallbackRecord>, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            callback_columns!(),
            " FROM callbacks c WHERE c.id = $1"
        ))
        .bind(id.as_uuid())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(CallbackRecord::from_row).transpose()
    }

    /// One page in `(due_at, id)` order.
    pub async fn list_callbacks(
        &self,
        filter: &CallbackFilter,
    ) -> Result<Vec<CallbackRecord>, StoreError> {
        let allowed: Option<Vec<i64>> = filter
            .allowed_skills
            .as_ref()
            .map(|ids| ids.iter().map(|id| id.get()).collect());
        let rows = sqlx::query(concat!(
            "SELECT ",
            callback_columns!(),
            " FROM callbacks c
             WHERE ($1::text IS NULL OR c.state = $1)
               AND ($2::bigint IS NULL OR c.skill_id = $2)
               AND ($3::bigint IS NULL OR c.target_agent_id = $3)
               AND ($4::timestamptz IS NULL OR c.due_at < $4)
               AND ($5::timestamptz IS NULL OR c.due_at >= $5)
               AND ($6::timestamptz IS NULL OR (c.due_at, c.id) > ($6, $7::uuid))
               AND ($8::bigint[] IS NULL OR c.skill_id = ANY ($8))
             ORDER BY c.due_at, c.id
             LIMIT $9"
        ))
        .bind(filter.state.map(CallbackState::as_str))
        .bind(filter.skill_id.map(SkillId::get))
        .bind(filter.agent_id.map(AgentId::get))
        .bind(filter.due_before)
        .bind(filter.due_after)
        .bind(filter.after.map(|c| c.due_at))
        .bind(filter.after.map(|c| c.id))
        .bind(allowed)
        .bind(i64::from(filter.limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(CallbackRecord::from_row).collect()
    }

    /// Up to `limit` events of a callback after the event `after` (by id), oldest first.
    pub async fn events(
        &self,
        id: CallbackId,
        after: Option<i64>,
        limit: u32,
    ) -> Result<Vec<EventRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, at, actor, kind, details FROM callback_events
             WHERE callback_id = $1 AND id > $2 ORDER BY id LIMIT $3",
        )
        .bind(id.as_uuid())
        .bind(after.unwrap_or(0))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(EventRecord {
                    id: row.try_get("id")?,
                    at: row.try_get("at")?,
                    actor: row.try_get("actor")?,
                    kind: row.try_get("kind")?,
                    details: row.try_get("details")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(Into::into)
    }

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
            record: CallbackRecord::from_row(&row)?,
            tx,
        }))
    }
}

/// A locked callback and the transaction holding the lock.
pub struct CallbackChange {
    pub record: CallbackRecord,
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

    /// Applies the changes, records who made them and commits.
    pub async fn apply(
        mut self,
        changes: &Changes,
        actor: &str,
    ) -> Result<CallbackRecord, StoreError> {
        let old = &self.record;
        let (scheduled_for, due_at, time_zone) =
            changes
                .schedule
                .unwrap_or((old.scheduled_for, old.due_at, old.time_zone));
        let notes = changes.notes.as_deref().unwrap_or(&old.notes);
        let target = changes.target_agent.unwrap_or(old.target_agent_id);
        let expires_at = changes.expires_at.or(old.expires_at);

        let mut diff = serde_json::Map::new();
        let mut note = |field: &str, from: Value, to: Value| {
            if from != to {
                diff.insert(field.to_owned(), json!({ "from": from, "to": to }));
            }
        };
        note(
            "scheduledFor",
            json!(old.scheduled_for),
            json!(scheduled_for),
        );
        note("dueAt", json!(old.due_at), json!(due_at));
        note(
            "timeZone",
            json!(old.time_zone.map(|t| t.name())),
            json!(time_zone.map(|t| t.name())),
        );
        note("notes", json!(old.notes), json!(notes));
        note("targetAgentId", json!(old.target_agent_id), json!(target));
        note("expiresAt", json!(old.expires_at), json!(expires_at));

        let row = sqlx::query(concat!(
            "UPDATE callbacks c SET scheduled_for = $2, due_at = $3, time_zone = $4, notes = $5,
                target_agent_id = $6, expires_at = $7, updated_at = now()
             WHERE c.id = $1 RETURNING ",
            callback_columns!()
        ))
        .bind(old.id.as_uuid())
        .bind(scheduled_for)
        .bind(due_at)
        .bind(time_zone.map(|tz| tz.name()))
        .bind(notes)
        .bind(target.map(AgentId::get))
        .bind(expires_at)
        .fetch_one(&mut *self.tx)
        .await?;
        let updated = CallbackRecord::from_row(&row)?;
        insert_event(&mut self.tx, old.id, actor, "updated", &Value::Object(diff)).await?;
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

    /// Applies a decided outcome (or records why it was ignored) and commits.
    pub async fn apply_outcome(
        mut self,
        attempt: i32,
        outcome: OutcomeKind,
        decision: &Decision,
        actor: &str,
    ) -> Result<CallbackRecord, StoreError> {
        let (state, due_at, dial_failures, error, kind, mut details) = match decision {
            Decision::Ignore(reason) => {
                let details = json!({ "attempt": attempt, "outcome": outcome, "reason": reason });
                insert_event(
                    &mut self.tx,
                    self.record.id,
                    actor,
                    "outcome_ignored",
                    &details,
                )
                .await?;
                self.tx.commit().await?;
                return Ok(self.record);
            }
            Decision::Accept => (
                CallbackState::Accepted,
                None,
                None,
                None,
                "accepted",
                json!({}),
            ),
            Decision::Complete => (
                CallbackState::Completed,
                None,
                None,
                None,
                "completed",
                json!({}),
            ),
            Decision::Retry {
                due_at,
                dial_failures,
            } => (
                CallbackState::Pending,
                Some(*due_at),
                Some(*dial_failures),
                None,
                "retry_scheduled",
                json!({ "dueAt": due_at, "unansweredAttempts": dial_failures }),
            ),
            Decision::Fail(reason) => (
                CallbackState::Failed,
                None,
                None,
                Some(reason.clone()),
                "failed",
                json!({ "reason": reason }),
            ),
            Decision::Reschedule { due_at } => (
                CallbackState::Pending,
                Some(*due_at),
                None,
                None,
                "rescheduled",
                json!({ "dueAt": due_at }),
            ),
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
        let updated = CallbackRecord::from_row(&row)?;
        if let Value::Object(map) = &mut details {
            map.insert("attempt".into(), json!(attempt));
            map.insert("outcome".into(), json!(outcome));
        }
        insert_event(&mut self.tx, self.record.id, actor, kind, &details).await?;
        self.tx.commit().await?;
        Ok(updated)
    }

    pub async fn cancel(mut self, actor: &str) -> Result<CallbackRecord, StoreError> {
        let row = sqlx::query(concat!(
            "UPDATE callbacks c SET state = 'cancelled', updated_at = now()
             WHERE c.id = $1 RETURNING ",
            callback_columns!()
        ))
        .bind(self.record.id.as_uuid())
        .fetch_one(&mut *self.tx)
        .await?;
        let cancelled = CallbackRecord::from_row(&row)?;
        let details = json!({ "from": self.record.state });
        insert_event(&mut self.tx, self.record.id, actor, "cancelled", &details).await?;
        self.tx.commit().await?;
        Ok(cancelled)
    }
}

/// A create's events: `created`, and `deferred` when calling hours moved its due time.
fn create_events(callback: &NewCallback) -> Vec<(&'static str, Value)> {
    let mut events = vec![(
        "created",
        json!({
            "skillId": callback.skill_id,
            "targetAgentId": callback.target_agent_id,
            "route": callback.route().kind(),
            "scheduledFor": callback.scheduled_for,
            "dueAt": callback.due_at,
            "expiresAt": callback.expires_at,
        }),
    )];
    if let Some(reason) = &callback.deferred_because {
        events.push((
            "deferred",
            json!({ "from": callback.scheduled_for, "to": callback.due_at, "reason": reason }),
        ));
    }
    events
}

async fn insert_event(
    tx: &mut Transaction<'static, Postgres>,
    id: CallbackId,
    actor: &str,
    kind: &str,
    details: &Value,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO callback_events (callback_id, actor, kind, details) VALUES ($1, $2, $3, $4)",
    )
    .bind(id.as_uuid())
    .bind(actor)
    .bind(kind)
    .bind(details)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trips_and_rejects_garbage() {
        let cursor = ListCursor {
            due_at: DateTime::from_timestamp_micros(1_790_000_000_123_456).expect("valid"),
            id: Uuid::now_v7(),
        };
        assert_eq!(ListCursor::decode(&cursor.encode()), Some(cursor));
        assert_eq!(ListCursor::decode("zz"), None);
        assert_eq!(ListCursor::decode(&hex::encode("12.not-a-uuid")), None);
    }
}
