//! Changing a pending callback (`PATCH`, `DELETE`) and reporting a dialer's outcome.

use axum::Json;
use axum::extract::State;

use super::read::Selection;
use super::views::{
    BulkAction, BulkAnswer, BulkRefusal, BulkRequest, CallbackView, CancelQuery, OutcomeAnswer,
    UpdateRequest,
};
use super::{locked_callback, require_pending};
use crate::api::AppState;
use crate::api::error::{ApiError, ResultCode};
use crate::api::extract::{Caller, JsonBody, PathParam, QueryParams};
use crate::domain::{
    CallbackId, CallbackState, ChangeInput, Decision, Permission, check_reason, plan_change,
};
use crate::outcomes::{self, Applied, OutcomeError, OutcomeReport};
use crate::store::CallbackFilter;

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
    caller.require(Permission::CallbacksCancel)?;
    let reason = check_reason(q.reason.as_deref(), false)?;
    let change = locked_callback(&state, &caller, id).await?;
    require_pending(&change.record, "cancelled")?;
    let cancelled = change.cancel(&caller.0.name, reason.as_deref()).await?;
    tracing::info!(callback_id = %id, skill_id = cancelled.skill_id.get(), security_user = %caller.0.name, "callback cancelled");
    Ok(Json(cancelled.into()))
}

/// Callbacks one bulk change may select at most: a larger selection is refused (narrow the
/// filter), so that one request stays within the request time limit.
const BULK_MAX: u32 = 10_000;
/// Refusals listed in a bulk answer at most.
const BULK_REFUSALS_SHOWN: usize = 20;

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
    run_bulk(&state, &caller, body.value).await.map(Json)
}

/// A bulk change for `caller` (the API's and the console's).
pub async fn run_bulk(
    state: &AppState,
    caller: &Caller,
    req: BulkRequest,
) -> Result<BulkAnswer, ApiError> {
    caller.require(match req.action {
        BulkAction::Cancel => Permission::CallbacksCancel,
        BulkAction::Reschedule | BulkAction::Reassign => Permission::CallbacksUpdate,
    })?;
    let reason = check_reason(req.reason.as_deref(), true)?;
    let change = match req.action {
        BulkAction::Cancel => None,
        BulkAction::Reschedule => Some(ChangeInput {
            schedule_date: Some(
                req.schedule_date
                    .clone()
                    .ok_or_else(|| ApiError::unprocessable("reschedule needs a scheduleDate"))?,
            ),
            time_zone: req.time_zone.clone(),
            ..ChangeInput::default()
        }),
        BulkAction::Reassign => Some(ChangeInput {
            target_agent_id: Some(req.target_agent_id.clone().ok_or_else(|| {
                ApiError::unprocessable("reassign needs a targetAgentId (\"\" or null: the skill)")
            })?),
            ..ChangeInput::default()
        }),
    };
    // The first rules (a bad agent id, a time zone without a date) fail every callback alike.
    let target_agent = change.as_ref().map(ChangeInput::requested).transpose()?;
    let selection = Selection {
        state: req.filter.state.as_deref(),
        skill_id: req.filter.skill_id.as_deref(),
        agent_id: req.filter.agent_id.as_deref(),
        due_before: req.filter.due_before.as_deref(),
        due_after: req.filter.due_after.as_deref(),
    };
    let selected = state
        .store
        .list_callbacks(&CallbackFilter {
            limit: BULK_MAX + 1,
            ..selection.filter(caller)?
        })
        .await?;
    if selected.len() > BULK_MAX as usize {
        return Err(ApiError::unprocessable(format!(
            "the filter selects more than {BULK_MAX} callbacks; narrow it (by skill, agent or due range)"
        )));
    }
    let matched = selected.len();
    let pending: Vec<CallbackId> = selected
        .iter()
        .filter(|c| c.state == CallbackState::Pending)
        .map(|c| c.id)
        .collect();
    if req.dry_run {
        return Ok(BulkAnswer {
            result: ResultCode::Success,
            dry_run: true,
            matched,
            changed: pending.len(),
            skipped: matched - pending.len(),
            refused: Vec::new(),
        });
    }
    let mut changed = 0;
    let mut refused = Vec::new();
    let mut refused_count = 0;
    for id in pending {
        let outcome = bulk_one(
            state,
            caller,
            id,
            change.as_ref(),
            target_agent.flatten(),
            &reason,
        )
        .await;
        match outcome {
            Ok(true) => changed += 1,
            // No longer pending (dispatched or changed meanwhile): skipped.
            Ok(false) => {}
            Err(e) if e.status.is_client_error() => {
                refused_count += 1;
                if refused.len() < BULK_REFUSALS_SHOWN {
                    refused.push(BulkRefusal {
                        callback_id: id,
                        result: e.code,
                        message: e.message,
                    });
                }
            }
            Err(e) => return Err(e),
        }
    }
    tracing::info!(matched, changed, refused = refused_count, security_user = %caller.0.name, "bulk change");
    Ok(BulkAnswer {
        result: ResultCode::Success,
        dry_run: false,
        matched,
        changed,
        skipped: matched - changed,
        refused,
    })
}

/// One callback of a bulk change, under its row lock: `Ok(false)` when it is no longer
/// pending.
async fn bulk_one(
    state: &AppState,
    caller: &Caller,
    id: CallbackId,
    change: Option<&ChangeInput>,
    target_agent: Option<Option<crate::domain::AgentId>>,
    reason: &Option<String>,
) -> Result<bool, ApiError> {
    let mut locked = match locked_callback(state, caller, id).await {
        Ok(locked) => locked,
        Err(e) if e.status == axum::http::StatusCode::NOT_FOUND => return Ok(false),
        Err(e) => return Err(e),
    };
    if locked.record.state != CallbackState::Pending {
        return Ok(false);
    }
    match change {
        None => {
            locked.cancel(&caller.0.name, reason.as_deref()).await?;
        }
        Some(input) => {
            let agent = match target_agent {
                Some(Some(agent_id)) => locked.agent(agent_id).await?,
                _ => None,
            };
            let mut changes = plan_change(
                input.clone(),
                target_agent,
                agent.as_ref(),
                &locked.record,
                &locked.skill,
                locked.now,
                &state.rules,
            )?;
            changes.reason = reason.clone();
            locked.apply(&changes, &caller.0.name).await?;
        }
    }
    Ok(true)
}
