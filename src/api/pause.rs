//! `POST /v1/skills/{id}/pause` and `/resume`: stop calling a skill now (a site outage, a
//! storm, a campaign pulled) without touching its schedule, and start again.

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::AppState;
use super::directory::SkillView;
use super::error::{ApiError, ResultCode};
use super::extract::{Caller, JsonBody, PathParam};
use crate::domain::SkillId;

/// Why the dispatch is paused or resumed (recorded).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PauseBody {
    /// Required to pause, optional to resume; at most 500 characters.
    #[schema(max_length = 500, example = "site outage in Leeds")]
    reason: Option<String>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PauseAnswer {
    result: ResultCode,
    skill: SkillView,
    /// Its pending callbacks due within the next hour: what a pause holds first, or a
    /// resume lets go.
    due_next_hour: i64,
}

impl PauseAnswer {
    fn of((skill, due): (crate::domain::Skill, i64)) -> Self {
        Self {
            result: ResultCode::Success,
            skill: skill.into(),
            due_next_hour: due,
        }
    }
}

/// `POST /v1/skills/{id}/pause`.
#[utoipa::path(
    post,
    path = "/v1/skills/{id}/pause",
    operation_id = "pauseSkill",
    tag = "directory",
    security(("bearer" = [])),
    params(("id" = i64, Path, minimum = 1, description = "The platform's skill id")),
    request_body = PauseBody,
    responses(
        (status = 200, description = "Success: paused (its due callbacks stay pending, held)", body = PauseAnswer),
        (status = 400, description = "Default: the id is not a positive integer, or malformed JSON"),
        (status = 401, description = "InvalidSecurityUser: missing, malformed, unknown or disabled token"),
        (status = 403, description = "InvalidSecurityUser: lacks directory:write, or may not use the skill"),
        (status = 404, description = "Default: no such skill"),
        (status = 422, description = "Default: no reason, or one that is not text or too long"),
    )
)]
pub async fn pause(
    State(state): State<AppState>,
    caller: Caller,
    PathParam(id): PathParam<SkillId>,
    body: JsonBody<PauseBody>,
) -> Result<Json<PauseAnswer>, ApiError> {
    let done =
        crate::app::directory::pause_skill(&state, &caller.0, id, body.value.reason.as_deref())
            .await?;
    Ok(Json(PauseAnswer::of(done)))
}

/// `POST /v1/skills/{id}/resume`.
#[utoipa::path(
    post,
    path = "/v1/skills/{id}/resume",
    operation_id = "resumeSkill",
    tag = "directory",
    security(("bearer" = [])),
    params(("id" = i64, Path, minimum = 1, description = "The platform's skill id")),
    request_body = PauseBody,
    responses(
        (status = 200, description = "Success: resumed (held callbacks go out, highest priority then oldest first, through pacing)", body = PauseAnswer),
        (status = 400, description = "Default: the id is not a positive integer, or malformed JSON"),
        (status = 401, description = "InvalidSecurityUser: missing, malformed, unknown or disabled token"),
        (status = 403, description = "InvalidSecurityUser: lacks directory:write, or may not use the skill"),
        (status = 404, description = "Default: no such skill"),
        (status = 422, description = "Default: a reason that is not text, or too long"),
    )
)]
pub async fn resume(
    State(state): State<AppState>,
    caller: Caller,
    PathParam(id): PathParam<SkillId>,
    body: JsonBody<PauseBody>,
) -> Result<Json<PauseAnswer>, ApiError> {
    let done =
        crate::app::directory::resume_skill(&state, &caller.0, id, body.value.reason.as_deref())
            .await?;
    Ok(Json(PauseAnswer::of(done)))
}
