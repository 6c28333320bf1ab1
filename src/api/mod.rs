//! HTTP: the routes, the shared state, request logging. Handlers parse into domain types,
//! call the store, and answer with the spec's result codes.

mod callbacks;
mod directory;
mod error;
mod extract;
mod health;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::timeout::TimeoutLayer;

pub use error::{ApiError, ResultCode};

use crate::amqp::Broker;
use crate::config::Settings;
use crate::domain::ScheduleRules;
use crate::store::Store;

/// What every handler can reach. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

pub struct Inner {
    pub settings: Settings,
    pub store: Store,
    /// `None` when this daemon runs no dispatcher.
    pub broker: Option<Broker>,
    pub rules: ScheduleRules,
    pub max_body_bytes: usize,
    pub default_page_size: u32,
    pub max_page_size: u32,
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.inner
    }
}

impl AppState {
    pub fn new(store: Store, broker: Option<Broker>, settings: &Settings) -> Self {
        Self {
            inner: Arc::new(Inner {
                settings: settings.clone(),
                store,
                broker,
                rules: settings.schedule_rules(),
                max_body_bytes: settings.api.max_body_bytes,
                default_page_size: settings.api.default_page_size,
                max_page_size: settings.api.max_page_size,
            }),
        }
    }
}

pub fn router(state: AppState, request_timeout: Duration) -> Router {
    let max_body = state.max_body_bytes;
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .route(
            "/v1/callbacks",
            get(callbacks::list).post(callbacks::create),
        )
        .route(
            "/v1/callbacks/{id}",
            get(callbacks::get)
                .patch(callbacks::update)
                .delete(callbacks::cancel),
        )
        .route("/v1/callbacks/{id}/events", get(callbacks::events))
        .route("/v1/callbacks/{id}/outcomes", post(callbacks::outcome))
        .route(
            "/v1/skills/{id}",
            put(directory::put_skill).get(directory::get_skill),
        )
        .route(
            "/v1/agents/{id}",
            put(directory::put_agent).get(directory::get_agent),
        )
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(max_body))
        .layer(middleware::from_fn(log_request))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            request_timeout,
        ))
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
