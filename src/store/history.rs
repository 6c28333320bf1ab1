//! History by day: `callbacks` and `callback_events` are partitioned by the UTC day a
//! callback ended on (`ended_on`; 'infinity' while it is live — see migration 0035), a few
//! days to a partition. The daemon makes the partitions ahead of time; the retention purge
//! drops those whose every callback ended more than `retention_days` ago, as one catalog
//! change instead of a delete per row.

use super::{Store, StoreError};

/// Days ahead the partitions are made: the daily purge makes them again, so a few days'
/// outage of the purge still finds each day's partition made. (A day without one is still
/// kept: its callbacks land in the default partition and are purged row by row.)
const DAYS_AHEAD: i32 = 3;

/// Partitions kept for the retention period, about: each covers an eighth of it (at least a
/// day), so that a callback is kept at least `retention_days` and at most an eighth longer,
/// and statements reading across history plan over a dozen partitions, not one a day.
const PARTITIONS_PER_RETENTION: u32 = 8;

/// Prefix of a partition of `callbacks`; its first day follows as `YYYYMMDD`.
const CALLBACKS_DAY: &str = "callbacks_ended_";
/// Prefix of a partition of `callback_events` (the same days as `callbacks`').
const EVENTS_DAY: &str = "callback_events_ended_";

/// The tables whose rows refer to a callback by `callback_id` without a foreign key: they
/// go with it (the by-row purge in `timers.rs` names them too).
const REFERRING: [&str; 4] = [
    "idempotency_keys",
    "callback_outcomes",
    "customer_links",
    "event_outbox",
];

/// How long making or dropping a day waits for the tables' lock: both take it briefly over
/// the whole table, so they give up (and try on their next run) rather than hold up the
/// dispatcher behind a long transaction.
const LOCK_WAIT: &str = "SET LOCAL lock_timeout = '5s'";

impl Store {
    /// Makes the partitions missing for the days from yesterday to a few days ahead (each
    /// covering an eighth of `retention_days`); returns how many it made.
    pub async fn make_history_days(&self, retention_days: u32) -> Result<i32, StoreError> {
        let width = retention_days.div_ceil(PARTITIONS_PER_RETENTION).max(1);
        let mut tx = self.pool.begin().await?;
        sqlx::query(LOCK_WAIT).execute(&mut *tx).await?;
        let made = sqlx::query_scalar!(
            r#"SELECT callbackd_make_history_days(
                   (now() AT TIME ZONE 'UTC')::date - 1,
                   (now() AT TIME ZONE 'UTC')::date + $1::int, $2) AS "made!""#,
            DAYS_AHEAD,
            i32::try_from(width).unwrap_or(i32::MAX)
        )
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(made)
    }

    /// Drops the partitions whose every callback ended more than `retention_days` ago, with
    /// their events and the rows that refer to their callbacks; returns how many callbacks
    /// went.
    pub(super) async fn drop_ended_days(&self, retention_days: u32) -> Result<u64, StoreError> {
        let days: Vec<String> = sqlx::query_scalar!(
            r#"SELECT substr(r.name, length($2) + 1) AS "day!"
               FROM callbackd_history_ranges() r
               WHERE r.name ~ ('^' || $2 || '[0-9]{8}$')
                 AND r.stop <= ((now() - make_interval(days => $1)) AT TIME ZONE 'UTC')
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

    /// Drops one partition of each table; `day` is its first day, `YYYYMMDD`.
    async fn drop_day(&self, day: &str) -> Result<u64, StoreError> {
        let dropping = DropDay::new(day)?;
        let mut tx = self.pool.begin().await?;
        sqlx::query(LOCK_WAIT).execute(&mut *tx).await?;
        let gone: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(dropping.count()))
            .fetch_one(&mut *tx)
            .await?;
        for statement in dropping.statements() {
            sqlx::query(sqlx::AssertSqlSafe(statement))
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        tracing::info!(
            from = day,
            callbacks = gone,
            "retention: days of history dropped"
        );
        Ok(u64::try_from(gone).unwrap_or_default())
    }
}

/// The statements that drop one partition of history (shared with the benchmark suite,
/// `store::statements`, which times them).
pub struct DropDay {
    callbacks: String,
    events: String,
}

impl DropDay {
    /// The partitions whose first day is `day` (`YYYYMMDD`, as their names give it).
    pub fn new(day: &str) -> Result<Self, StoreError> {
        if day.len() != 8 || !day.bytes().all(|b| b.is_ascii_digit()) {
            return Err(StoreError::Corrupt(format!(
                "history partition day {day:?}"
            )));
        }
        Ok(Self {
            callbacks: format!("{CALLBACKS_DAY}{day}"),
            events: format!("{EVENTS_DAY}{day}"),
        })
    }

    /// Counts the callbacks that go.
    pub fn count(&self) -> String {
        format!("SELECT count(*) FROM {}", self.callbacks)
    }

    /// Deletes the rows that refer to its callbacks, then drops both partitions; in order,
    /// in one transaction.
    pub fn statements(&self) -> Vec<String> {
        let callbacks = &self.callbacks;
        let mut statements: Vec<String> = REFERRING
            .iter()
            .map(|referring| {
                format!("DELETE FROM {referring} WHERE callback_id IN (SELECT id FROM {callbacks})")
            })
            .collect();
        statements.push(format!("DROP TABLE IF EXISTS {callbacks}, {}", self.events));
        statements
    }

    /// The day's partition of `callbacks`.
    pub fn callbacks(&self) -> &str {
        &self.callbacks
    }

    /// The day's partition of `callback_events`.
    pub fn events(&self) -> &str {
        &self.events
    }
}
