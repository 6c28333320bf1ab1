//! Signing in (a security user's token for a session cookie) and out.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use maud::html;
use serde::Deserialize;

use super::{SESSION_LIFETIME, Viewer, over_https, session_cookie, session_token};
use crate::app::App;
use crate::domain::{Token, TokenHash};

use super::layout::{check_csrf, form, page};

#[derive(Deserialize)]
pub struct LoginForm {
    token: String,
}

fn login_page(error: Option<&str>) -> Html<String> {
    page(
        "Sign in",
        None,
        html! {
            div.login {
                h1 { "callbackd console" }
                @if let Some(error) = error { p.error role="alert" { (error) } }
                form method="post" action="/console/login" {
                    label for="token" { "Security user token" }
                    input #token type="password" name="token" autocomplete="off" required;
                    p { button type="submit" { "Sign in" } }
                }
            }
        },
    )
}

pub async fn login_form() -> Html<String> {
    login_page(None)
}

pub async fn login(State(state): State<App>, headers: HeaderMap, body: Bytes) -> Response {
    let Ok(LoginForm { token }) = form::<LoginForm>(&body) else {
        return (StatusCode::BAD_REQUEST, login_page(Some("Enter a token."))).into_response();
    };
    let user = match state.store.authenticate(&TokenHash::of(token.trim())).await {
        Ok(Some(user)) => user,
        Ok(None) => {
            return (
                StatusCode::UNAUTHORIZED,
                login_page(Some("That token is unknown or disabled.")),
            )
                .into_response();
        }
        Err(e) => return super::layout::failure(e),
    };
    let session = Token::generate();
    let csrf = Token::generate();
    if let Err(e) = state
        .store
        .create_session(&session.hash(), &user, csrf.expose(), SESSION_LIFETIME)
        .await
    {
        return super::layout::failure(e);
    }
    tracing::info!(security_user = %user.name, "console sign-in");
    (
        [(
            header::SET_COOKIE,
            session_cookie(session.expose(), over_https(&headers), SESSION_LIFETIME),
        )],
        Redirect::to("/console/"),
    )
        .into_response()
}

#[derive(Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

pub async fn logout(
    State(state): State<App>,
    viewer: Viewer,
    request_headers: HeaderMap,
    body: Bytes,
) -> Response {
    let sent: CsrfForm = match form(&body) {
        Ok(f) => f,
        Err(r) => return r.into_response(),
    };
    if let Err(r) = check_csrf(&viewer, &sent.csrf) {
        return r.into_response();
    }
    if let Some(token) = session_token(&request_headers)
        && let Err(e) = state.store.end_session(&TokenHash::of(&token)).await
    {
        return super::layout::failure(e);
    }
    (
        [(
            header::SET_COOKIE,
            session_cookie("", over_https(&request_headers), std::time::Duration::ZERO),
        )],
        Redirect::to("/console/login"),
    )
        .into_response()
}
