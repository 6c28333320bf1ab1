//! `/v1/callbacks`: schedule, read, list, change and cancel callbacks.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Datelike, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Value, json};
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use super::error::{ApiError, ResultCode};
use super::extract::{Caller, JsonBody, PathParam, QueryParams};
use crate::domain::Decision;
use crate::domain::{
    AgentId, CallbackId, CallbackState, NewCallback, Permission, PhoneNumber, SkillId, TextField,
    parse_time_zone, resolve_schedule_date,
};
use crate::outcomes::{self, Applied, OutcomeError, OutcomeReport};
use crate::store::{
    CallbackChange, CallbackFilter, CallbackRecord, Changes, IdempotencyKey, Inserted, ListCursor,
    NewCreate,
};

/// An id as scripts send it: a JSON number or a string of digits. Kept raw so that a bad
/// value is reported with its own result code rather than as malformed JSON.
#[derive(Debug, Clone)]
pub struct IdInput(String);

impl<'de> Deserialize<'de> for IdInput {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = IdInput;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an id: a positive integer or a string of digits")
            }
            fn visit_i64<E>(self, v: i64) -> Result<IdInput, E> {
                Ok(IdInput(v.to_string()))
            }
            fn visit_u64<E>(self, v: u64) -> Result<IdInput, E> {
                Ok(IdInput(v.to_string()))
            }
            fn visit_str<E>(self, v: &str) -> Result<IdInput, E> {
                Ok(IdInput(v.to_owned()))
            }
        }
        d.deserialize_any(Visitor)
    }
}

impl IdInput {
    /// `""` means "no target agent".
    fn target_agent(&self) -> Result<Option<AgentId>, ApiError> {
        if self.0.trim().is_empty() {
            return Ok(None);
        }
        self.0.parse().map(Some).map_err(|e| {
            ApiError::invalid(
                ResultCode::InvalidTargetAgentId,
                format!("targetAgentId: {e}"),
            )
        })
    }
}

/// A callback to schedule. Unknown fields are refused.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CreateRequest {
    /// At most 100 characters.
    #[schema(max_length = 100, example = "Ada")]
    first_name: Option<String>,
    /// At most 100 characters.
    #[schema(max_length = 100, example = "Lovelace")]
    last_name: Option<String>,
    /// `+<country code>…`, or a national number read in `schedule.default_region`.
    #[schema(required = true, example = "+442079460958")]
    phone_number: Option<String>,
    /// An active outbound phone skill.
    #[schema(required = true, schema_with = super::openapi::id_input_schema)]
    skill_id: Option<IdInput>,
    /// An active agent's id; `""`, `null` or absent routes to the skill.
    #[schema(schema_with = super::openapi::target_agent_schema)]
    target_agent_id: Option<IdInput>,
    /// ISO 8601: an instant (`2030-01-15T14:30:00Z`, `…+01:00`) or a wall-clock time
    /// (`2030-01-15T14:30:00`) in `timeZone`, else the skill's, else the default zone.
    #[schema(required = true, example = "2030-01-15T14:30:00")]
    schedule_date: Option<String>,
    /// Shown to the agent; at most 4000 characters.
    #[schema(max_length = 4000, example = "re: invoice 42")]
    notes: Option<String>,
    /// IANA time zone name for a `scheduleDate` without offset.
    #[schema(example = "Europe/Paris")]
    time_zone: Option<String>,
    /// ISO 8601; never published after it.
    expires_at: Option<String>,
    #[schema(inline)]
    window_policy: Option<WindowPolicy>,
}

/// What to do with a `scheduleDate` outside the skill's calling hours.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum WindowPolicy {
    /// Move it to the next opening (the answer's `dueAt` says when).
    #[default]
    Defer,
    /// Refuse it with `InvalidScheduleDate`.
    Reject,
}

/// Deserialises a present field (even `null`) as `Some`, so "absent" and "null" differ.
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

