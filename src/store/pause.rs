//! Pausing and resuming a skill's dispatch: the pause is written into the skill's routing
//! rules (every daemon reads it with the skill, its cache told by the directory's
//! notification), and audited.

use super::cache::Table;
use super::{Store, StoreError};
use crate::domain::SkillId;

impl Store {
    /// Pauses a skill's dispatch; false when there is no such skill. Pausing a paused skill
    /// keeps the first pause.
    pub async fn pause_skill(
        &self,
        skill: SkillId,
        actor: &str,
        reason: &str,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query!(
            "UPDATE skills
             SET routing = COALESCE(routing, '{}'::jsonb) || jsonb_build_object('paused',
                     jsonb_build_object('at', now(), 'by', $2::text, 'reason', $3::text)),
                 updated_at = now()
             WHERE id = $1 AND NOT COALESCE(routing ? 'paused', false)",
            skill.get(),
            actor,
            reason
        )
        .execute(&mut *tx)
        .await?;
        self.finish_pause(tx, skill, actor, "paused", reason, done.rows_affected())
            .await
    }

    /// Resumes a skill's dispatch; false when there is no such skill.
    pub async fn resume_skill(
        &self,
        skill: SkillId,
        actor: &str,
        reason: &str,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query!(
            "UPDATE skills SET routing = NULLIF(routing - 'paused', '{}'::jsonb), updated_at = now()
             WHERE id = $1 AND COALESCE(routing ? 'paused', false)",
            skill.get()
        )
        .execute(&mut *tx)
        .await?;
        self.finish_pause(tx, skill, actor, "resumed", reason, done.rows_affected())
            .await
    }

    /// After a pause or resume statement: audits it when it changed the skill, commits, and
    /// says whether the skill exists (a skill already in that state is left as it is).
    async fn finish_pause(
        &self,
        mut tx: sqlx::Transaction<'static, sqlx::Postgres>,
        skill: SkillId,
        actor: &str,
        kind: &str,
        reason: &str,
        changed: u64,
    ) -> Result<bool, StoreError> {
        let exists = if changed == 1 {
            sqlx::query!(
                "INSERT INTO skill_events (skill_id, actor, kind, reason) VALUES ($1, $2, $3, $4)",
                skill.get(),
                actor,
                kind,
                reason
            )
            .execute(&mut *tx)
            .await?;
            true
        } else {
            sqlx::query_scalar!(
                r#"SELECT EXISTS (SELECT 1 FROM skills WHERE id = $1) AS "exists!""#,
                skill.get()
            )
            .fetch_one(&mut *tx)
            .await?
        };
        tx.commit().await?;
        self.cache.invalidate(Some(Table::Skills));
        Ok(exists)
    }

    /// A skill's pending callbacks due within the next hour (what a pause holds first).
    pub async fn due_next_hour(&self, skill: SkillId) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar!(
            r#"SELECT count(*) AS "n!" FROM callbacks
               WHERE skill_id = $1 AND state = 'pending' AND due_at <= now() + interval '1 hour'"#,
            skill.get()
        )
        .fetch_one(&self.pool)
        .await?)
    }
}
