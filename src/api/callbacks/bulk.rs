//! `/v1/callbacks/bulk`: change every pending callback a filter selects, and read where a
//! bulk change stands (`app::bulk` runs it).

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use uuid::Uuid;

use super::views::{BulkAnswer, BulkListAnswer, BulkRequest};
use crate::api::AppState;
use crate::api::error::{ApiError, ResultCode};
use crate::api::extract::{Caller, JsonBody, PathParam, idempotency_key};
use crate::app::{self, BulkState, Selection};

/// `POST /v1/callbacks/bulk`: cancel, reschedule or reassign every pending callback a
/// filter selects, each in its own transaction with its own event (carrying the reason),
/// through the same rules as a single change.
#[utoipa::path(
    post,
    path = "/v1/callbacks/bulk",
    operation_id = "bulkChange",
    tag = "callbacks",
    security(("bearer" = [])),
    params(("Idempotency-Key" = Option<String>, Header, description = "A repeat with the same key and body from the same user answers the change that key began — finished, or where it stands — and changes nothing more")),
    request_body = BulkRequest,
    responses(
        (status = 200, description = "Success: the change went through its selection (or, `dryRun`, would change `changed`); how many matched, changed and were skipped",
            headers(("Location" = String, description = "`/v1/callbacks/bulk/{bulkId}`; absent for a dry run"),
                    ("Idempotent-Replayed" = String, description = "`true` when this answers an earlier request with the same Idempotency-Key")),
            body = BulkAnswer),
        (status = 202, description = "Success: a repeat (same Idempotency-Key) of a change still running: its progress so far", body = BulkAnswer),
        (status = 400, description = "Default: malformed JSON, a bad filter value or a bad Idempotency-Key"),
        (status = 401, description = "InvalidSecurityUser: missing, malformed, unknown or disabled token"),
        (status = 403, description = "InvalidSecurityUser: lacks callbacks:cancel (cancel) or callbacks:update, or names a skill it may not use"),
        (status = 422, description = "Default: no reason, an action without what it needs, more than 10,000 callbacks selected, or an Idempotency-Key used for another bulk change; InvalidScheduleDate or InvalidTargetAgentId when the new value is wrong for every callback"),
    )
)]
#[tracing::instrument(skip_all, fields(action = ?body.value.action))]
pub async fn bulk(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: JsonBody<BulkRequest>,
) -> Result<Response, ApiError> {
    let idempotency = idempotency_key(&headers, body.digest)?;
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
                ..Selection::default()
            },
            reason: req.reason.as_deref(),
            schedule_date: req.schedule_date,
            time_zone: req.time_zone,
            target_agent_id: req.target_agent_id,
            target_agent_ids: req.target_agent_ids,
            priority: req.priority,
            dry_run: req.dry_run,
        },
        idempotency,
    )
    .await?;
    let status = if report.state == BulkState::Running {
        StatusCode::ACCEPTED
    } else {
        StatusCode::OK
    };
    let replayed = report.replayed;
    let location = report
        .id
        .and_then(|id| HeaderValue::from_str(&format!("/v1/callbacks/bulk/{id}")).ok());
    let mut response = (status, Json(BulkAnswer::from(report))).into_response();
    if let Some(location) = location {
        response.headers_mut().insert(header::LOCATION, location);
    }
    if replayed {
        response
            .headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    Ok(response)
}

/// `GET /v1/callbacks/bulk/{id}`: one of the caller's bulk changes, where it stands.
#[utoipa::path(
    get,
    path = "/v1/callbacks/bulk/{id}",
    operation_id = "getBulkChange",
    tag = "callbacks",
    security(("bearer" = [])),
    params(("id" = String, Path, format = Uuid, description = "The `bulkId` from the change's answer or the caller's list")),
    responses(
        (status = 200, description = "Success: running (progress so far), done or interrupted", body = BulkAnswer),
        (status = 400, description = "Default: the id is not a UUID"),
        (status = 401, description = "InvalidSecurityUser: missing, malformed, unknown or disabled token"),
        (status = 404, description = "Default: the caller has no bulk change with that id (another user's is not shown)"),
    )
)]
pub async fn bulk_change(
    State(state): State<AppState>,
    caller: Caller,
    PathParam(id): PathParam<Uuid>,
) -> Result<Json<BulkAnswer>, ApiError> {
    Ok(Json(app::bulk_report(&state, &caller.0, id).await?.into()))
}

/// `GET /v1/callbacks/bulk`: the caller's latest bulk changes (at most 50), newest first —
/// how a client whose request ended before its answer finds the change's id.
#[utoipa::path(
    get,
    path = "/v1/callbacks/bulk",
    operation_id = "listBulkChanges",
    tag = "callbacks",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Success: the caller's bulk changes (dry runs are not kept)", body = BulkListAnswer),
        (status = 401, description = "InvalidSecurityUser: missing, malformed, unknown or disabled token"),
    )
)]
pub async fn bulk_changes(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<BulkListAnswer>, ApiError> {
    let reports = app::bulk_reports(&state, &caller.0).await?;
    Ok(Json(BulkListAnswer {
        result: ResultCode::Success,
        bulk_changes: reports.into_iter().map(BulkAnswer::from).collect(),
    }))
}
