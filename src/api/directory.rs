//! `/v1/skills/{id}` and `/v1/agents/{id}`: the directory mirrored from the platform.

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::AppState;
use super::error::ApiError;
use super::extract::{Caller, JsonBody, PathParam};
use crate::app;
use crate::domain::{
    Agent, AgentId, AgentInput, CallingHoursJson, Permission, Skill, SkillId, SkillInput,
};

/// A skill and its own rules for its callbacks (absent: the configured defaults).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SkillView {
    #[schema(value_type = i64, minimum = 1)]
    id: SkillId,
    name: String,
    #[schema(schema_with = super::openapi::media_type_schema)]
    media_type: &'static str,
    #[schema(schema_with = super::openapi::direction_schema)]
    direction: &'static str,
    active: bool,
    time_zone: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = super::openapi::calling_hours_schema)]
    calling_hours: Option<CallingHoursJson>,
    #[serde(skip_serializing_if = "Option::is_none")]
    retry_backoff_seconds: Option<Vec<u32>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_attempts: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    agent_fallback_seconds: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    default_ttl_seconds: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    outcome_deadline_seconds: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_in_flight: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_per_minute: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    slot_minutes: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    slot_capacity: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    slot_capacity_by_hour: Option<std::collections::BTreeMap<String, u32>>,
    /// The country national numbers are read in (ISO 3166).
    #[serde(skip_serializing_if = "Option::is_none")]
    default_region: Option<String>,
    /// The number customers see, for callbacks that name none (E.164).
    #[serde(skip_serializing_if = "Option::is_none")]
    caller_id: Option<String>,
    /// `allow`, `existing` or `refuse`.
    #[serde(skip_serializing_if = "Option::is_none")]
    duplicate_policy: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_pending_per_number: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_creates_per_number_per_day: Option<u32>,
    /// Its calendar of closed dates and special hours.
    #[serde(skip_serializing_if = "Option::is_none")]
    calendar: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    initial_priority: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    priority_acceleration: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_priority: Option<u32>,
    /// How long past its due time a callback with target agents waits for them.
    #[serde(skip_serializing_if = "Option::is_none")]
    ownership_seconds: Option<u32>,
    /// Reminders before its callbacks, in seconds before the due time.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    reminders: Vec<u32>,
    /// Its dispatch is paused (`POST /v1/skills/{id}/resume` resumes it).
    #[serde(skip_serializing_if = "Option::is_none")]
    paused: Option<PausedView>,
}

/// Who paused a skill's dispatch, when and why.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PausedView {
    at: chrono::DateTime<chrono::Utc>,
    by: String,
    reason: String,
}

impl From<Skill> for SkillView {
    fn from(skill: Skill) -> Self {
        Self {
            id: skill.id,
            name: skill.name,
            media_type: skill.media_type.as_str(),
            direction: skill.direction.as_str(),
            active: skill.active,
            time_zone: skill.time_zone.map(|tz| tz.name()),
            calling_hours: skill.policy.calling_hours.map(|h| h.to_json()),
            retry_backoff_seconds: skill.policy.retry_backoff_seconds,
            max_attempts: skill.policy.max_attempts,
            agent_fallback_seconds: skill.policy.agent_fallback_seconds,
            default_ttl_seconds: skill.policy.default_ttl_seconds,
            outcome_deadline_seconds: skill.policy.outcome_deadline_seconds,
            max_in_flight: skill.policy.max_in_flight,
            max_per_minute: skill.policy.max_per_minute,
            slot_minutes: skill.policy.slots.as_ref().map(|p| p.minutes),
            slot_capacity: skill.policy.slots.as_ref().map(|p| p.capacity),
            slot_capacity_by_hour: skill.policy.slots.as_ref().and_then(|p| p.by_hour_json()),
            default_region: skill
                .policy
                .routing
                .default_region
                .map(|r| r.as_ref().to_owned()),
            caller_id: skill
                .policy
                .routing
                .caller_id
                .as_ref()
                .map(|n| n.as_str().to_owned()),
            duplicate_policy: skill.policy.routing.duplicate_policy.map(|p| p.as_str()),
            max_pending_per_number: skill.policy.routing.max_pending_per_number,
            max_creates_per_number_per_day: skill.policy.routing.max_creates_per_number_per_day,
            initial_priority: skill.policy.routing.priority.initial,
            priority_acceleration: skill.policy.routing.priority.acceleration,
            max_priority: skill.policy.routing.priority.max,
            ownership_seconds: skill.policy.routing.ownership_seconds,
            reminders: skill.policy.routing.reminders.clone(),
            paused: skill.policy.routing.paused.as_ref().map(|p| PausedView {
                at: p.at,
                by: p.by.clone(),
                reason: p.reason.clone(),
            }),
            calendar: skill.policy.routing.calendar,
        }
    }
}

