//! `POST /v1/callbacks`: authenticate, look up, plan (`domain::plan_create`), store, answer.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use super::views::{CreateRequest, CreatedAnswer};
use crate::api::AppState;
use crate::api::availability::slots_with_bookings;
use crate::api::error::{ApiError, ResultCode};
use crate::api::extract::{Caller, JsonBody};
use crate::domain::{
    CallbackId, CreateInput, NewCallback, Permission, SLOT_SEARCH, Skill, plan_create, replan_full,
};
use crate::store::{Booked, IdempotencyKey, Inserted, NewCreate};

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
    let nearest = input.nearest_slot;
    let requested = input.requested()?;
    caller.require_skill(requested.skill_id)?;
    let phone = input.phone_number(&state.rules);
    let context = state
        .store
        .create_context(
            requested.skill_id,
            requested.target_agent_id,
            phone.as_ref().ok(),
        )
        .await?;
    let callback = plan_create(
        input,
        requested,
        phone,
        CallbackId::generate(),
        &context,
        &state.rules,
    )?;
    let (answer, inserted) = match callback.slot {
        None => {
            let (create, answer) = new_create(callback, &caller, idempotency)?;
            (answer, state.creates.insert(create).await?)
        }
        Some(_) => {
            let skill = context.skill.as_ref().ok_or_else(ApiError::internal)?;
            book_in_slot(&state, callback, skill, &caller, idempotency, nearest).await?
        }
    };
    tracing::Span::current().record(
        "callback_id",
        tracing::field::display(answer.body.callback_id),
    );
    match inserted {
        Inserted::Created => {
            crate::instruments::created(answer.route);
            tracing::info!(
                callback_id = %answer.body.callback_id,
                skill_id = answer.skill_id.get(),
                route = answer.route,
                due_at = %answer.body.due_at.to_rfc3339(),
                security_user = %caller.0.name,
                result = "Success",
                "callback created"
            );
            Ok((StatusCode::CREATED, Json(answer.body)).into_response())
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
            answer.key.unwrap_or_default()
        ))),
    }
}

/// The answer a create gets, with what the log line needs.
struct Answer {
    body: CreatedAnswer,
    route: &'static str,
    skill_id: crate::domain::SkillId,
    key: Option<String>,
}

/// The create to store, and the answer it gets (stored with an idempotency key).
fn new_create(
    callback: NewCallback,
    caller: &Caller,
    idempotency: Option<IdempotencyKey>,
) -> Result<(NewCreate, Answer), ApiError> {
    let body = CreatedAnswer {
        result: ResultCode::Success,
        callback_id: callback.id,
        due_at: callback.due_at,
        expires_at: callback.expires_at,
    };
    let answer = Answer {
        route: callback.route().kind(),
        skill_id: callback.skill_id,
        key: idempotency.as_ref().map(|k| k.key.clone()),
        body,
    };
    let create = NewCreate {
        callback,
        actor: caller.0.clone(),
        idempotency,
        response: serde_json::to_value(&answer.body).map_err(|e| {
            tracing::error!(error = %e, "cannot encode the create answer");
            ApiError::internal()
        })?,
    };
    Ok((create, answer))
}

/// Stores a create of a skill with slots, in its slot. A full slot is refused with the
/// nearest free ones, or (`slotPolicy: nearest`) the create moves to the nearest free one;
/// another create may fill that one first, so a few tries are made.
async fn book_in_slot(
    state: &AppState,
    mut callback: NewCallback,
    skill: &Skill,
    caller: &Caller,
    idempotency: Option<IdempotencyKey>,
    nearest: bool,
) -> Result<(Answer, Inserted), ApiError> {
    const TRIES: usize = 4;
    for _ in 0..TRIES {
        let Some(slot) = callback.slot else {
            break;
        };
        let (create, answer) = new_create(callback.clone(), caller, idempotency.clone())?;
        match state.store.insert_in_slot(&create, &slot).await? {
            Booked::Done(inserted) => return Ok((answer, inserted)),
            Booked::Full => {
                let now = chrono::Utc::now();
                let from = (slot.start - SLOT_SEARCH).max(now);
                let to = slot.start + SLOT_SEARCH;
                let policy = skill.policy.slots.as_ref().ok_or_else(ApiError::internal)?;
                let (around, booked) = slots_with_bookings(state, skill, policy, from, to).await?;
                callback = replan_full(
                    callback,
                    skill,
                    &around,
                    |start| booked.get(&start).copied().unwrap_or(0),
                    now,
                    state.rules.default_time_zone,
                    nearest,
                )?;
            }
        }
    }
    Err(ApiError::invalid(
        ResultCode::InvalidScheduleDate,
        "scheduleDate: the nearest free slots filled up while booking; try again",
    ))
}
