//! Changing a pending callback (`PATCH`, `DELETE`) and reporting a dialer's outcome.

use axum::Json;
use axum::extract::State;

use super::views::{CallbackView, OutcomeAnswer, UpdateRequest};
use super::{locked_callback, require_pending};
use crate::api::AppState;
use crate::api::error::{ApiError, ResultCode};
use crate::api::extract::{Caller, JsonBody, PathParam};
use crate::domain::{CallbackId, ChangeInput, Decision, Permission, plan_change};
use crate::outcomes::{self, Applied, OutcomeError, OutcomeReport};

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
    caller.require(Permission::CallbacksUpdate)?;
    let input = ChangeInput::from(body.value);
    let target_agent = input.requested()?;
    let mut change = locked_callback(&state, &caller, id).await?;
    require_pending(&change.record, "changed")?;
    let agent = match target_agent {
        Some(Some(agent_id)) => change.agent(agent_id).await?,
        _ => None,
    };
    let changes = plan_change(
        input,
        target_agent,
        agent.as_ref(),
        &change.record,
        &change.skill,
        change.now,
        &state.rules,
    )?;
    let updated = change.apply(&changes, &caller.0.name).await?;
    tracing::info!(
        callback_id = %id,
        skill_id = updated.skill_id.get(),
        route = updated.route().kind(),
        due_at = %updated.due_at.to_rfc3339(),
        security_user = %caller.0.name,
        "callback updated"
    );
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
    caller.require(Permission::CallbacksUpdate)?;
    let report = body.value;
    if report.callback_id.is_some_and(|body_id| body_id != id) {
        return Err(ApiError::unprocessable(format!(
            "callbackId in the body is not {id}"
        )));
    }
    if report
        .schema
        .as_deref()
        .is_some_and(|s| s != outcomes::SCHEMA)
    {
        return Err(ApiError::unprocessable(format!(
            "schema must be \"{}\"",
            outcomes::SCHEMA
        )));
    }
    let change = locked_callback(&state, &caller, id).await?;
    let applied = outcomes::apply(change, &report, &state.settings, "http", &caller.0.name)
        .await
        .map_err(|e| match e {
            OutcomeError::Store(e) => e.into(),
            OutcomeError::ScheduleDate(e) => ApiError::invalid(ResultCode::InvalidScheduleDate, e),
            OutcomeError::MissingScheduleDate => ApiError::invalid(
                ResultCode::InvalidScheduleDate,
                "reschedule needs a scheduleDate",
            ),
            OutcomeError::Attempt(e) => ApiError::unprocessable(format!("attempt: {e}")),
            other => ApiError::unprocessable(other.to_string()),
        })?;
    match applied {
        Applied::Duplicate => Ok(Json(OutcomeAnswer {
            result: ResultCode::Success,
            applied: false,
            duplicate: Some(true),
            message: Some("this outcome was already reported for this attempt".into()),
            callback: None,
        })),
        Applied::Done {
            decision: Decision::Ignore(reason),
            ..
        } => Err(ApiError::conflict(format!(
            "outcome {} for attempt {} not applied: {reason}",
            report.outcome, report.attempt
        ))),
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
    params(("id" = String, Path, format = Uuid, description = "The callback id")),
    responses(
        (status = 200, description = "Success: the cancelled callback", body = CallbackView),
        (status = 400, description = "Default: the id is not a UUID"),
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
) -> Result<Json<CallbackView>, ApiError> {
    caller.require(Permission::CallbacksCancel)?;
    let change = locked_callback(&state, &caller, id).await?;
    require_pending(&change.record, "cancelled")?;
    let cancelled = change.cancel(&caller.0.name).await?;
    tracing::info!(callback_id = %id, skill_id = cancelled.skill_id.get(), security_user = %caller.0.name, "callback cancelled");
    Ok(Json(cancelled.into()))
}
