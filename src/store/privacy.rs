//! Access and erasure by phone number: everything held about a number, and the erasure of
//! its personal data from every callback, event and webhook payload, in one transaction.
//! A number is looked up by a scan of `callbacks` (privacy requests are rare; an index on
//! every callback's number would cost every create).

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::record::CallbackRow;
use super::{Store, StoreError};
use crate::domain::{Callback, CallbackId, EventKind, PhoneNumber};

/// At most this many callbacks of one number are exported.
const EXPORT_MAX: i64 = 10_000;

/// What an erasure did.
#[derive(Debug, Clone)]
pub struct Erasure {
    pub id: i64,
    pub at: DateTime<Utc>,
    /// Callbacks whose personal data was removed.
    pub callbacks: i64,
    pub dnc_entries_removed: i64,
}

/// An earlier erasure of the same number (found by its digest).
#[derive(Debug, Clone)]
pub struct ErasureRecord {
    pub id: i64,
    pub at: DateTime<Utc>,
    pub requested_by: String,
    pub callbacks: i32,
}

impl Store {
    /// Every callback to `number`, in any state, oldest first.
    pub async fn callbacks_of_number(
        &self,
        number: &PhoneNumber,
    ) -> Result<Vec<Callback>, StoreError> {
        sqlx::query_as!(
            CallbackRow,
            "SELECT c.id, c.state, c.first_name, c.last_name, c.phone_number, c.skill_id,
                    c.target_agent_id, c.notes, c.time_zone, c.scheduled_for, c.due_at,
                    c.attempt, c.dispatched_at, c.last_error, c.created_by, c.created_at,
                    c.updated_at, c.expires_at, c.dial_failures, c.last_outcome,
                    c.fallback_due_at, c.fell_back_at, c.caller_id, c.orig_number, c.priority,
                    c.target_agent_ids, c.ownership_seconds, c.number
             FROM callbacks c WHERE c.phone_number = $1 OR c.orig_number = $1
             ORDER BY c.created_at, c.id LIMIT $2",
            number.as_str(),
            EXPORT_MAX
        )
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .map(Callback::try_from)
        .collect()
    }

    /// The number's callbacks not yet ended — pending, or published and waiting for an
    /// outcome — to cancel before an erasure.
    pub async fn waiting_of_number(
        &self,
        number: &PhoneNumber,
    ) -> Result<Vec<CallbackId>, StoreError> {
        Ok(sqlx::query_scalar!(
            "SELECT id FROM callbacks
             WHERE phone_number = $1 AND state IN ('pending', 'dispatched', 'accepted')",
            number.as_str()
        )
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .map(CallbackId::from_uuid)
        .collect())
    }

    /// Earlier erasures of the number whose SHA-256 is `digest`.
    pub async fn erasures_of(&self, digest: &[u8]) -> Result<Vec<ErasureRecord>, StoreError> {
        Ok(sqlx::query_as!(
            ErasureRecord,
            "SELECT id, at, requested_by, callbacks FROM privacy_erasures
             WHERE number_sha256 = $1 ORDER BY id",
            digest
        )
        .fetch_all(&self.pool)
        .await?)
    }

    /// Removes the number's personal data — names, notes, the number itself, the original
    /// number, error texts — from every callback to or from it, replaces its events'
    /// details, writes an `erased` event per callback (which the event stream and webhooks
    /// carry), drops its undelivered webhook deliveries and blanks the delivered ones'
    /// payloads, forgets its admission counts and, with `include_dnc`, its do-not-call
    /// entries and their audit; then records the erasure by `digest`. One transaction.
    pub async fn erase_number(
        &self,
        number: &PhoneNumber,
        digest: &[u8],
        actor: &str,
        reason: &str,
        cancelled: i64,
        include_dnc: bool,
    ) -> Result<Erasure, StoreError> {
        let mut tx = self.pool.begin().await?;
        let ids: Vec<Uuid> = sqlx::query_scalar!(
            "UPDATE callbacks SET first_name = '', last_name = '', notes = '', phone_number = '',
                 orig_number = NULL, last_error = NULL, erased_at = now(), updated_at = now()
             WHERE phone_number = $1 OR orig_number = $1
             RETURNING id",
            number.as_str()
        )
        .fetch_all(&mut *tx)
        .await?;
        sqlx::query!(
            "UPDATE callback_events SET details = '{\"erased\": true}'::jsonb
             WHERE callback_id = ANY($1)",
            &ids
        )
        .execute(&mut *tx)
        .await?;
        sqlx::query!(
            "DELETE FROM webhook_deliveries WHERE callback_id = ANY($1) AND state = 'pending'",
            &ids
        )
        .execute(&mut *tx)
        .await?;
        sqlx::query!(
            "UPDATE webhook_deliveries SET payload = '{\"erased\": true}'::jsonb
             WHERE callback_id = ANY($1)",
            &ids
        )
        .execute(&mut *tx)
        .await?;
        sqlx::query!(
            "DELETE FROM number_admissions WHERE phone_number = $1",
            number.as_str()
        )
        .execute(&mut *tx)
        .await?;
        let dnc_removed = if include_dnc {
            sqlx::query!(
                "DELETE FROM dnc_events WHERE phone_number = $1",
                number.as_str()
            )
            .execute(&mut *tx)
            .await?;
            sqlx::query!(
                "DELETE FROM dnc_entries WHERE phone_number = $1",
                number.as_str()
            )
            .execute(&mut *tx)
            .await?
            .rows_affected()
        } else {
            0
        };
        let callbacks = i64::try_from(ids.len()).unwrap_or(i64::MAX);
        let dnc_removed = i64::try_from(dnc_removed).unwrap_or(i64::MAX);
        let row = sqlx::query!(
            "INSERT INTO privacy_erasures
                 (number_sha256, requested_by, reason, callbacks, cancelled, dnc_entries_removed)
             VALUES ($1, $2, $3, $4, $5, $6)
             RETURNING id, at",
            digest,
            actor,
            reason,
            i32::try_from(callbacks).unwrap_or(i32::MAX),
            i32::try_from(cancelled).unwrap_or(i32::MAX),
            i32::try_from(dnc_removed).unwrap_or(i32::MAX)
        )
        .fetch_one(&mut *tx)
        .await?;
        sqlx::query!(
            "INSERT INTO callback_events (callback_id, actor, kind, details, ended_on)
             SELECT e.id, $2, $3, jsonb_build_object('erasureId', $4::bigint),
                    COALESCE((SELECT c.ended_on FROM callbacks c WHERE c.id = e.id), 'infinity')
             FROM unnest($1::uuid[]) AS e(id)",
            &ids,
            actor,
            EventKind::Erased.as_str(),
            row.id
        )
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Erasure {
            id: row.id,
            at: row.at,
            callbacks,
            dnc_entries_removed: dnc_removed,
        })
    }
}
