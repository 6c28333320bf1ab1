//! Actions on one callback: cancel, reschedule, reassign. Each goes through the same domain
//! rules as the API and shows the result code and message when refused.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;
use serde::Deserialize;

use super::Viewer;
use super::layout::{Refused, check_csrf, failure, form, page};
use super::names::{Names, PickedAgents};
use crate::app::{self, App, AppError, Why};
use crate::domain::{CallbackId, ChangeInput, RawId};

#[derive(Deserialize)]
pub struct CancelForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    reason: String,
}

pub async fn cancel(
    State(state): State<App>,
    viewer: Viewer,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let (sent, id) = match posted::<CancelForm>(&viewer, &id, &body, |f| &f.csrf) {
        Ok(posted) => posted,
        Err(refused) => return refused.into_response(),
    };
    match app::cancel(&state, &viewer.user, id, Why::required(Some(&sent.reason))).await {
        Ok(_) => Redirect::to(&format!("/console/callbacks/{id}")).into_response(),
        Err(e) => refused(&viewer, id, "Not cancelled", e),
    }
}

#[derive(Deserialize)]
pub struct RetryForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    reason: String,
    /// Empty: now.
    #[serde(default)]
    when: Option<String>,
}

/// Another attempt at a failed or expired callback, now or at the time given (in the
/// contact's zone).
pub async fn retry(
    State(state): State<App>,
    viewer: Viewer,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let (sent, id) = match posted::<RetryForm>(&viewer, &id, &body, |f| &f.csrf) {
        Ok(posted) => posted,
        Err(refused) => return refused.into_response(),
    };
    let why = Why::required(Some(&sent.reason));
    match app::retry(&state, &viewer.user, id, sent.when.as_deref(), None, why).await {
        Ok(_) => Redirect::to(&format!("/console/callbacks/{id}")).into_response(),
        Err(e) => refused(&viewer, id, "Not retried", e),
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
    #[serde(flatten)]
    agents: PickedAgents,
}

/// A form posted about one callback: read, its CSRF token checked, its id parsed (an id
/// that is not one is a callback that does not exist).
fn posted<T: serde::de::DeserializeOwned>(
    viewer: &Viewer,
    id: &str,
    body: &Bytes,
    csrf: impl Fn(&T) -> &str,
) -> Result<(T, CallbackId), Refused> {
    let sent: T = form(body)?;
    check_csrf(viewer, csrf(&sent))?;
    let id = id
        .parse::<CallbackId>()
        .map_err(|_| Refused(StatusCode::NOT_FOUND, "no such callback".into()))?;
    Ok((sent, id))
}

/// A use case's refusal on one callback: a rule it broke gets the refusal page, an absent
/// callback 404, anything else its plain answer.
fn refused(viewer: &Viewer, id: CallbackId, title: &str, e: AppError) -> Response {
    match e {
        AppError::NoSuchCallback(_) => (StatusCode::NOT_FOUND, "no such callback").into_response(),
        e @ (AppError::Refused(_)
        | AppError::Invalid { .. }
        | AppError::NotPending { .. }
        | AppError::SlotFull(_)) => {
            refused_page(viewer, id, title, e.code().as_str(), &e.to_string())
        }
        e => failure(e),
    }
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
    state: State<App>,
    viewer: Viewer,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    change(state, viewer, id, body, true).await
}

pub async fn reassign(
    state: State<App>,
    viewer: Viewer,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    change(state, viewer, id, body, false).await
}

/// Reschedule or reassign one pending callback, through the same rules as `PATCH`.
async fn change(
    State(state): State<App>,
    viewer: Viewer,
    id: String,
    body: Bytes,
    reschedule: bool,
) -> Response {
    let (sent, id) = match posted::<ChangeForm>(&viewer, &id, &body, |f| &f.csrf) {
        Ok(posted) => posted,
        Err(refused) => return refused.into_response(),
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
        let names = match Names::load(&state.store).await {
            Ok(names) => names,
            Err(e) => return failure(e),
        };
        ChangeInput {
            target_agent_ids: Some(sent.agents.ids(&names).into_iter().map(RawId).collect()),
            ..ChangeInput::default()
        }
    };
    match app::change(
        &state,
        &viewer.user,
        id,
        input,
        // A person gives a reason for every change (the API leaves it to its clients).
        Why::required(Some(&sent.reason)),
    )
    .await
    {
        Ok(_) => Redirect::to(&format!("/console/callbacks/{id}")).into_response(),
        Err(e) => refused(&viewer, id, title, e),
    }
}
