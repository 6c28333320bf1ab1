//! History by day: `callbacks` and `callback_events` are partitioned by the UTC day a
//! callback ended on (`ended_on`; 'infinity' while it is live — see migration 0035). The
//! daemon makes each day's partitions ahead of time; the retention purge drops a day whose
//! every callback ended more than `retention_days` ago, as one catalog change instead of a
//! delete per row.

use super::{Store, StoreError};

/// Days ahead the partitions are made: the daily purge makes them again, so a few days'
/// outage of the purge still finds each day's partition made. (A day without one is still
/// kept: its callbacks land in the default partition and are purged row by row.)
const DAYS_AHEAD: i32 = 3;

/// Prefix of a day's partition of `callbacks`; the day follows as `YYYYMMDD`.
const CALLBACKS_DAY: &str = "callbacks_ended_";
/// Prefix of a day's partition of `callback_events`.
const EVENTS_DAY: &str = "callback_events_ended_";

/// How long making or dropping a day waits for the tables' lock: both take it briefly over
/// the whole table, so they give up (and try on their next run) rather than hold up the
/// dispatcher behind a long transaction.
const LOCK_WAIT: &str = "SET LOCAL lock_timeout = '5s'";

impl Store {
    /// Makes the day partitions from yesterday to a few days ahead that are missing;
    /// returns how many days it made.
    pub async fn make_history_days(&self) -> Result<i32, StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(LOCK_WAIT).execute(&mut *tx).await?;
        let made = sqlx::query_scalar!(
            r#"SELECT callbackd_make_history_days(
                   (now() AT TIME ZONE 'UTC')::date - 1,
                   (now() AT TIME ZONE 'UTC')::date + $1::int) AS "made!""#,
            DAYS_AHEAD
        )
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(made)
    }

    /// Drops the days whose every callback ended more than `retention_days` ago, with their
    /// events and the rows that refer to their callbacks; returns how many callbacks went.
    pub(super) async fn drop_ended_days(&self, retention_days: u32) -> Result<u64, StoreError> {
        let days: Vec<String> = sqlx::query_scalar!(
            r#"SELECT substr(c.relname, length($2) + 1) AS "day!"
               FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
               WHERE i.inhparent = 'callbacks'::regclass
                 AND c.relname ~ ('^' || $2 || '[0-9]{8}$')
                 AND to_date(substr(c.relname, length($2) + 1), 'YYYYMMDD') + 1
                     <= ((now() - make_interval(days => $1)) AT TIME ZONE 'UTC')
               ORDER BY 1"#,
            i32::try_from(retention_days).unwrap_or(i32::MAX),
            CALLBACKS_DAY
        )
        .fetch_all(&self.pool)
        .await?;
        let mut total = 0;
        for day in days {
            total += self.drop_day(&day).await?;
        }
        Ok(total)
    }

    /// Drops one day's partitions; `day` is `YYYYMMDD`.
    async fn drop_day(&self, day: &str) -> Result<u64, StoreError> {
        if day.len() != 8 || !day.bytes().all(|b| b.is_ascii_digit()) {
            return Err(StoreError::Corrupt(format!(
                "history partition day {day:?}"
            )));
        }
        let callbacks = format!("{CALLBACKS_DAY}{day}");
        let events = format!("{EVENTS_DAY}{day}");
        let mut tx = self.pool.begin().await?;
        sqlx::query(LOCK_WAIT).execute(&mut *tx).await?;
        let gone: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT count(*) FROM {callbacks}"
        )))
        .fetch_one(&mut *tx)
        .await?;
        for referring in [
            "idempotency_keys",
            "callback_outcomes",
            "customer_links",
            "event_outbox",
        ] {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "DELETE FROM {referring} WHERE callback_id IN (SELECT id FROM {callbacks})"
            )))
            .execute(&mut *tx)
            .await?;
        }
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP TABLE IF EXISTS {callbacks}, {events}"
        )))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        tracing::info!(day, callbacks = gone, "retention: a day of history dropped");
        Ok(u64::try_from(gone).unwrap_or_default())
    }
}
