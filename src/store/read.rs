//! Reading callbacks: one, a page of the list, a page of its history.

use super::record::{CallbackRow, EventRecord, EventRow};
use super::{Store, StoreError};
use crate::domain::{AgentId, Callback, CallbackId, CallbackState, SkillId};
use chrono::{DateTime, Utc};

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
    /// Only this caller ID (E.164).
    pub caller_id: Option<String>,
    /// Only requests from this number (E.164).
    pub orig_number: Option<String>,
    /// The caller's skill allow-list, when it has one.
    pub allowed_skills: Option<Vec<SkillId>>,
    /// Resume after this `(due_at, id)` position (in priority order, with `after_priority`).
    pub after: Option<(DateTime<Utc>, CallbackId)>,
    /// List in base-priority order (highest first), then due order.
    pub by_priority: bool,
    /// In priority order: the priority of the `after` position.
    pub after_priority: Option<u32>,
    pub limit: u32,
}

impl Store {
    pub async fn callback(&self, id: CallbackId) -> Result<Option<Callback>, StoreError> {
        let row = sqlx::query_as!(
            CallbackRow,
            "SELECT c.id, c.state, c.first_name, c.last_name, c.phone_number, c.skill_id,
                    c.target_agent_id, c.notes, c.time_zone, c.scheduled_for, c.due_at,
                    c.attempt, c.dispatched_at, c.last_error, c.created_by, c.created_at,
                    c.updated_at, c.expires_at, c.dial_failures, c.last_outcome,
                    c.fallback_due_at, c.fell_back_at, c.caller_id, c.orig_number, c.priority, c.target_agent_ids, c.ownership_seconds, c.number
             FROM callbacks c WHERE c.id = $1",
            id.as_uuid()
        )
        .fetch_optional(&self.pool)
        .await?;
        row.map(Callback::try_from).transpose()
    }

