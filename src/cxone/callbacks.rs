//! Creating, changing and cancelling through the CXone surface: each handler translates
//! the request into the call `/v1` makes (`app::schedule`, `app::change`, `app::cancel`)
//! and the answer back.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;

use super::error::CxError;
use super::extract::{CxCaller, CxPath, Fields};
use super::views::{CxCancelRequest, CxCreated, CxPromiseRequest, CxScheduleRequest};
use crate::api::callbacks::visible_callback;
use crate::api::extract::Caller;
use crate::api::{ApiError, AppState, ResultCode};
use crate::app::{self, AppError, Created, Why};
use crate::domain::{Callback, CallbackId, CallbackNumber, CreateInput, Permission, PhoneNumber};

/// `POST /scheduled-callbacks`: schedules a callback as `POST /v1/callbacks` does.
#[utoipa::path(
    post,
    path = "/scheduled-callbacks",
    operation_id = "cxoneScheduleCallback",
    tag = "cxone",
    security(("bearer" = [])),
    request_body(content = CxScheduleRequest, description = "The same fields are taken as query parameters (CXone's form) when there is no body"),
    responses(
        (status = 200, description = "Success: stored as pending (or, with the skill's duplicatePolicy `existing`, the number's pending callback)", body = CxCreated,
            links(
                ("UpdateCallback" = (operation_id = "cxoneUpdateCallback", parameters(("callbackId" = "$response.body#/callbackId")))),
                ("DeleteCallback" = (operation_id = "cxoneDeleteCallback", parameters(("callbackId" = "$response.body#/callbackId")))),
            )),
        (status = 400, description = "Default: malformed JSON or query string, or fields in both"),
        (status = 401, description = "InvalidSecurityUser: missing, malformed, unknown or disabled token"),
        (status = 403, description = "InvalidSecurityUser: lacks callbacks:create, or may not use that skill"),
        (status = 422, description = "InvalidSkillId, InvalidTargetAgentId, InvalidScheduleDate, InvalidPhoneNumber, or Default (unknown field, wrong type, text too long)"),
    )
)]
#[tracing::instrument(skip_all, fields(callback_id = tracing::field::Empty))]
pub async fn schedule(
    State(state): State<AppState>,
    CxCaller(caller): CxCaller,
    Fields(request): Fields<CxScheduleRequest>,
) -> Result<Json<CxCreated>, CxError> {
    create(&state, &caller, CreateInput::from(request)).await
}

/// `POST /promise` (Patron API): a promise for a local date and time in a named zone.
#[utoipa::path(
    post,
    path = "/promise",
    operation_id = "cxonePromise",
    tag = "cxone",
    security(("bearer" = [])),
    request_body(content = CxPromiseRequest, description = "The same fields are taken as query parameters when there is no body"),
    responses(
        (status = 200, description = "Success: stored as pending", body = CxCreated,
            links(
                ("UpdateCallback" = (operation_id = "cxoneUpdateCallback", parameters(("callbackId" = "$response.body#/callbackId")))),
                ("DeleteCallback" = (operation_id = "cxoneDeleteCallback", parameters(("callbackId" = "$response.body#/callbackId")))),
            )),
        (status = 400, description = "Default: malformed JSON or query string, or fields in both"),
        (status = 401, description = "InvalidSecurityUser: missing, malformed, unknown or disabled token"),
        (status = 403, description = "InvalidSecurityUser: lacks callbacks:create, or may not use that skill"),
        (status = 422, description = "InvalidSkillId, InvalidTargetAgentId, InvalidScheduleDate (promiseDate, promiseTime or timeZone), InvalidPhoneNumber, or Default"),
    )
)]
#[tracing::instrument(skip_all, fields(callback_id = tracing::field::Empty))]
pub async fn promise(
    State(state): State<AppState>,
    CxCaller(caller): CxCaller,
    Fields(request): Fields<CxPromiseRequest>,
) -> Result<Json<CxCreated>, CxError> {
    create(&state, &caller, CreateInput::from(request))
        .await
        .map_err(|CxError(mut e)| {
            // The date and time were read as one `scheduleDate`: say which fields they were.
            if e.code == ResultCode::InvalidScheduleDate {
                e.message = e
                    .message
                    .replacen("scheduleDate", "promiseDate and promiseTime", 1);
            }
            CxError(e)
        })
}

/// Schedules through the same use case as `/v1`, and answers with the callback's number.
async fn create(
    state: &AppState,
    caller: &Caller,
    input: CreateInput,
) -> Result<Json<CxCreated>, CxError> {
    let id = match app::schedule(state, &caller.0, input, None).await? {
        Created::New(receipt) | Created::Existing { receipt, .. } => receipt.callback_id,
        // Only a request with an Idempotency-Key is replayed; this surface sends none.
        Created::Replayed(_) => {
            return Err(AppError::Internal("a create without a key was replayed".into()).into());
        }
    };
    tracing::Span::current().record("callback_id", tracing::field::display(id));
    let stored = state
        .store
        .callback(id)
        .await?
        .ok_or(AppError::NoSuchCallback(id))?;
    Ok(Json(CxCreated {
        callback_id: stored.number,
    }))
}

