use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use sqlx::PgConnection;
use sqlx::types::Json;

use super::cache::Table;
use super::{Store, StoreError};
use serde::{Deserialize, Serialize};

use crate::domain::{
    Agent, AgentId, Calendar, CalendarDayJson, CalendarJson, CallingHours, CallingHoursJson,
    PhoneNumber, Skill, SkillId, SkillPacing, SkillPolicy, SkillRouting, SlotPolicy,
};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ImportSummary {
    pub skills: usize,
    pub agents: usize,
}

/// How often an import reports its progress, in records.
const IMPORT_REPORT_EVERY: usize = 500;

impl Store {
    pub async fn upsert_skill(&self, skill: &Skill) -> Result<(), StoreError> {
        let mut conn = self.pool.acquire().await?;
        upsert_skill(&mut conn, skill).await?;
        self.cache.invalidate(Some(Table::Skills));
        Ok(())
    }

    pub async fn upsert_agent(&self, agent: &Agent) -> Result<(), StoreError> {
        let mut conn = self.pool.acquire().await?;
        upsert_agent(&mut conn, agent).await?;
        self.cache.invalidate(Some(Table::Agents));
        Ok(())
    }

    pub async fn skill(&self, id: SkillId) -> Result<Option<Skill>, StoreError> {
        if let Some(skill) = self.cache.skill(id) {
            return Ok(skill);
        }
        let ticket = self.cache.ticket();
        let row = sqlx::query_as!(
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
               FROM skills s WHERE s.id = $1"#,
            id.get()
        )
        .fetch_optional(&self.pool)
        .await?;
        let skill = row.map(Skill::try_from).transpose()?;
        self.cache.keep_skill(ticket, id, &skill);
        Ok(skill)
    }

