//! `/v1/dnc/{phone}`: the do-not-call list. A listed number cannot be booked, and a callback
//! booked before its number was listed ends as `suppressed` instead of being published.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use super::error::ApiError;
use super::extract::{Caller, JsonBody, PathParam, QueryParams};
use crate::app;
use crate::domain::{DncEntry, Permission, PhoneNumber, SkillId};
use crate::store::{DncEvent, Listed};

/// `PUT /v1/dnc/{phone}`: what to list the number for.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DncBody {
    /// Only this skill's callbacks; absent: every skill.
    #[schema(value_type = Option<i64>, minimum = 1)]
    skill_id: Option<SkillId>,
    /// Why (at most 500 characters); recorded with the entry and in its audit events.
    reason: Option<String>,
    /// When the entry lapses (RFC 3339); absent: until removed.
    expires_at: Option<DateTime<Utc>>,
}

/// One entry of the list.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DncEntryView {
    phone_number: String,
    /// `null`: every skill.
    #[schema(value_type = Option<i64>)]
    skill_id: Option<SkillId>,
    reason: String,
    expires_at: Option<DateTime<Utc>>,
    /// False once `expiresAt` has passed: it suppresses nothing any more.
    active: bool,
    created_by: String,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl DncEntryView {
    pub(super) fn new(entry: DncEntry, now: DateTime<Utc>) -> Self {
        Self {
            phone_number: entry.phone_number.to_string(),
            skill_id: entry.skill_id,
            active: entry.expires_at.is_none_or(|at| at > now),
            reason: entry.reason,
            expires_at: entry.expires_at,
            created_by: entry.created_by,
            created_at: entry.created_at,
            updated_at: entry.updated_at,
        }
    }
}

/// A change to the list, as audited.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DncEventView {
    at: DateTime<Utc>,
    actor: String,
    /// `listed`, `updated` or `removed`.
    kind: String,
    skill_id: Option<i64>,
    #[schema(value_type = Object)]
    details: serde_json::Value,
}

impl From<DncEvent> for DncEventView {
    fn from(e: DncEvent) -> Self {
        Self {
            at: e.at,
            actor: e.actor,
            kind: e.kind,
            skill_id: e.skill_id,
            details: e.details,
        }
    }
}

/// A number's entries and its audit trail (newest first, at most 100).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DncNumberView {
    phone_number: String,
    /// Whether callbacks of every skill are stopped now.
    listed_for_every_skill: bool,
    entries: Vec<DncEntryView>,
    events: Vec<DncEventView>,
}

/// `DELETE /v1/dnc/{phone}`: which entry, and why.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DncRemoveQuery {
    /// The skill the entry is for; absent: the entry for every skill.
    #[param(value_type = Option<i64>, minimum = 1)]
    skill_id: Option<SkillId>,
    /// Why it is removed, recorded in the audit event.
    reason: Option<String>,
}

fn phone(raw: &str, state: &AppState) -> Result<PhoneNumber, ApiError> {
    Ok(app::dnc::read_number(state, raw)?)
}

/// `PUT /v1/dnc/{phone}`: lists a number (or replaces its entry for the same scope).
#[utoipa::path(
    put,
    path = "/v1/dnc/{phone}",
    operation_id = "putDnc",
    tag = "dnc",
    security(("bearer" = [])),
    params(("phone" = String, Path, description = "The number, E.164 (`+442079460958`; `%2B` for `+` also works) or national in the default region")),
    request_body = DncBody,
    responses(
        (status = 201, description = "Success: listed", body = DncEntryView),
        (status = 200, description = "Success: the entry for this number and scope was replaced", body = DncEntryView),
        (status = 400, description = "Default: not one JSON object (malformed, empty, a key given twice)"),
        (status = 401, description = "InvalidSecurityUser: missing, malformed, unknown or disabled token"),
        (status = 403, description = "InvalidSecurityUser: lacks dnc:write, or is restricted to other skills"),
        (status = 409, description = "Default: the skill does not exist"),
        (status = 422, description = "InvalidPhoneNumber: not a valid number; Default: reason too long, expiresAt not in the future, unknown field"),
    )
)]
pub async fn put_dnc(
    State(state): State<AppState>,
    caller: Caller,
    PathParam(raw): PathParam<String>,
    body: JsonBody<DncBody>,
) -> Result<Response, ApiError> {
    let body = body.value;
    let (stored, listed) = app::dnc::list_number(
        &state,
        &caller.0,
        &raw,
        body.skill_id,
        body.reason,
        body.expires_at,
    )
    .await?;
    let now = Utc::now();
    let status = match listed {
        Listed::Created => StatusCode::CREATED,
        Listed::Updated | Listed::Unchanged => StatusCode::OK,
    };
    Ok((status, Json(DncEntryView::new(stored, now))).into_response())
}