/// An agent. `targetAgentId` takes its `id`, not its username.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AgentView {
    #[schema(value_type = i64, minimum = 1)]
    id: AgentId,
    username: String,
    active: bool,
    /// How people call the agent; empty when not given.
    name: String,
    /// The skills the agent takes (pickers list these agents first for a callback of one).
    #[schema(value_type = Vec<i64>)]
    skill_ids: Vec<SkillId>,
}

impl From<Agent> for AgentView {
    fn from(agent: Agent) -> Self {
        Self {
            id: agent.id,
            username: agent.username,
            active: agent.active,
            name: agent.name,
            skill_ids: agent.skills,
        }
    }
}

/// `PUT /v1/skills/{id}`: creates or replaces a skill.
#[utoipa::path(
    put,
    path = "/v1/skills/{id}",
    operation_id = "putSkill",
    tag = "directory",
    security(("bearer" = [])),
    params(("id" = i64, Path, minimum = 1, description = "The platform's skill id")),
    request_body = super::openapi::SkillBody,
    responses(
        (status = 200, description = "Success: the stored skill", body = SkillView),
        (status = 400, description = "Default: the id is not a positive integer, or malformed JSON"),
        (status = 401, description = "InvalidSecurityUser: missing, malformed, unknown or disabled token"),
        (status = 403, description = "InvalidSecurityUser: lacks directory:write, or is restricted to other skills"),
        (status = 422, description = "Default: unknown field, wrong type, bad time zone, calling hours that are malformed or never open, id mismatch, text too long"),
    )
)]
pub async fn put_skill(
    State(state): State<AppState>,
    caller: Caller,
    PathParam(id): PathParam<SkillId>,
    body: JsonBody<SkillInput>,
) -> Result<Json<SkillView>, ApiError> {
    let skill = app::directory::put_skill(&state, &caller.0, id, body.value).await?;
    Ok(Json(skill.into()))
}

/// `PUT /v1/skills/{id}/capacity`: the skill's pacing limits, for a workforce tool that
/// follows staffing. Both fields are replaced; `null` or absent removes a limit (the
/// configured default applies).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CapacityBody {
    /// At most this many of the skill's callbacks published and without a final outcome.
    #[schema(minimum = 1, maximum = 2147483647)]
    max_in_flight: Option<u32>,
    /// At most this many publications a minute, spread evenly.
    #[schema(minimum = 1, maximum = 2147483647)]
    max_per_minute: Option<u32>,
}

/// `PUT /v1/skills/{id}/capacity`: changes only the pacing limits; every daemon applies
/// them from its next dispatch pass.
#[utoipa::path(
    put,
    path = "/v1/skills/{id}/capacity",
    operation_id = "putSkillCapacity",
    tag = "directory",
    security(("bearer" = [])),
    params(("id" = i64, Path, minimum = 1, description = "The platform's skill id")),
    request_body = CapacityBody,
    responses(
        (status = 200, description = "Success: the skill with its new limits", body = SkillView),
        (status = 400, description = "Default: the id is not a positive integer, or malformed JSON"),
        (status = 401, description = "InvalidSecurityUser: missing, malformed, unknown or disabled token"),
        (status = 403, description = "InvalidSecurityUser: lacks directory:write, or is restricted to other skills"),
        (status = 404, description = "Default: no such skill"),
        (status = 422, description = "Default: a limit of 0 or too large, unknown field"),
    )
)]
pub async fn put_capacity(
    State(state): State<AppState>,
    caller: Caller,
    PathParam(id): PathParam<SkillId>,
    body: JsonBody<CapacityBody>,
) -> Result<Json<SkillView>, ApiError> {
    let limits = crate::domain::SkillPacing {
        max_in_flight: body.value.max_in_flight,
        max_per_minute: body.value.max_per_minute,
        paused: false,
    };
    let skill = app::directory::set_capacity(&state, &caller.0, id, limits).await?;
    Ok(Json(skill.into()))
}