    /// Sets a skill's pacing limits only; `None` when the skill does not exist.
    pub async fn set_capacity(
        &self,
        id: SkillId,
        limits: SkillPacing,
    ) -> Result<Option<Skill>, StoreError> {
        // The notification wakes every daemon's dispatcher: held callbacks go out at once
        // when the limit was raised.
        let row = sqlx::query!(
            r#"WITH s AS (
                UPDATE skills SET max_in_flight = $2, max_per_minute = $3, updated_at = now()
                WHERE id = $1 RETURNING *
             )
             SELECT s.id AS "id!", s.name AS "name!", s.media_type AS "media_type!",
                    s.direction AS "direction!", s.active AS "active!", s.time_zone,
                    s.calling_hours AS "calling_hours: Json<CallingHoursJson>",
                    s.retry_backoff_seconds, s.max_attempts, s.agent_fallback_seconds,
                    s.default_ttl_seconds, s.outcome_deadline_seconds, s.max_in_flight,
                    s.max_per_minute, s.slot_minutes, s.slot_capacity,
                    s.slot_capacity_by_hour AS "slot_capacity_by_hour: Json<SlotsByHour>",
                    s.routing AS "routing: Json<RoutingJson>",
                    (SELECT jsonb_build_object('name', k.name, 'timeZone', k.time_zone, 'days', k.days)
                       FROM calendars k WHERE k.name = s.routing->>'calendar') AS "calendar: Json<StoredCalendar>",
                    pg_notify('callbackd_due', '')::text AS woken
             FROM s"#,
            id.get(),
            limits.max_in_flight.map(|n| n as i32),
            limits.max_per_minute.map(|n| n as i32)
        )
        .fetch_optional(&self.pool)
        .await?;
        self.cache.invalidate(Some(Table::Skills));
        row.map(|r| {
            Skill::try_from(SkillRow {
                id: r.id,
                name: r.name,
                media_type: r.media_type,
                direction: r.direction,
                active: r.active,
                time_zone: r.time_zone,
                calling_hours: r.calling_hours,
                retry_backoff_seconds: r.retry_backoff_seconds,
                max_attempts: r.max_attempts,
                agent_fallback_seconds: r.agent_fallback_seconds,
                default_ttl_seconds: r.default_ttl_seconds,
                outcome_deadline_seconds: r.outcome_deadline_seconds,
                max_in_flight: r.max_in_flight,
                max_per_minute: r.max_per_minute,
                slot_minutes: r.slot_minutes,
                slot_capacity: r.slot_capacity,
                slot_capacity_by_hour: r.slot_capacity_by_hour,
                routing: r.routing,
                calendar: r.calendar,
            })
        })
        .transpose()
    }

    /// Activates or deactivates a skill, leaving the rest of it as it is (a concurrent change
    /// to its other fields is not overwritten). False when there is no such skill.
    pub async fn set_skill_active(&self, id: SkillId, active: bool) -> Result<bool, StoreError> {
        let done = sqlx::query!(
            "UPDATE skills SET active = $2, updated_at = now() WHERE id = $1",
            id.get(),
            active
        )
        .execute(&self.pool)
        .await?;
        self.cache.invalidate(Some(Table::Skills));
        Ok(done.rows_affected() == 1)
    }

    /// Activates or deactivates an agent, leaving its username as it is. False when there
    /// is no such agent.
    pub async fn set_agent_active(&self, id: AgentId, active: bool) -> Result<bool, StoreError> {
        let done = sqlx::query!(
            "UPDATE agents SET active = $2, updated_at = now() WHERE id = $1",
            id.get(),
            active
        )
        .execute(&self.pool)
        .await?;
        self.cache.invalidate(Some(Table::Agents));
        Ok(done.rows_affected() == 1)
    }

    pub async fn agent(&self, id: AgentId) -> Result<Option<Agent>, StoreError> {
        if let Some(agent) = self.cache.agent(id) {
            return Ok(agent);
        }
        let ticket = self.cache.ticket();
        let row = sqlx::query_as!(
            AgentRow,
            "SELECT id, username, active, name, skill_ids FROM agents WHERE id = $1",
            id.get()
        )
        .fetch_optional(&self.pool)
        .await?;
        let agent = row.map(Agent::try_from).transpose()?;
        self.cache.keep_agent(ticket, id, &agent);
        Ok(agent)
    }

    /// Every skill, by id (the console's directory; at most `limit`).
    pub async fn skills(&self, limit: i64) -> Result<Vec<Skill>, StoreError> {
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
               FROM skills s ORDER BY s.id LIMIT $1"#,
            limit
        )
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(Skill::try_from).collect()
    }

    /// Every agent, by id (at most `limit`).
    pub async fn agents(&self, limit: i64) -> Result<Vec<Agent>, StoreError> {
        let rows = sqlx::query_as!(
            AgentRow,
            "SELECT id, username, active, name, skill_ids FROM agents ORDER BY id LIMIT $1",
            limit
        )
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(Agent::try_from).collect()
    }

    /// Upserts all of them in one transaction: an import applies whole or not at all.
    pub async fn import_directory(
        &self,
        skills: &[Skill],
        agents: &[Agent],
    ) -> Result<ImportSummary, StoreError> {
        self.import_directory_reporting(skills, agents, |_| {})
            .await
    }

    /// As [`Store::import_directory`], telling `written` how many records are written so
    /// far, every 500 and at the end (for a progress bar).
    pub async fn import_directory_reporting(
        &self,
        skills: &[Skill],
        agents: &[Agent],
        mut written: impl FnMut(usize),
    ) -> Result<ImportSummary, StoreError> {
        let mut tx = self.pool.begin().await?;
        let mut done = 0;
        for skill in skills {
            upsert_skill(&mut tx, skill).await?;
            done += 1;
            if done % IMPORT_REPORT_EVERY == 0 {
                written(done);
            }
        }
        for agent in agents {
            upsert_agent(&mut tx, agent).await?;
            done += 1;
            if done % IMPORT_REPORT_EVERY == 0 {
                written(done);
            }
        }
        written(done);
        tx.commit().await?;
        self.cache.invalidate(None);
        Ok(ImportSummary {
            skills: skills.len(),
            agents: agents.len(),
        })
    }
}

