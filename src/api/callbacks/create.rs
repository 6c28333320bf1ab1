//! `POST /v1/callbacks`: authenticate, look up, plan (`domain::plan_create`), store, answer.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use super::views::{CreateRequest, CreatedAnswer};
use crate::api::AppState;
use crate::api::error::{ApiError, ResultCode};
use crate::api::extract::{Caller, JsonBody};
use crate::domain::{CallbackId, CreateInput, Permission, plan_create};
use crate::store::{IdempotencyKey, Inserted, NewCreate};

fn idempotency_key(
    headers: &HeaderMap,
    digest: [u8; 32],
) -> Result<Option<IdempotencyKey>, ApiError> {
    let Some(raw) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let key = raw
        .to_str()
        .ok()
        .map(str::trim)
        .filter(|k| !k.is_empty() && k.len() <= 255)
        .ok_or_else(|| {
            ApiError::bad_request("Idempotency-Key must be 1 to 255 visible ASCII characters")
        })?;
    Ok(Some(IdempotencyKey {
        key: key.to_owned(),
        request_sha256: digest,
    }))
}

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
        (status = 400, description = "Default: malformed JSON, or a bad Idempotency-Key"),
        (status = 401, description = "InvalidSecurityUser: missing, malformed, unknown or disabled token"),
        (status = 403, description = "InvalidSecurityUser: lacks callbacks:create, or may not use that skill"),
        (status = 422, description = "InvalidSkillId, InvalidTargetAgentId, InvalidScheduleDate, InvalidPhoneNumber, or Default (unknown field, wrong type, text too long, Idempotency-Key reused with another body)"),
    )
)]
#[tracing::instrument(skip_all, fields(callback_id = tracing::field::Empty))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: JsonBody<CreateRequest>,
) -> Result<Response, ApiError> {
    caller.require(Permission::CallbacksCreate)?;
    let idempotency = idempotency_key(&headers, body.digest)?;
    let input = CreateInput::from(body.value);
    let requested = input.requested()?;
    caller.require_skill(requested.skill_id)?;
    let phone = input.phone_number(&state.rules);
    let context = state
        .store
        .create_context(
            requested.skill_id,
            requested.target_agent_id,
            phone.as_ref(),
        )
        .await?;
    let callback = plan_create(
        input,
        requested,
        CallbackId::generate(),
        &context,
        &state.rules,
    )?;
    tracing::Span::current().record("callback_id", tracing::field::display(callback.id));
    let answer = CreatedAnswer {
        result: ResultCode::Success,
        callback_id: callback.id,
        due_at: callback.due_at,
        expires_at: callback.expires_at,
    };
    let (due_at, route, skill_id) = (callback.due_at, callback.route().kind(), callback.skill_id);
    let key = idempotency.as_ref().map(|k| k.key.clone());
    let caller_name = caller.0.name.clone();
    let create = NewCreate {
        callback,
        actor: caller.0,
        idempotency,
        response: serde_json::to_value(&answer).map_err(|e| {
            tracing::error!(error = %e, "cannot encode the create answer");
            ApiError::internal()
        })?,
    };
    match state.creates.insert(create).await? {
        Inserted::Created => {
            crate::instruments::created(route);
            tracing::info!(
                callback_id = %answer.callback_id,
                skill_id = skill_id.get(),
                route,
                due_at = %due_at.to_rfc3339(),
                security_user = %caller_name,
                result = "Success",
                "callback created"
            );
            Ok((StatusCode::CREATED, Json(answer)).into_response())
        }
        Inserted::Replayed(first) => {
            let mut response = (StatusCode::CREATED, Json(first)).into_response();
            response
                .headers_mut()
                .insert("idempotent-replayed", HeaderValue::from_static("true"));
            Ok(response)
        }
        Inserted::KeyReused => Err(ApiError::unprocessable(format!(
            "Idempotency-Key `{}` was already used with a different request body",
            key.unwrap_or_default()
        ))),
    }
}
