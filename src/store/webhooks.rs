//! Webhook subscriptions, their deliveries and the attempts made: what the API writes and
//! reads, what the relay fans out, what the deliverers lease and record.

use chrono::{DateTime, Utc};
use serde_json::Value;
use uuid::Uuid;

use super::{Store, StoreError};
use crate::domain::{EventKind, SkillId, Webhook, WebhookSecret};

/// How long a leased delivery is left to its deliverer before another may take it (a
/// deliverer that died mid-request only delays it).
const LEASE_SECONDS: f64 = 120.0;

struct WebhookRow {
    name: String,
    url: String,
    kinds: Vec<String>,
    skill_ids: Vec<i64>,
    secret: String,
    active: bool,
    paused_at: Option<DateTime<Utc>>,
    paused_reason: Option<String>,
    failing_since: Option<DateTime<Utc>>,
}

impl TryFrom<WebhookRow> for Webhook {
    type Error = StoreError;

    fn try_from(row: WebhookRow) -> Result<Self, StoreError> {
        let corrupt = |what: String| StoreError::Corrupt(format!("webhook {}: {what}", row.name));
        Ok(Webhook {
            url: url::Url::parse(&row.url).map_err(|e| corrupt(e.to_string()))?,
            kinds: row
                .kinds
                .iter()
                // A kind a newer version wrote: skipped, as the kinds this one writes are all
                // it can deliver.
                .filter_map(|k| k.parse::<EventKind>().ok())
                .collect(),
            skill_ids: row
                .skill_ids
                .iter()
                .map(|id| SkillId::new(*id).map_err(|e| corrupt(e.to_string())))
                .collect::<Result<_, _>>()?,
            secret: WebhookSecret::parse(&row.secret).map_err(|e| corrupt(e.to_string()))?,
            active: row.active,
            paused: row
                .paused_at
                .map(|at| (at, row.paused_reason.unwrap_or_default())),
            failing_since: row.failing_since,
            name: row.name,
        })
    }
}

/// One delivery a deliverer leased.
#[derive(Debug, Clone)]
pub struct DueDelivery {
    pub id: i64,
    pub webhook: String,
    pub url: String,
    pub secret: String,
    pub event_id: i64,
    pub payload: Value,
    /// Attempts made before this one.
    pub attempts: i32,
    pub created_at: DateTime<Utc>,
}

/// What one attempt of a delivery came to.
#[derive(Debug, Clone)]
pub struct AttemptRecord {
    pub delivery_id: i64,
    pub webhook: String,
    pub event_id: i64,
    /// The HTTP status, when an answer came.
    pub status: Option<u16>,
    pub error: Option<String>,
    pub duration_ms: u64,
    /// 2xx.
    pub delivered: bool,
    /// Failed for good (its retry time is over).
    pub gave_up: bool,
    /// When to try again, if it will be.
    pub retry_in_seconds: f64,
}

/// One attempt, as listed.
#[derive(Debug, Clone)]
pub struct AttemptView {
    pub id: i64,
    pub delivery_id: i64,
    pub event_id: i64,
    pub at: DateTime<Utc>,
    pub status: Option<i32>,
    pub error: Option<String>,
    pub duration_ms: i32,
}