async fn upsert_skill(conn: &mut PgConnection, skill: &Skill) -> Result<(), StoreError> {
    let policy = &skill.policy;
    let backoff: Option<Vec<i32>> = policy
        .retry_backoff_seconds
        .as_ref()
        .map(|b| b.iter().map(|s| *s as i32).collect());
    sqlx::query!(
        "INSERT INTO skills (id, name, media_type, direction, active, time_zone,
               calling_hours, retry_backoff_seconds, max_attempts, agent_fallback_seconds,
               default_ttl_seconds, outcome_deadline_seconds, max_in_flight, max_per_minute,
               slot_minutes, slot_capacity, slot_capacity_by_hour, routing)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)
         ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, media_type = EXCLUDED.media_type,
               direction = EXCLUDED.direction, active = EXCLUDED.active,
               time_zone = EXCLUDED.time_zone, calling_hours = EXCLUDED.calling_hours,
               retry_backoff_seconds = EXCLUDED.retry_backoff_seconds,
               max_attempts = EXCLUDED.max_attempts,
               agent_fallback_seconds = EXCLUDED.agent_fallback_seconds,
               default_ttl_seconds = EXCLUDED.default_ttl_seconds,
               outcome_deadline_seconds = EXCLUDED.outcome_deadline_seconds,
               max_in_flight = EXCLUDED.max_in_flight, max_per_minute = EXCLUDED.max_per_minute,
               slot_minutes = EXCLUDED.slot_minutes, slot_capacity = EXCLUDED.slot_capacity,
               slot_capacity_by_hour = EXCLUDED.slot_capacity_by_hour,
               -- A pause is kept across a PUT or an import; only resume ends it.
               routing = CASE WHEN skills.routing ? 'paused'
                              THEN COALESCE(EXCLUDED.routing, '{}'::jsonb)
                                   || jsonb_build_object('paused', skills.routing->'paused')
                              ELSE EXCLUDED.routing END,
               updated_at = now()",
        skill.id.get(),
        &skill.name,
        skill.media_type.as_str(),
        skill.direction.as_str(),
        skill.active,
        skill.time_zone.map(|tz| tz.name()),
        // jsonb: typed by its encoding, not checked against `serde_json::Value`.
        policy.calling_hours.as_ref().map(|h| Json(h.to_json())) as _,
        backoff.as_deref(),
        policy.max_attempts.map(|n| n as i32),
        policy.agent_fallback_seconds.map(|n| n as i32),
        policy.default_ttl_seconds.map(|n| n as i32),
        policy.outcome_deadline_seconds.map(|n| n as i32),
        policy.max_in_flight.map(|n| n as i32),
        policy.max_per_minute.map(|n| n as i32),
        policy.slots.as_ref().map(|p| p.minutes as i32),
        policy.slots.as_ref().map(|p| p.capacity as i32),
        policy
            .slots
            .as_ref()
            .and_then(SlotPolicy::by_hour_json)
            .map(Json) as _,
        RoutingJson::of(&policy.routing).map(Json) as _,
    )
    .execute(conn)
    .await?;
    Ok(())
}

async fn upsert_agent(conn: &mut PgConnection, agent: &Agent) -> Result<(), StoreError> {
    sqlx::query!(
        "INSERT INTO agents (id, username, active, name, skill_ids) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (id) DO UPDATE SET username = EXCLUDED.username, active = EXCLUDED.active,
           name = EXCLUDED.name, skill_ids = EXCLUDED.skill_ids, updated_at = now()",
        agent.id.get(),
        &agent.username,
        agent.active,
        &agent.name,
        &agent.skills.iter().map(|s| s.get()).collect::<Vec<_>>()
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// How a skill's routing rules are stored (`skills.routing`): what a newer version adds is
/// ignored here, not refused.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct RoutingJson {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    default_region: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    caller_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    duplicate_policy: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    max_pending_per_number: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    max_creates_per_number_per_day: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    calendar: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    initial_priority: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    priority_acceleration: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    max_priority: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ownership_seconds: Option<u32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    reminders: Vec<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    paused: Option<PausedJson>,
}

/// `routing.paused`, as the pause statement writes it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct PausedJson {
    at: DateTime<Utc>,
    by: String,
    #[serde(default)]
    reason: String,
}