/// A change to a pending callback: at least one of `scheduleDate`, `notes`,
/// `targetAgentId`. Unknown fields are refused.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct UpdateRequest {
    /// ISO 8601, read like `scheduleDate` on create.
    #[schema(example = "2030-01-16T09:00:00")]
    schedule_date: Option<String>,
    /// Only together with `scheduleDate`.
    time_zone: Option<String>,
    /// At most 4000 characters.
    #[schema(max_length = 4000)]
    notes: Option<String>,
    /// Absent: unchanged. `null` or `""`: route to the skill. Otherwise the new target agent.
    #[serde(default, deserialize_with = "present")]
    #[schema(schema_with = super::openapi::target_agent_schema)]
    target_agent_id: Option<Option<IdInput>>,
    /// ISO 8601, read like `scheduleDate`; must stay after the due time.
    expires_at: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only callbacks in this state.
    #[param(schema_with = super::openapi::callback_state_schema)]
    state: Option<String>,
    /// Only callbacks of this skill.
    #[param(pattern = "^[0-9]+$", example = "101")]
    skill_id: Option<String>,
    /// Only callbacks targeting this agent.
    #[param(pattern = "^[0-9]+$", example = "7")]
    agent_id: Option<String>,
    /// Due before this instant (exclusive, RFC 3339).
    #[param(format = DateTime)]
    due_before: Option<String>,
    /// Due at or after this instant (inclusive, RFC 3339).
    #[param(format = DateTime)]
    due_after: Option<String>,
    /// The `nextCursor` of the previous page.
    cursor: Option<String>,
    /// Page size: 1 to `api.max_page_size` (default `api.default_page_size`).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
}

/// A callback as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CallbackView {
    #[schema(value_type = String, format = Uuid)]
    callback_id: CallbackId,
    #[schema(schema_with = super::openapi::callback_state_schema)]
    state: CallbackState,
    first_name: String,
    last_name: String,
    /// E.164.
    phone_number: String,
    #[schema(value_type = i64, minimum = 1)]
    skill_id: SkillId,
    #[schema(value_type = Option<i64>, minimum = 1)]
    target_agent_id: Option<AgentId>,
    /// `agent` or `skill`.
    #[schema(example = "skill")]
    route: &'static str,
    /// `agent.<id>` or `skill.<id>`.
    routing_key: String,
    notes: String,
    time_zone: Option<&'static str>,
    scheduled_for: DateTime<Utc>,
    due_at: DateTime<Utc>,
    attempt: i32,
    dispatched_at: Option<DateTime<Utc>>,
    last_error: Option<String>,
    created_by: String,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    expires_at: Option<DateTime<Utc>>,
    /// Unanswered attempts so far (no_answer, busy).
    unanswered_attempts: i32,
    last_outcome: Option<String>,
    /// When the callback is next due to be published, if it still will be.
    next_due_at: Option<DateTime<Utc>>,
    /// While waiting for the target agent: when it falls back to the skill.
    agent_fallback_at: Option<DateTime<Utc>>,
    fell_back_at: Option<DateTime<Utc>>,
}

impl From<CallbackRecord> for CallbackView {
    fn from(r: CallbackRecord) -> Self {
        let route = r.route();
        Self {
            callback_id: r.id,
            state: r.state,
            first_name: r.first_name,
            last_name: r.last_name,
            phone_number: r.phone_number.as_str().to_owned(),
            skill_id: r.skill_id,
            target_agent_id: r.target_agent_id,
            route: route.kind(),
            routing_key: route.routing_key(),
            notes: r.notes,
            time_zone: r.time_zone.map(|tz| tz.name()),
            scheduled_for: r.scheduled_for,
            due_at: r.due_at,
            attempt: r.attempt,
            dispatched_at: r.dispatched_at,
            last_error: r.last_error,
            created_by: r.created_by,
            created_at: r.created_at,
            updated_at: r.updated_at,
            expires_at: r.expires_at,
            unanswered_attempts: r.dial_failures,
            last_outcome: r.last_outcome,
            next_due_at: (r.state == CallbackState::Pending).then_some(r.due_at),
            agent_fallback_at: r.fallback_due_at,
            fell_back_at: r.fell_back_at,
        }
    }
}

/// The answer to a successful create (replayed as is for a repeated `Idempotency-Key`).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)] // The handler stores and answers the same shape as JSON.
pub struct CreatedAnswer {
    result: ResultCode,
    #[schema(value_type = String, format = Uuid)]
    callback_id: CallbackId,
    /// When it will be published: the schedule date, moved to the next opening of the
    /// skill's calling hours when outside them, or now when slightly in the past.
    due_at: DateTime<Utc>,
    expires_at: Option<DateTime<Utc>>,
}

