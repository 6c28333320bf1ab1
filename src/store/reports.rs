//! The promise-kept report's reads: per skill and period of the promised time, the
//! callbacks booked and what became of them, with the first publications' lateness; and its
//! roll-up of finished quarter hours.

use chrono::{DateTime, Utc};
use futures_util::TryStreamExt;

use super::{Store, StoreError};
use crate::domain::{PromisePart, ROLLUP_GRAIN, ReportRange, SkillId, rolled_quarters};

/// A report part as the statement reads it, its histogram still packed.
struct PartRow {
    skill_id: i64,
    period: chrono::NaiveDateTime,
    booked: i64,
    dispatched: i64,
    completed: i64,
    failed: i64,
    expired: i64,
    suppressed: i64,
    cancelled: i64,
    open: i64,
    lateness: Vec<u8>,
}

impl TryFrom<PartRow> for PromisePart {
    type Error = StoreError;

    /// Unpacks the histogram: 8 bytes a bucket, its key then its count, big-endian int4s
    /// (`promise_histogram_bucket`).
    fn try_from(row: PartRow) -> Result<Self, StoreError> {
        if !row.lateness.len().is_multiple_of(8) {
            return Err(StoreError::Corrupt(format!(
                "a lateness histogram of {} bytes",
                row.lateness.len()
            )));
        }
        let int = |b: &[u8]| i64::from(i32::from_be_bytes([b[0], b[1], b[2], b[3]]));
        Ok(PromisePart {
            skill_id: row.skill_id,
            period: row.period,
            booked: row.booked,
            dispatched: row.dispatched,
            completed: row.completed,
            failed: row.failed,
            expired: row.expired,
            suppressed: row.suppressed,
            cancelled: row.cancelled,
            open: row.open,
            lateness: row
                .lateness
                .chunks_exact(8)
                .map(|b| (int(&b[..4]), int(&b[4..])))
                .collect(),
        })
    }
}

