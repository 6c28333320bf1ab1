//! The event stream's outbox: every event row enters `event_outbox` in the transaction that
//! writes it (a trigger); the relay reads entries in id order, under a lock only one daemon
//! holds at a time, and deletes those the broker took.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::{Postgres, Transaction};
use uuid::Uuid;

use super::webhooks::FanOut;
use super::{Store, StoreError};
use crate::domain::EventKind;

/// One outbox entry with its event (the outbox carries the event's content; `skill_id` is
/// `None` when the callback was purged meanwhile).
#[derive(Debug, Clone)]
pub struct OutboxEvent {
    pub outbox_id: i64,
    pub event_id: i64,
    pub callback_id: Uuid,
    pub at: DateTime<Utc>,
    pub actor: String,
    pub kind: String,
    pub details: Value,
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
    /// The throughput chart's buckets from `since` on: `(bucket, kind, count)`.
    pub async fn throughput_since(
        &self,
        since: DateTime<Utc>,
    ) -> Result<Vec<(DateTime<Utc>, String, i64)>, StoreError> {
        Ok(sqlx::query!(
            "SELECT bucket, kind, n FROM event_throughput WHERE bucket >= $1 ORDER BY bucket",
            since
        )
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .map(|r| (r.bucket, r.kind, r.n))
        .collect())
    }

    /// Forgets throughput older than `days`.
    pub async fn purge_throughput(&self, days: u32) -> Result<u64, StoreError> {
        Ok(sqlx::query!(
            "DELETE FROM event_throughput WHERE bucket < now() - make_interval(days => $1)",
            i32::try_from(days).unwrap_or(i32::MAX)
        )
        .execute(&self.pool)
        .await?
        .rows_affected())
    }

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
            // The skill: from the live partition first (one probe; most events are of
            // callbacks still live), else from any day's.
            r#"SELECT o.id AS outbox_id, o.event_id, o.callback_id, o.at, o.actor, o.kind,
                      o.details, c.skill_id AS "skill_id?"
               FROM event_outbox o
               LEFT JOIN LATERAL (
                   (SELECT l.skill_id FROM callbacks l
                    WHERE l.id = o.callback_id AND l.ended_on = 'infinity')
                   UNION ALL
                   (SELECT e.skill_id FROM callbacks e
                    WHERE e.id = o.callback_id AND e.ended_on < 'infinity')
                   LIMIT 1) AS c ON true
               ORDER BY o.id LIMIT $1"#,
            limit
        )
        .fetch_all(&mut *self.tx)
        .await?)
    }

    /// One delivery per matching active subscription for each event (the relay calls it
    /// with the entries it removes, in the same transaction). Returns how many.
    pub async fn fan_out(&mut self, events: &[FanOut<'_>]) -> Result<u64, StoreError> {
        if events.is_empty() {
            return Ok(0);
        }
        let ids: Vec<i64> = events.iter().map(|e| e.event_id).collect();
        let callbacks: Vec<Uuid> = events.iter().map(|e| e.callback_id).collect();
        let kinds: Vec<&str> = events.iter().map(|e| e.kind).collect();
        let skills: Vec<Option<i64>> = events.iter().map(|e| e.skill_id).collect();
        let payloads: Vec<&str> = events.iter().map(|e| e.payload).collect();
        let done = sqlx::query!(
            "INSERT INTO webhook_deliveries (webhook, event_id, callback_id, kind, payload)
             SELECT w.name, e.event_id, e.callback_id, e.kind, e.payload::jsonb
             FROM unnest($1::int8[], $2::uuid[], $3::text[], $4::int8[], $5::text[])
                  WITH ORDINALITY AS e(event_id, callback_id, kind, skill_id, payload, n)
             JOIN webhooks w ON w.active AND w.paused_at IS NULL
              AND (cardinality(w.kinds) = 0 OR e.kind = ANY(w.kinds))
              AND (cardinality(w.skill_ids) = 0 OR e.skill_id = ANY(w.skill_ids))
             ORDER BY e.n, w.name",
            &ids,
            &callbacks,
            &kinds as &[&str],
            &skills as &[Option<i64>],
            &payloads as &[&str]
        )
        .execute(&mut *self.tx)
        .await?;
        Ok(done.rows_affected())
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

    /// Adds the batch's counts to the throughput chart's five-minute buckets.
    pub async fn count_throughput(
        &mut self,
        counts: &[(DateTime<Utc>, EventKind, i64)],
    ) -> Result<(), StoreError> {
        if counts.is_empty() {
            return Ok(());
        }
        let buckets: Vec<DateTime<Utc>> = counts.iter().map(|c| c.0).collect();
        let kinds: Vec<&str> = counts.iter().map(|c| c.1.as_str()).collect();
        let ns: Vec<i64> = counts.iter().map(|c| c.2).collect();
        sqlx::query!(
            "INSERT INTO event_throughput (bucket, kind, n)
             SELECT * FROM UNNEST($1::timestamptz[], $2::text[], $3::bigint[])
             ON CONFLICT (bucket, kind) DO UPDATE SET n = event_throughput.n + EXCLUDED.n",
            &buckets,
            &kinds as &[&str],
            &ns
        )
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    pub async fn commit(self) -> Result<(), StoreError> {
        self.tx.commit().await?;
        Ok(())
    }
}
