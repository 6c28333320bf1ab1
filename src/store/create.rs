//! Storing new callbacks: the context a create is planned against, the group statement
//! that writes creates with their events and idempotency keys, and idempotent replays.
//! [`CreateQueue`](super::CreateQueue) gathers concurrent creates for it.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::types::Json;
use uuid::Uuid;

use super::directory::{AgentRow, RoutingJson, SkillRow, SlotsByHour, StoredCalendar};
use super::dnc::DncMatch;
use super::{Store, StoreError};
use crate::domain::{
    Agent, AgentId, CallingHoursJson, CreateContext, NewCallback, PhoneNumber, SecurityUser, Skill,
    SkillId, created_events,
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

impl Store {
    /// `phone`: the number as parsed, when it parses (else there is nothing to look up: the
    /// create will be refused for the number anyway). `agents`: the target agents named.
    pub async fn create_context(
        &self,
        skill: SkillId,
        agents: &[AgentId],
        phone: Option<&PhoneNumber>,
    ) -> Result<CreateContext, StoreError> {
        let mut context = self
            .first_agent_context(skill, agents.first().copied(), phone)
            .await?;
        // A second or later preferred agent: from the cache, else read once (lists are rare).
        for id in agents.iter().skip(1) {
            if let Some(agent) = self.agent(*id).await? {
                context.agents.push(agent);
            }
        }
        Ok(context)
    }

    /// The context with the first target agent: from the cache when it holds the skill and
    /// the agent, else in the one statement that also reads the clock and do-not-call.
    async fn first_agent_context(
        &self,
        skill: SkillId,
        agent: Option<AgentId>,
        phone: Option<&PhoneNumber>,
    ) -> Result<CreateContext, StoreError> {
        let cached_agent = match agent {
            None => Some(None),
            Some(id) => self.cache.agent(id),
        };
        if let (Some(found), Some(agent)) = (self.cache.skill(skill), cached_agent) {
            return self.create_context_with(skill, found, agent, phone).await;
        }
        let ticket = self.cache.ticket();
        // The skill's and the agent's columns are NULL when there is no such skill or agent.
        let row = sqlx::query!(
            r#"SELECT now() AS "now!",
                    s.id AS "s_id?", s.name AS "s_name?", s.media_type AS "s_media_type?",
                    s.direction AS "s_direction?", s.active AS "s_active?",
                    s.time_zone AS "s_time_zone?",
                    s.calling_hours AS "s_calling_hours?: Json<CallingHoursJson>",
                    s.retry_backoff_seconds AS "s_retry_backoff_seconds?",
                    s.max_attempts AS "s_max_attempts?",
                    s.agent_fallback_seconds AS "s_agent_fallback_seconds?",
                    s.default_ttl_seconds AS "s_default_ttl_seconds?",
                    s.outcome_deadline_seconds AS "s_outcome_deadline_seconds?",
                    s.max_in_flight AS "s_max_in_flight?", s.max_per_minute AS "s_max_per_minute?",
                    s.slot_minutes AS "s_slot_minutes?", s.slot_capacity AS "s_slot_capacity?",
                    s.slot_capacity_by_hour AS "s_slot_capacity_by_hour?: Json<SlotsByHour>",
                    s.routing AS "s_routing?: Json<RoutingJson>",
                    (SELECT jsonb_build_object('name', k.name, 'timeZone', k.time_zone, 'days', k.days)
                       FROM calendars k WHERE k.name = s.routing->>'calendar') AS "s_calendar?: Json<StoredCalendar>",
                    a.id AS "a_id?", a.username AS "a_username?", a.active AS "a_active?",
                    a.name AS "a_name?", a.skill_ids AS "a_skill_ids?",
                    dnc.dnc_skill_id AS "dnc_skill_id?", dnc.dnc_reason AS "dnc_reason?"
             FROM (SELECT 1) AS one
             LEFT JOIN skills s ON s.id = $1
             LEFT JOIN agents a ON a.id = $2
             LEFT JOIN LATERAL (SELECT d.skill_id AS dnc_skill_id, d.reason AS dnc_reason
                FROM dnc_entries d
                WHERE d.phone_number = $3 AND (d.skill_id IS NULL OR d.skill_id = $1)
                  AND (d.expires_at IS NULL OR d.expires_at > now())
                ORDER BY COALESCE(d.skill_id, 0) DESC LIMIT 1) AS dnc ON true"#,
            skill.get(),
            agent.map(AgentId::get),
            phone.map(PhoneNumber::as_str)
        )
        .fetch_one(&self.pool)
        .await?;
        let skill_row = match row.s_id {
            None => None,
            Some(id) => Some(SkillRow {
                id,
                name: joined(row.s_name, "skills.name")?,
                media_type: joined(row.s_media_type, "skills.media_type")?,
                direction: joined(row.s_direction, "skills.direction")?,
                active: joined(row.s_active, "skills.active")?,
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
            }),
        };
        let agent_row = match row.a_id {
            None => None,
            Some(id) => Some(AgentRow {
                id,
                username: joined(row.a_username, "agents.username")?,
                active: joined(row.a_active, "agents.active")?,
                name: joined(row.a_name, "agents.name")?,
                skill_ids: joined(row.a_skill_ids, "agents.skill_ids")?,
            }),
        };
        let context = CreateContext {
            now: row.now,
            skill: skill_row.map(Skill::try_from).transpose()?,
            agents: agent_row
                .map(Agent::try_from)
                .transpose()?
                .into_iter()
                .collect(),
            suppression: DncMatch {
                dnc_skill_id: row.dnc_skill_id,
                dnc_reason: row.dnc_reason,
            }
            .suppression()?,
        };
        self.cache.keep_skill(ticket, skill, &context.skill);
        if let Some(id) = agent {
            self.cache
                .keep_agent(ticket, id, &context.agents.first().cloned());
        }
        Ok(context)
    }

    /// The rest of a create's context, the skill and agent being known: the database clock
    /// and the do-not-call probe (too many numbers to hold in memory), read with concurrent
    /// creates' when the handle groups them.
    async fn create_context_with(
        &self,
        skill_id: SkillId,
        skill: Option<Skill>,
        agent: Option<Agent>,
        phone: Option<&PhoneNumber>,
    ) -> Result<CreateContext, StoreError> {
        let (now, suppression) = match &self.probes {
            Some(queue) => queue.probe(self, skill_id, phone).await?,
            None => {
                self.probe_one(skill_id, phone.map(PhoneNumber::as_str))
                    .await?
            }
        };
        Ok(CreateContext {
            now,
            skill,
            agents: agent.into_iter().collect(),
            suppression,
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
        write_creates(&self.pool, creates).await
    }

    /// What an earlier request with this key answered: its stored answer when `key`'s body
    /// digest is the same, [`Inserted::KeyReused`] when it differs; `None` for a new key.
    pub async fn idempotent_answer(
        &self,
        actor: &SecurityUser,
        key: &IdempotencyKey,
    ) -> Result<Option<Inserted>, StoreError> {
        let row = sqlx::query!(
            "SELECT request_sha256, response FROM idempotency_keys
             WHERE security_user_id = $1 AND key = $2",
            actor.id,
            &key.key
        )
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        Ok(Some(if row.request_sha256 == key.request_sha256 {
            Inserted::Replayed(row.response)
        } else {
            Inserted::KeyReused
        }))
    }
}

/// The statement of [`Store::store_creates`], on a pool or inside a transaction.
pub(super) async fn write_creates<'e, E: sqlx::PgExecutor<'e>>(
    executor: E,
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
    let mut caller_ids = Vec::with_capacity(n);
    let mut orig_numbers = Vec::with_capacity(n);
    let mut priorities = Vec::with_capacity(n);
    let mut agent_lists = Vec::with_capacity(n);
    let mut ownerships = Vec::with_capacity(n);
    let (mut event_ids, mut event_kinds, mut event_details) = (Vec::new(), Vec::new(), Vec::new());
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
        caller_ids.push(c.caller_id.as_ref().map(|p| p.as_str()));
        orig_numbers.push(c.orig_number.as_ref().map(|p| p.as_str()));
        priorities.push(i32::try_from(c.priority).unwrap_or(0));
        agent_lists.push(agent_list(&c.target_agent_ids));
        ownerships.push(
            c.ownership_seconds
                .map(|s| i32::try_from(s).unwrap_or(i32::MAX)),
        );
        for event in created_events(c) {
            event_ids.push(c.id.as_uuid());
            event_kinds.push(event.kind.as_str());
            event_details.push(event.details);
        }
    }
    let stored: Vec<Uuid> = sqlx::query_scalar!(
        r#"WITH input AS (
            SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::int8[],
                $6::int8[], $7::text[], $8::text[], $9::timestamptz[], $10::timestamptz[],
                $11::text[], $12::timestamptz[], $13::int8[], $14::text[], $15::bytea[],
                $16::jsonb[], $20::text[], $21::text[], $22::int4[], $23::text[], $24::int4[])
            WITH ORDINALITY AS i(id, first_name, last_name, phone_number, skill_id,
                target_agent_id, notes, time_zone, scheduled_for, due_at, created_by,
                expires_at, user_id, key, request_sha256, response, caller_id, orig_number,
                priority, target_agent_ids, ownership_seconds, n)
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
                expires_at, caller_id, orig_number, priority, target_agent_ids,
                ownership_seconds)
            SELECT id, first_name, last_name, phone_number, skill_id, target_agent_id,
                   notes, time_zone, scheduled_for, due_at, created_by, expires_at,
                   caller_id, orig_number, priority, target_agent_ids::bigint[],
                   ownership_seconds
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
         SELECT id AS "id!" FROM stored"#,
        &ids,
        &first_names as &[&str],
        &last_names as &[&str],
        &phones as &[&str],
        &skills,
        &agents as &[Option<i64>],
        &notes as &[&str],
        &zones as &[Option<&str>],
        &scheduled,
        &due,
        &actors as &[&str],
        &expires as &[Option<DateTime<Utc>>],
        &users,
        &keys as &[Option<&str>],
        &digests as &[Option<Vec<u8>>],
        &responses,
        &event_ids,
        &event_kinds as &[&str],
        &event_details,
        &caller_ids as &[Option<&str>],
        &orig_numbers as &[Option<&str>],
        &priorities,
        &agent_lists as &[Option<String>],
        &ownerships as &[Option<i32>]
    )
    .fetch_all(executor)
    .await?;
    Ok(stored.into_iter().collect())
}

/// A callback's preferred agents as `callbacks.target_agent_ids` keeps them: an array
/// literal (`{3,1}`; a list in an `unnest` of arrays cannot be an array itself) when there
/// are several, else NULL (`target_agent_id` alone is the list).
pub(super) fn agent_list(agents: &[AgentId]) -> Option<String> {
    (agents.len() > 1).then(|| {
        let ids: Vec<String> = agents.iter().map(ToString::to_string).collect();
        format!("{{{}}}", ids.join(","))
    })
}

/// A column of a row an outer join found, which its table declares `NOT NULL`.
fn joined<T>(value: Option<T>, column: &str) -> Result<T, StoreError> {
    value.ok_or_else(|| StoreError::Corrupt(format!("{column} is NULL")))
}
