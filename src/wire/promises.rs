//! The promise-kept report's rows as the API, the console and a CSV download show them.

use serde::Serialize;
use utoipa::ToSchema;

use crate::domain::Period;
use crate::domain::PromiseRow;

/// One skill's promises for one day or hour.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PromiseItem {
    pub skill_id: i64,
    /// The period's start in the report's zone: `2026-12-04` or `2026-12-04T14:00`.
    pub period: String,
    /// Callbacks promised for the period.
    pub booked: i64,
    /// Published at least once.
    pub dispatched: i64,
    /// First published within `onTimeSeconds` of the due time.
    pub on_time: i64,
    /// `onTime / dispatched`; `null` with nothing dispatched.
    pub on_time_rate: Option<f64>,
    pub completed: i64,
    pub failed: i64,
    pub expired: i64,
    pub suppressed: i64,
    pub cancelled: i64,
    /// Pending, or published and awaiting the outcome.
    pub open: i64,
    /// Lateness of the first publications (milliseconds).
    pub lateness_p50_ms: Option<f64>,
    pub lateness_p95_ms: Option<f64>,
}

const CSV_HEADER: &str = "skillId,period,booked,dispatched,onTime,onTimeRate,completed,failed,expired,suppressed,cancelled,open,latenessP50Ms,latenessP95Ms\n";

impl PromiseItem {
    pub fn of(row: PromiseRow, period: Period) -> Self {
        let format = match period {
            Period::Day => "%Y-%m-%d",
            Period::Hour => "%Y-%m-%dT%H:%M",
        };
        PromiseItem {
            skill_id: row.skill_id,
            period: row.period.format(format).to_string(),
            booked: row.booked,
            dispatched: row.dispatched,
            on_time: row.on_time,
            on_time_rate: (row.dispatched > 0).then(|| row.on_time as f64 / row.dispatched as f64),
            completed: row.completed,
            failed: row.failed,
            expired: row.expired,
            suppressed: row.suppressed,
            cancelled: row.cancelled,
            open: row.open,
            lateness_p50_ms: row.lateness_p50_ms,
            lateness_p95_ms: row.lateness_p95_ms,
        }
    }
}

fn csv_line(i: &PromiseItem) -> String {
    let opt = |v: Option<f64>| v.map(|v| format!("{v:.3}")).unwrap_or_default();
    format!(
        "{},{},{},{},{},{},{},{},{},{},{},{},{},{}\n",
        i.skill_id,
        i.period,
        i.booked,
        i.dispatched,
        i.on_time,
        opt(i.on_time_rate),
        i.completed,
        i.failed,
        i.expired,
        i.suppressed,
        i.cancelled,
        i.open,
        opt(i.lateness_p50_ms),
        opt(i.lateness_p95_ms)
    )
}

/// The CSV download: a header line, then one line per item.
pub fn promises_csv(items: &[PromiseItem]) -> String {
    let mut body = String::from(CSV_HEADER);
    for i in items {
        body.push_str(&csv_line(i));
    }
    body
}
