//! The promise-kept report's one statement: per skill and period of the promised time, the
//! callbacks booked and what became of them, with the first publications' lateness.

use chrono::{DateTime, NaiveDateTime, Utc};

use super::{Store, StoreError};
use crate::domain::{ReportRange, SkillId, rolled_hours};

/// One skill's figures for one period.
#[derive(Debug, Clone)]
pub struct PromiseRow {
    pub skill_id: i64,
    /// The period's start, in the report's zone.
    pub period: NaiveDateTime,
    pub booked: i64,
    pub dispatched: i64,
    pub on_time: i64,
    pub completed: i64,
    pub failed: i64,
    pub expired: i64,
    pub suppressed: i64,
    pub cancelled: i64,
    /// Still pending, or published and waiting for the outcome.
    pub open: i64,
    pub lateness_p50_ms: Option<f64>,
    pub lateness_p95_ms: Option<f64>,
}

impl Store {
    /// Callbacks whose promised time (`scheduled_for`) falls in the range, of `skill` or
    /// every skill (within `allowed`, when the reader is restricted): the roll-up's whole
    /// hours, and callback by callback for the rest.
    pub async fn promise_report(
        &self,
        range: &ReportRange,
        skill: Option<SkillId>,
        allowed: Option<&[SkillId]>,
    ) -> Result<Vec<PromiseRow>, StoreError> {
        let allowed: Option<Vec<i64>> = allowed.map(|s| s.iter().map(|id| id.get()).collect());
        let watermark: Option<DateTime<Utc>> =
            sqlx::query_scalar!("SELECT watermark FROM promise_rollup_state")
                .fetch_optional(&self.pool)
                .await?
                .flatten();
        // Without whole hours to read from the roll-up, an empty one at the range's end.
        let (rolled_from, rolled_to) =
            rolled_hours(range, watermark).unwrap_or((range.to, range.to));
        let from: DateTime<Utc> = range.from;
        let to: DateTime<Utc> = range.to;
        // Percentiles by nearest rank over the lateness histogram (its keys are bucket upper
        // bounds), so that rolled-up hours and live callbacks are read the same way.
        Ok(sqlx::query_as!(
            PromiseRow,
            r#"WITH live AS MATERIALIZED (
                   SELECT skill_id, date_trunc($3, scheduled_for AT TIME ZONE $4) AS period,
                          state, attempt,
                          promise_lateness_key(promise_lateness(first_lateness_ms, attempt,
                                                                dispatched_at, due_at)) AS k
                   FROM callbacks
                   WHERE ((scheduled_for >= $1 AND scheduled_for < $8)
                          OR (scheduled_for >= $9 AND scheduled_for < $2))
                     -- Each half has an index: callbacks_promised, callbacks_in_flight_by_skill.
                     AND (state NOT IN ('dispatched', 'accepted')
                          OR state IN ('dispatched', 'accepted'))
                     AND ($6::bigint IS NULL OR skill_id = $6)
                     AND ($7::bigint[] IS NULL OR skill_id = ANY($7))),
               rolled AS MATERIALIZED (
                   SELECT skill_id, date_trunc($3, hour AT TIME ZONE $4) AS period, booked,
                          dispatched, completed, failed, expired, suppressed, cancelled,
                          lateness_keys, lateness_counts
                   FROM promise_rollup
                   WHERE hour >= $8 AND hour < $9
                     AND ($6::bigint IS NULL OR skill_id = $6)
                     AND ($7::bigint[] IS NULL OR skill_id = ANY($7))),
               counts AS (
                   SELECT skill_id, period, sum(booked)::bigint AS booked,
                          sum(dispatched)::bigint AS dispatched,
                          sum(completed)::bigint AS completed, sum(failed)::bigint AS failed,
                          sum(expired)::bigint AS expired,
                          sum(suppressed)::bigint AS suppressed,
                          sum(cancelled)::bigint AS cancelled, sum(open)::bigint AS open
                   FROM (SELECT skill_id, period, booked, dispatched, completed, failed,
                                expired, suppressed, cancelled, 0 AS open
                         FROM rolled
                         UNION ALL
                         SELECT skill_id, period, 1, (attempt > 0)::int,
                                (state = 'completed')::int, (state = 'failed')::int,
                                (state = 'expired')::int, (state = 'suppressed')::int,
                                (state = 'cancelled')::int,
                                (state IN ('pending', 'dispatched', 'accepted'))::int
                         FROM live) AS parts
                   GROUP BY 1, 2),
               histogram AS (
                   SELECT skill_id, period, k, sum(n) AS n
                   FROM (SELECT skill_id, period, u.k, u.n
                         FROM rolled, unnest(lateness_keys, lateness_counts) AS u(k, n)
                         UNION ALL
                         SELECT skill_id, period, k, 1 FROM live WHERE k IS NOT NULL) AS h
                   GROUP BY 1, 2, 3),
               ranked AS (
                   SELECT skill_id, period, k, n,
                          sum(n) OVER (PARTITION BY skill_id, period ORDER BY k) AS below,
                          sum(n) OVER (PARTITION BY skill_id, period) AS total
                   FROM histogram),
               lateness AS (
                   SELECT skill_id, period,
                          sum(n) FILTER (WHERE k <= $5::float8 * 1000) AS on_time,
                          min(k) FILTER (WHERE below >= 0.5 * total) AS p50,
                          min(k) FILTER (WHERE below >= 0.95 * total) AS p95
                   FROM ranked GROUP BY 1, 2)
               SELECT c.skill_id AS "skill_id!", c.period AS "period!", c.booked AS "booked!",
                      c.dispatched AS "dispatched!", COALESCE(l.on_time, 0)::bigint AS "on_time!",
                      c.completed AS "completed!", c.failed AS "failed!",
                      c.expired AS "expired!", c.suppressed AS "suppressed!",
                      c.cancelled AS "cancelled!", c.open AS "open!",
                      l.p50::float8 AS lateness_p50_ms, l.p95::float8 AS lateness_p95_ms
               FROM counts c LEFT JOIN lateness l USING (skill_id, period)
               ORDER BY c.period, c.skill_id"#,
            from,
            to,
            range.period.as_str(),
            range.zone.name(),
            f64::from(range.on_time_seconds),
            skill.map(SkillId::get),
            allowed.as_deref(),
            rolled_from,
            rolled_to,
        )
        .fetch_all(&self.pool)
        .await?)
    }

    /// Rolls up the next finished hours (at most `max_hours`), one transaction; another
    /// daemon rolling up meanwhile makes this a no-op. An hour is finished when it ended
    /// before `settled_before` (no create can be booked into it any more) and every callback
    /// promised in it has ended. Returns the hours rolled up.
    pub async fn roll_up_promises(
        &self,
        settled_before: DateTime<Utc>,
        max_hours: u32,
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
        // Where it starts: the hour of the earliest promise kept, or this hour.
        let mut hour: DateTime<Utc> = match watermark {
            Some(at) => at,
            None => {
                sqlx::query_scalar!(
                    r#"SELECT date_trunc('hour', COALESCE(min(scheduled_for), now())) AS "at!"
                   FROM callbacks"#
                )
                .fetch_one(&mut *tx)
                .await?
            }
        };
        let mut rolled = 0;
        while rolled < max_hours && hour + chrono::Duration::hours(1) <= settled_before {
            let end = hour + chrono::Duration::hours(1);
            let open = sqlx::query_scalar!(
                "SELECT EXISTS (SELECT FROM callbacks
                                WHERE scheduled_for >= $1 AND scheduled_for < $2
                                  AND state = 'pending')
                     OR EXISTS (SELECT FROM callbacks
                                WHERE scheduled_for >= $1 AND scheduled_for < $2
                                  AND state IN ('dispatched', 'accepted'))",
                hour,
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
                   INSERT INTO promise_rollup (hour, skill_id, booked, dispatched, completed,
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
                   ON CONFLICT (hour, skill_id) DO UPDATE SET
                       booked = EXCLUDED.booked, dispatched = EXCLUDED.dispatched,
                       completed = EXCLUDED.completed, failed = EXCLUDED.failed,
                       expired = EXCLUDED.expired, suppressed = EXCLUDED.suppressed,
                       cancelled = EXCLUDED.cancelled, lateness_keys = EXCLUDED.lateness_keys,
                       lateness_counts = EXCLUDED.lateness_counts"#,
                hour,
                end
            )
            .execute(&mut *tx)
            .await?;
            hour = end;
            rolled += 1;
        }
        sqlx::query!("UPDATE promise_rollup_state SET watermark = $1", hour)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(rolled)
    }
}
