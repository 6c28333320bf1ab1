//! The console's page frame and the helpers every page and action shares.

use axum::body::Bytes;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use chrono::{DateTime, Utc};
use maud::{DOCTYPE, Markup, html};
use serde::Deserialize;

use super::Viewer;

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
                                a href="/console/load" { "Upcoming load" }
                                a href="/console/callbacks" { "Callbacks" }
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

/// The form's CSRF token must be the session's.
pub(super) fn check_csrf(viewer: &Viewer, sent: &str) -> Result<(), Refused> {
    if !sent.is_empty() && sent == viewer.csrf {
        Ok(())
    } else {
        Err(Refused(
            StatusCode::FORBIDDEN,
            "the form is stale or forged (CSRF token); reload the page".into(),
        ))
    }
}