/// A page of callbacks, ordered by due time then id.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CallbackPage {
    items: Vec<CallbackView>,
    /// Pass as `cursor` for the next page; `null` on the last one.
    next_cursor: Option<String>,
}

/// One change in a callback's history.
#[derive(Serialize, ToSchema)]
pub struct EventView {
    id: i64,
    at: DateTime<Utc>,
    /// The security user, or the daemon instance.
    actor: String,
    /// `created`, `updated`, `cancelled`, `dispatched`, `deferred`, …
    kind: String,
    #[schema(value_type = Object)]
    details: Value,
}

/// A callback's history, oldest first.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventList {
    #[schema(value_type = String, format = Uuid)]
    callback_id: CallbackId,
    items: Vec<EventView>,
    /// Pass as `cursor` for the next page; `null` on the last one.
    next_cursor: Option<String>,
}

/// Paging of `GET /v1/callbacks/{id}/events`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct EventsQuery {
    /// The `nextCursor` of the previous page.
    #[param(pattern = "^[0-9]+$")]
    cursor: Option<String>,
    /// Page size: 1 to `api.max_page_size` (default `api.default_page_size`).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
}

/// The answer to an outcome report: the callback after it, or `duplicate` for a repeat.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)] // The handler answers the same shape as JSON.
pub struct OutcomeAnswer {
    result: ResultCode,
    applied: bool,
    duplicate: Option<bool>,
    message: Option<String>,
    callback: Option<CallbackView>,
}

