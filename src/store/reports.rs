//! The promise-kept report's one statement: per skill and period of the promised time, the
//! callbacks booked and what became of them, with the first publications' lateness.

use chrono::{DateTime, NaiveDateTime, Utc};

use super::{Store, StoreError};
use crate::domain::{ReportRange, SkillId};

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
    /// every skill (within `allowed`, when the reader is restricted).
    pub async fn promise_report(
        &self,
        range: &ReportRange,
        skill: Option<SkillId>,
        allowed: Option<&[SkillId]>,
    ) -> Result<Vec<PromiseRow>, StoreError> {
        let allowed: Option<Vec<i64>> = allowed.map(|s| s.iter().map(|id| id.get()).collect());
        let from: DateTime<Utc> = range.from;
        let to: DateTime<Utc> = range.to;
        Ok(sqlx::query_as!(
            PromiseRow,
            r#"SELECT skill_id AS "skill_id!",
                      date_trunc($3, scheduled_for AT TIME ZONE $4) AS "period!",
                      count(*) AS "booked!",
                      count(*) FILTER (WHERE attempt > 0) AS "dispatched!",
                      count(*) FILTER (WHERE lateness <= $5::float8 * 1000) AS "on_time!",
                      count(*) FILTER (WHERE state = 'completed') AS "completed!",
                      count(*) FILTER (WHERE state = 'failed') AS "failed!",
                      count(*) FILTER (WHERE state = 'expired') AS "expired!",
                      count(*) FILTER (WHERE state = 'suppressed') AS "suppressed!",
                      count(*) FILTER (WHERE state = 'cancelled') AS "cancelled!",
                      count(*) FILTER (WHERE state IN ('pending', 'dispatched', 'accepted'))
                          AS "open!",
                      percentile_cont(0.5) WITHIN GROUP (ORDER BY lateness) AS lateness_p50_ms,
                      percentile_cont(0.95) WITHIN GROUP (ORDER BY lateness) AS lateness_p95_ms
               FROM (SELECT skill_id, scheduled_for, attempt, state,
                            COALESCE(first_lateness_ms,
                                     CASE WHEN attempt = 1 THEN GREATEST(
                                         EXTRACT(EPOCH FROM (dispatched_at - due_at)) * 1000, 0)
                                     END)::float8 AS lateness
                     FROM callbacks
                     WHERE scheduled_for >= $1 AND scheduled_for < $2
                       AND ($6::bigint IS NULL OR skill_id = $6)
                       AND ($7::bigint[] IS NULL OR skill_id = ANY($7))) AS c
               GROUP BY 1, 2 ORDER BY 2, 1"#,
            from,
            to,
            range.period.as_str(),
            range.zone.name(),
            f64::from(range.on_time_seconds),
            skill.map(SkillId::get),
            allowed.as_deref()
        )
        .fetch_all(&self.pool)
        .await?)
    }
}
