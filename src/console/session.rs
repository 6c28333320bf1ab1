//! Signing in and out: the sign-in page (a token form, a button for the identity provider,
//! or both), the redirect to the provider and its return, and sign-out. The use cases are
//! `app::sessions`; here they become cookies, redirects and pages.

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use maud::html;
use serde::Deserialize;

use super::Viewer;
use super::cookies::Cookies;
use crate::app::App;
use crate::app::oidc::OidcError;
use crate::app::sessions::{
    self, ProviderReturn, SESSION_LIFETIME, SIGN_IN_LIFETIME, SignInError, Started,
};

use super::layout::{check_csrf, form, page};

#[derive(Deserialize)]
pub struct LoginForm {
    token: String,
}

fn login_page(state: &App, error: Option<&str>) -> Html<String> {
    let console = &state.settings.console;
    page(
        "Sign in",
        None,
        html! {
            div.login {
                h1 { "callbackd console" }
                @if let Some(error) = error { p.error role="alert" { (error) } }
                @if console.oidc.enabled {
                    // A link, not a form: the CSP's form-action would refuse the redirect
                    // to the provider.
                    p { a.button #oidc href="/console/oidc/start" {
                        "Sign in with " (console.oidc.provider_name)
                    } }
                }
                @if console.token_sign_in {
                    form method="post" action="/console/login" {
                        label for="token" { "Security user token" }
                        input #token type="password" name="token" autocomplete="off" required;
                        p { button type="submit" { "Sign in" } }
                    }
                }
            }
        },
    )
}

pub async fn login_form(State(state): State<App>) -> Html<String> {
    login_page(&state, None)
}

pub async fn login(
    State(state): State<App>,
    peer: crate::http::Peer,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !state.settings.console.token_sign_in {
        return StatusCode::NOT_FOUND.into_response();
    }
    // Login CSRF: another site must not sign a browser in as someone else.
    if !same_origin(&headers) {
        tracing::warn!(
            method = "token",
            reason = "cross-origin sign-in form",
            "console sign-in refused"
        );
        return super::layout::forbidden("sign-in from another site is refused");
    }
    let Ok(LoginForm { token }) = form::<LoginForm>(&body) else {
        return (
            StatusCode::BAD_REQUEST,
            login_page(&state, Some("Enter a token.")),
        )
            .into_response();
    };
    match sessions::sign_in_with_token(&state, peer.0, &token).await {
        Ok(started) => (
            [(
                header::SET_COOKIE,
                started_cookie(&state, &started, &headers),
            )],
            Redirect::to("/console/"),
        )
            .into_response(),
        Err(SignInError::UnknownToken) => (
            StatusCode::UNAUTHORIZED,
            login_page(&state, Some("That token is unknown or disabled.")),
        )
            .into_response(),
        Err(e @ SignInError::TooMany { retry_after }) => (
            StatusCode::TOO_MANY_REQUESTS,
            [(
                header::RETRY_AFTER,
                retry_after.as_secs().max(1).to_string(),
            )],
            login_page(&state, Some(&e.to_string())),
        )
            .into_response(),
        Err(SignInError::Store(e)) => super::layout::failure(e),
        Err(_) => StatusCode::NOT_FOUND.into_response(),
    }
}

/// Whether the sign-in form came from this daemon's own pages. A browser's fetch metadata
/// says so directly (`Sec-Fetch-Site: same-origin`); a browser without it sends `Origin`,
/// which must name this daemon's host (`null` — an opaque or hidden origin — does not). A
/// client that sends neither is not a browser another site can drive.
fn same_origin(headers: &HeaderMap) -> bool {
    if let Some(site) = headers.get("sec-fetch-site") {
        return site.as_bytes() == b"same-origin";
    }
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    let authority = origin
        .to_str()
        .ok()
        .and_then(|o| o.split_once("://"))
        .map(|(_, authority)| authority);
    matches!((authority, host), (Some(a), Some(h)) if a.eq_ignore_ascii_case(h))
}

fn started_cookie(state: &App, started: &Started, headers: &HeaderMap) -> String {
    Cookies::of(&state.settings.console, headers).session(started.token.expose(), SESSION_LIFETIME)
}

fn cleared_oidc_cookie(state: &App, headers: &HeaderMap) -> String {
    Cookies::of(&state.settings.console, headers).oidc("", std::time::Duration::ZERO)
}