fn text(field: &'static str, value: Option<String>, max: usize) -> Result<String, ApiError> {
    let value = value.unwrap_or_default();
    TextField::check(field, &value, max).map_err(|e| ApiError::unprocessable(e.to_string()))?;
    Ok(value)
}

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
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: JsonBody<CreateRequest>,
) -> Result<Response, ApiError> {
    caller.require(Permission::CallbacksCreate)?;
    let idempotency = idempotency_key(&headers, body.digest)?;
    let req = body.value;

    let first_name = text("firstName", req.first_name, TextField::NAME_MAX)?;
    let last_name = text("lastName", req.last_name, TextField::NAME_MAX)?;
    let notes = text("notes", req.notes, TextField::NOTES_MAX)?;

    let skill_id: SkillId = req
        .skill_id
        .ok_or_else(|| ApiError::invalid(ResultCode::InvalidSkillId, "skillId is missing"))?
        .0
        .parse()
        .map_err(|e| ApiError::invalid(ResultCode::InvalidSkillId, format!("skillId: {e}")))?;
    let target_agent_id = match &req.target_agent_id {
        Some(input) => input.target_agent()?,
        None => None,
    };
    caller.require_skill(skill_id)?;

    let context = state
        .store
        .create_context(skill_id, target_agent_id)
        .await?;
    let skill = context.skill.ok_or_else(|| {
        ApiError::invalid(
            ResultCode::InvalidSkillId,
            format!("skill {skill_id} does not exist"),
        )
    })?;
    skill
        .check_can_carry_callbacks()
        .map_err(|e| ApiError::invalid(ResultCode::InvalidSkillId, e))?;
    if let Some(agent_id) = target_agent_id {
        check_agent(agent_id, context.agent.as_ref())?;
    }

    let time_zone = req
        .time_zone
        .as_deref()
        .map(parse_time_zone)
        .transpose()
        .map_err(schedule_error)?;
    let zone = time_zone
        .or(skill.time_zone)
        .unwrap_or(state.rules.default_time_zone);
    let (scheduled_for, asked_due) = resolve_schedule_date(
        req.schedule_date.as_deref().unwrap_or_default(),
        zone,
        context.now,
        &state.rules,
    )
    .map_err(schedule_error)?;
    let (due_at, deferred_because) = calling_window(
        &skill,
        zone,
        asked_due,
        req.window_policy.unwrap_or_default(),
    )?;
    let expires_at = match req.expires_at.as_deref() {
        Some(input) => Some(
            resolve_schedule_date(input, zone, context.now, &state.rules)
                .map_err(|e| {
                    ApiError::invalid(ResultCode::InvalidScheduleDate, format!("expiresAt: {e}"))
                })?
                .0,
        ),
        None => skill
            .policy
            .default_ttl_seconds
            .map(|ttl| due_at + chrono::Duration::seconds(i64::from(ttl))),
    };
    if let Some(expires_at) = expires_at.filter(|e| *e <= due_at) {
        return Err(expiry_not_after_due(expires_at, due_at));
    }

    let phone_number = PhoneNumber::parse(
        req.phone_number.as_deref().unwrap_or_default(),
        state.rules.default_region,
    )
    .map_err(|e| ApiError::invalid(ResultCode::InvalidPhoneNumber, e))?;

    let callback = NewCallback {
        id: CallbackId::generate(),
        first_name,
        last_name,
        phone_number,
        skill_id,
        target_agent_id,
        scheduled_for,
        due_at,
        time_zone,
        notes,
        expires_at,
        deferred_because,
    };
    let answer = json!({
        "result": ResultCode::Success,
        "callbackId": callback.id,
        "dueAt": due_at,
        "expiresAt": expires_at,
    });
    let (callback_id, route) = (callback.id, callback.route().kind());
    let caller_name = caller.0.name.clone();
    let key = idempotency.as_ref().map(|k| k.key.clone());
    let create = NewCreate {
        callback,
        actor: caller.0,
        idempotency,
        response: answer.clone(),
    };
    match state.creates.insert(create).await? {
        Inserted::Created => {
            crate::instruments::created(route);
            tracing::info!(
                callback_id = %callback_id,
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

fn check_agent(id: AgentId, found: Option<&crate::domain::Agent>) -> Result<(), ApiError> {
    match found {
        None => Err(ApiError::invalid(
            ResultCode::InvalidTargetAgentId,
            format!(
                "agent {id} does not exist (targetAgentId takes the agent's id, not its username)"
            ),
        )),
        Some(agent) if !agent.active => Err(ApiError::invalid(
            ResultCode::InvalidTargetAgentId,
            format!("agent {id} ({}) is not active", agent.username),
        )),
        Some(_) => Ok(()),
    }
}

/// Applies the skill's calling hours (in the contact's zone, else the skill's) to a due
/// time: unchanged when open, else deferred to the next opening or refused.
fn calling_window(
    skill: &crate::domain::Skill,
    zone: Tz,
    due_at: DateTime<Utc>,
    policy: WindowPolicy,
) -> Result<(DateTime<Utc>, Option<String>), ApiError> {
    let Some(hours) = &skill.policy.calling_hours else {
        return Ok((due_at, None));
    };
    let outside = || {
        format!(
            "{} is outside the calling hours of skill {} ({hours}) in {}",
            due_at.with_timezone(&zone).to_rfc3339(),
            skill.id,
            zone.name()
        )
    };
    match hours.next_opening(due_at, zone) {
        Some(open) if open == due_at => Ok((due_at, None)),
        Some(open) if policy == WindowPolicy::Defer => Ok((open, Some(outside()))),
        Some(open) => Err(ApiError::invalid(
            ResultCode::InvalidScheduleDate,
            format!(
                "{}; the next opening is {}",
                outside(),
                open.with_timezone(&zone).to_rfc3339()
            ),
        )),
        None => Err(ApiError::invalid(
            ResultCode::InvalidScheduleDate,
            format!("skill {} has calling hours that never open", skill.id),
        )),
    }
}

fn expiry_not_after_due(expires_at: DateTime<Utc>, due_at: DateTime<Utc>) -> ApiError {
    ApiError::invalid(
        ResultCode::InvalidScheduleDate,
        format!(
            "expiresAt {} is not after the due time {}",
            expires_at.to_rfc3339(),
            due_at.to_rfc3339()
        ),
    )
}

fn schedule_error(e: crate::domain::ScheduleDateError) -> ApiError {
    ApiError::invalid(ResultCode::InvalidScheduleDate, e)
}

/// The answer for a callback that is absent, or of a skill the caller may not use: a 403
/// would confirm that it exists.
fn no_such_callback(id: CallbackId) -> ApiError {
    ApiError::not_found(format!("callback {id} does not exist"))
}

/// Reads a callback the caller may see; 404 otherwise.
async fn visible_callback(
    state: &AppState,
    caller: &Caller,
    id: CallbackId,
) -> Result<CallbackRecord, ApiError> {
    let record = state
        .store
        .callback(id)
        .await?
        .filter(|r| caller.0.may_use_skill(r.skill_id))
        .ok_or_else(|| no_such_callback(id))?;
    Ok(record)
}

/// Locks a callback the caller may see for a change (PATCH, DELETE, outcome); 404 otherwise.
async fn locked_callback(
    state: &AppState,
    caller: &Caller,
    id: CallbackId,
) -> Result<CallbackChange, ApiError> {
    match state.store.begin_change(id).await? {
        Some(change) if caller.0.may_use_skill(change.record.skill_id) => Ok(change),
        _ => Err(no_such_callback(id)),
    }
}

/// `GET /v1/callbacks/{id}`.
#[utoipa::path(
    get,
    path = "/v1/callbacks/{id}",
    operation_id = "getCallback",
    tag = "callbacks",
    security(("bearer" = [])),
    params(("id" = String, Path, format = Uuid, description = "The callback id")),
    responses(
        (status = 200, description = "Success: the callback", body = CallbackView),
        (status = 400, description = "Default: the id is not a UUID"),
        (status = 401, description = "InvalidSecurityUser: missing, malformed, unknown or disabled token"),
        (status = 403, description = "InvalidSecurityUser: lacks callbacks:read"),
        (status = 404, description = "Default: no such callback, or one of a skill the caller may not use"),
    )
)]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    PathParam(id): PathParam<CallbackId>,
) -> Result<Json<CallbackView>, ApiError> {
    caller.require(Permission::CallbacksRead)?;
    Ok(Json(visible_callback(&state, &caller, id).await?.into()))
}

/// `GET /v1/callbacks/{id}/events`: every change, oldest first, a page at a time.
#[utoipa::path(
    get,
    path = "/v1/callbacks/{id}/events",
    operation_id = "callbackEvents",
    tag = "callbacks",
    security(("bearer" = [])),
    params(("id" = String, Path, format = Uuid, description = "The callback id"), EventsQuery),
    responses(
        (status = 200, description = "Success: a page of the callback's history", body = EventList),
        (status = 400, description = "Default: the id is not a UUID, or a bad cursor or limit"),
        (status = 401, description = "InvalidSecurityUser: missing, malformed, unknown or disabled token"),
        (status = 403, description = "InvalidSecurityUser: lacks callbacks:read"),
        (status = 404, description = "Default: no such callback (or one of a skill the caller may not use)"),
    )
)]
pub async fn events(
    State(state): State<AppState>,
    caller: Caller,
    PathParam(id): PathParam<CallbackId>,
    QueryParams(q): QueryParams<EventsQuery>,
) -> Result<Json<EventList>, ApiError> {
    caller.require(Permission::CallbacksRead)?;
    let limit = page_size(&state, q.limit)?;
    let after = q
        .cursor
        .as_deref()
        .map(|c| {
            c.parse::<i64>().ok().filter(|n| *n > 0).ok_or_else(|| {
                ApiError::bad_request(format!("cursor `{c}` is not one this API issued"))
            })
        })
        .transpose()?;
    visible_callback(&state, &caller, id).await?;
    // One extra row tells whether there is a next page.
    let mut events = state.store.events(id, after, limit + 1).await?;
    let next_cursor = if events.len() > limit as usize {
        events.truncate(limit as usize);
        events.last().map(|e| e.id.to_string())
    } else {
        None
    };
    let items = events
        .into_iter()
        .map(|e| EventView {
            id: e.id,
            at: e.at,
            actor: e.actor,
            kind: e.kind,
            details: e.details,
        })
        .collect();
    Ok(Json(EventList {
        callback_id: id,
        items,
        next_cursor,
    }))
}

