//! Rows as PostgreSQL gives them, and their mapping to domain types. A stored value that
//! is not valid (a state or time zone the code does not know) is `StoreError::Corrupt`.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde_json::Value;
use sqlx::FromRow;
use uuid::Uuid;

use super::StoreError;
use crate::domain::{AgentId, Callback, CallbackId, EventKind, PhoneNumber, SkillId};

/// A `callbacks` row: what `query_as!(CallbackRow, …)` reads (the columns `c.id, c.state,
/// …, c.fell_back_at` of a table aliased `c`), or a claim's row by name (`FromRow`).
#[derive(FromRow)]
pub(super) struct CallbackRow {
    pub id: Uuid,
    pub state: String,
    pub first_name: String,
    pub last_name: String,
    pub phone_number: String,
    pub skill_id: i64,
    pub target_agent_id: Option<i64>,
    pub notes: String,
    pub time_zone: Option<String>,
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
    pub fallback_due_at: Option<DateTime<Utc>>,
    pub fell_back_at: Option<DateTime<Utc>>,
    pub caller_id: Option<String>,
    pub orig_number: Option<String>,
    pub priority: i32,
    pub target_agent_ids: Option<Vec<i64>>,
    pub ownership_seconds: Option<i32>,
    pub number: i64,
}

impl TryFrom<CallbackRow> for Callback {
    type Error = StoreError;

    fn try_from(row: CallbackRow) -> Result<Self, StoreError> {
        let corrupt = |e: String| StoreError::Corrupt(format!("callback {}: {e}", row.id));
        let agent = |id: i64| AgentId::new(id).map_err(|e| corrupt(e.to_string()));
        let target_agent_ids = match &row.target_agent_ids {
            Some(list) => list.iter().copied().map(agent).collect::<Result<_, _>>()?,
            None => row
                .target_agent_id
                .map(agent)
                .transpose()?
                .into_iter()
                .collect(),
        };
        Ok(Self {
            target_agent_ids,
            ownership_seconds: row.ownership_seconds.and_then(|s| u32::try_from(s).ok()),
            id: CallbackId::from_uuid(row.id),
            number: row.number,
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
            caller_id: row.caller_id.map(PhoneNumber::from_stored),
            orig_number: row.orig_number.map(PhoneNumber::from_stored),
            priority: u32::try_from(row.priority).unwrap_or(0),
        })
    }
}

/// One entry of a callback's history.
#[derive(Debug, Clone)]
pub struct EventRecord {
    pub id: i64,
    pub at: DateTime<Utc>,
    pub actor: String,
    pub kind: EventKind,
    pub details: Value,
}

/// A `callback_events` row, as `query_as!` reads it.
pub(super) struct EventRow {
    pub id: i64,
    pub at: DateTime<Utc>,
    pub actor: String,
    pub kind: String,
    pub details: Value,
}

impl TryFrom<EventRow> for EventRecord {
    type Error = StoreError;

    fn try_from(row: EventRow) -> Result<Self, StoreError> {
        Ok(Self {
            // As `FromRow`'s `try_from` reported it: a column that did not decode.
            kind: EventKind::try_from(row.kind).map_err(|e| {
                StoreError::Database(sqlx::Error::ColumnDecode {
                    index: "kind".to_owned(),
                    source: e.into(),
                })
            })?,
            id: row.id,
            at: row.at,
            actor: row.actor,
            details: row.details,
        })
    }
}