/// `GET /v1/skills/{id}`.
#[utoipa::path(
    get,
    path = "/v1/skills/{id}",
    operation_id = "getSkill",
    tag = "directory",
    security(("bearer" = [])),
    params(("id" = i64, Path, minimum = 1, description = "The platform's skill id")),
    responses(
        (status = 200, description = "Success: the skill", body = SkillView),
        (status = 400, description = "Default: the id is not a positive integer"),
        (status = 401, description = "InvalidSecurityUser: missing, malformed, unknown or disabled token"),
        (status = 403, description = "InvalidSecurityUser: lacks directory:read, or is restricted to other skills"),
        (status = 404, description = "Default: no such skill"),
    )
)]
pub async fn get_skill(
    State(state): State<AppState>,
    caller: Caller,
    PathParam(id): PathParam<SkillId>,
) -> Result<Json<SkillView>, ApiError> {
    caller.require(Permission::DirectoryRead)?;
    caller.require_skill(id)?;
    let skill = state
        .store
        .skill(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("skill {id} does not exist")))?;
    Ok(Json(skill.into()))
}

/// `PUT /v1/agents/{id}`: creates or replaces an agent.
#[utoipa::path(
    put,
    path = "/v1/agents/{id}",
    operation_id = "putAgent",
    tag = "directory",
    security(("bearer" = [])),
    params(("id" = i64, Path, minimum = 1, description = "The platform's agent id")),
    request_body = super::openapi::AgentBody,
    responses(
        (status = 200, description = "Success: the stored agent", body = AgentView),
        (status = 400, description = "Default: the id is not a positive integer, or malformed JSON"),
        (status = 401, description = "InvalidSecurityUser: missing, malformed, unknown or disabled token"),
        (status = 403, description = "InvalidSecurityUser: lacks directory:write, or is restricted to some skills (agents serve every skill)"),
        (status = 422, description = "Default: unknown field, wrong type, id mismatch, text too long"),
    )
)]
pub async fn put_agent(
    State(state): State<AppState>,
    caller: Caller,
    PathParam(id): PathParam<AgentId>,
    body: JsonBody<AgentInput>,
) -> Result<Json<AgentView>, ApiError> {
    let agent = app::directory::put_agent(&state, &caller.0, id, body.value).await?;
    Ok(Json(agent.into()))
}

/// `GET /v1/agents/{id}`.
#[utoipa::path(
    get,
    path = "/v1/agents/{id}",
    operation_id = "getAgent",
    tag = "directory",
    security(("bearer" = [])),
    params(("id" = i64, Path, minimum = 1, description = "The platform's agent id")),
    responses(
        (status = 200, description = "Success: the agent", body = AgentView),
        (status = 400, description = "Default: the id is not a positive integer"),
        (status = 401, description = "InvalidSecurityUser: missing, malformed, unknown or disabled token"),
        (status = 403, description = "InvalidSecurityUser: lacks directory:read"),
        (status = 404, description = "Default: no such agent"),
    )
)]
pub async fn get_agent(
    State(state): State<AppState>,
    caller: Caller,
    PathParam(id): PathParam<AgentId>,
) -> Result<Json<AgentView>, ApiError> {
    caller.require(Permission::DirectoryRead)?;
    let agent = state
        .store
        .agent(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("agent {id} does not exist")))?;
    Ok(Json(agent.into()))
}
