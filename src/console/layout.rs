//! The console's page frame and the helpers every page and action shares.

use axum::body::Bytes;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use chrono::{DateTime, Utc};
use maud::{DOCTYPE, Markup, html};
use serde::Deserialize;
use subtle::ConstantTimeEq;

use super::Viewer;
use crate::app::AppError;
use crate::store::StoreError;

pub(super) fn page(title: &str, viewer: Option<&Viewer>, body: Markup) -> Html<String> {
    Html(
        html! {
            (DOCTYPE)
            html lang="en" {
                head {
                    meta charset="utf-8";
                    meta name="viewport" content="width=device-width, initial-scale=1";
                    // htmx would otherwise add an inline style, which the CSP refuses.
                    meta name="htmx-config" content=r#"{"includeIndicatorStyles":false}"#;
                    title { (title) " · callbackd" }
                    link rel="icon" type="image/svg+xml" href="/console/assets/favicon.svg";
                    link rel="stylesheet" href="/console/assets/console.css";
                    script src="/console/assets/htmx.min.js" defer {}
                    script src="/console/assets/console.js" defer {}
                }
                body {
                    @if let Some(viewer) = viewer {
                        header {
                            strong { "callbackd" }
                            nav {
                                a href="/console/" { "Overview" }
                                a href="/console/load" { "Load" }
                                a href="/console/promises" { "Promises kept" }
                                a href="/console/callbacks" { "Callbacks" }
                                a href="/console/failed" { "Failed" }
                                a href="/console/directory" { "Directory" }
                            }
                            span.who { "Signed in as " (viewer.user.name) }
                            form method="post" action="/console/logout" {
                                input type="hidden" name="csrf" value=(viewer.csrf);
                                button type="submit" { "Sign out" }
                            }
                        }
                    }
                    main { (body) }
                }
            }
        }
        .into_string(),
    )
}

pub(super) fn time(t: DateTime<Utc>) -> Markup {
    html! { time datetime=(t.to_rfc3339()) { (t.format("%Y-%m-%d %H:%M:%S UTC")) } }
}

/// A request the console refuses, as plain text.
pub struct Refused(pub StatusCode, pub String);

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        (self.0, self.1).into_response()
    }
}

/// A form body (`application/x-www-form-urlencoded`).
pub(super) fn form<T: for<'de> Deserialize<'de>>(body: &Bytes) -> Result<T, Refused> {
    serde_urlencoded::from_bytes(body)
        .map_err(|e| Refused(StatusCode::BAD_REQUEST, format!("bad form: {e}")))
}

pub(super) fn forbidden(message: &str) -> Response {
    Refused(StatusCode::FORBIDDEN, message.to_owned()).into_response()
}

/// The form's CSRF token must be the session's; compared in constant time, so that the
/// answer's timing tells nothing about how much of a guess was right.
pub(super) fn check_csrf(viewer: &Viewer, sent: &str) -> Result<(), Refused> {
    if !sent.is_empty() && bool::from(sent.as_bytes().ct_eq(viewer.csrf.as_bytes())) {
        Ok(())
    } else {
        Err(Refused(
            StatusCode::FORBIDDEN,
            "the form is stale or forged (CSRF token); reload the page".into(),
        ))
    }
}

/// The status a use case's failure answers with, as the API's.
pub(crate) fn status_of(e: &AppError) -> StatusCode {
    match e {
        AppError::Denied(_) => StatusCode::FORBIDDEN,
        AppError::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
        AppError::TooMany { .. } => StatusCode::TOO_MANY_REQUESTS,
        AppError::NoSuchCallback(_) | AppError::NotFound(_) => StatusCode::NOT_FOUND,
        AppError::NotPending { .. } | AppError::NotRetryable { .. } | AppError::Conflict(_) => {
            StatusCode::CONFLICT
        }
        AppError::Malformed(_) => StatusCode::BAD_REQUEST,
        AppError::Refused(_) | AppError::Invalid { .. } | AppError::SlotFull(_) => {
            StatusCode::UNPROCESSABLE_ENTITY
        }
        AppError::Store(StoreError::Unavailable(_)) => StatusCode::SERVICE_UNAVAILABLE,
        AppError::Store(_) | AppError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// A use case's failure where the page has no better place for it: a refusal in plain
/// words with its status, the database away (503), or a fault (500, logged, not shown).
pub(super) fn failure(err: impl Into<AppError>) -> Response {
    let e = err.into();
    let status = status_of(&e);
    let message = match &e {
        AppError::Store(StoreError::Unavailable(cause)) => {
            tracing::warn!(error = %cause, "database unavailable");
            "the database is unavailable; retry later".to_owned()
        }
        AppError::Store(cause) => {
            tracing::error!(error = %cause, "store error");
            "internal error; the daemon's log has the details".to_owned()
        }
        AppError::Internal(cause) => {
            tracing::error!(error = %cause, "internal error");
            "internal error; the daemon's log has the details".to_owned()
        }
        AppError::Refused(_) | AppError::Invalid { .. } | AppError::SlotFull(_) => {
            format!("{}: {e}", e.code().as_str())
        }
        _ => e.to_string(),
    };
    Refused(status, message).into_response()
}

/// The colour of the `index`-th skill in a chart: hues a golden angle apart, in three
/// lightnesses, so that neighbours differ and 20 or more skills stay apart; each dark enough
/// for white text and a light background.
pub(super) fn skill_colour(index: usize) -> String {
    let hue = (index as f64 * 137.508) % 360.0;
    let lightness = [38, 30, 46][index % 3];
    format!("hsl({hue:.0}, 65%, {lightness}%)")
}

/// A skill chooser by name (the ones `viewer` may see), with "all skills" first.
pub(super) fn skill_select(
    names: &super::names::Names,
    viewer: &super::Viewer,
    chosen: Option<crate::domain::SkillId>,
) -> Markup {
    let mut skills: Vec<(&i64, &String)> = names
        .skills
        .iter()
        .filter(|(id, _)| {
            crate::domain::SkillId::new(**id).is_ok_and(|s| viewer.user.may_use_skill(s))
        })
        .collect();
    skills.sort_by(|a, b| a.1.cmp(b.1).then(a.0.cmp(b.0)));
    html! {
        select name="skillId" {
            option value="" { "All skills" }
            @for (id, name) in skills {
                option value=(id) selected[chosen.is_some_and(|c| c.get() == *id)] { (name) " (" (id) ")" }
            }
        }
    }
}
