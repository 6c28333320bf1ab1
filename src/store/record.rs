//! Rows as PostgreSQL gives them, and their mapping to domain types. A stored value that
//! is not valid (a state or time zone the code does not know) is `StoreError::Corrupt`.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde_json::Value;
use sqlx::FromRow;
use sqlx::postgres::PgRow;
use uuid::Uuid;

use super::StoreError;
use crate::domain::{AgentId, Callback, CallbackId, EventKind, PhoneNumber, SkillId};

/// The callback columns [`CallbackRow`] reads, for the table aliased `c`.
macro_rules! callback_columns {
    () => {
        "c.id, c.state, c.first_name, c.last_name, c.phone_number, c.skill_id, c.target_agent_id, \
         c.notes, c.time_zone, c.scheduled_for, c.due_at, c.attempt, c.dispatched_at, \
         c.last_error, c.created_by, c.created_at, c.updated_at, c.expires_at, c.dial_failures, \
         c.last_outcome, c.fallback_due_at, c.fell_back_at"
    };
}

/// A `callbacks` row.
#[derive(FromRow)]
struct CallbackRow {
    id: Uuid,
    state: String,
    first_name: String,
    last_name: String,
    phone_number: String,
    skill_id: i64,
    target_agent_id: Option<i64>,
    notes: String,
    time_zone: Option<String>,
    scheduled_for: DateTime<Utc>,
    due_at: DateTime<Utc>,
    attempt: i32,
    dispatched_at: Option<DateTime<Utc>>,
    last_error: Option<String>,
    created_by: String,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    expires_at: Option<DateTime<Utc>>,
    dial_failures: i32,
    last_outcome: Option<String>,
    fallback_due_at: Option<DateTime<Utc>>,
    fell_back_at: Option<DateTime<Utc>>,
}

impl TryFrom<CallbackRow> for Callback {
    type Error = StoreError;

    fn try_from(row: CallbackRow) -> Result<Self, StoreError> {
        let corrupt = |e: String| StoreError::Corrupt(format!("callback {}: {e}", row.id));
        Ok(Self {
            id: CallbackId::from_uuid(row.id),
            state: row.state.parse().map_err(corrupt)?,
            phone_number: PhoneNumber::from_stored(row.phone_number),
            skill_id: SkillId::new(row.skill_id).map_err(|e| corrupt(e.to_string()))?,
            target_agent_id: row
                .target_agent_id
                .map(AgentId::new)
                .transpose()
                .map_err(|e| corrupt(e.to_string()))?,
            time_zone: row
                .time_zone
                .map(|tz| {
                    tz.parse::<Tz>()
                        .map_err(|_| corrupt(format!("time zone `{tz}`")))
                })
                .transpose()?,
            first_name: row.first_name,
            last_name: row.last_name,
            notes: row.notes,
            scheduled_for: row.scheduled_for,
            due_at: row.due_at,
            attempt: row.attempt,
            dispatched_at: row.dispatched_at,
            last_error: row.last_error,
            created_by: row.created_by,
            created_at: row.created_at,
            updated_at: row.updated_at,
            expires_at: row.expires_at,
            dial_failures: row.dial_failures,
            last_outcome: row.last_outcome,
            fallback_due_at: row.fallback_due_at,
            fell_back_at: row.fell_back_at,
        })
    }
}

/// Reads a callback from a row holding [`callback_columns!`].
pub(super) fn callback_from_row(row: &PgRow) -> Result<Callback, StoreError> {
    CallbackRow::from_row(row)?.try_into()
}

/// One entry of a callback's history.
#[derive(Debug, Clone, FromRow)]
pub struct EventRecord {
    pub id: i64,
    pub at: DateTime<Utc>,
    pub actor: String,
    #[sqlx(try_from = "String")]
    pub kind: EventKind,
    pub details: Value,
}