pub async fn oidc_start(State(state): State<App>, headers: HeaderMap) -> Response {
    match sessions::begin_oidc(&state).await {
        Ok(begun) => (
            [(
                header::SET_COOKIE,
                Cookies::of(&state.settings.console, &headers)
                    .oidc(begun.browser.expose(), SIGN_IN_LIFETIME),
            )],
            Redirect::to(&begun.url),
        )
            .into_response(),
        Err(e) => oidc_refused(&state, &headers, e),
    }
}

#[derive(Deserialize)]
pub struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    iss: Option<String>,
}

pub async fn oidc_callback(
    State(state): State<App>,
    headers: HeaderMap,
    Query(query): Query<CallbackQuery>,
) -> Response {
    let browser = Cookies::of(&state.settings.console, &headers).oidc_binding(&headers);
    let back = ProviderReturn {
        code: query.code,
        state: query.state,
        error: query.error,
        iss: query.iss,
    };
    match sessions::sign_in_with_oidc(&state, browser.as_deref(), back).await {
        // The session cookie is `SameSite=Strict`, and this answer ends a navigation that
        // another site (the provider) started: a redirect from here would still count as
        // cross-site and go without the cookie. A page that moves on by itself starts a
        // same-site navigation, which carries it.
        Ok(started) => {
            let mut response = Html(
                html! {
                    (maud::DOCTYPE)
                    html lang="en" {
                        head {
                            meta charset="utf-8";
                            meta http-equiv="refresh" content="0;url=/console/";
                            title { "Signed in · callbackd" }
                        }
                        body { p { "Signed in. " a href="/console/" { "Continue to the console" } } }
                    }
                }
                .into_string(),
            )
            .into_response();
            let cookies = response.headers_mut();
            for cookie in [
                started_cookie(&state, &started, &headers),
                cleared_oidc_cookie(&state, &headers),
            ] {
                if let Ok(value) = cookie.parse() {
                    cookies.append(header::SET_COOKIE, value);
                }
            }
            response
        }
        Err(e) => oidc_refused(&state, &headers, e),
    }
}

/// A sign-in through the provider that did not succeed: the sign-in page with what went
/// wrong in plain words (the details are in the log), and the binding cookie cleared.
fn oidc_refused(state: &App, headers: &HeaderMap, e: SignInError) -> Response {
    let said = e.to_string();
    let (status, message) = match e {
        SignInError::OidcOff => return StatusCode::NOT_FOUND.into_response(),
        SignInError::Store(cause) => return super::layout::failure(cause),
        SignInError::NoSignIn
        | SignInError::StateMismatch
        | SignInError::NoCode
        | SignInError::WrongIssuer(_) => (
            StatusCode::BAD_REQUEST,
            "That sign-in expired or was not started in this browser; sign in again.".to_owned(),
        ),
        SignInError::ProviderRefused(_) => (
            StatusCode::UNAUTHORIZED,
            "The identity provider did not sign you in.".to_owned(),
        ),
        SignInError::TooMany { .. } => (StatusCode::TOO_MANY_REQUESTS, said.clone()),
        SignInError::Oidc(OidcError::Discovery { .. } | OidcError::Exchange(_)) => (
            StatusCode::BAD_GATEWAY,
            "The identity provider cannot be reached; try again later.".to_owned(),
        ),
        SignInError::Oidc(_) => (
            StatusCode::UNAUTHORIZED,
            "The identity provider's answer could not be verified; sign in again.".to_owned(),
        ),
        SignInError::NotAllowed(_) => (
            StatusCode::FORBIDDEN,
            "You are signed in at the identity provider, but not allowed into this console."
                .to_owned(),
        ),
        SignInError::TokenSignInOff | SignInError::UnknownToken => (StatusCode::UNAUTHORIZED, said),
    };
    (
        status,
        [(header::SET_COOKIE, cleared_oidc_cookie(state, headers))],
        login_page(state, Some(&message)),
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
    let cookies = Cookies::of(&state.settings.console, &request_headers);
    if let Some(token) = cookies.session_token(&request_headers)
        && let Err(e) = sessions::sign_out(&state, &token).await
    {
        return super::layout::failure(e);
    }
    tracing::info!(security_user = %viewer.user.name, "console sign-out");
    (
        [(
            header::SET_COOKIE,
            cookies.session("", std::time::Duration::ZERO),
        )],
        Redirect::to("/console/login"),
    )
        .into_response()
}
