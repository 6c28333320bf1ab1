use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use sqlx::{FromRow, Postgres, Row, Transaction};
use uuid::Uuid;

use super::directory::{agent_from_row, skill_from_row};
use super::record::{EventRecord, callback_from_row};
use super::{Store, StoreError};
use crate::domain::{
    Agent, AgentId, Callback, CallbackId, CallbackState, Changes, CreateContext, Decision,
    NewCallback, OutcomeKind, SecurityUser, Skill, SkillId,
};

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
    /// Resume after this `(due_at, id)` position.
    pub after: Option<(DateTime<Utc>, CallbackId)>,
    pub limit: u32,
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

    pub async fn callback(&self, id: CallbackId) -> Result<Option<Callback>, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            callback_columns!(),
            " FROM callbacks c WHERE c.id = $1"
        ))
        .bind(id.as_uuid())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(callback_from_row).transpose()
    }

    /// One page in `(due_at, id)` order.
    pub async fn list_callbacks(
        &self,
        filter: &CallbackFilter,
    ) -> Result<Vec<Callback>, StoreError> {
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
        .bind(filter.after.map(|(due_at, _)| due_at))
        .bind(filter.after.map(|(_, id)| id.as_uuid()))
        .bind(allowed)
        .bind(i64::from(filter.limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(callback_from_row).collect()
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
            .map(|row| EventRecord::from_row(row).map_err(Into::into))
            .collect()
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

    /// Applies the changes, records who made them and commits.
    pub async fn apply(mut self, changes: &Changes, actor: &str) -> Result<Callback, StoreError> {
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
        let updated = callback_from_row(&row)?;
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
    ) -> Result<Callback, StoreError> {
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
        let updated = callback_from_row(&row)?;
        if let Value::Object(map) = &mut details {
            map.insert("attempt".into(), json!(attempt));
            map.insert("outcome".into(), json!(outcome));
        }
        insert_event(&mut self.tx, self.record.id, actor, kind, &details).await?;
        self.tx.commit().await?;
        Ok(updated)
    }

    pub async fn cancel(mut self, actor: &str) -> Result<Callback, StoreError> {
        let row = sqlx::query(concat!(
            "UPDATE callbacks c SET state = 'cancelled', updated_at = now()
             WHERE c.id = $1 RETURNING ",
            callback_columns!()
        ))
        .bind(self.record.id.as_uuid())
        .fetch_one(&mut *self.tx)
        .await?;
        let cancelled = callback_from_row(&row)?;
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