/// `limit`, or the default page size; out of range is 400.
fn page_size(state: &AppState, limit: Option<u32>) -> Result<u32, ApiError> {
    let limit = limit.unwrap_or(state.default_page_size);
    if limit == 0 || limit > state.max_page_size {
        return Err(ApiError::bad_request(format!(
            "limit {limit} is out of range 1..={}",
            state.max_page_size
        )));
    }
    Ok(limit)
}

fn parse_time(name: &str, value: Option<&str>) -> Result<Option<DateTime<Utc>>, ApiError> {
    value
        .map(|v| {
            DateTime::parse_from_rfc3339(v)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|_| {
                    ApiError::bad_request(format!(
                        "{name} `{v}` is not an RFC 3339 date-time such as 2026-11-25T14:30:00Z"
                    ))
                })
        })
        .transpose()
}

/// `GET /v1/callbacks`: ordered by due time, keyset-paginated with `cursor`.
#[utoipa::path(
    get,
    path = "/v1/callbacks",
    operation_id = "listCallbacks",
    tag = "callbacks",
    security(("bearer" = [])),
    params(ListQuery),
    responses(
        (status = 200, description = "Success: a page of callbacks", body = CallbackPage),
        (status = 400, description = "Default: an unknown or malformed filter, cursor or limit"),
        (status = 401, description = "InvalidSecurityUser: missing, malformed, unknown or disabled token"),
        (status = 403, description = "InvalidSecurityUser: lacks callbacks:read, or may not use that skill"),
    )
)]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    QueryParams(q): QueryParams<ListQuery>,
) -> Result<Json<CallbackPage>, ApiError> {
    caller.require(Permission::CallbacksRead)?;
    let bad = |e: String| ApiError::bad_request(e);
    let skill_id = q
        .skill_id
        .as_deref()
        .map(str::parse::<SkillId>)
        .transpose()
        .map_err(|e| bad(e.to_string()))?;
    if let Some(skill) = skill_id {
        caller.require_skill(skill)?;
    }
    let limit = page_size(&state, q.limit)?;
    let filter = CallbackFilter {
        state: q
            .state
            .as_deref()
            .map(str::parse)
            .transpose()
            .map_err(bad)?,
        skill_id,
        agent_id: q
            .agent_id
            .as_deref()
            .map(str::parse)
            .transpose()
            .map_err(|e: crate::domain::IdError| bad(e.to_string()))?,
        due_before: parse_time("dueBefore", q.due_before.as_deref())?,
        due_after: parse_time("dueAfter", q.due_after.as_deref())?,
        allowed_skills: caller.0.skills.clone(),
        after: q
            .cursor
            .as_deref()
            .map(|c| {
                // A cursor names a due time the store holds: one outside years 1 to 9999
                // is forged, and PostgreSQL would refuse it (it used to answer 500).
                ListCursor::decode(c)
                    .filter(|cursor| (1..=9999).contains(&cursor.due_at.year()))
                    .ok_or_else(|| bad(format!("cursor `{c}` is not one this API issued")))
            })
            .transpose()?,
        // One extra row tells whether there is a next page.
        limit: limit + 1,
    };
    let mut records = state.store.list_callbacks(&filter).await?;
    let next_cursor = if records.len() > limit as usize {
        records.truncate(limit as usize);
        records.last().map(|r| {
            ListCursor {
                due_at: r.due_at,
                id: r.id.as_uuid(),
            }
            .encode()
        })
    } else {
        None
    };
    let items = records.into_iter().map(Into::into).collect();
    Ok(Json(CallbackPage { items, next_cursor }))
}

