//! The HTTP server both deliveries share: one listener (`serve`), one router that mounts the
//! API and the console side by side under the same layers — a time limit, a body limit, one
//! log event per request, and a panic caught as a 500 in the API's shape.

mod serve;

use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use tower_http::catch_panic::CatchPanicLayer;

pub use serve::serve;

/// The address at the other end of the connection, when the server knows it. No proxy
/// header is read: one that any client can send cannot key a limit.
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub Option<std::net::IpAddr>);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Peer {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        Ok(Self(
            parts
                .extensions
                .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
                .map(|info| info.0.ip()),
        ))
    }
}

use crate::api::{ApiError, AppState, ResultCode};
use crate::config::ApiSettings;

/// Every route the daemon answers.
pub fn router(state: AppState, settings: &ApiSettings) -> Router {
    let request_timeout = settings.request_timeout();
    let max_body_bytes = state.http.max_body_bytes;
    let cxone = &state.settings.cxone;
    let cxone = cxone
        .enabled
        .then(|| (cxone.prefix.clone(), crate::cxone::routes(&state)));
    let mut router = Router::new().merge(crate::api::routes(&state));
    if let Some((prefix, routes)) = cxone {
        router = router.nest(&prefix, routes);
    }
    router
        // The console counts against `api.max_concurrent_requests` like `/v1`.
        .merge(
            crate::console::router::<AppState>().route_layer(middleware::from_fn_with_state(
                state.clone(),
                crate::api::limit_concurrency,
            )),
        )
        // A customer's own page: not limited like `/v1` (it has its own limit per address).
        .merge(crate::customer::router::<AppState>())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .layer(middleware::from_fn(log_request))
        .layer(middleware::from_fn(move |request, next| {
            time_limit(request_timeout, request, next)
        }))
        .layer(CatchPanicLayer::custom(|_| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                ResultCode::Default,
                "internal error; the daemon's log has the details",
            )
            .into_response()
        }))
        .with_state(state)
}

/// `api.request_timeout_ms` for the whole request, answered like every other error. The
/// request's own log event (`log_request`, inside) is lost with it, hence a warning here.
async fn time_limit(limit: Duration, request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            let timeout_ms = limit.as_millis();
            // No headers: they carry the bearer token.
            tracing::warn!(%method, %path, timeout_ms, "request timed out");
            ApiError::request_timeout(format!(
                "the request took longer than api.request_timeout_ms ({timeout_ms} ms)"
            ))
            .into_response()
        }
    }
}

async fn not_found(request: Request) -> ApiError {
    ApiError::not_found(format!(
        "no such endpoint: {} {}",
        request.method(),
        request.uri().path()
    ))
}

async fn method_not_allowed(request: Request) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        ResultCode::Default,
        format!(
            "{} is not allowed on {}",
            request.method(),
            request.uri().path()
        ),
    )
}

/// One log event per request. Never logs headers: they carry the bearer token.
async fn log_request(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let response = next.run(request).await;
    let status = response.status();
    let result = response
        .extensions()
        .get::<ResultCode>()
        .copied()
        .unwrap_or(if status.is_success() {
            ResultCode::Success
        } else {
            ResultCode::Default
        });
    let latency_ms = (started.elapsed().as_secs_f64() * 1e6).round() / 1e3;
    if status.is_server_error() {
        tracing::warn!(%method, %path, status = status.as_u16(), result = result.as_str(), latency_ms, "request");
    } else {
        tracing::info!(%method, %path, status = status.as_u16(), result = result.as_str(), latency_ms, "request");
    }
    response
}
