//! Bulk changes' progress (`bulk_changes`): written when one starts, as it goes and when it
//! ends, so that a client whose request ended first can still learn what changed.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{IdempotencyKey, Store, StoreError};
use crate::domain::{CallbackId, ResultCode};

/// A bulk change about to run.
#[derive(Debug)]
pub struct NewBulk<'a> {
    pub id: Uuid,
    pub security_user_id: i64,
    pub idempotency: Option<&'a IdempotencyKey>,
    pub action: &'a str,
    pub reason: &'a str,
    pub matched: usize,
    /// Matched but not pending: skipped from the start.
    pub skipped: usize,
}

/// One callback a bulk change could not change, and why.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BulkRefusal {
    pub callback_id: CallbackId,
    pub result: ResultCode,
    pub message: String,
}

/// Where a bulk change stands.
#[derive(Debug, Clone, Default)]
pub struct BulkProgress {
    pub changed: usize,
    pub skipped: usize,
    pub refused_count: usize,
    /// The first refusals.
    pub refused: Vec<BulkRefusal>,
}

/// A bulk change as stored.
#[derive(Debug, Clone)]
pub struct BulkRecord {
    pub id: Uuid,
    pub request_sha256: Option<[u8; 32]>,
    pub action: String,
    pub reason: String,
    pub matched: usize,
    pub progress: BulkProgress,
    pub started_at: DateTime<Utc>,
    /// When progress was last written.
    pub updated_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    /// The database's clock when this was read (to tell a stale change from a running one).
    pub read_at: DateTime<Utc>,
}

/// What starting a bulk change found.
#[derive(Debug)]
pub enum BulkBegun {
    Started,
    /// The same user's change under the same idempotency key, begun earlier.
    Existing(Box<BulkRecord>),
}

struct BulkRow {
    id: Uuid,
    request_sha256: Option<Vec<u8>>,
    action: String,
    reason: String,
    matched: i32,
    changed: i32,
    skipped: i32,
    refused_count: i32,
    refused: serde_json::Value,
    started_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    finished_at: Option<DateTime<Utc>>,
    read_at: DateTime<Utc>,
}

impl TryFrom<BulkRow> for BulkRecord {
    type Error = StoreError;

    fn try_from(row: BulkRow) -> Result<Self, StoreError> {
        let count = |n: i32| usize::try_from(n).unwrap_or(0);
        let refused = serde_json::from_value(row.refused)
            .map_err(|e| StoreError::Corrupt(format!("bulk change {}: refusals: {e}", row.id)))?;
        Ok(BulkRecord {
            id: row.id,
            request_sha256: row.request_sha256.and_then(|d| d.try_into().ok()),
            action: row.action,
            reason: row.reason,
            matched: count(row.matched),
            progress: BulkProgress {
                changed: count(row.changed),
                skipped: count(row.skipped),
                refused_count: count(row.refused_count),
                refused,
            },
            started_at: row.started_at,
            updated_at: row.updated_at,
            finished_at: row.finished_at,
            read_at: row.read_at,
        })
    }
}

fn int(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

impl Store {
    /// Records a bulk change as started; with an idempotency key the user used before, the
    /// change that key began instead (nothing written).
    pub async fn begin_bulk(&self, new: &NewBulk<'_>) -> Result<BulkBegun, StoreError> {
        let (key, digest) = match new.idempotency {
            Some(k) => (Some(k.key.as_str()), Some(&k.request_sha256[..])),
            None => (None, None),
        };
        let inserted = sqlx::query_scalar!(
            "INSERT INTO bulk_changes
                (id, security_user_id, idempotency_key, request_sha256, action, reason, matched, skipped)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
             ON CONFLICT (security_user_id, idempotency_key) DO NOTHING
             RETURNING id",
            new.id,
            new.security_user_id,
            key,
            digest,
            new.action,
            new.reason,
            int(new.matched),
            int(new.skipped)
        )
        .fetch_optional(&self.pool)
        .await?;
        if inserted.is_some() {
            return Ok(BulkBegun::Started);
        }
        match (key, self.bulk_by_key(new.security_user_id, key).await?) {
            (Some(_), Some(existing)) => Ok(BulkBegun::Existing(Box::new(existing))),
            _ => Err(StoreError::Corrupt(format!(
                "bulk change {} was neither written nor found",
                new.id
            ))),
        }
    }

    /// The user's bulk change begun with this idempotency key, if any.
    pub async fn bulk_by_key(
        &self,
        security_user_id: i64,
        key: Option<&str>,
    ) -> Result<Option<BulkRecord>, StoreError> {
        let Some(key) = key else {
            return Ok(None);
        };
        Ok(self
            .select_bulks(security_user_id, None, Some(key), 1)
            .await?
            .pop())
    }

    /// Writes where a bulk change stands; `finished` once it has gone through its selection.
    pub async fn bulk_progress(
        &self,
        id: Uuid,
        progress: &BulkProgress,
        finished: bool,
    ) -> Result<(), StoreError> {
        let refused = serde_json::to_value(&progress.refused)
            .map_err(|e| StoreError::Corrupt(format!("bulk change {id}: refusals: {e}")))?;
        sqlx::query!(
            "UPDATE bulk_changes
             SET changed = $2, skipped = $3, refused_count = $4, refused = $5, updated_at = now(),
                 finished_at = CASE WHEN $6 THEN now() END
             WHERE id = $1",
            id,
            int(progress.changed),
            int(progress.skipped),
            int(progress.refused_count),
            refused,
            finished
        )
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// One of the user's bulk changes.
    pub async fn bulk(
        &self,
        security_user_id: i64,
        id: Uuid,
    ) -> Result<Option<BulkRecord>, StoreError> {
        Ok(self
            .select_bulks(security_user_id, Some(id), None, 1)
            .await?
            .pop())
    }

    /// The user's latest bulk changes, newest first.
    pub async fn bulks(
        &self,
        security_user_id: i64,
        limit: u32,
    ) -> Result<Vec<BulkRecord>, StoreError> {
        self.select_bulks(security_user_id, None, None, limit).await
    }

    /// The user's bulk changes, newest first: one by id, one by key, or the latest.
    async fn select_bulks(
        &self,
        security_user_id: i64,
        id: Option<Uuid>,
        key: Option<&str>,
        limit: u32,
    ) -> Result<Vec<BulkRecord>, StoreError> {
        sqlx::query_as!(
            BulkRow,
            r#"SELECT id, request_sha256, action, reason, matched, changed, skipped,
                      refused_count, refused, started_at, updated_at, finished_at,
                      now() AS "read_at!"
               FROM bulk_changes
               WHERE security_user_id = $1
                 AND ($2::uuid IS NULL OR id = $2)
                 AND ($3::text IS NULL OR idempotency_key = $3)
               ORDER BY started_at DESC LIMIT $4"#,
            security_user_id,
            id,
            key,
            i64::from(limit)
        )
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .map(BulkRecord::try_from)
        .collect()
    }

    /// Forgets bulk changes begun more than `retention_days` ago.
    pub async fn purge_bulks(&self, retention_days: u32) -> Result<u64, StoreError> {
        let done = sqlx::query!(
            "DELETE FROM bulk_changes WHERE started_at < now() - make_interval(days => $1)",
            i32::try_from(retention_days).unwrap_or(i32::MAX)
        )
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }
}
