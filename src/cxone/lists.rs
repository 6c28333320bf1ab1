//! The pending callbacks of an agent or a skill, as CXone lists them: the `/v1` list's
//! selection (`app::Selection`), pending only, earliest due first.

use axum::Json;
use axum::extract::State;

use super::error::CxError;
use super::extract::{CxCaller, CxPath};
use super::views::{CxCallbackList, CxScheduledCallback};
use crate::api::AppState;
use crate::app::Selection;
use crate::domain::{AgentId, CallbackState, Permission, SkillId};
use crate::store::CallbackFilter;

/// `GET /agents/{agentId}/scheduled-callbacks`.
#[utoipa::path(
    get,
    path = "/agents/{agentId}/scheduled-callbacks",
    operation_id = "cxoneAgentCallbacks",
    tag = "cxone",
    security(("bearer" = [])),
    params(("agentId" = i64, Path, minimum = 1, description = "The agent's id")),
    responses(
        (status = 200, description = "Success: the agent's pending callbacks (at most api.max_page_size), earliest first", body = CxCallbackList),
        (status = 400, description = "Default: the id is not a positive integer"),
        (status = 401, description = "InvalidSecurityUser: missing, malformed, unknown or disabled token"),
        (status = 403, description = "InvalidSecurityUser: lacks callbacks:read"),
    )
)]
pub async fn of_agent(
    State(state): State<AppState>,
    CxCaller(caller): CxCaller,
    CxPath(agent): CxPath<AgentId>,
) -> Result<Json<CxCallbackList>, CxError> {
    let agent = agent.to_string();
    list(
        &state,
        &caller.0,
        Selection {
            agent_id: Some(&agent),
            ..Selection::default()
        },
    )
    .await
}

/// `GET /skills/{skillId}/scheduled-callbacks`.
#[utoipa::path(
    get,
    path = "/skills/{skillId}/scheduled-callbacks",
    operation_id = "cxoneSkillCallbacks",
    tag = "cxone",
    security(("bearer" = [])),
    params(("skillId" = i64, Path, minimum = 1, description = "The skill's id")),
    responses(
        (status = 200, description = "Success: the skill's pending callbacks (at most api.max_page_size), earliest first", body = CxCallbackList),
        (status = 400, description = "Default: the id is not a positive integer"),
        (status = 401, description = "InvalidSecurityUser: missing, malformed, unknown or disabled token"),
        (status = 403, description = "InvalidSecurityUser: lacks callbacks:read, or may not use that skill"),
    )
)]
pub async fn of_skill(
    State(state): State<AppState>,
    CxCaller(caller): CxCaller,
    CxPath(skill): CxPath<SkillId>,
) -> Result<Json<CxCallbackList>, CxError> {
    let skill = skill.to_string();
    list(
        &state,
        &caller.0,
        Selection {
            skill_id: Some(&skill),
            ..Selection::default()
        },
    )
    .await
}

/// One page of pending callbacks the selection names, within the caller's skills. CXone's
/// lists are not paged: this one is cut at `api.max_page_size`.
async fn list(
    state: &AppState,
    user: &crate::domain::SecurityUser,
    selection: Selection<'_>,
) -> Result<Json<CxCallbackList>, CxError> {
    crate::app::require(user, Permission::CallbacksRead)?;
    let filter = CallbackFilter {
        state: Some(CallbackState::Pending),
        limit: state.http.max_page_size,
        ..selection.filter(user, state.rules.default_region)?
    };
    let callbacks = state
        .store
        .list_callbacks(&filter)
        .await?
        .into_iter()
        .map(CxScheduledCallback::from)
        .collect();
    Ok(Json(CxCallbackList { callbacks }))
}