impl Store {
    /// Creates or replaces a subscription; true when it is new. Replacing one clears its
    /// pause and failure clock (the person who set it says it works again).
    pub async fn put_webhook(&self, webhook: &Webhook) -> Result<bool, StoreError> {
        let kinds: Vec<&str> = webhook.kinds.iter().map(|k| k.as_str()).collect();
        let skills: Vec<i64> = webhook.skill_ids.iter().map(|s| s.get()).collect();
        let created = sqlx::query_scalar!(
            r#"INSERT INTO webhooks (name, url, kinds, skill_ids, secret, active)
               VALUES ($1, $2, $3, $4, $5, $6)
               ON CONFLICT (name) DO UPDATE SET url = EXCLUDED.url, kinds = EXCLUDED.kinds,
                   skill_ids = EXCLUDED.skill_ids, secret = EXCLUDED.secret,
                   active = EXCLUDED.active, paused_at = NULL, paused_reason = NULL,
                   failing_since = NULL, updated_at = now()
               RETURNING (xmax = 0) AS "created!""#,
            webhook.name,
            webhook.url.as_str(),
            &kinds as &[&str],
            &skills,
            webhook.secret.expose(),
            webhook.active
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(created)
    }

    pub async fn webhook(&self, name: &str) -> Result<Option<Webhook>, StoreError> {
        sqlx::query_as!(
            WebhookRow,
            "SELECT name, url, kinds, skill_ids, secret, active, paused_at, paused_reason,
                    failing_since
             FROM webhooks WHERE name = $1",
            name
        )
        .fetch_optional(&self.pool)
        .await?
        .map(Webhook::try_from)
        .transpose()
    }

    pub async fn webhooks(&self) -> Result<Vec<Webhook>, StoreError> {
        sqlx::query_as!(
            WebhookRow,
            "SELECT name, url, kinds, skill_ids, secret, active, paused_at, paused_reason,
                    failing_since
             FROM webhooks ORDER BY name LIMIT 1000"
        )
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .map(Webhook::try_from)
        .collect()
    }

    /// Deletes a subscription with its deliveries and attempts; false when there was none.
    pub async fn delete_webhook(&self, name: &str) -> Result<bool, StoreError> {
        let done = sqlx::query!("DELETE FROM webhooks WHERE name = $1", name)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// A subscription's latest attempts, newest first, before attempt `before` if given.
    pub async fn webhook_attempts(
        &self,
        name: &str,
        before: Option<i64>,
        limit: i64,
    ) -> Result<Vec<AttemptView>, StoreError> {
        Ok(sqlx::query_as!(
            AttemptView,
            "SELECT id, delivery_id, event_id, at, status, error, duration_ms
             FROM webhook_attempts
             WHERE webhook = $1 AND ($2::bigint IS NULL OR id < $2)
             ORDER BY id DESC LIMIT $3",
            name,
            before,
            limit
        )
        .fetch_all(&self.pool)
        .await?)
    }

    /// Deliveries waiting, per state, for a subscription (`pending`, `delivered`, `failed`).
    pub async fn webhook_delivery_counts(
        &self,
        name: &str,
    ) -> Result<Vec<(String, i64)>, StoreError> {
        Ok(sqlx::query!(
            r#"SELECT state, count(*) AS "n!" FROM webhook_deliveries WHERE webhook = $1
               GROUP BY state ORDER BY state"#,
            name
        )
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .map(|r| (r.state, r.n))
        .collect())
    }

    /// Leases up to `limit` due deliveries of active, unpaused subscriptions: their next
    /// time moves a lease ahead, so no other deliverer takes them meanwhile.
    pub async fn lease_deliveries(&self, limit: i64) -> Result<Vec<DueDelivery>, StoreError> {
        Ok(sqlx::query_as!(
            DueDelivery,
            r#"WITH due AS (
                SELECT d.id FROM webhook_deliveries d JOIN webhooks w ON w.name = d.webhook
                WHERE d.state = 'pending' AND d.next_at <= now()
                  AND w.active AND w.paused_at IS NULL
                ORDER BY d.next_at LIMIT $1
                FOR UPDATE OF d SKIP LOCKED
             ), leased AS (
                UPDATE webhook_deliveries d
                SET next_at = now() + make_interval(secs => $2)
                FROM due WHERE d.id = due.id
                RETURNING d.id, d.webhook, d.event_id, d.payload, d.attempts, d.created_at
             )
             SELECT l.id AS "id!", l.webhook AS "webhook!", w.url, w.secret,
                    l.event_id AS "event_id!", l.payload AS "payload!",
                    l.attempts AS "attempts!", l.created_at AS "created_at!"
             FROM leased l JOIN webhooks w ON w.name = l.webhook
             ORDER BY l.id"#,
            limit,
            LEASE_SECONDS
        )
        .fetch_all(&self.pool)
        .await?)
    }

    /// Records an attempt: the delivery delivered, failed for good, or due again; the
    /// subscription's failure clock cleared by a success or started by a failure. Returns
    /// whether the subscription is now failing for longer than `pause_after_seconds`
    /// (and so was paused).
    pub async fn record_attempt(
        &self,
        attempt: &AttemptRecord,
        pause_after_seconds: f64,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let state = if attempt.delivered {
            "delivered"
        } else if attempt.gave_up {
            "failed"
        } else {
            "pending"
        };
        let status = attempt.status.map(i32::from);
        sqlx::query!(
            "UPDATE webhook_deliveries
             SET state = $2, attempts = attempts + 1, last_status = $3, last_error = $4,
                 next_at = now() + make_interval(secs => $5),
                 finished_at = CASE WHEN $2 = 'pending' THEN NULL ELSE now() END
             WHERE id = $1",
            attempt.delivery_id,
            state,
            status,
            attempt.error,
            attempt.retry_in_seconds
        )
        .execute(&mut *tx)
        .await?;
        sqlx::query!(
            "INSERT INTO webhook_attempts (delivery_id, webhook, event_id, status, error, duration_ms)
             VALUES ($1, $2, $3, $4, $5, $6)",
            attempt.delivery_id,
            attempt.webhook,
            attempt.event_id,
            status,
            attempt.error,
            i32::try_from(attempt.duration_ms).unwrap_or(i32::MAX)
        )
        .execute(&mut *tx)
        .await?;
        let paused = if attempt.delivered {
            sqlx::query!(
                "UPDATE webhooks SET failing_since = NULL
                 WHERE name = $1 AND failing_since IS NOT NULL",
                attempt.webhook
            )
            .execute(&mut *tx)
            .await?;
            false
        } else {
            sqlx::query_scalar!(
                r#"UPDATE webhooks
                   SET failing_since = COALESCE(failing_since, now()),
                       paused_at = CASE WHEN paused_at IS NULL
                                         AND COALESCE(failing_since, now())
                                             <= now() - make_interval(secs => $2)
                                        THEN now() ELSE paused_at END,
                       paused_reason = CASE WHEN paused_at IS NULL
                                             AND COALESCE(failing_since, now())
                                                 <= now() - make_interval(secs => $2)
                                            THEN 'every attempt failed since '
                                                 || to_char(COALESCE(failing_since, now())
                                                                AT TIME ZONE 'UTC',
                                                            'YYYY-MM-DD"T"HH24:MI:SS"Z"')
                                                 || '; last: ' || $3
                                            ELSE paused_reason END
                   WHERE name = $1
                   RETURNING (paused_at IS NOT NULL AND paused_at >= now()) AS "paused!""#,
                attempt.webhook,
                pause_after_seconds,
                attempt.error.clone().unwrap_or_default()
            )
            .fetch_optional(&mut *tx)
            .await?
            .unwrap_or(false)
        };
        tx.commit().await?;
        Ok(paused)
    }

    /// Deletes finished deliveries (and their attempts) older than `retention_days`.
    pub async fn purge_webhook_deliveries(&self, retention_days: u32) -> Result<u64, StoreError> {
        let done = sqlx::query!(
            "DELETE FROM webhook_deliveries
             WHERE state <> 'pending' AND created_at < now() - make_interval(days => $1)",
            i32::try_from(retention_days).unwrap_or(i32::MAX)
        )
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }
}

/// An event to fan out to the subscriptions: its outbox entry and its message body.
pub struct FanOut<'a> {
    pub event_id: i64,
    pub callback_id: Uuid,
    pub kind: &'a str,
    pub skill_id: Option<i64>,
    /// The event stream's JSON body.
    pub payload: &'a str,
}
