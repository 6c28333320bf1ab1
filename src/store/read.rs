//! Reading callbacks: one, a page of the list, a page of its history.

use chrono::{DateTime, Utc};
use sqlx::FromRow;

use super::record::{EventRecord, callback_from_row};
use super::{Store, StoreError};
use crate::domain::{AgentId, Callback, CallbackId, CallbackState, SkillId};

#[derive(Debug, Clone, Default)]
pub struct CallbackFilter {
    pub state: Option<CallbackState>,
    pub skill_id: Option<SkillId>,
    pub agent_id: Option<AgentId>,
    /// Exclusive.
    pub due_before: Option<DateTime<Utc>>,
    /// Inclusive.
    pub due_after: Option<DateTime<Utc>>,
    /// Only this number (E.164).
    pub phone_number: Option<String>,
    /// Only last names starting with this (case-insensitive).
    pub last_name_prefix: Option<String>,
    /// The caller's skill allow-list, when it has one.
    pub allowed_skills: Option<Vec<SkillId>>,
    /// Resume after this `(due_at, id)` position.
    pub after: Option<(DateTime<Utc>, CallbackId)>,
    pub limit: u32,
}

impl Store {
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
               AND ($10::text IS NULL OR c.phone_number = $10)
               AND ($11::text IS NULL OR lower(c.last_name) LIKE $11)
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
        .bind(filter.phone_number.as_deref())
        .bind(filter.last_name_prefix.as_ref().map(|p| {
            // LIKE's wildcards in a name are literal.
            let escaped = p
                .to_lowercase()
                .replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_");
            format!("{escaped}%")
        }))
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
}
