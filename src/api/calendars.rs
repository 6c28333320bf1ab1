//! `/v1/calendars/{name}`: named calendars of closed dates and special hours, as JSON or as
//! an iCalendar file (`text/calendar`); skills name theirs with `calendar`.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use super::error::{ApiError, ResultCode};
use super::extract::{Caller, JsonBody, PathParam, QueryParams};
use crate::app::calendars::{self, CalendarInput};
use crate::domain::{Calendar, CalendarDayJson, CalendarJson};

/// One date of a calendar.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CalendarDayBody {
    /// `YYYY-MM-DD`, in the calendar's time zone.
    #[schema(example = "2026-12-24")]
    date: String,
    /// The hours the date is open (`"09:00-13:00"`), instead of the skill's weekly hours;
    /// absent or `[]`: closed all day.
    #[serde(default)]
    hours: Vec<String>,
    /// What the day is (shown only).
    #[schema(example = "Christmas Eve")]
    label: Option<String>,
}

/// The body of `PUT /v1/calendars/{name}` as JSON (read into the domain's calendar).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CalendarBody {
    /// IANA time zone its dates and hours are read in.
    #[schema(example = "Europe/London")]
    time_zone: String,
    /// At most 2,000 dates.
    days: Vec<CalendarDayBody>,
}

/// A stored calendar.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CalendarView {
    result: ResultCode,
    name: String,
    time_zone: String,
    #[schema(value_type = Vec<CalendarDayBody>)]
    days: Vec<CalendarDayJson>,
    /// The skills it is assigned to.
    skill_ids: Vec<i64>,
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct CalendarQuery {
    /// With a `text/calendar` body: the zone its dates are read in (default UTC).
    time_zone: Option<String>,
}

async fn view(state: &AppState, calendar: Calendar) -> Result<CalendarView, ApiError> {
    let skill_ids = state.store.skills_with_calendar(&calendar.name).await?;
    let json = calendar.to_json();
    Ok(CalendarView {
        result: ResultCode::Success,
        name: calendar.name,
        time_zone: json.time_zone,
        days: json.days,
        skill_ids,
    })
}

/// `PUT /v1/calendars/{name}`: creates or replaces a calendar.
#[utoipa::path(
    put,
    path = "/v1/calendars/{name}",
    operation_id = "putCalendar",
    tag = "directory",
    security(("bearer" = [])),
    params(("name" = String, Path, pattern = "^[A-Za-z0-9._-]{1,100}$", description = "The calendar's name, as skills name it"), CalendarQuery),
    request_body(content(
        (CalendarBody = "application/json"),
        (String = "text/calendar"),
    ), description = "JSON, or an iCalendar file (RFC 5545, `text/calendar`): all-day events close their dates, timed events are a date's special hours"),
    responses(
        (status = 200, description = "Success: the stored calendar", body = CalendarView),
        (status = 400, description = "Default: malformed JSON, a bad name or query parameter"),
        (status = 401, description = "InvalidSecurityUser: missing, malformed, unknown or disabled token"),
        (status = 403, description = "InvalidSecurityUser: lacks directory:write, or is restricted to some skills"),
        (status = 422, description = "Default: a bad time zone, date or range, a date listed twice, too many dates, an unreadable iCalendar file"),
    )
)]
pub async fn put_calendar(
    State(state): State<AppState>,
    caller: Caller,
    PathParam(name): PathParam<String>,
    QueryParams(q): QueryParams<CalendarQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<CalendarView>, ApiError> {
    let is_ical = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim_start()
                .to_ascii_lowercase()
                .starts_with("text/calendar")
        });
    let input = if is_ical {
        let text = std::str::from_utf8(&body)
            .map_err(|_| ApiError::bad_request("the iCalendar file is not UTF-8"))?;
        CalendarInput::ICalendar {
            text,
            zone: q.time_zone.as_deref(),
        }
    } else {
        if q.time_zone.is_some() {
            return Err(ApiError::bad_request(
                "timeZone as a query parameter goes with a text/calendar body; a JSON body says it as timeZone",
            ));
        }
        CalendarInput::Json(JsonBody::<CalendarJson>::parse(&body)?.value)
    };
    let calendar = calendars::put(&state, &caller.0, &name, input).await?;
    Ok(Json(view(&state, calendar).await?))
}

/// `GET /v1/calendars/{name}`.
#[utoipa::path(
    get,
    path = "/v1/calendars/{name}",
    operation_id = "getCalendar",
    tag = "directory",
    security(("bearer" = [])),
    params(("name" = String, Path, description = "The calendar's name")),
    responses(
        (status = 200, description = "Success: the calendar and the skills it is assigned to", body = CalendarView),
        (status = 400, description = "Default: a bad name"),
        (status = 401, description = "InvalidSecurityUser: missing, malformed, unknown or disabled token"),
        (status = 403, description = "InvalidSecurityUser: lacks directory:read"),
        (status = 404, description = "Default: no such calendar"),
    )
)]
pub async fn get_calendar(
    State(state): State<AppState>,
    caller: Caller,
    PathParam(name): PathParam<String>,
) -> Result<Json<CalendarView>, ApiError> {
    let calendar = calendars::get(&state, &caller.0, &name).await?;
    Ok(Json(view(&state, calendar).await?))
}

/// `DELETE /v1/calendars/{name}`: only a calendar no skill is assigned.
#[utoipa::path(
    delete,
    path = "/v1/calendars/{name}",
    operation_id = "deleteCalendar",
    tag = "directory",
    security(("bearer" = [])),
    params(("name" = String, Path, description = "The calendar's name")),
    responses(
        (status = 204, description = "Success: deleted"),
        (status = 400, description = "Default: a bad name"),
        (status = 401, description = "InvalidSecurityUser: missing, malformed, unknown or disabled token"),
        (status = 403, description = "InvalidSecurityUser: lacks directory:write, or is restricted to some skills"),
        (status = 404, description = "Default: no such calendar"),
        (status = 409, description = "Default: skills are assigned this calendar (named in the message)"),
    )
)]
pub async fn delete_calendar(
    State(state): State<AppState>,
    caller: Caller,
    PathParam(name): PathParam<String>,
) -> Result<Response, ApiError> {
    calendars::delete(&state, &caller.0, &name).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
