//! HTTP: the routes, the shared state, request logging. Handlers parse into domain types,
//! call the store, and answer with the spec's result codes.

mod availability;
mod calendars;
pub mod callbacks;
mod directory;
mod dnc;
mod error;
pub mod extract;
mod health;
pub(crate) mod openapi;
mod pause;
mod privacy;
mod reports;
mod webhooks;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{FromRef, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use tokio::sync::Semaphore;

pub use error::{ApiError, ResultCode};
pub use openapi::ApiDoc;

use crate::app::App;
use crate::config::ApiSettings;

/// What every handler can reach: the application and the API's own limits. Cheap to clone;
/// derefs to [`App`].
#[derive(Clone)]
pub struct AppState {
    app: App,
    pub http: Arc<Http>,
}

/// The API's limits and its health readings.
pub struct Http {
    pub max_body_bytes: usize,
    pub default_page_size: u32,
    pub max_page_size: u32,
    pub body_read_timeout: Duration,
    /// One permit per `/v1` request in progress (`api.max_concurrent_requests`).
    pub requests: Arc<Semaphore>,
    /// Whether a `/metrics` scrape should count the backlog.
    pub backlog_count: Throttle,
    /// `/readyz`'s reading of the database.
    pub database_probe: health::DatabaseProbe,
    /// `/openapi.json`, written at its first request.
    pub openapi: std::sync::OnceLock<String>,
}

/// Scrapes closer together than this reuse the last backlog count: counting scans the
/// pending part of the due index (~0.6 s with 5M pending), and several Prometheus servers
/// may scrape every few seconds.
const BACKLOG_COUNT_EVERY: Duration = Duration::from_secs(10);

/// Says yes at most once per period.
pub struct Throttle {
    period: Duration,
    last: std::sync::Mutex<Option<std::time::Instant>>,
}

impl Throttle {
    fn new(period: Duration) -> Self {
        Self {
            period,
            last: std::sync::Mutex::new(None),
        }
    }

    pub fn due(&self) -> bool {
        let mut last = self
            .last
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let due = last.is_none_or(|at| at.elapsed() >= self.period);
        if due {
            *last = Some(std::time::Instant::now());
        }
        due
    }
}

impl std::ops::Deref for AppState {
    type Target = App;
    fn deref(&self) -> &App {
        &self.app
    }
}

impl FromRef<AppState> for App {
    fn from_ref(state: &AppState) -> App {
        state.app.clone()
    }
}

impl AppState {
    pub fn new(app: App, settings: &ApiSettings) -> Self {
        Self {
            app,
            http: Arc::new(Http {
                max_body_bytes: settings.max_body_bytes,
                default_page_size: settings.default_page_size,
                max_page_size: settings.max_page_size,
                body_read_timeout: settings.body_read_timeout(),
                requests: Arc::new(Semaphore::new(settings.max_concurrent_requests)),
                backlog_count: Throttle::new(BACKLOG_COUNT_EVERY),
                database_probe: health::DatabaseProbe::default(),
                openapi: std::sync::OnceLock::new(),
            }),
        }
    }
}

/// The API's routes: `/v1`, health, metrics and the OpenAPI document. The HTTP server
/// (`crate::http`) mounts them beside the console under the shared layers.
pub fn routes(state: &AppState) -> Router<AppState> {
    // The API proper counts against `max_concurrent_requests`; health checks and metrics
    // do not, so that a busy daemon still answers its supervisor.
    let v1 = Router::new()
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
        .route(
            "/v1/callbacks/bulk",
            post(callbacks::bulk).get(callbacks::bulk_changes),
        )
        .route("/v1/callbacks/bulk/{id}", get(callbacks::bulk_change))
        .route("/v1/callbacks/{id}/events", get(callbacks::events))
        .route("/v1/callbacks/{id}/outcomes", post(callbacks::outcome))
        .route("/v1/callbacks/{id}/retry", post(callbacks::retry))
        .route(
            "/v1/skills/{id}",
            put(directory::put_skill).get(directory::get_skill),
        )
        .route("/v1/skills/{id}/capacity", put(directory::put_capacity))
        .route("/v1/skills/{id}/pause", post(pause::pause))
        .route("/v1/skills/{id}/resume", post(pause::resume))
        .route(
            "/v1/skills/{id}/availability",
            get(availability::availability),
        )
        .route("/v1/reports/promises", get(reports::promises))
        .route("/v1/privacy/export", get(privacy::export))
        .route("/v1/privacy/erasure", post(privacy::erase))
        .route("/v1/webhooks", get(webhooks::list_webhooks))
        .route(
            "/v1/webhooks/{name}",
            put(webhooks::put_webhook)
                .get(webhooks::get_webhook)
                .delete(webhooks::delete_webhook),
        )
        .route(
            "/v1/webhooks/{name}/attempts",
            get(webhooks::webhook_attempts),
        )
        .route(
            "/v1/calendars/{name}",
            put(calendars::put_calendar)
                .get(calendars::get_calendar)
                .delete(calendars::delete_calendar),
        )
        .route(
            "/v1/dnc/{phone}",
            put(dnc::put_dnc).get(dnc::get_dnc).delete(dnc::delete_dnc),
        )
        .route(
            "/v1/agents/{id}",
            put(directory::put_agent).get(directory::get_agent),
        )
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            limit_concurrency,
        ));
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .route("/openapi.json", get(openapi::document))
        .merge(v1)
}

/// Past `api.max_concurrent_requests` a request is refused at once rather than queued:
/// a client can retry, while a queue would only make every request slower.
pub(crate) async fn limit_concurrency(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let Ok(_permit) = state.http.requests.clone().try_acquire_owned() else {
        let mut response = ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ResultCode::Default,
            format!(
                "too many requests in progress (api.max_concurrent_requests = {}); retry later",
                state.settings.api.max_concurrent_requests
            ),
        )
        .into_response();
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        return response;
    };
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttle_says_yes_once_per_period() {
        let hourly = Throttle::new(Duration::from_secs(3600));
        assert!(hourly.due());
        assert!(!hourly.due());
        assert!(!hourly.due());
        let always = Throttle::new(Duration::ZERO);
        assert!(always.due());
        assert!(always.due());
    }
}
