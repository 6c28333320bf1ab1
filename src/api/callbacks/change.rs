//! Changing a pending callback (`PATCH`, `DELETE`) and reporting a dialer's outcome.

use axum::Json;
use axum::extract::State;

use super::views::{CallbackView, CancelQuery, OutcomeAnswer, RetryQuery, UpdateRequest};
use crate::api::AppState;
use crate::api::error::{ApiError, ResultCode};
use crate::api::extract::{Caller, JsonBody, PathParam, QueryParams};
use crate::app::{self, Applied, OutcomeReport, Why};
use crate::domain::{CallbackId, ChangeInput};

/// `PATCH /v1/callbacks/{id}`: reschedule, change notes or target while pending.
#[utoipa::path(
    patch,
    path = "/v1/callbacks/{id}",
    operation_id = "updateCallback",
    tag = "callbacks",
    security(("bearer" = [])),
    params(("id" = String, Path, format = Uuid, description = "The callback id")),
    request_body = UpdateRequest,
    responses(
        (status = 200, description = "Success: the changed callback", body = CallbackView),
        (status = 400, description = "Default: the id is not a UUID, or malformed JSON"),
        (status = 401, description = "InvalidSecurityUser: missing, malformed, unknown or disabled token"),
        (status = 403, description = "InvalidSecurityUser: lacks callbacks:update"),
        (status = 404, description = "Default: no such callback, or one of a skill the caller may not use"),
        (status = 409, description = "Default: the callback is no longer pending"),
        (status = 422, description = "InvalidTargetAgentId, InvalidScheduleDate, or Default (nothing to change, unknown field, wrong type, text too long)"),
    )
)]
#[tracing::instrument(skip_all, fields(callback_id = %id))]
pub async fn update(
    State(state): State<AppState>,
    caller: Caller,
    PathParam(id): PathParam<CallbackId>,
    body: JsonBody<UpdateRequest>,
) -> Result<Json<CallbackView>, ApiError> {
    let input = ChangeInput::from(body.value);
    let updated = app::change(&state, &caller.0, id, input, Why::optional(None)).await?;
    Ok(Json(updated.into()))
}

/// `POST /v1/callbacks/{id}/outcomes`: a dialer's outcome over HTTP, as on the queue.
#[utoipa::path(
    post,
    path = "/v1/callbacks/{id}/outcomes",
    operation_id = "reportOutcome",
    tag = "callbacks",
    security(("bearer" = [])),
    params(("id" = String, Path, format = Uuid, description = "The callback id")),
    request_body = crate::api::openapi::OutcomeBody,
    responses(
        (status = 200, description = "Success: applied (the callback after it), or a duplicate of an earlier report", body = OutcomeAnswer),
        (status = 400, description = "Default: the id is not a UUID, or malformed JSON"),
        (status = 401, description = "InvalidSecurityUser: missing, malformed, unknown or disabled token"),
        (status = 403, description = "InvalidSecurityUser: lacks callbacks:update"),
        (status = 404, description = "Default: no such callback, or one of a skill the caller may not use"),
        (status = 409, description = "Default: recorded but not applied (an old attempt, or a callback in a state the outcome does not apply to)"),
        (status = 422, description = "InvalidScheduleDate (reschedule), or Default (unknown field, wrong type, callbackId or schema mismatch)"),
    )
)]
#[tracing::instrument(skip_all, fields(callback_id = %id))]
pub async fn outcome(
    State(state): State<AppState>,
    caller: Caller,
    PathParam(id): PathParam<CallbackId>,
    body: JsonBody<OutcomeReport>,
) -> Result<Json<OutcomeAnswer>, ApiError> {
    match app::report_outcome(&state, &caller.0, id, &body.value).await? {
        Applied::Duplicate => Ok(Json(OutcomeAnswer {
            result: ResultCode::Success,
            applied: false,
            duplicate: Some(true),
            message: Some("this outcome was already reported for this attempt".into()),
            callback: None,
        })),
        Applied::Done { record, .. } => Ok(Json(OutcomeAnswer {
            result: ResultCode::Success,
            applied: true,
            duplicate: None,
            message: None,
            callback: Some(CallbackView::from(*record)),
        })),
    }
}

/// `DELETE /v1/callbacks/{id}`: cancel while pending.
#[utoipa::path(
    delete,
    path = "/v1/callbacks/{id}",
    operation_id = "cancelCallback",
    tag = "callbacks",
    security(("bearer" = [])),
    params(("id" = String, Path, format = Uuid, description = "The callback id"), CancelQuery),
    responses(
        (status = 200, description = "Success: the cancelled callback", body = CallbackView),
        (status = 400, description = "Default: the id is not a UUID, or a bad query string"),
        (status = 422, description = "Default: the reason is too long"),
        (status = 401, description = "InvalidSecurityUser: missing, malformed, unknown or disabled token"),
        (status = 403, description = "InvalidSecurityUser: lacks callbacks:cancel"),
        (status = 404, description = "Default: no such callback, or one of a skill the caller may not use"),
        (status = 409, description = "Default: the callback is no longer pending"),
    )
)]
#[tracing::instrument(skip_all, fields(callback_id = %id))]
pub async fn cancel(
    State(state): State<AppState>,
    caller: Caller,
    PathParam(id): PathParam<CallbackId>,
    QueryParams(q): QueryParams<CancelQuery>,
) -> Result<Json<CallbackView>, ApiError> {
    let cancelled = app::cancel(&state, &caller.0, id, Why::optional(q.reason.as_deref())).await?;
    Ok(Json(cancelled.into()))
}

/// `POST /v1/callbacks/{id}/retry`: another attempt at a failed or expired callback.
#[utoipa::path(
    post,
    path = "/v1/callbacks/{id}/retry",
    operation_id = "retryCallback",
    tag = "callbacks",
    security(("bearer" = [])),
    params(("id" = String, Path, format = Uuid, description = "The callback id"), RetryQuery),
    responses(
        (status = 200, description = "Success: the callback, pending again", body = CallbackView),
        (status = 400, description = "Default: the id is not a UUID, or a bad query string"),
        (status = 401, description = "InvalidSecurityUser: missing, malformed, unknown or disabled token"),
        (status = 403, description = "InvalidSecurityUser: lacks callbacks:update"),
        (status = 404, description = "Default: no such callback, or one of a skill the caller may not use"),
        (status = 409, description = "Default: the callback has not failed or expired"),
        (status = 422, description = "InvalidScheduleDate, or Default (the reason is too long)"),
    )
)]
#[tracing::instrument(skip_all, fields(callback_id = %id))]
pub async fn retry(
    State(state): State<AppState>,
    caller: Caller,
    PathParam(id): PathParam<CallbackId>,
    QueryParams(q): QueryParams<RetryQuery>,
) -> Result<Json<CallbackView>, ApiError> {
    let retried = app::retry(
        &state,
        &caller.0,
        id,
        q.schedule_date.as_deref(),
        q.time_zone.as_deref(),
        Why::optional(q.reason.as_deref()),
    )
    .await?;
    Ok(Json(retried.into()))
}
