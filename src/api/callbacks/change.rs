//! Changing a pending callback (`PATCH`, `DELETE`) and reporting a dialer's outcome.

use axum::Json;
use axum::extract::State;

use super::views::{
    BulkAnswer, BulkRefusal, BulkRequest, CallbackView, CancelQuery, OutcomeAnswer, UpdateRequest,
};
use crate::api::AppState;
use crate::api::error::{ApiError, ResultCode};
use crate::api::extract::{Caller, JsonBody, PathParam, QueryParams};
use crate::app::{self, Applied, OutcomeReport, Selection, Why};
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

/// `POST /v1/callbacks/bulk`: cancel, reschedule or reassign every pending callback a
/// filter selects, each in its own transaction with its own event (carrying the reason),
/// through the same rules as a single change.
#[utoipa::path(
    post,
    path = "/v1/callbacks/bulk",
    operation_id = "bulkChange",
    tag = "callbacks",
    security(("bearer" = [])),
    request_body = BulkRequest,
    responses(
        (status = 200, description = "Success: how many matched, changed and were skipped", body = BulkAnswer),
        (status = 400, description = "Default: malformed JSON, or a bad filter value"),
        (status = 401, description = "InvalidSecurityUser: missing, malformed, unknown or disabled token"),
        (status = 403, description = "InvalidSecurityUser: lacks callbacks:cancel (cancel) or callbacks:update, or names a skill it may not use"),
        (status = 422, description = "Default: no reason, an action without what it needs, or more than 10,000 callbacks selected; InvalidScheduleDate or InvalidTargetAgentId when the new value is wrong for every callback"),
    )
)]
#[tracing::instrument(skip_all, fields(action = ?body.value.action))]
pub async fn bulk(
    State(state): State<AppState>,
    caller: Caller,
    body: JsonBody<BulkRequest>,
) -> Result<Json<BulkAnswer>, ApiError> {
    let req = body.value;
    let report = app::change_many(
        &state,
        &caller.0,
        app::BulkChange {
            action: req.action.into(),
            selection: Selection {
                state: req.filter.state.as_deref(),
                skill_id: req.filter.skill_id.as_deref(),
                agent_id: req.filter.agent_id.as_deref(),
                due_before: req.filter.due_before.as_deref(),
                due_after: req.filter.due_after.as_deref(),
            },
            reason: req.reason.as_deref(),
            schedule_date: req.schedule_date,
            time_zone: req.time_zone,
            target_agent_id: req.target_agent_id,
            dry_run: req.dry_run,
        },
    )
    .await?;
    Ok(Json(BulkAnswer {
        result: ResultCode::Success,
        dry_run: report.dry_run,
        matched: report.matched,
        changed: report.changed,
        skipped: report.skipped,
        refused: report
            .refused
            .into_iter()
            .map(|r| BulkRefusal {
                callback_id: r.callback_id,
                result: r.result,
                message: r.message,
            })
            .collect(),
    }))
}
