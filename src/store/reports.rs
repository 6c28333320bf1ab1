//! The promise-kept report's reads: per skill and period of the promised time, the
//! callbacks booked and what became of them, with the first publications' lateness; and its
//! roll-up of finished quarter hours.

use chrono::{DateTime, Utc};

use super::{Store, StoreError};
use crate::domain::{PromisePart, ROLLUP_GRAIN, ReportRange, SkillId, rolled_quarters};

impl Store {
    /// The parts of a report: the roll-up's whole quarters in the range, and the callbacks of
    /// the rest added up per skill and period in the database (the rest may be large: a
    /// range reaching into the future holds every pending callback). Of `skill` or every
    /// skill (within `allowed`, when the reader is restricted).
    pub async fn promise_parts(
        &self,
        range: &ReportRange,
        skill: Option<SkillId>,
        allowed: Option<&[SkillId]>,
    ) -> Result<Vec<PromisePart>, StoreError> {
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
        Ok(sqlx::query_as!(
            PromisePart,
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
                   SELECT skill_id, period, array_agg(k ORDER BY k) AS keys,
                          array_agg(n ORDER BY k) AS counts
                   FROM (SELECT skill_id, period, k, count(*) AS n FROM keyed
                         WHERE k IS NOT NULL GROUP BY 1, 2, 3) AS b
                   GROUP BY 1, 2)
               SELECT skill_id AS "skill_id!", date_trunc($3, quarter AT TIME ZONE $4) AS "period!",
                      booked AS "booked!", dispatched AS "dispatched!", completed AS "completed!",
                      failed AS "failed!", expired AS "expired!", suppressed AS "suppressed!",
                      cancelled AS "cancelled!", 0::bigint AS "open!",
                      lateness_keys AS "lateness_keys!", lateness_counts AS "lateness_counts!"
               FROM promise_rollup
               WHERE quarter >= $7 AND quarter < $8
                 AND ($5::bigint IS NULL OR skill_id = $5)
                 AND ($6::bigint[] IS NULL OR skill_id = ANY($6))
               UNION ALL
               SELECT k.skill_id, k.period, count(*), count(*) FILTER (WHERE k.attempt > 0),
                      count(*) FILTER (WHERE k.state = 'completed'),
                      count(*) FILTER (WHERE k.state = 'failed'),
                      count(*) FILTER (WHERE k.state = 'expired'),
                      count(*) FILTER (WHERE k.state = 'suppressed'),
                      count(*) FILTER (WHERE k.state = 'cancelled'),
                      count(*) FILTER (WHERE k.state IN ('pending', 'dispatched', 'accepted')),
                      COALESCE(min(h.keys), '{}'), COALESCE(min(h.counts), '{}')
               FROM keyed k LEFT JOIN histogram h USING (skill_id, period)
               GROUP BY 1, 2"#,
            from,
            to,
            range.period.as_str(),
            range.zone.name(),
            skill.map(SkillId::get),
            allowed.as_deref(),
            rolled_from,
            rolled_to,
        )
        .fetch_all(&self.pool)
        .await?)
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
                sqlx::query_scalar!(
                    r#"SELECT date_bin('15 minutes', COALESCE(min(scheduled_for), now()),
                                    timestamptz '2000-01-01') AS "at!"
                   FROM callbacks"#
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
                       SELECT skill_id, array_agg(k ORDER BY k) AS keys,
                              array_agg(n ORDER BY k) AS counts
                       FROM (SELECT skill_id, k, count(*) AS n FROM c
                             WHERE k IS NOT NULL GROUP BY 1, 2) AS b
                       GROUP BY 1)
                   INSERT INTO promise_rollup (quarter, skill_id, booked, dispatched, completed,
                                               failed, expired, suppressed, cancelled,
                                               lateness_keys, lateness_counts)
                   SELECT $1, skill_id, count(*), count(*) FILTER (WHERE attempt > 0),
                          count(*) FILTER (WHERE state = 'completed'),
                          count(*) FILTER (WHERE state = 'failed'),
                          count(*) FILTER (WHERE state = 'expired'),
                          count(*) FILTER (WHERE state = 'suppressed'),
                          count(*) FILTER (WHERE state = 'cancelled'),
                          COALESCE(min(h.keys), '{}'), COALESCE(min(h.counts), '{}')
                   FROM c LEFT JOIN h USING (skill_id)
                   GROUP BY skill_id
                   ON CONFLICT (quarter, skill_id) DO UPDATE SET
                       booked = EXCLUDED.booked, dispatched = EXCLUDED.dispatched,
                       completed = EXCLUDED.completed, failed = EXCLUDED.failed,
                       expired = EXCLUDED.expired, suppressed = EXCLUDED.suppressed,
                       cancelled = EXCLUDED.cancelled, lateness_keys = EXCLUDED.lateness_keys,
                       lateness_counts = EXCLUDED.lateness_counts"#,
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
