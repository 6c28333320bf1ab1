//! The customer's own page, `/c/{token}`: when the call will come, in their time zone, and
//! two buttons — cancel, or choose another time. Small, readable on a phone, no cookie, no
//! script; the console's security headers. Every wrong or dead link gets the same plain
//! page. The use cases are `app::customer`'s.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Html;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Router, middleware};
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use maud::{DOCTYPE, Markup, html};
use serde::Deserialize;

use crate::app::App;
use crate::app::customer::{self, LinkError};
use crate::http::Peer;

pub fn router<S>() -> Router<S>
where
    S: Clone + Send + Sync + 'static,
    App: axum::extract::FromRef<S>,
{
    Router::new()
        .route("/c/{token}", get(page))
        .route("/c/{token}/cancel", post(cancel))
        .route("/c/{token}/reschedule", post(reschedule))
        .layer(middleware::from_fn(crate::console::security_headers))
}

#[derive(Deserialize)]
pub struct MoveForm {
    #[serde(default)]
    at: String,
}

fn shell(title: &str, body: Markup) -> Html<String> {
    Html(
        html! {
            (DOCTYPE)
            html lang="en" {
                head {
                    meta charset="utf-8";
                    meta name="viewport" content="width=device-width, initial-scale=1";
                    meta name="robots" content="noindex";
                    title { (title) }
                    link rel="stylesheet" href="/console/assets/console.css";
                }
                body.customer {
                    main { (body) }
                }
            }
        }
        .into_string(),
    )
}

fn when(t: DateTime<Utc>, zone: Tz) -> String {
    t.with_timezone(&zone)
        .format("%A %-d %B at %H:%M")
        .to_string()
}

/// The one answer for a wrong, expired or dead link, and for too many of them.
fn unusable(e: LinkError) -> Response {
    let (status, text) = match &e {
        LinkError::Dead => (
            StatusCode::NOT_FOUND,
            "This link is not valid any more: the call may already have been made or cancelled, or the link has expired.",
        ),
        LinkError::TooMany(_) => (
            StatusCode::TOO_MANY_REQUESTS,
            "Too many attempts from your network. Please try again in a few minutes.",
        ),
        LinkError::App(app) => return refused(app),
    };
    let mut response = (
        status,
        shell(
            "Your callback",
            html! { h1 { "Your callback" } p #link-dead { (text) } },
        ),
    )
        .into_response();
    if let LinkError::TooMany(wait) = e
        && let Ok(value) = HeaderValue::from_str(&wait.as_secs().max(1).to_string())
    {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}

/// An action the rules refused (the time was taken meanwhile, say), or a fault.
fn refused(e: &crate::app::AppError) -> Response {
    let status = crate::console::layout::status_of(e);
    let text = if status.is_server_error() {
        tracing::error!(error = %e, "customer link action failed");
        "Something went wrong on our side. Please try again later.".to_owned()
    } else {
        e.to_string()
    };
    (
        status,
        shell(
            "Your callback",
            html! { h1 { "Your callback" } p #refused { "That did not work: " (text) } },
        ),
    )
        .into_response()
}

pub async fn page(State(app): State<App>, Peer(peer): Peer, Path(token): Path<String>) -> Response {
    let view = match customer::open(&app, peer, &token).await {
        Ok(view) => view,
        Err(e) => return unusable(e),
    };
    let c = &view.callback;
    let zone = view.zone;
    shell(
        "Your callback",
        html! {
            h1 { "Your callback" }
            p #when {
                "We will call " (c.phone_number.masked()) " on "
                strong { (when(c.due_at, zone)) }
                " (" (zone.name()) ")."
            }
            form method="post" action={"/c/" (token) "/cancel"} {
                button #cancel type="submit" { "Cancel the call" }
            }
            @if !view.options.is_empty() {
                form method="post" action={"/c/" (token) "/reschedule"} {
                    label for="at" { "Choose another time (" (zone.name()) ")" }
                    select #at name="at" {
                        @for t in &view.options {
                            option value=(t.to_rfc3339()) { (when(*t, zone)) }
                        }
                    }
                    button #move type="submit" { "Move the call" }
                }
            }
        },
    )
    .into_response()
}

pub async fn cancel(
    State(app): State<App>,
    Peer(peer): Peer,
    Path(token): Path<String>,
) -> Response {
    match customer::cancel(&app, peer, &token).await {
        Ok(_) => shell(
            "Call cancelled",
            html! {
                h1 { "Call cancelled" }
                p #done { "We will not call you. Thank you for letting us know." }
            },
        )
        .into_response(),
        Err(e) => unusable(e),
    }
}

pub async fn reschedule(
    State(app): State<App>,
    Peer(peer): Peer,
    Path(token): Path<String>,
    body: Bytes,
) -> Response {
    let at = serde_urlencoded::from_bytes::<MoveForm>(&body)
        .map(|f| f.at)
        .unwrap_or_default();
    match customer::reschedule(&app, peer, &token, &at).await {
        Ok((moved, zone)) => shell(
            "Call moved",
            html! {
                h1 { "Call moved" }
                p #done { "We will call you on " strong { (when(moved.due_at, zone)) } " (" (zone.name()) ")." }
                p { a href={"/c/" (token)} { "Back to your callback" } }
            },
        )
        .into_response(),
        Err(e) => unusable(e),
    }
}
