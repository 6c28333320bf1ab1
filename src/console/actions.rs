//! Actions on one callback: cancel, reschedule, reassign. Each goes through the same domain
//! rules as the API and shows the result code and message when refused.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;
use serde::Deserialize;

use super::Viewer;
use crate::api::AppState;
use crate::domain::{
    CallbackId, CallbackState, ChangeInput, Permission, RawId, check_reason, plan_change,
};

use super::layout::{check_csrf, forbidden, form, page};

#[derive(Deserialize)]
pub struct CancelForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    reason: String,
}

pub async fn cancel(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let sent: CancelForm = match form(&body) {
        Ok(f) => f,
        Err(r) => return r.into_response(),
    };
    if let Err(r) = check_csrf(&viewer, &sent.csrf) {
        return r.into_response();
    }
    if !viewer.may(Permission::CallbacksCancel) {
        return forbidden("this security user may not cancel callbacks");
    }
    let Ok(id) = id.parse::<CallbackId>() else {
        return (StatusCode::NOT_FOUND, "no such callback").into_response();
    };
    let reason = match check_reason(Some(&sent.reason), true) {
        Ok(reason) => reason,
        Err(e) => {
            return refused_page(
                &viewer,
                id,
                "Not cancelled",
                e.code().as_str(),
                &e.to_string(),
            );
        }
    };
    let change = match state.store.begin_change(id).await {
        Ok(Some(change)) if viewer.user.may_use_skill(change.record.skill_id) => change,
        Ok(_) => return (StatusCode::NOT_FOUND, "no such callback").into_response(),
        Err(e) => return crate::api::ApiError::from(e).into_response(),
    };
    if change.record.state != CallbackState::Pending {
        let state_now = change.record.state;
        return refused_page(
            &viewer,
            id,
            "Not cancelled",
            "Default",
            &format!("the callback is {state_now}; only pending callbacks can be cancelled"),
        );
    }
    match change.cancel(&viewer.user.name, reason.as_deref()).await {
        Ok(_) => {
            tracing::info!(callback_id = %id, security_user = %viewer.user.name, "callback cancelled (console)");
            Redirect::to(&format!("/console/callbacks/{id}")).into_response()
        }
        Err(e) => crate::api::ApiError::from(e).into_response(),
    }
}

#[derive(Deserialize)]
pub struct ChangeForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    when: Option<String>,
    #[serde(default, rename = "targetAgentId")]
    target_agent_id: Option<String>,
}

/// A refused action: its result code and message, and the way back.
fn refused_page(
    viewer: &Viewer,
    id: CallbackId,
    title: &str,
    code: &str,
    message: &str,
) -> Response {
    (
        StatusCode::UNPROCESSABLE_ENTITY,
        page(
            title,
            Some(viewer),
            html! {
                h1 { (title) }
                p.error role="alert" { (code) ": " (message) }
                p { a href={"/console/callbacks/" (id)} { "Back to the callback" } }
            },
        ),
    )
        .into_response()
}

pub async fn reschedule(
    state: State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    change(state, viewer, id, body, true).await
}

pub async fn reassign(
    state: State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    change(state, viewer, id, body, false).await
}

/// Reschedule or reassign one pending callback, through the same rules as `PATCH`.
async fn change(
    State(state): State<AppState>,
    viewer: Viewer,
    id: String,
    body: Bytes,
    reschedule: bool,
) -> Response {
    let sent: ChangeForm = match form(&body) {
        Ok(f) => f,
        Err(r) => return r.into_response(),
    };
    if let Err(r) = check_csrf(&viewer, &sent.csrf) {
        return r.into_response();
    }
    if !viewer.may(Permission::CallbacksUpdate) {
        return forbidden("this security user may not change callbacks");
    }
    let Ok(id) = id.parse::<CallbackId>() else {
        return (StatusCode::NOT_FOUND, "no such callback").into_response();
    };
    let title = if reschedule {
        "Not rescheduled"
    } else {
        "Not reassigned"
    };
    let input = if reschedule {
        ChangeInput {
            schedule_date: Some(sent.when.unwrap_or_default()),
            ..ChangeInput::default()
        }
    } else {
        ChangeInput {
            target_agent_id: Some(Some(RawId(sent.target_agent_id.unwrap_or_default()))),
            ..ChangeInput::default()
        }
    };
    let reason = match check_reason(Some(&sent.reason), false) {
        Ok(reason) => reason,
        Err(e) => return refused_page(&viewer, id, title, e.code().as_str(), &e.to_string()),
    };
    let target = match input.requested() {
        Ok(target) => target,
        Err(e) => return refused_page(&viewer, id, title, e.code().as_str(), &e.to_string()),
    };
    let mut locked = match state.store.begin_change(id).await {
        Ok(Some(change)) if viewer.user.may_use_skill(change.record.skill_id) => change,
        Ok(_) => return (StatusCode::NOT_FOUND, "no such callback").into_response(),
        Err(e) => return crate::api::ApiError::from(e).into_response(),
    };
    if locked.record.state != CallbackState::Pending {
        let now = locked.record.state;
        return refused_page(
            &viewer,
            id,
            title,
            "Default",
            &format!("the callback is {now}; only pending callbacks can be changed"),
        );
    }
    let agent = match target {
        Some(Some(agent_id)) => match locked.agent(agent_id).await {
            Ok(agent) => agent,
            Err(e) => return crate::api::ApiError::from(e).into_response(),
        },
        _ => None,
    };
    let planned = plan_change(
        input,
        target,
        agent.as_ref(),
        &locked.record,
        &locked.skill,
        locked.now,
        &state.rules,
    );
    let mut changes = match planned {
        Ok(changes) => changes,
        Err(e) => return refused_page(&viewer, id, title, e.code().as_str(), &e.to_string()),
    };
    changes.reason = reason;
    match locked.apply(&changes, &viewer.user.name).await {
        Ok(_) => Redirect::to(&format!("/console/callbacks/{id}")).into_response(),
        Err(e) => crate::api::ApiError::from(e).into_response(),
    }
}