    /// The callback with this number (its second, numeric id), if there is one.
    pub async fn callback_of_number(&self, number: i64) -> Result<Option<CallbackId>, StoreError> {
        // The number index skips callbacks in flight (see migration 0029): those few are
        // read through their own index, only when the first branch finds nothing.
        let id = sqlx::query_scalar!(
            r#"(SELECT id AS "id!" FROM callbacks
                WHERE number = $1 AND state NOT IN ('dispatched', 'accepted'))
               UNION ALL
               (SELECT id FROM callbacks
                WHERE number = $1 AND state IN ('dispatched', 'accepted'))
               LIMIT 1"#,
            number
        )
        .fetch_optional(&self.pool)
        .await?;
        Ok(id.map(CallbackId::from_uuid))
    }

    /// One page in `(due_at, id)` order (or in priority order, `by_priority`).
    pub async fn list_callbacks(
        &self,
        filter: &CallbackFilter,
    ) -> Result<Vec<Callback>, StoreError> {
        if filter.by_priority {
            return self.list_callbacks_by_priority(filter).await;
        }
        let allowed: Option<Vec<i64>> = filter
            .allowed_skills
            .as_ref()
            .map(|ids| ids.iter().map(|id| id.get()).collect());
        let last_name_prefix = filter.last_name_prefix.as_ref().map(|p| {
            // LIKE's wildcards in a name are literal.
            let escaped = p
                .to_lowercase()
                .replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_");
            format!("{escaped}%")
        });
        let rows = sqlx::query_as!(
            CallbackRow,
            "SELECT c.id, c.state, c.first_name, c.last_name, c.phone_number, c.skill_id,
                    c.target_agent_id, c.notes, c.time_zone, c.scheduled_for, c.due_at,
                    c.attempt, c.dispatched_at, c.last_error, c.created_by, c.created_at,
                    c.updated_at, c.expires_at, c.dial_failures, c.last_outcome,
                    c.fallback_due_at, c.fell_back_at, c.caller_id, c.orig_number, c.priority, c.target_agent_ids, c.ownership_seconds, c.number
             FROM callbacks c
             WHERE ($1::text IS NULL OR c.state = $1)
               AND ($2::bigint IS NULL OR c.skill_id = $2)
               AND ($3::bigint IS NULL OR c.target_agent_id = $3)
               AND ($4::timestamptz IS NULL OR c.due_at < $4)
               AND ($5::timestamptz IS NULL OR c.due_at >= $5)
               AND ($6::timestamptz IS NULL OR (c.due_at, c.id) > ($6, $7::uuid))
               AND ($8::bigint[] IS NULL OR c.skill_id = ANY ($8))
               AND ($10::text IS NULL OR c.phone_number = $10)
               AND ($11::text IS NULL OR lower(c.last_name) LIKE $11)
               AND ($12::text IS NULL OR c.caller_id = $12)
               AND ($13::text IS NULL OR c.orig_number = $13)
               -- A search reads the search index (callbacks not in flight) and the ones in
               -- flight, instead of walking the due order through every callback.
               AND (($10::text IS NULL AND $11::text IS NULL)
                    OR c.state NOT IN ('dispatched', 'accepted')
                    OR c.state IN ('dispatched', 'accepted'))
             ORDER BY c.due_at, c.id
             LIMIT $9",
            filter.state.map(CallbackState::as_str),
            filter.skill_id.map(SkillId::get),
            filter.agent_id.map(AgentId::get),
            filter.due_before,
            filter.due_after,
            filter.after.map(|(due_at, _)| due_at),
            filter.after.map(|(_, id)| id.as_uuid()),
            allowed.as_deref(),
            i64::from(filter.limit),
            filter.phone_number.as_deref(),
            last_name_prefix,
            filter.caller_id.as_deref(),
            filter.orig_number.as_deref(),
        )
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(Callback::try_from).collect()
    }

    /// One page in `(priority DESC, due_at, id)` order: the list's filters, written again
    /// because a checked statement is one literal, and apart from the due order so that the
    /// due order keeps its index walk (this one sorts what the filters select).
    async fn list_callbacks_by_priority(
        &self,
        filter: &CallbackFilter,
    ) -> Result<Vec<Callback>, StoreError> {
        let allowed: Option<Vec<i64>> = filter
            .allowed_skills
            .as_ref()
            .map(|ids| ids.iter().map(|id| id.get()).collect());
        let rows = sqlx::query_as!(
            CallbackRow,
            "SELECT c.id, c.state, c.first_name, c.last_name, c.phone_number, c.skill_id,
                    c.target_agent_id, c.notes, c.time_zone, c.scheduled_for, c.due_at,
                    c.attempt, c.dispatched_at, c.last_error, c.created_by, c.created_at,
                    c.updated_at, c.expires_at, c.dial_failures, c.last_outcome,
                    c.fallback_due_at, c.fell_back_at, c.caller_id, c.orig_number, c.priority, c.target_agent_ids, c.ownership_seconds, c.number
             FROM callbacks c
             WHERE ($1::text IS NULL OR c.state = $1)
               AND ($2::bigint IS NULL OR c.skill_id = $2)
               AND ($3::bigint IS NULL OR c.target_agent_id = $3)
               AND ($4::timestamptz IS NULL OR c.due_at < $4)
               AND ($5::timestamptz IS NULL OR c.due_at >= $5)
               AND ($6::timestamptz IS NULL OR c.priority < $10
                    OR (c.priority = $10 AND (c.due_at, c.id) > ($6, $7::uuid)))
               AND ($8::bigint[] IS NULL OR c.skill_id = ANY ($8))
               AND ($11::text IS NULL OR c.phone_number = $11)
               AND ($12::text IS NULL OR c.caller_id = $12)
               AND ($13::text IS NULL OR c.orig_number = $13)
             ORDER BY c.priority DESC, c.due_at, c.id
             LIMIT $9",
            filter.state.map(CallbackState::as_str),
            filter.skill_id.map(SkillId::get),
            filter.agent_id.map(AgentId::get),
            filter.due_before,
            filter.due_after,
            filter.after.map(|(due_at, _)| due_at),
            filter.after.map(|(_, id)| id.as_uuid()),
            allowed.as_deref(),
            i64::from(filter.limit),
            filter
                .after_priority
                .map(|p| i32::try_from(p).unwrap_or(i32::MAX))
                .unwrap_or(i32::MAX),
            filter.phone_number.as_deref(),
            filter.caller_id.as_deref(),
            filter.orig_number.as_deref(),
        )
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(Callback::try_from).collect()
    }

    /// The ids and states of what `filter` selects, in the list's order: all a bulk change
    /// needs to decide and to lock each callback, without holding thousands of whole rows
    /// (notes up to 4,000 characters each) per request. The filter is the list's, written
    /// again because a checked statement is one literal.
    pub async fn list_callback_states(
        &self,
        filter: &CallbackFilter,
    ) -> Result<Vec<(CallbackId, CallbackState)>, StoreError> {
        let allowed: Option<Vec<i64>> = filter
            .allowed_skills
            .as_ref()
            .map(|ids| ids.iter().map(|id| id.get()).collect());
        let rows = sqlx::query!(
            "SELECT c.id, c.state
             FROM callbacks c
             WHERE ($1::text IS NULL OR c.state = $1)
               AND ($2::bigint IS NULL OR c.skill_id = $2)
               AND ($3::bigint IS NULL OR c.target_agent_id = $3)
               AND ($4::timestamptz IS NULL OR c.due_at < $4)
               AND ($5::timestamptz IS NULL OR c.due_at >= $5)
               AND ($6::bigint[] IS NULL OR c.skill_id = ANY ($6))
               AND ($8::text IS NULL OR c.phone_number = $8)
               AND ($9::text IS NULL OR c.caller_id = $9)
               AND ($10::text IS NULL OR c.orig_number = $10)
             ORDER BY c.due_at, c.id
             LIMIT $7",
            filter.state.map(CallbackState::as_str),
            filter.skill_id.map(SkillId::get),
            filter.agent_id.map(AgentId::get),
            filter.due_before,
            filter.due_after,
            allowed.as_deref(),
            i64::from(filter.limit),
            filter.phone_number.as_deref(),
            filter.caller_id.as_deref(),
            filter.orig_number.as_deref(),
        )
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|row| {
                let state = row.state.parse().map_err(StoreError::Corrupt)?;
                Ok((CallbackId::from_uuid(row.id), state))
            })
            .collect()
    }

    /// Up to `limit` events of a callback after the event `after` (by id), oldest first.
    pub async fn events(
        &self,
        id: CallbackId,
        after: Option<i64>,
        limit: u32,
    ) -> Result<Vec<EventRecord>, StoreError> {
        let rows = sqlx::query_as!(
            EventRow,
            "SELECT id, at, actor, kind, details FROM callback_events
             WHERE callback_id = $1 AND id > $2 ORDER BY id LIMIT $3",
            id.as_uuid(),
            after.unwrap_or(0),
            i64::from(limit)
        )
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(EventRecord::try_from).collect()
    }
}
