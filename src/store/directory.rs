use chrono_tz::Tz;
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Row};

use super::cache::Table;
use super::{Store, StoreError};
use crate::domain::{
    Agent, AgentId, CallingHours, CallingHoursJson, Skill, SkillId, SkillPacing, SkillPolicy,
    SlotPolicy,
};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ImportSummary {
    pub skills: usize,
    pub agents: usize,
}

const UPSERT_SKILL: &str = "INSERT INTO skills (id, name, media_type, direction, active, time_zone,
       calling_hours, retry_backoff_seconds, max_attempts, agent_fallback_seconds,
       default_ttl_seconds, outcome_deadline_seconds, max_in_flight, max_per_minute,
       slot_minutes, slot_capacity, slot_capacity_by_hour)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)
     ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, media_type = EXCLUDED.media_type,
       direction = EXCLUDED.direction, active = EXCLUDED.active, time_zone = EXCLUDED.time_zone,
       calling_hours = EXCLUDED.calling_hours,
       retry_backoff_seconds = EXCLUDED.retry_backoff_seconds,
       max_attempts = EXCLUDED.max_attempts,
       agent_fallback_seconds = EXCLUDED.agent_fallback_seconds,
       default_ttl_seconds = EXCLUDED.default_ttl_seconds,
       outcome_deadline_seconds = EXCLUDED.outcome_deadline_seconds,
       max_in_flight = EXCLUDED.max_in_flight, max_per_minute = EXCLUDED.max_per_minute,
       slot_minutes = EXCLUDED.slot_minutes, slot_capacity = EXCLUDED.slot_capacity,
       slot_capacity_by_hour = EXCLUDED.slot_capacity_by_hour,
       updated_at = now()";

/// The skill columns `skill_from_row` reads, for a table aliased `s` and prefixed `s_`.
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

const UPSERT_AGENT: &str = "INSERT INTO agents (id, username, active) VALUES ($1, $2, $3)
     ON CONFLICT (id) DO UPDATE SET username = EXCLUDED.username, active = EXCLUDED.active,
       updated_at = now()";

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
        let row = sqlx::query(concat!(
            "SELECT ",
            skill_columns!(),
            " FROM skills s WHERE s.id = $1"
        ))
        .bind(id.get())
        .fetch_optional(&self.pool)
        .await?;
        let skill = row.map(|r| skill_from_row(&r, "s_")).transpose()?;
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
        let row = sqlx::query(concat!(
            "WITH s AS (
                UPDATE skills SET max_in_flight = $2, max_per_minute = $3, updated_at = now()
                WHERE id = $1 RETURNING *
             )
             SELECT ",
            skill_columns!(),
            ", pg_notify('callbackd_due', '')::text AS woken FROM s"
        ))
        .bind(id.get())
        .bind(limits.max_in_flight.map(|n| n as i32))
        .bind(limits.max_per_minute.map(|n| n as i32))
        .fetch_optional(&self.pool)
        .await?;
        self.cache.invalidate(Some(Table::Skills));
        row.map(|r| skill_from_row(&r, "s_")).transpose()
    }

    /// Activates or deactivates a skill, leaving the rest of it as it is (a concurrent change
    /// to its other fields is not overwritten). False when there is no such skill.
    pub async fn set_skill_active(&self, id: SkillId, active: bool) -> Result<bool, StoreError> {
        let done = sqlx::query("UPDATE skills SET active = $2, updated_at = now() WHERE id = $1")
            .bind(id.get())
            .bind(active)
            .execute(&self.pool)
            .await?;
        self.cache.invalidate(Some(Table::Skills));
        Ok(done.rows_affected() == 1)
    }

    /// Activates or deactivates an agent, leaving its username as it is. False when there
    /// is no such agent.
    pub async fn set_agent_active(&self, id: AgentId, active: bool) -> Result<bool, StoreError> {
        let done = sqlx::query("UPDATE agents SET active = $2, updated_at = now() WHERE id = $1")
            .bind(id.get())
            .bind(active)
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
        let row = sqlx::query("SELECT id, username, active FROM agents WHERE id = $1")
            .bind(id.get())
            .fetch_optional(&self.pool)
            .await?;
        let agent = row.map(|r| agent_from_row(&r, "")).transpose()?;
        self.cache.keep_agent(ticket, id, &agent);
        Ok(agent)
    }

    /// Every skill, by id (the console's directory; at most `limit`).
    pub async fn skills(&self, limit: i64) -> Result<Vec<Skill>, StoreError> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            skill_columns!(),
            " FROM skills s ORDER BY s.id LIMIT $1"
        ))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| skill_from_row(r, "s_")).collect()
    }

    /// Every agent, by id (at most `limit`).
    pub async fn agents(&self, limit: i64) -> Result<Vec<Agent>, StoreError> {
        let rows = sqlx::query("SELECT id, username, active FROM agents ORDER BY id LIMIT $1")
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|r| agent_from_row(r, "")).collect()
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
    sqlx::query(UPSERT_SKILL)
        .bind(skill.id.get())
        .bind(&skill.name)
        .bind(skill.media_type.as_str())
        .bind(skill.direction.as_str())
        .bind(skill.active)
        .bind(skill.time_zone.map(|tz| tz.name()))
        .bind(
            skill
                .policy
                .calling_hours
                .as_ref()
                .map(|h| sqlx::types::Json(h.to_json())),
        )
        .bind(
            skill
                .policy
                .retry_backoff_seconds
                .as_ref()
                .map(|b| b.iter().map(|s| *s as i32).collect::<Vec<i32>>()),
        )
        .bind(skill.policy.max_attempts.map(|n| n as i32))
        .bind(skill.policy.agent_fallback_seconds.map(|n| n as i32))
        .bind(skill.policy.default_ttl_seconds.map(|n| n as i32))
        .bind(skill.policy.outcome_deadline_seconds.map(|n| n as i32))
        .bind(skill.policy.max_in_flight.map(|n| n as i32))
        .bind(skill.policy.max_per_minute.map(|n| n as i32))
        .bind(skill.policy.slots.as_ref().map(|p| p.minutes as i32))
        .bind(skill.policy.slots.as_ref().map(|p| p.capacity as i32))
        .bind(
            skill
                .policy
                .slots
                .as_ref()
                .and_then(SlotPolicy::by_hour_json)
                .map(sqlx::types::Json),
        )
        .execute(conn)
        .await?;
    Ok(())
}