impl Store {
    /// The parts of a report: the roll-up's whole quarters in the range, and the callbacks of
    /// the rest added up per skill and period in the database (the rest may be large: a
    /// range reaching into the future holds every pending callback). Of `skill` or every
    /// skill (within `allowed`, when the reader is restricted). Each part is handed to
    /// `each` as it arrives: a month's parts hold millions of histogram buckets, which are
    /// merged as they come instead of all held at once.
    pub async fn promise_parts(
        &self,
        range: &ReportRange,
        skill: Option<SkillId>,
        allowed: Option<&[SkillId]>,
        mut each: impl FnMut(PromisePart),
    ) -> Result<(), StoreError> {
        let allowed: Option<Vec<i64>> = allowed.map(|s| s.iter().map(|id| id.get()).collect());
        let watermark: Option<DateTime<Utc>> =
            sqlx::query_scalar!("SELECT watermark FROM promise_rollup_state")
                .fetch_optional(&self.pool)
                .await?
                .flatten();
        // Without whole quarters to read from the roll-up, an empty span at the range's end.
        let (rolled_from, rolled_to) =
            rolled_quarters(range, watermark).unwrap_or((range.to, range.to));
        let from: DateTime<Utc> = range.from;
        let to: DateTime<Utc> = range.to;
        let mut rows = sqlx::query_as!(
            PartRow,
            r#"WITH live AS MATERIALIZED (
                   -- One branch per index: callbacks_promised (twice: before and after the
                   -- rolled-up quarters) and callbacks_in_flight_by_skill.
                   SELECT skill_id, scheduled_for, state, attempt, first_lateness_ms,
                          dispatched_at, due_at
                   FROM callbacks
                   WHERE scheduled_for >= $1 AND scheduled_for < $7
                     AND state NOT IN ('dispatched', 'accepted')
                   UNION ALL
                   SELECT skill_id, scheduled_for, state, attempt, first_lateness_ms,
                          dispatched_at, due_at
                   FROM callbacks
                   WHERE scheduled_for >= $8 AND scheduled_for < $2
                     AND state NOT IN ('dispatched', 'accepted')
                   UNION ALL
                   SELECT skill_id, scheduled_for, state, attempt, first_lateness_ms,
                          dispatched_at, due_at
                   FROM callbacks
                   WHERE state IN ('dispatched', 'accepted')
                     AND ((scheduled_for >= $1 AND scheduled_for < $7)
                          OR (scheduled_for >= $8 AND scheduled_for < $2))),
               keyed AS (
                   SELECT skill_id, date_trunc($3, scheduled_for AT TIME ZONE $4) AS period,
                          state, attempt,
                          promise_lateness_key(promise_lateness(first_lateness_ms, attempt,
                                                                dispatched_at, due_at)) AS k
                   FROM live
                   WHERE ($5::bigint IS NULL OR skill_id = $5)
                     AND ($6::bigint[] IS NULL OR skill_id = ANY($6))),
               histogram AS (
                   SELECT skill_id, period,
                          string_agg(promise_histogram_bucket(k, n), ''::bytea ORDER BY k)
                              AS lateness
                   FROM (SELECT skill_id, period, k, count(*) AS n FROM keyed
                         WHERE k IS NOT NULL GROUP BY 1, 2, 3) AS b
                   GROUP BY 1, 2)
               SELECT skill_id AS "skill_id!", date_trunc($3, quarter AT TIME ZONE $4) AS "period!",
                      booked AS "booked!", dispatched AS "dispatched!", completed AS "completed!",
                      failed AS "failed!", expired AS "expired!", suppressed AS "suppressed!",
                      cancelled AS "cancelled!", 0::bigint AS "open!",
                      lateness AS "lateness!"
               FROM promise_rollup
               WHERE quarter >= $7 AND quarter < $8
                 AND ($5::bigint IS NULL OR skill_id = $5)
                 AND ($6::bigint[] IS NULL OR skill_id = ANY($6))
               UNION ALL
               SELECT c.*, COALESCE(h.lateness, ''::bytea)
               FROM (SELECT skill_id, period, count(*), count(*) FILTER (WHERE attempt > 0),
                            count(*) FILTER (WHERE state = 'completed'),
                            count(*) FILTER (WHERE state = 'failed'),
                            count(*) FILTER (WHERE state = 'expired'),
                            count(*) FILTER (WHERE state = 'suppressed'),
                            count(*) FILTER (WHERE state = 'cancelled'),
                            count(*) FILTER (WHERE state IN ('pending', 'dispatched', 'accepted'))
                     FROM keyed GROUP BY 1, 2) AS c
               LEFT JOIN histogram h USING (skill_id, period)"#,
            from,
            to,
            range.period.as_str(),
            range.zone.name(),
            skill.map(SkillId::get),
            allowed.as_deref(),
            rolled_from,
            rolled_to,
        )
        .fetch(&self.pool);
        while let Some(row) = rows.try_next().await? {
            each(PromisePart::try_from(row)?);
        }
        Ok(())
    }

    /// Rolls up the next finished quarters (at most `max`), one transaction; another
    /// daemon rolling up meanwhile makes this a no-op. A quarter is finished when it ended
    /// before `settled_before` (no create can be booked into it any more) and every callback
    /// promised in it has ended. Returns the quarters rolled up.
    pub async fn roll_up_promises(
        &self,
        settled_before: DateTime<Utc>,
        max: u32,
    ) -> Result<u32, StoreError> {
        let mut tx = self.pool.begin().await?;
        let Some(watermark) = sqlx::query_scalar!(
            "SELECT watermark FROM promise_rollup_state FOR UPDATE SKIP LOCKED"
        )
        .fetch_optional(&mut *tx)
        .await?
        else {
            return Ok(0);
        };
        // Where it starts: the quarter of the earliest promise kept, or this one.
        let mut quarter: DateTime<Utc> = match watermark {
            Some(at) => at,
            None => {
                // Each minimum through its index (the callbacks in flight have their own),
                // not a scan of the whole table.
                sqlx::query_scalar!(
                    r#"SELECT date_bin('15 minutes',
                                    COALESCE(LEAST(
                                        (SELECT min(scheduled_for) FROM callbacks
                                         WHERE state NOT IN ('dispatched', 'accepted')),
                                        (SELECT min(scheduled_for) FROM callbacks
                                         WHERE state IN ('dispatched', 'accepted'))), now()),
                                    timestamptz '2000-01-01') AS "at!""#
                )
                .fetch_one(&mut *tx)
                .await?
            }
        };
        let mut rolled = 0;
        while rolled < max && quarter + ROLLUP_GRAIN <= settled_before {
            let end = quarter + ROLLUP_GRAIN;
            let open = sqlx::query_scalar!(
                "SELECT EXISTS (SELECT FROM callbacks
                                WHERE scheduled_for >= $1 AND scheduled_for < $2
                                  AND state = 'pending')
                     OR EXISTS (SELECT FROM callbacks
                                WHERE scheduled_for >= $1 AND scheduled_for < $2
                                  AND state IN ('dispatched', 'accepted'))",
                quarter,
                end
            )
            .fetch_one(&mut *tx)
            .await?;
            if open == Some(true) {
                break;
            }
            sqlx::query!(
                r#"WITH c AS (
                       SELECT skill_id, state, attempt,
                              promise_lateness_key(promise_lateness(
                                  first_lateness_ms, attempt, dispatched_at, due_at)) AS k
                       FROM callbacks
                       -- None is in flight (checked above): the clause picks the index.
                       WHERE scheduled_for >= $1 AND scheduled_for < $2
                         AND state NOT IN ('dispatched', 'accepted')),
                   h AS (
                       SELECT skill_id,
                              string_agg(promise_histogram_bucket(k, n), ''::bytea ORDER BY k)
                                  AS lateness
                       FROM (SELECT skill_id, k, count(*) AS n FROM c
                             WHERE k IS NOT NULL GROUP BY 1, 2) AS b
                       GROUP BY 1)
                   INSERT INTO promise_rollup (quarter, skill_id, booked, dispatched, completed,
                                               failed, expired, suppressed, cancelled,
                                               lateness)
                   SELECT $1, t.*, COALESCE(h.lateness, ''::bytea)
                   FROM (SELECT skill_id, count(*), count(*) FILTER (WHERE attempt > 0),
                                count(*) FILTER (WHERE state = 'completed'),
                                count(*) FILTER (WHERE state = 'failed'),
                                count(*) FILTER (WHERE state = 'expired'),
                                count(*) FILTER (WHERE state = 'suppressed'),
                                count(*) FILTER (WHERE state = 'cancelled')
                         FROM c GROUP BY 1) AS t
                   LEFT JOIN h USING (skill_id)
                   ON CONFLICT (quarter, skill_id) DO UPDATE SET
                       booked = EXCLUDED.booked, dispatched = EXCLUDED.dispatched,
                       completed = EXCLUDED.completed, failed = EXCLUDED.failed,
                       expired = EXCLUDED.expired, suppressed = EXCLUDED.suppressed,
                       cancelled = EXCLUDED.cancelled, lateness = EXCLUDED.lateness"#,
                quarter,
                end
            )
            .execute(&mut *tx)
            .await?;
            quarter = end;
            rolled += 1;
        }
        sqlx::query!("UPDATE promise_rollup_state SET watermark = $1", quarter)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(rolled)
    }
}