impl RoutingJson {
    /// `None` when the skill has no rules of its own.
    fn of(routing: &SkillRouting) -> Option<Self> {
        (*routing != SkillRouting::default()).then(|| RoutingJson {
            default_region: routing.default_region.map(|r| r.as_ref().to_owned()),
            caller_id: routing.caller_id.as_ref().map(|n| n.as_str().to_owned()),
            duplicate_policy: routing.duplicate_policy.map(|p| p.as_str().to_owned()),
            max_pending_per_number: routing.max_pending_per_number,
            max_creates_per_number_per_day: routing.max_creates_per_number_per_day,
            calendar: routing.calendar.clone(),
            initial_priority: routing.priority.initial,
            priority_acceleration: routing.priority.acceleration,
            max_priority: routing.priority.max,
            ownership_seconds: routing.ownership_seconds,
            reminders: routing.reminders.clone(),
            paused: routing.paused.as_ref().map(|p| PausedJson {
                at: p.at,
                by: p.by.clone(),
                reason: p.reason.clone(),
            }),
        })
    }

    fn to_domain(&self) -> Result<SkillRouting, String> {
        Ok(SkillRouting {
            default_region: self
                .default_region
                .as_deref()
                .map(|code| crate::domain::region(code).ok_or_else(|| format!("region `{code}`")))
                .transpose()?,
            caller_id: self.caller_id.clone().map(PhoneNumber::from_stored),
            // A policy a newer version wrote that this one does not know: the default.
            duplicate_policy: self
                .duplicate_policy
                .as_deref()
                .and_then(|p| p.parse().ok()),
            max_pending_per_number: self.max_pending_per_number,
            max_creates_per_number_per_day: self.max_creates_per_number_per_day,
            calendar: self.calendar.clone(),
            priority: crate::domain::PriorityRules {
                initial: self.initial_priority,
                acceleration: self.priority_acceleration,
                max: self.max_priority,
            },
            ownership_seconds: self.ownership_seconds,
            reminders: self.reminders.clone(),
            paused: self.paused.as_ref().map(|p| crate::domain::SkillPause {
                at: p.at,
                by: p.by.clone(),
                reason: p.reason.clone(),
            }),
        })
    }
}

/// A skill's calendar as its read joins it (`jsonb_build_object('name', …, 'timeZone', …,
/// 'days', …)`).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct StoredCalendar {
    pub name: String,
    pub time_zone: String,
    pub days: Vec<CalendarDayJson>,
}

impl StoredCalendar {
    pub(super) fn to_domain(&self) -> Result<Calendar, String> {
        Calendar::parse(
            &self.name,
            &CalendarJson {
                time_zone: self.time_zone.clone(),
                days: self.days.clone(),
            },
        )
        .map_err(|e| format!("calendar {}: {e}", self.name))
    }
}

/// How a skill's slot capacity by hour is stored (`skills.slot_capacity_by_hour`).
pub(super) type SlotsByHour = BTreeMap<String, u32>;