/// Refuses a change to a callback that is no longer pending.
fn require_pending(record: &CallbackRecord, verb: &str) -> Result<(), ApiError> {
    if record.state == CallbackState::Pending {
        Ok(())
    } else {
        Err(ApiError::conflict(format!(
            "callback {} is {}; only pending callbacks can be {verb}",
            record.id, record.state
        )))
    }
}

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
pub async fn update(
    State(state): State<AppState>,
    caller: Caller,
    PathParam(id): PathParam<CallbackId>,
    body: JsonBody<UpdateRequest>,
) -> Result<Json<CallbackView>, ApiError> {
    caller.require(Permission::CallbacksUpdate)?;
    let req = body.value;
    if req.schedule_date.is_none()
        && req.notes.is_none()
        && req.target_agent_id.is_none()
        && req.expires_at.is_none()
    {
        return Err(ApiError::unprocessable(
            "nothing to change: send at least one of scheduleDate, notes, targetAgentId, expiresAt",
        ));
    }
    if req.time_zone.is_some() && req.schedule_date.is_none() {
        return Err(ApiError::unprocessable(
            "timeZone applies only together with scheduleDate",
        ));
    }
    let notes = req
        .notes
        .map(|n| text("notes", Some(n), TextField::NOTES_MAX))
        .transpose()?;
    let target_agent = match &req.target_agent_id {
        None => None,
        Some(None) => Some(None),
        Some(Some(input)) => Some(input.target_agent()?),
    };
    let time_zone: Option<Tz> = req
        .time_zone
        .as_deref()
        .map(parse_time_zone)
        .transpose()
        .map_err(schedule_error)?;

    let mut change = locked_callback(&state, &caller, id).await?;
    require_pending(&change.record, "changed")?;
    if let Some(Some(agent_id)) = target_agent {
        let agent = change.agent(agent_id).await?;
        check_agent(agent_id, agent.as_ref())?;
    }
    let kept_zone = time_zone.or(change.record.time_zone);
    let zone = kept_zone
        .or(change.skill.time_zone)
        .unwrap_or(state.rules.default_time_zone);
    let schedule = match req.schedule_date.as_deref() {
        None => None,
        Some(input) => {
            let (scheduled_for, due_at) =
                resolve_schedule_date(input, zone, change.now, &state.rules)
                    .map_err(schedule_error)?;
            Some((scheduled_for, due_at, kept_zone))
        }
    };
    let expires_at = req
        .expires_at
        .as_deref()
        .map(|input| {
            resolve_schedule_date(input, zone, change.now, &state.rules)
                .map(|(instant, _)| instant)
                .map_err(|e| {
                    ApiError::invalid(ResultCode::InvalidScheduleDate, format!("expiresAt: {e}"))
                })
        })
        .transpose()?;
    // As on create: it must still be due before it expires.
    let due_at = schedule.map_or(change.record.due_at, |(_, due, _)| due);
    match (expires_at, change.record.expires_at) {
        (Some(expires), _) if expires <= due_at => {
            return Err(expiry_not_after_due(expires, due_at));
        }
        (None, Some(kept)) if kept <= due_at => {
            return Err(ApiError::invalid(
                ResultCode::InvalidScheduleDate,
                format!(
                    "scheduleDate: the new due time {} is not before the callback's expiresAt {}; send a later expiresAt with it",
                    due_at.to_rfc3339(),
                    kept.to_rfc3339()
                ),
            ));
        }
        _ => {}
    }
    let changes = Changes {
        schedule,
        notes,
        target_agent,
        expires_at,
    };
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
    request_body = super::openapi::OutcomeBody,
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
pub async fn outcome(
    State(state): State<AppState>,
    caller: Caller,
    PathParam(id): PathParam<CallbackId>,
    body: JsonBody<OutcomeReport>,
) -> Result<Json<Value>, ApiError> {
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
        Applied::Duplicate => Ok(Json(json!({
            "result": ResultCode::Success,
            "applied": false,
            "duplicate": true,
            "message": "this outcome was already reported for this attempt",
        }))),
        Applied::Done {
            decision: Decision::Ignore(reason),
            ..
        } => Err(ApiError::conflict(format!(
            "outcome {} for attempt {} not applied: {reason}",
            report.outcome, report.attempt
        ))),
        Applied::Done { record, .. } => Ok(Json(json!({
            "result": ResultCode::Success,
            "applied": true,
            "callback": CallbackView::from(*record),
        }))),
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

#[cfg(test)]
mod props {
    //! Request bodies as the handlers read them (`JsonBody::parse`): whatever arrives, the
    //! answer is a result code, never a panic.

    use proptest::prelude::*;
    use serde_json::{Map, Value};

    use super::{CreateRequest, UpdateRequest};
    use crate::api::ResultCode;
    use crate::api::extract::JsonBody;

    const FIELDS: [&str; 12] = [
        "firstName",
        "lastName",
        "phoneNumber",
        "skillId",
        "targetAgentId",
        "scheduleDate",
        "notes",
        "timeZone",
        "expiresAt",
        "windowPolicy",
        "scheduledDate",
        "",
    ];

    fn config(cases: u32) -> ProptestConfig {
        let mut config = ProptestConfig::default();
        if std::env::var_os("PROPTEST_CASES").is_none() {
            config.cases = cases;
        }
        config
    }

    fn key() -> impl Strategy<Value = String> {
        prop_oneof![
            3 => proptest::sample::select(&FIELDS[..]).prop_map(str::to_owned),
            1 => ".{0,12}",
        ]
    }

    fn json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            ".{0,40}".prop_map(Value::from),
            "[0-9]{1,25}".prop_map(Value::from),
        ];
        leaf.prop_recursive(4, 48, 8, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
                proptest::collection::btree_map(key(), inner, 0..10)
                    .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>())),
            ]
        })
    }

    fn is_clean_refusal<T>(parsed: &Result<JsonBody<T>, crate::api::ApiError>) -> bool {
        match parsed {
            Ok(_) => true,
            Err(e) => {
                e.code == ResultCode::Default
                    && matches!(e.status.as_u16(), 400 | 422)
                    && !e.message.is_empty()
            }
        }
    }

    proptest! {
        #![proptest_config(config(512))]

        #[test]
        fn any_json_is_read_or_refused_cleanly(body in json()) {
            let bytes = body.to_string();
            let create = JsonBody::<CreateRequest>::parse(bytes.as_bytes());
            prop_assert!(is_clean_refusal(&create), "{:?}", create.err());
            let update = JsonBody::<UpdateRequest>::parse(bytes.as_bytes());
            prop_assert!(is_clean_refusal(&update), "{:?}", update.err());
            // Only an object can be a request.
            if !body.is_object() {
                prop_assert!(create.is_err());
            }
        }

        #[test]
        fn any_bytes_are_read_or_refused_cleanly(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let create = JsonBody::<CreateRequest>::parse(&bytes);
            prop_assert!(is_clean_refusal(&create), "{:?}", create.err());
        }

        /// A well-shaped body is read as sent: ids given as numbers or digit strings alike,
        /// `""` and `null` as "no target agent".
        #[test]
        fn a_well_shaped_create_body_round_trips(
            first_name in ".{0,30}",
            skill in 1u64..=i64::MAX as u64,
            skill_as_text in any::<bool>(),
            target in prop_oneof![Just(Value::Null), Just(Value::from("")), (1u64..1_000_000).prop_map(Value::from)],
            date in "[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}",
        ) {
            let skill_id = if skill_as_text { Value::from(skill.to_string()) } else { Value::from(skill) };
            let body = serde_json::json!({
                "firstName": first_name, "skillId": skill_id, "targetAgentId": target,
                "scheduleDate": date, "phoneNumber": "+442079460958",
            });
            let parsed = JsonBody::<CreateRequest>::parse(body.to_string().as_bytes());
            let req = parsed.map_err(|e| TestCaseError::fail(e.message))?.value;
            prop_assert_eq!(req.first_name.as_deref(), Some(first_name.as_str()));
            prop_assert_eq!(req.skill_id.map(|id| id.0), Some(skill.to_string()));
            prop_assert_eq!(req.schedule_date.as_deref(), Some(date.as_str()));
            let agent = req.target_agent_id.map(|id| id.target_agent().map(|a| a.map(|a| a.get())));
            match target.as_u64() {
                Some(n) => prop_assert_eq!(agent.map(|a| a.ok()), Some(Some(Some(n as i64)))),
                None if target.is_null() => prop_assert!(agent.is_none()),
                None => prop_assert_eq!(agent.map(|a| a.ok()), Some(Some(None))),
            }
        }

        /// `Idempotency-Key` compares the body's canonical form: key order and whitespace
        /// do not make a repeat look different.
        #[test]
        fn the_digest_ignores_key_order_and_whitespace(
            fields in proptest::collection::btree_map(proptest::sample::select(&FIELDS[..10]), ".{0,20}", 1..8)
        ) {
            let forward: Vec<String> = fields
                .iter()
                .map(|(k, v)| format!("{}:{}", Value::from(*k), Value::from(v.as_str())))
                .collect();
            let mut backward = forward.clone();
            backward.reverse();
            let a = format!("{{{}}}", forward.join(","));
            let b = format!(" {{ {} }}\n", backward.join(" ,\n\t"));
            let a = JsonBody::<Value>::parse(a.as_bytes()).map_err(|e| TestCaseError::fail(e.message))?;
            let b = JsonBody::<Value>::parse(b.as_bytes()).map_err(|e| TestCaseError::fail(e.message))?;
            prop_assert_eq!(a.digest, b.digest);
        }
    }
}
