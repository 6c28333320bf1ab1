//! `POST /v1/callbacks`: authenticate, look up, plan (`domain::plan_create`), store, answer.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use super::views::{CreateRequest, CreatedAnswer};
use crate::api::AppState;
use crate::api::error::ApiError;
use crate::api::extract::{Caller, JsonBody, idempotency_key};
use crate::app::{self, Created};
use crate::domain::{CreateInput, Permission};

/// `POST /v1/callbacks`: validates in the spec's order of result codes and stores the
/// callback as pending.
#[utoipa::path(
    post,
    path = "/v1/callbacks",
    operation_id = "createCallback",
    tag = "callbacks",
    security(("bearer" = [])),
    params(("Idempotency-Key" = Option<String>, Header, description = "A repeat with the same key and body from the same user answers the first 201 again and creates nothing")),
    request_body = CreateRequest,
    responses(
        (status = 201, description = "Success: stored as pending", body = CreatedAnswer,
            headers(("Idempotent-Replayed" = String, description = "`true` when this answers an earlier request with the same Idempotency-Key")),
            links(
                ("GetCallback" = (operation_id = "getCallback", parameters(("id" = "$response.body#/callbackId")))),
                ("UpdateCallback" = (operation_id = "updateCallback", parameters(("id" = "$response.body#/callbackId")))),
                ("CancelCallback" = (operation_id = "cancelCallback", parameters(("id" = "$response.body#/callbackId")))),
                ("CallbackEvents" = (operation_id = "callbackEvents", parameters(("id" = "$response.body#/callbackId")))),
                ("ReportOutcome" = (operation_id = "reportOutcome", parameters(("id" = "$response.body#/callbackId")))),
            )),
        (status = 200, description = "Success: the number already has a pending callback in the skill and the skill's duplicatePolicy is `existing`: that callback (`existing: true`, `message`); nothing new is stored", body = CreatedAnswer),
        (status = 400, description = "Default: malformed JSON, or a bad Idempotency-Key"),
        (status = 401, description = "InvalidSecurityUser: missing, malformed, unknown or disabled token"),
        (status = 403, description = "InvalidSecurityUser: lacks callbacks:create, or may not use that skill"),
        (status = 422, description = "InvalidSkillId, InvalidTargetAgentId, InvalidScheduleDate, InvalidPhoneNumber (also: a bad callerId or origNumber, or the skill's per-number admission refuses it — the message names the limit), or Default (unknown field, wrong type, text too long, Idempotency-Key reused with another body)"),
    )
)]
#[tracing::instrument(skip_all, fields(callback_id = tracing::field::Empty))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: JsonBody<CreateRequest>,
) -> Result<Response, ApiError> {
    // The permission is judged before the key is read, as for every other request.
    caller.require(Permission::CallbacksCreate)?;
    let idempotency = idempotency_key(&headers, body.digest)?;
    let input = CreateInput::from(body.value);
    match app::schedule(&state, &caller.0, input, idempotency).await? {
        Created::New(receipt) => Ok(answer(StatusCode::CREATED, receipt, None)),
        Created::Existing { receipt, message } => {
            Ok(answer(StatusCode::OK, receipt, Some(message)))
        }
        Created::Replayed(first) => {
            let mut response = (StatusCode::CREATED, Json(first)).into_response();
            response
                .headers_mut()
                .insert("idempotent-replayed", HeaderValue::from_static("true"));
            Ok(response)
        }
    }
}

/// A stored callback's answer: a new one (`201`), or the number's pending one given instead
/// (`200`, with what happened in `message`).
fn answer(status: StatusCode, receipt: app::Receipt, existing: Option<String>) -> Response {
    tracing::Span::current().record("callback_id", tracing::field::display(receipt.callback_id));
    let body = CreatedAnswer {
        result: receipt.result,
        callback_id: receipt.callback_id,
        due_at: receipt.due_at,
        expires_at: receipt.expires_at,
        manage_url: receipt.manage_url,
        existing: existing.is_some(),
        message: existing,
    };
    (status, Json(body)).into_response()
}
