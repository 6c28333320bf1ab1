//! `/v1/skills/{id}` and `/v1/agents/{id}`: the directory mirrored from the platform.

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use super::AppState;
use super::error::ApiError;
use super::extract::{Caller, JsonBody, PathParam};
use crate::domain::{Agent, AgentId, AgentInput, Permission, Skill, SkillId, SkillInput};

fn skill_view(skill: &Skill) -> Json<Value> {
    let mut view = json!({
        "id": skill.id,
        "name": skill.name,
        "mediaType": skill.media_type,
        "direction": skill.direction,
        "active": skill.active,
        "timeZone": skill.time_zone.map(|tz| tz.name()),
    });
    if let (Value::Object(view), Ok(Value::Object(policy))) =
        (&mut view, serde_json::to_value(&skill.policy))
    {
        view.extend(policy);
    }
    Json(view)
}

fn agent_view(agent: &Agent) -> Json<Value> {
    Json(json!({ "id": agent.id, "username": agent.username, "active": agent.active }))
}

pub async fn put_skill(
    State(state): State<AppState>,
    caller: Caller,
    PathParam(id): PathParam<SkillId>,
    body: JsonBody<SkillInput>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Permission::DirectoryWrite)?;
    let skill = body
        .value
        .into_skill(Some(id))
        .map_err(|e| ApiError::unprocessable(e.to_string()))?;
    state.store.upsert_skill(&skill).await?;
    tracing::info!(skill_id = id.get(), active = skill.active, security_user = %caller.0.name, "skill stored");
    Ok(skill_view(&skill))
}

pub async fn get_skill(
    State(state): State<AppState>,
    caller: Caller,
    PathParam(id): PathParam<SkillId>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Permission::DirectoryRead)?;
    let skill = state
        .store
        .skill(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("skill {id} does not exist")))?;
    Ok(skill_view(&skill))
}

pub async fn put_agent(
    State(state): State<AppState>,
    caller: Caller,
    PathParam(id): PathParam<AgentId>,
    body: JsonBody<AgentInput>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Permission::DirectoryWrite)?;
    let agent = body
        .value
        .into_agent(Some(id))
        .map_err(|e| ApiError::unprocessable(e.to_string()))?;
    state.store.upsert_agent(&agent).await?;
    tracing::info!(agent_id = id.get(), active = agent.active, security_user = %caller.0.name, "agent stored");
    Ok(agent_view(&agent))
}

pub async fn get_agent(
    State(state): State<AppState>,
    caller: Caller,
    PathParam(id): PathParam<AgentId>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Permission::DirectoryRead)?;
    let agent = state
        .store
        .agent(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("agent {id} does not exist")))?;
    Ok(agent_view(&agent))
}