/// `GET /v1/dnc/{phone}`: the number's entries and audit trail.
#[utoipa::path(
    get,
    path = "/v1/dnc/{phone}",
    operation_id = "getDnc",
    tag = "dnc",
    security(("bearer" = [])),
    params(("phone" = String, Path, description = "The number")),
    responses(
        (status = 200, description = "Success: the entries (none when it is not listed) and the audit trail", body = DncNumberView),
        (status = 401, description = "InvalidSecurityUser: missing, malformed, unknown or disabled token"),
        (status = 403, description = "InvalidSecurityUser: lacks dnc:read"),
        (status = 422, description = "InvalidPhoneNumber: not a valid number"),
    )
)]
pub async fn get_dnc(
    State(state): State<AppState>,
    caller: Caller,
    PathParam(raw): PathParam<String>,
) -> Result<Json<DncNumberView>, ApiError> {
    caller.require(Permission::DncRead)?;
    let number = phone(&raw, &state)?;
    let (entries, events) = state.store.dnc_get(&number).await?;
    let now = Utc::now();
    // A restricted user sees the entries for every skill and for its own.
    let visible = |skill: Option<SkillId>| skill.is_none_or(|s| caller.0.may_use_skill(s));
    let entries: Vec<DncEntryView> = entries
        .into_iter()
        .filter(|e| visible(e.skill_id))
        .map(|e| DncEntryView::new(e, now))
        .collect();
    let events = events
        .into_iter()
        .filter(|e| visible(e.skill_id.and_then(|s| SkillId::new(s).ok())))
        .map(Into::into)
        .collect();
    Ok(Json(DncNumberView {
        phone_number: number.to_string(),
        listed_for_every_skill: entries.iter().any(|e| e.active && e.skill_id.is_none()),
        entries,
        events,
    }))
}

/// `DELETE /v1/dnc/{phone}`: removes the entry for one scope.
#[utoipa::path(
    delete,
    path = "/v1/dnc/{phone}",
    operation_id = "deleteDnc",
    tag = "dnc",
    security(("bearer" = [])),
    params(("phone" = String, Path, description = "The number"), DncRemoveQuery),
    responses(
        (status = 204, description = "Success: removed"),
        (status = 400, description = "Default: a bad query parameter (an unknown one, a skillId that is not a positive integer)"),
        (status = 401, description = "InvalidSecurityUser: missing, malformed, unknown or disabled token"),
        (status = 403, description = "InvalidSecurityUser: lacks dnc:write, or is restricted to other skills"),
        (status = 404, description = "Default: the number has no entry for that scope"),
        (status = 422, description = "InvalidPhoneNumber: not a valid number; Default: reason too long"),
    )
)]
pub async fn delete_dnc(
    State(state): State<AppState>,
    caller: Caller,
    PathParam(raw): PathParam<String>,
    QueryParams(q): QueryParams<DncRemoveQuery>,
) -> Result<StatusCode, ApiError> {
    app::dnc::remove_number(&state, &caller.0, &raw, q.skill_id, q.reason.as_deref()).await?;
    Ok(StatusCode::NO_CONTENT)
}