/// `PUT /scheduled-callbacks/{callbackId}`: reschedules, reassigns or changes the notes of
/// a pending callback as `PATCH /v1/callbacks/{id}` does.
#[utoipa::path(
    put,
    path = "/scheduled-callbacks/{callbackId}",
    operation_id = "cxoneUpdateCallback",
    tag = "cxone",
    security(("bearer" = [])),
    params(("callbackId" = i64, Path, minimum = 1, description = "The callback's number")),
    request_body(content = CxScheduleRequest, description = "The same fields are taken as query parameters when there is no body"),
    responses(
        (status = 204, description = "Success: changed (or already as asked)"),
        (status = 400, description = "Default: the id is not a positive integer, malformed JSON or query string, or fields in both"),
        (status = 401, description = "InvalidSecurityUser: missing, malformed, unknown or disabled token"),
        (status = 403, description = "InvalidSecurityUser: lacks callbacks:update"),
        (status = 404, description = "Default: no such callback, or one of a skill the caller may not use"),
        (status = 409, description = "Default: the callback is no longer pending"),
        (status = 422, description = "InvalidTargetAgentId, InvalidScheduleDate, or Default (firstName, lastName, phoneNumber or skillId other than the callback's; unknown field, wrong type, text too long)"),
    )
)]
#[tracing::instrument(skip_all, fields(callback_id = tracing::field::Empty))]
pub async fn update(
    State(state): State<AppState>,
    CxCaller(caller): CxCaller,
    CxPath(number): CxPath<CallbackNumber>,
    Fields(request): Fields<CxScheduleRequest>,
) -> Result<StatusCode, CxError> {
    caller.require(Permission::CallbacksUpdate)?;
    let id = callback_of(&state, number).await?;
    let current = visible_callback(&state, &caller, id).await?;
    unchanged_contact(&state, &current, &request).await?;
    // A PUT that restates the callback asks for its notes as they are: the use case still
    // judges permission and state, and writes nothing.
    let input = request
        .change()
        .unwrap_or_else(|| crate::domain::ChangeInput {
            notes: Some(current.notes.clone()),
            ..Default::default()
        });
    app::change(&state, &caller.0, id, input, Why::optional(None)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `DELETE /scheduled-callbacks/{callbackId}`: cancels a pending callback as `DELETE
/// /v1/callbacks/{id}` does, `description` as the reason.
#[utoipa::path(
    delete,
    path = "/scheduled-callbacks/{callbackId}",
    operation_id = "cxoneDeleteCallback",
    tag = "cxone",
    security(("bearer" = [])),
    params(("callbackId" = i64, Path, minimum = 1, description = "The callback's number"), CxCancelRequest),
    responses(
        (status = 204, description = "Success: cancelled"),
        (status = 400, description = "Default: the id is not a positive integer, or a bad query string or body"),
        (status = 401, description = "InvalidSecurityUser: missing, malformed, unknown or disabled token"),
        (status = 403, description = "InvalidSecurityUser: lacks callbacks:cancel"),
        (status = 404, description = "Default: no such callback, or one of a skill the caller may not use"),
        (status = 409, description = "Default: the callback is no longer pending"),
        (status = 422, description = "Default: the description is too long, or a body field is unknown or of the wrong type"),
    )
)]
#[tracing::instrument(skip_all, fields(callback_id = tracing::field::Empty))]
pub async fn delete(
    State(state): State<AppState>,
    CxCaller(caller): CxCaller,
    CxPath(number): CxPath<CallbackNumber>,
    Fields(request): Fields<CxCancelRequest>,
) -> Result<StatusCode, CxError> {
    caller.require(Permission::CallbacksCancel)?;
    let id = callback_of(&state, number).await?;
    app::cancel(
        &state,
        &caller.0,
        id,
        Why::optional(request.description.as_deref()),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The callback a number names (404 when none does).
async fn callback_of(state: &AppState, number: CallbackNumber) -> Result<CallbackId, CxError> {
    let id = state
        .store
        .callback_of_number(number.get())
        .await?
        .ok_or_else(|| ApiError::not_found(format!("callback {number} does not exist")))?;
    tracing::Span::current().record("callback_id", tracing::field::display(id));
    Ok(id)
}

/// The contact and skill are what a callback is; a PUT may restate them but not change
/// them (cancel it and create another).
async fn unchanged_contact(
    state: &AppState,
    current: &Callback,
    request: &CxScheduleRequest,
) -> Result<(), CxError> {
    let mut changed = Vec::new();
    if request
        .first_name
        .as_deref()
        .is_some_and(|v| v != current.first_name)
    {
        changed.push("firstName");
    }
    if request
        .last_name
        .as_deref()
        .is_some_and(|v| v != current.last_name)
    {
        changed.push("lastName");
    }
    if let Some(raw) = &request.skill_id
        && raw.0.trim() != current.skill_id.to_string()
    {
        changed.push("skillId");
    }
    if let Some(raw) = request.phone_number.as_deref() {
        let region = app::number_region(state, current.skill_id).await?;
        let same = PhoneNumber::parse(raw, region)
            .is_ok_and(|n| n.as_str() == current.phone_number.as_str());
        if !same {
            changed.push("phoneNumber");
        }
    }
    if changed.is_empty() {
        return Ok(());
    }
    Err(ApiError::unprocessable(format!(
        "{} cannot be changed: a callback keeps its contact and skill; delete it and schedule another",
        changed.join(", ")
    ))
    .into())
}
