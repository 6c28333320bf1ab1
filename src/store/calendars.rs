//! Calendars (`calendars`): named closed dates and special hours, assigned to skills by name.

use sqlx::types::Json;

use super::{Store, StoreError};
use crate::domain::{Calendar, CalendarDayJson, CalendarJson};

impl Store {
    /// Creates or replaces a calendar; every daemon reads it with its skills from then on.
    pub async fn put_calendar(&self, calendar: &Calendar) -> Result<(), StoreError> {
        let json = calendar.to_json();
        sqlx::query!(
            "INSERT INTO calendars (name, time_zone, days) VALUES ($1, $2, $3)
             ON CONFLICT (name) DO UPDATE SET time_zone = EXCLUDED.time_zone,
                 days = EXCLUDED.days, updated_at = now()",
            &calendar.name,
            &json.time_zone,
            Json(&json.days) as _
        )
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn calendar(&self, name: &str) -> Result<Option<Calendar>, StoreError> {
        let row = sqlx::query!(
            r#"SELECT name, time_zone, days AS "days: Json<Vec<CalendarDayJson>>"
               FROM calendars WHERE name = $1"#,
            name
        )
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            Calendar::parse(
                &r.name,
                &CalendarJson {
                    time_zone: r.time_zone,
                    days: r.days.0,
                },
            )
            .map_err(|e| StoreError::Corrupt(format!("calendar {}: {e}", r.name)))
        })
        .transpose()
    }

    /// The ids of the skills a calendar is assigned to.
    pub async fn skills_with_calendar(&self, name: &str) -> Result<Vec<i64>, StoreError> {
        Ok(sqlx::query_scalar!(
            "SELECT id FROM skills WHERE routing->>'calendar' = $1 ORDER BY id",
            name
        )
        .fetch_all(&self.pool)
        .await?)
    }

    /// Deletes a calendar no skill uses; false when there is none by that name. One a skill
    /// uses is a conflict naming the skills (unassign it first).
    pub async fn delete_calendar(&self, name: &str) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let users: Vec<i64> = sqlx::query_scalar!(
            "SELECT id FROM skills WHERE routing->>'calendar' = $1 ORDER BY id FOR SHARE",
            name
        )
        .fetch_all(&mut *tx)
        .await?;
        if !users.is_empty() {
            let ids: Vec<String> = users.iter().map(i64::to_string).collect();
            return Err(StoreError::Conflict(format!(
                "calendar `{name}` is assigned to skills {}: assign them another (or none) first",
                ids.join(", ")
            )));
        }
        let done = sqlx::query!("DELETE FROM calendars WHERE name = $1", name)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(done.rows_affected() == 1)
    }
}
