//! The event stream's outbox: every event row enters `event_outbox` in the transaction that
//! writes it (a trigger); the relay reads entries in id order, under a lock only one daemon
//! holds at a time, and deletes those the broker took.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::{Postgres, Transaction};
use uuid::Uuid;

use super::{Store, StoreError};

/// One outbox entry with its event (`None` fields: the event was purged meanwhile).
#[derive(Debug, Clone)]
pub struct OutboxEvent {
    pub outbox_id: i64,
    pub event_id: i64,
    pub callback_id: Uuid,
    pub at: Option<DateTime<Utc>>,
    pub actor: Option<String>,
    pub kind: Option<String>,
    pub details: Option<Value>,
    pub skill_id: Option<i64>,
}

/// A relay batch: the transaction holding the relay's lock.
pub struct RelayBatch {
    tx: Transaction<'static, Postgres>,
}

impl Store {
    /// Begins a relay batch, unless another daemon's relay holds the outbox (`None`): one
    /// relay at a time keeps the order of each callback's events.
    pub async fn begin_relay(&self) -> Result<Option<RelayBatch>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let locked = sqlx::query_scalar!(
            r#"SELECT pg_try_advisory_xact_lock(hashtextextended('callbackd/events-relay', 0)) AS "locked!""#
        )
        .fetch_one(&mut *tx)
        .await?;
        Ok(locked.then_some(RelayBatch { tx }))
    }

    /// Outbox entries waiting (for status and tests).
    pub async fn outbox_waiting(&self) -> Result<i64, StoreError> {
        Ok(
            sqlx::query_scalar!(r#"SELECT count(*) AS "n!" FROM event_outbox"#)
                .fetch_one(&self.pool)
                .await?,
        )
    }
}

impl RelayBatch {
    /// The next `limit` entries, oldest first, with their events and skills.
    pub async fn next(&mut self, limit: i64) -> Result<Vec<OutboxEvent>, StoreError> {
        Ok(sqlx::query_as!(
            OutboxEvent,
            r#"SELECT o.id AS outbox_id, o.event_id, o.callback_id,
                      e.at AS "at?", e.actor AS "actor?", e.kind AS "kind?",
                      e.details AS "details?", c.skill_id AS "skill_id?"
               FROM event_outbox o
               LEFT JOIN callback_events e ON e.callback_id = o.callback_id AND e.id = o.event_id
               LEFT JOIN callbacks c ON c.id = o.callback_id
               ORDER BY o.id LIMIT $1"#,
            limit
        )
        .fetch_all(&mut *self.tx)
        .await?)
    }

    /// Removes entries that were published (or whose event is gone).
    pub async fn sent(&mut self, outbox_ids: &[i64]) -> Result<(), StoreError> {
        if outbox_ids.is_empty() {
            return Ok(());
        }
        sqlx::query!("DELETE FROM event_outbox WHERE id = ANY($1)", outbox_ids)
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    pub async fn commit(self) -> Result<(), StoreError> {
        self.tx.commit().await?;
        Ok(())
    }
}
