//! `GET /v1/reports/promises`: how many promises were kept, per skill and day or hour, as
//! JSON or CSV (`Accept: text/csv`).

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use super::error::{ApiError, ResultCode};
use super::extract::{Caller, QueryParams};
use crate::app::reports;
use crate::domain::{Period, ReportInput};
use crate::store::PromiseRow;

#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PromiseQuery {
    /// Promised times from (RFC 3339, or a date: midnight in `timeZone`); default: 7 days
    /// before `to`.
    from: Option<String>,
    /// Promised times before (RFC 3339 or a date); default: now.
    to: Option<String>,
    /// Only this skill.
    #[param(pattern = "^[0-9]+$")]
    skill_id: Option<String>,
    /// `day` (default; at most 366 days) or `hour` (at most 31 days).
    #[param(pattern = "^(day|hour)$")]
    group_by: Option<String>,
    /// The zone days and hours are counted in (default UTC).
    time_zone: Option<String>,
    /// A first attempt at most this many seconds after its due time keeps the promise
    /// (0 to 86400; default 60).
    #[param(minimum = 0, maximum = 86400)]
    on_time_seconds: Option<i64>,
}

/// One skill's promises for one day or hour.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PromiseItem {
    skill_id: i64,
    /// The period's start in the report's zone: `2026-12-04` or `2026-12-04T14:00`.
    period: String,
    /// Callbacks promised for the period.
    booked: i64,
    /// Published at least once.
    dispatched: i64,
    /// First published within `onTimeSeconds` of the due time.
    on_time: i64,
    /// `onTime / dispatched`; `null` with nothing dispatched.
    on_time_rate: Option<f64>,
    completed: i64,
    failed: i64,
    expired: i64,
    suppressed: i64,
    cancelled: i64,
    /// Pending, or published and awaiting the outcome.
    open: i64,
    /// Lateness of the first publications (milliseconds).
    lateness_p50_ms: Option<f64>,
    lateness_p95_ms: Option<f64>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PromiseReport {
    result: ResultCode,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    group_by: &'static str,
    time_zone: &'static str,
    on_time_seconds: u32,
    items: Vec<PromiseItem>,
}

const CSV_HEADER: &str = "skillId,period,booked,dispatched,onTime,onTimeRate,completed,failed,expired,suppressed,cancelled,open,latenessP50Ms,latenessP95Ms\n";

fn item(row: PromiseRow, period: Period) -> PromiseItem {
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

/// `GET /v1/reports/promises`: per skill and period of the promised time, callbacks booked,
/// dispatched, first attempts on time, and how they ended.
#[utoipa::path(
    get,
    path = "/v1/reports/promises",
    operation_id = "promiseReport",
    tag = "callbacks",
    security(("bearer" = [])),
    params(PromiseQuery),
    responses(
        (status = 200, description = "Success: the figures (CSV with `Accept: text/csv`)", content(
            (PromiseReport = "application/json"),
            (String = "text/csv"),
        )),
        (status = 400, description = "Default: a bad range, grouping, zone or tolerance"),
        (status = 401, description = "InvalidSecurityUser: missing, malformed, unknown or disabled token"),
        (status = 403, description = "InvalidSecurityUser: lacks callbacks:read, or may not use the skill"),
    )
)]
pub async fn promises(
    State(state): State<AppState>,
    caller: Caller,
    QueryParams(q): QueryParams<PromiseQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let input = ReportInput {
        from: q.from.as_deref(),
        to: q.to.as_deref(),
        group_by: q.group_by.as_deref(),
        time_zone: q.time_zone.as_deref(),
        on_time_seconds: q.on_time_seconds,
    };
    let (range, rows) = reports::promises(&state, &caller.0, &input, q.skill_id.as_deref()).await?;
    let items: Vec<PromiseItem> = rows.into_iter().map(|r| item(r, range.period)).collect();
    let wants_csv = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/csv"));
    if wants_csv {
        let mut body = String::from(CSV_HEADER);
        for i in &items {
            body.push_str(&csv_line(i));
        }
        return Ok((
            [
                (
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/csv; charset=utf-8"),
                ),
                (
                    header::CONTENT_DISPOSITION,
                    HeaderValue::from_static("attachment; filename=\"promises.csv\""),
                ),
            ],
            body,
        )
            .into_response());
    }
    Ok(Json(PromiseReport {
        result: ResultCode::Success,
        from: range.from,
        to: range.to,
        group_by: range.period.as_str(),
        time_zone: range.zone.name(),
        on_time_seconds: range.on_time_seconds,
        items,
    })
    .into_response())
}
