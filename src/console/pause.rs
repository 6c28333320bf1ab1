//! Pausing a skill's dispatch from the console: a confirmation that says how many of its
//! callbacks are due within the hour, a required reason, then the same use case as the
//! API's `POST /v1/skills/{id}/pause`; resume from the directory.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;
use serde::Deserialize;

use super::Viewer;
use super::layout::{check_csrf, failure, forbidden, form, page};
use crate::app::{self, App};
use crate::domain::{Permission, SkillId};

#[derive(Deserialize)]
pub struct PauseForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    reason: String,
}

fn no_such_skill() -> Response {
    (StatusCode::NOT_FOUND, "no such skill").into_response()
}

/// The confirmation: what a pause would hold.
pub async fn confirm(State(state): State<App>, viewer: Viewer, Path(id): Path<String>) -> Response {
    if !viewer.may(Permission::DirectoryWrite) {
        return forbidden("this security user may not change the directory");
    }
    let Ok(id) = id.parse::<SkillId>() else {
        return no_such_skill();
    };
    let skill = match state.store.skill(id).await {
        Ok(Some(skill)) if viewer.user.may_use_skill(id) => skill,
        Ok(_) => return no_such_skill(),
        Err(e) => return failure(e),
    };
    let due = match state.store.due_next_hour(id).await {
        Ok(due) => due,
        Err(e) => return failure(e),
    };
    page(
        "Pause dispatch",
        Some(&viewer),
        html! {
            h1 { "Pause dispatch of " (skill.name) " (" (skill.id) ")" }
            p #pause-due {
                strong { (due) } " of its callbacks are due within the next hour. "
                "While paused, none of its callbacks is published: they stay pending and go out, "
                "highest priority first, when you resume."
            }
            form method="post" action={"/console/directory/skills/" (id) "/pause"} {
                input type="hidden" name="csrf" value=(viewer.csrf);
                label for="reason" { "Reason (required, recorded)" }
                input #reason type="text" name="reason" required maxlength="500";
                button #confirm-pause type="submit" { "Pause dispatch" }
            }
            p { a href="/console/directory" { "Back, without pausing" } }
        },
    )
    .into_response()
}

pub async fn pause(
    State(state): State<App>,
    viewer: Viewer,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    act(&state, &viewer, &id, &body, true).await
}

pub async fn resume(
    State(state): State<App>,
    viewer: Viewer,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    act(&state, &viewer, &id, &body, false).await
}

async fn act(state: &App, viewer: &Viewer, id: &str, body: &Bytes, pause: bool) -> Response {
    let sent: PauseForm = match form(body) {
        Ok(sent) => sent,
        Err(r) => return r.into_response(),
    };
    if let Err(r) = check_csrf(viewer, &sent.csrf) {
        return r.into_response();
    }
    let Ok(id) = id.parse::<SkillId>() else {
        return no_such_skill();
    };
    let reason = Some(sent.reason.as_str()).filter(|r| !r.trim().is_empty());
    let done = if pause {
        app::directory::pause_skill(state, &viewer.user, id, reason).await
    } else {
        app::directory::resume_skill(state, &viewer.user, id, reason).await
    };
    match done {
        Ok(_) => Redirect::to("/console/directory").into_response(),
        Err(e) => failure(e),
    }
}
