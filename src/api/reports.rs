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
use crate::domain::ReportInput;
use crate::wire::{PromiseItem, promises_csv};

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
    let items: Vec<PromiseItem> = rows
        .into_iter()
        .map(|r| PromiseItem::of(r, range.period))
        .collect();
    let wants_csv = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/csv"));
    if wants_csv {
        let body = promises_csv(&items);
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
