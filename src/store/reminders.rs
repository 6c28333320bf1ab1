//! The reminder timer's reads and writes: a skill's pending callbacks inside its reminder
//! window, and the reminders sent or skipped, each written only if no other daemon's timer
//! moved the callback on first.

use chrono::{DateTime, Utc};
use serde_json::Value;
use uuid::Uuid;

use super::{Store, StoreError};
use crate::domain::{EventKind, SkillId};

/// At most this many callbacks per skill and run.
const SLICE: i64 = 1000;

/// A pending callback inside its skill's reminder window.
#[derive(Debug, Clone)]
pub struct ReminderCandidate {
    pub id: Uuid,
    pub due_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub reminders_done: i16,
    pub phone_number: String,
    pub first_name: String,
    pub last_name: String,
    pub time_zone: Option<String>,
    /// Listed on the do-not-call list for its skill or every skill.
    pub listed: bool,
}

/// A reminder step to record: from `expected` done to `done`, with the event to write when
/// one is sent.
#[derive(Debug, Clone)]
pub struct ReminderWrite {
    pub id: Uuid,
    pub expected: i16,
    pub done: i16,
    pub event: Option<Value>,
}

impl Store {
    /// The skill's pending callbacks due within `horizon_seconds` that have reminders left
    /// (`count`: how many the skill has).
    pub async fn reminder_candidates(
        &self,
        skill: SkillId,
        horizon_seconds: u32,
        count: usize,
    ) -> Result<Vec<ReminderCandidate>, StoreError> {
        Ok(sqlx::query_as!(
            ReminderCandidate,
            r#"SELECT c.id, c.due_at, c.created_at, c.reminders_done, c.phone_number,
                      c.first_name, c.last_name, c.time_zone,
                      EXISTS (SELECT 1 FROM dnc_entries d
                              WHERE d.phone_number = c.phone_number
                                AND (d.skill_id IS NULL OR d.skill_id = c.skill_id)
                                AND (d.expires_at IS NULL OR d.expires_at > now())) AS "listed!"
               FROM callbacks c
               WHERE c.skill_id = $1 AND c.state = 'pending' AND c.due_at > now()
                 AND c.due_at <= now() + make_interval(secs => $2) AND c.reminders_done < $3
               ORDER BY c.due_at LIMIT $4"#,
            skill.get(),
            f64::from(horizon_seconds),
            i16::try_from(count).unwrap_or(i16::MAX),
            SLICE
        )
        .fetch_all(&self.pool)
        .await?)
    }

    /// Records reminder steps; a callback no longer pending, or moved on by another timer,
    /// is left alone. Returns how many reminders were sent.
    pub async fn record_reminders(&self, writes: &[ReminderWrite]) -> Result<u64, StoreError> {
        if writes.is_empty() {
            return Ok(0);
        }
        let ids: Vec<Uuid> = writes.iter().map(|w| w.id).collect();
        let expected: Vec<i16> = writes.iter().map(|w| w.expected).collect();
        let done: Vec<i16> = writes.iter().map(|w| w.done).collect();
        let events: Vec<Option<Value>> = writes.iter().map(|w| w.event.clone()).collect();
        let sent = sqlx::query_scalar!(
            r#"WITH input AS (
                SELECT * FROM unnest($1::uuid[], $2::int2[], $3::int2[], $4::jsonb[])
                    AS i(id, expected, done, details)
             ), moved AS (
                UPDATE callbacks c SET reminders_done = i.done
                FROM input i
                WHERE c.id = i.id AND c.reminders_done = i.expected AND c.state = 'pending'
                RETURNING c.id, i.details
             ), sent AS (
                INSERT INTO callback_events (callback_id, actor, kind, details)
                SELECT id, 'timer', $5, details FROM moved WHERE details IS NOT NULL
                RETURNING 1
             )
             SELECT count(*) AS "sent!" FROM sent"#,
            &ids,
            &expected,
            &done,
            &events as &[Option<Value>],
            EventKind::Reminder.as_str()
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(u64::try_from(sent).unwrap_or_default())
    }
}
