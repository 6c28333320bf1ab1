//! The supervisor console at `/console/`: server-rendered HTML (maud), a pinned htmx and a
//! small script embedded in the binary, so it needs no CDN and no JavaScript build. Chosen
//! over a single-page application because every page is a view of data the daemon already
//! has: the server renders it with the same types and permissions as the API, and there is
//! no second API to keep in step.
//!
//! Sign-in — through the organisation's OpenID Connect provider, or with a security user's
//! token (a fallback that can be switched off) — gives a session cookie (`HttpOnly`,
//! `SameSite=Strict`, `Secure` behind HTTPS, 8 hours; ended by sign-out or by disabling the
//! user). Every state-changing form carries the session's CSRF token. A strict
//! Content-Security-Policy allows only the daemon's own scripts and styles; tokens never
//! appear in URLs or logs.

mod actions;
mod bulk;
mod cookies;
mod directory;
mod failed;
mod history;
pub(crate) mod layout;
mod load;
mod names;
mod pages;
mod pause;
mod promises;
mod session;
mod throughput;

use axum::Router;
use axum::extract::{FromRef, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};

use crate::app::App;
use crate::domain::{Permission, SecurityUser, TokenHash};

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
     connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The console's routes, for any router state the application can be taken from.
pub fn router<S>() -> Router<S>
where
    App: FromRef<S>,
    S: Clone + Send + Sync + 'static,
{
    Router::new()
        .route("/console", get(|| async { Redirect::to("/console/") }))
        .route("/console/", get(pages::overview))
        .route("/console/figures", get(pages::figures))
        .route(
            "/console/login",
            get(session::login_form).post(session::login),
        )
        .route("/console/logout", post(session::logout))
        .route("/console/oidc/start", get(session::oidc_start))
        .route("/console/oidc/callback", get(session::oidc_callback))
        .route("/console/load", get(load::load))
        .route("/console/throughput", get(throughput::throughput))
        .route("/console/promises", get(promises::promises))
        .route(
            "/console/promises.csv",
            get(promises::promises_csv_download),
        )
        .route("/console/bulk", get(bulk::bulk_form).post(bulk::bulk))
        .route("/console/directory", get(directory::directory))
        .route(
            "/console/directory/skills/{id}/pause",
            get(pause::confirm).post(pause::pause),
        )
        .route("/console/directory/skills/{id}/resume", post(pause::resume))
        .route(
            "/console/directory/skills/{id}/active",
            post(directory::skill_active),
        )
        .route(
            "/console/directory/agents/{id}/active",
            post(directory::agent_active),
        )
        .route("/console/callbacks", get(pages::callbacks))
        .route("/console/callbacks/{id}", get(pages::callback))
        .route("/console/callbacks/{id}/cancel", post(actions::cancel))
        .route(
            "/console/callbacks/{id}/reschedule",
            post(actions::reschedule),
        )
        .route("/console/callbacks/{id}/reassign", post(actions::reassign))
        .route("/console/callbacks/{id}/retry", post(actions::retry))
        .route("/console/failed", get(failed::failed))
        .route("/console/assets/htmx.min.js", get(htmx))
        .route("/console/assets/console.js", get(script))
        .route("/console/assets/console.css", get(style))
        .route("/console/assets/favicon.svg", get(favicon))
        // Browsers ask for it at the root whatever the page says.
        .route("/favicon.ico", get(favicon))
        .layer(middleware::from_fn(security_headers))
}

/// Every console answer: the CSP, no framing, no sniffing, no referrer to other sites, no
/// caching of pages.
pub(crate) async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    // Nothing to other sites; `same-origin` rather than `no-referrer` so that a browser
    // without fetch metadata still sends its real `Origin` with the sign-in form (under
    // `no-referrer` it sends `Origin: null`), which the login-CSRF check reads.
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    headers
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    response
}

fn asset(content_type: &'static str, body: &'static [u8]) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        body,
    )
        .into_response()
}

async fn htmx() -> Response {
    asset(
        "text/javascript",
        include_bytes!("assets/htmx-2.0.4.min.js"),
    )
}

async fn script() -> Response {
    asset("text/javascript", include_bytes!("assets/console.js"))
}

async fn style() -> Response {
    asset("text/css", include_bytes!("assets/console.css"))
}

async fn favicon() -> Response {
    asset("image/svg+xml", include_bytes!("assets/favicon.svg"))
}

/// The signed-in user of a console request, with the session's CSRF token. Without a live
/// session, a page redirects to the sign-in form (and a form post is refused).
pub struct Viewer {
    pub user: SecurityUser,
    pub csrf: String,
}

impl Viewer {
    pub fn may(&self, permission: Permission) -> bool {
        self.user.has(permission)
    }
}

/// Not signed in: pages go to the sign-in form; anything else is 401.
pub struct SignIn(bool);

impl IntoResponse for SignIn {
    fn into_response(self) -> Response {
        if self.0 {
            Redirect::to("/console/login").into_response()
        } else {
            (StatusCode::UNAUTHORIZED, "sign in first").into_response()
        }
    }
}

impl<S> FromRequestParts<S> for Viewer
where
    App: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Response> {
        let state = App::from_ref(state);
        let page = parts.method == axum::http::Method::GET;
        let Some(token) = cookies::Cookies::of(&state.settings.console, &parts.headers)
            .session_token(&parts.headers)
        else {
            return Err(SignIn(page).into_response());
        };
        match state.store.session(&TokenHash::of(&token)).await {
            Ok(Some(session)) => Ok(Viewer {
                user: session.user,
                csrf: session.csrf,
            }),
            Ok(None) => Err(SignIn(page).into_response()),
            Err(e) => Err(layout::failure(e)),
        }
    }
}