async fn upsert_agent(conn: &mut PgConnection, agent: &Agent) -> Result<(), StoreError> {
    sqlx::query(UPSERT_AGENT)
        .bind(agent.id.get())
        .bind(&agent.username)
        .bind(agent.active)
        .execute(conn)
        .await?;
    Ok(())
}

/// Reads a skill from columns named `{prefix}id`, `{prefix}name`, …
pub(super) fn skill_from_row(row: &PgRow, prefix: &str) -> Result<Skill, StoreError> {
    let col = |name: &str| format!("{prefix}{name}");
    let id: i64 = row.try_get(col("id").as_str())?;
    let media_type: String = row.try_get(col("media_type").as_str())?;
    let direction: String = row.try_get(col("direction").as_str())?;
    let time_zone: Option<String> = row.try_get(col("time_zone").as_str())?;
    let corrupt = |what: &str| StoreError::Corrupt(format!("skill {id}: {what}"));
    let calling_hours: Option<sqlx::types::Json<CallingHoursJson>> =
        row.try_get(col("calling_hours").as_str())?;
    let backoff: Option<Vec<i32>> = row.try_get(col("retry_backoff_seconds").as_str())?;
    let unsigned = |v: Option<i32>| v.map(|n| n.max(0) as u32);
    let policy = SkillPolicy {
        calling_hours: calling_hours
            .map(|j| CallingHours::parse(&j.0).map_err(|e| corrupt(&e.to_string())))
            .transpose()?,
        retry_backoff_seconds: backoff.map(|b| b.into_iter().map(|s| s.max(1) as u32).collect()),
        max_attempts: unsigned(row.try_get(col("max_attempts").as_str())?),
        agent_fallback_seconds: unsigned(row.try_get(col("agent_fallback_seconds").as_str())?),
        default_ttl_seconds: unsigned(row.try_get(col("default_ttl_seconds").as_str())?),
        outcome_deadline_seconds: unsigned(row.try_get(col("outcome_deadline_seconds").as_str())?),
        max_in_flight: unsigned(row.try_get(col("max_in_flight").as_str())?),
        max_per_minute: unsigned(row.try_get(col("max_per_minute").as_str())?),
        slots: {
            let by_hour: Option<sqlx::types::Json<BTreeMap<String, u32>>> =
                row.try_get(col("slot_capacity_by_hour").as_str())?;
            SlotPolicy::new(
                unsigned(row.try_get(col("slot_minutes").as_str())?),
                unsigned(row.try_get(col("slot_capacity").as_str())?),
                by_hour.as_ref().map(|j| &j.0),
            )
            .map_err(|e| corrupt(&e.to_string()))?
        },
    };
    Ok(Skill {
        id: SkillId::new(id).map_err(|e| StoreError::Corrupt(e.to_string()))?,
        name: row.try_get(col("name").as_str())?,
        media_type: media_type.parse().map_err(StoreError::Corrupt)?,
        direction: direction.parse().map_err(StoreError::Corrupt)?,
        active: row.try_get(col("active").as_str())?,
        time_zone: time_zone
            .map(|tz| {
                tz.parse::<Tz>()
                    .map_err(|_| StoreError::Corrupt(format!("time zone `{tz}`")))
            })
            .transpose()?,
        policy,
    })
}

pub(super) fn agent_from_row(row: &PgRow, prefix: &str) -> Result<Agent, StoreError> {
    let col = |name: &str| format!("{prefix}{name}");
    let id: i64 = row.try_get(col("id").as_str())?;
    Ok(Agent {
        id: AgentId::new(id).map_err(|e| StoreError::Corrupt(e.to_string()))?,
        username: row.try_get(col("username").as_str())?,
        active: row.try_get(col("active").as_str())?,
    })
}
