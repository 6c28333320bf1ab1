use chrono_tz::Tz;
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Row};

use super::{Store, StoreError};
use crate::domain::{Agent, AgentId, Skill, SkillId};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ImportSummary {
    pub skills: usize,
    pub agents: usize,
}

const UPSERT_SKILL: &str = "INSERT INTO skills (id, name, media_type, direction, active, time_zone)
     VALUES ($1, $2, $3, $4, $5, $6)
     ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, media_type = EXCLUDED.media_type,
       direction = EXCLUDED.direction, active = EXCLUDED.active, time_zone = EXCLUDED.time_zone,
       updated_at = now()";

const UPSERT_AGENT: &str = "INSERT INTO agents (id, username, active) VALUES ($1, $2, $3)
     ON CONFLICT (id) DO UPDATE SET username = EXCLUDED.username, active = EXCLUDED.active,
       updated_at = now()";

impl Store {
    pub async fn upsert_skill(&self, skill: &Skill) -> Result<(), StoreError> {
        let mut conn = self.pool.acquire().await?;
        upsert_skill(&mut conn, skill).await
    }

    pub async fn upsert_agent(&self, agent: &Agent) -> Result<(), StoreError> {
        let mut conn = self.pool.acquire().await?;
        upsert_agent(&mut conn, agent).await
    }

    pub async fn skill(&self, id: SkillId) -> Result<Option<Skill>, StoreError> {
        let row = sqlx::query(
            "SELECT id, name, media_type, direction, active, time_zone FROM skills WHERE id = $1",
        )
        .bind(id.get())
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| skill_from_row(&r, "")).transpose()
    }

    pub async fn agent(&self, id: AgentId) -> Result<Option<Agent>, StoreError> {
        let row = sqlx::query("SELECT id, username, active FROM agents WHERE id = $1")
            .bind(id.get())
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| agent_from_row(&r, "")).transpose()
    }

    /// Upserts all of them in one transaction: an import applies whole or not at all.
    pub async fn import_directory(
        &self,
        skills: &[Skill],
        agents: &[Agent],
    ) -> Result<ImportSummary, StoreError> {
        let mut tx = self.pool.begin().await?;
        for skill in skills {
            upsert_skill(&mut tx, skill).await?;
        }
        for agent in agents {
            upsert_agent(&mut tx, agent).await?;
        }
        tx.commit().await?;
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