/// A `skills` row: what `query_as!(SkillRow, …)` reads (the columns of a table aliased `s`,
/// the JSON ones typed with `AS "calling_hours: Json<CallingHoursJson>"` and
/// `AS "slot_capacity_by_hour: Json<SlotsByHour>"`).
pub(super) struct SkillRow {
    pub id: i64,
    pub name: String,
    pub media_type: String,
    pub direction: String,
    pub active: bool,
    pub time_zone: Option<String>,
    pub calling_hours: Option<Json<CallingHoursJson>>,
    pub retry_backoff_seconds: Option<Vec<i32>>,
    pub max_attempts: Option<i32>,
    pub agent_fallback_seconds: Option<i32>,
    pub default_ttl_seconds: Option<i32>,
    pub outcome_deadline_seconds: Option<i32>,
    pub max_in_flight: Option<i32>,
    pub max_per_minute: Option<i32>,
    pub slot_minutes: Option<i32>,
    pub slot_capacity: Option<i32>,
    pub slot_capacity_by_hour: Option<Json<SlotsByHour>>,
    pub routing: Option<Json<RoutingJson>>,
    pub calendar: Option<Json<StoredCalendar>>,
}

impl TryFrom<SkillRow> for Skill {
    type Error = StoreError;

    fn try_from(row: SkillRow) -> Result<Self, StoreError> {
        let id = row.id;
        let corrupt = |what: &str| StoreError::Corrupt(format!("skill {id}: {what}"));
        let unsigned = |v: Option<i32>| v.map(|n| n.max(0) as u32);
        let policy = SkillPolicy {
            calling_hours: row
                .calling_hours
                .map(|j| CallingHours::parse(&j.0).map_err(|e| corrupt(&e.to_string())))
                .transpose()?,
            retry_backoff_seconds: row
                .retry_backoff_seconds
                .map(|b| b.into_iter().map(|s| s.max(1) as u32).collect()),
            max_attempts: unsigned(row.max_attempts),
            agent_fallback_seconds: unsigned(row.agent_fallback_seconds),
            default_ttl_seconds: unsigned(row.default_ttl_seconds),
            outcome_deadline_seconds: unsigned(row.outcome_deadline_seconds),
            max_in_flight: unsigned(row.max_in_flight),
            max_per_minute: unsigned(row.max_per_minute),
            slots: SlotPolicy::new(
                unsigned(row.slot_minutes),
                unsigned(row.slot_capacity),
                row.slot_capacity_by_hour.as_ref().map(|j| &j.0),
            )
            .map_err(|e| corrupt(&e.to_string()))?,
            routing: row
                .routing
                .map(|j| j.0.to_domain().map_err(|e| corrupt(&e)))
                .transpose()?
                .unwrap_or_default(),
            calendar: row
                .calendar
                .map(|j| j.0.to_domain().map_err(|e| corrupt(&e)))
                .transpose()?,
        };
        Ok(Skill {
            id: SkillId::new(id).map_err(|e| StoreError::Corrupt(e.to_string()))?,
            name: row.name,
            media_type: row.media_type.parse().map_err(StoreError::Corrupt)?,
            direction: row.direction.parse().map_err(StoreError::Corrupt)?,
            active: row.active,
            time_zone: row
                .time_zone
                .map(|tz| {
                    tz.parse::<Tz>()
                        .map_err(|_| StoreError::Corrupt(format!("time zone `{tz}`")))
                })
                .transpose()?,
            policy,
        })
    }
}

/// An `agents` row: what `query_as!(AgentRow, …)` reads.
pub(super) struct AgentRow {
    pub id: i64,
    pub username: String,
    pub active: bool,
    pub name: String,
    pub skill_ids: Vec<i64>,
}

impl TryFrom<AgentRow> for Agent {
    type Error = StoreError;

    fn try_from(row: AgentRow) -> Result<Self, StoreError> {
        Ok(Agent {
            id: AgentId::new(row.id).map_err(|e| StoreError::Corrupt(e.to_string()))?,
            username: row.username,
            active: row.active,
            name: row.name,
            skills: row
                .skill_ids
                .into_iter()
                .map(|id| SkillId::new(id).map_err(|e| StoreError::Corrupt(e.to_string())))
                .collect::<Result<_, _>>()?,
        })
    }
}
