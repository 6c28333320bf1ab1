//! HTTP: the routes, the shared state, request logging. Handlers parse into domain types,
//! call the store, and answer with the spec's result codes.

pub(crate) mod availability;
pub mod callbacks;
mod directory;
mod dnc;
mod error;
pub mod extract;
mod health;
mod openapi;
mod serve;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use tokio::sync::Semaphore;
use tower_http::catch_panic::CatchPanicLayer;

pub use error::{ApiError, ResultCode};
pub use openapi::ApiDoc;
pub use serve::serve;

use crate::amqp::Broker;
use crate::config::{ApiSettings, Settings};
use crate::domain::ScheduleRules;
use crate::store::{CreateQueue, Store};

/// What every handler can reach. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

pub struct Inner {
    pub settings: Settings,
    pub store: Store,
    /// Creates, written in groups (group commit).
    pub creates: CreateQueue,
    /// `None` when this daemon runs no dispatcher.
    pub broker: Option<Broker>,
    pub rules: ScheduleRules,
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
    /// The console overview's callbacks per state, and when they were counted: counting
    /// scans the table, so viewers share one count every few seconds.
    pub state_counts: tokio::sync::Mutex<Option<(Instant, Figures)>>,
    /// The console's load chart, for the same reason: the last one counted, with its key.
    pub load_chart: tokio::sync::Mutex<Option<(Instant, LoadKey, LoadCounts)>>,
    /// The dispatch workers' liveness and recent lateness, when this daemon dispatches.
    pub progress: Option<crate::liveness::Progress>,
}

/// What a load chart counted: its first hour, its end, and the skills.
pub type LoadKey = (
    chrono::DateTime<chrono::Utc>,
    chrono::DateTime<chrono::Utc>,
    Option<Vec<crate::domain::SkillId>>,
);
/// Pending callbacks per hour and skill.
pub type LoadCounts = Vec<(chrono::DateTime<chrono::Utc>, crate::domain::SkillId, i64)>;

/// The overview's figures: callbacks per state, and the backlog.
pub type Figures = (Vec<(String, i64)>, crate::store::Backlog);

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
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.inner
    }
}

impl AppState {
    /// `tracker` runs the group-commit writers, so a graceful stop waits for the creates
    /// they hold.
    pub fn new(
        store: Store,
        broker: Option<Broker>,
        settings: &Settings,
        tracker: &tokio_util::task::TaskTracker,
        progress: Option<crate::liveness::Progress>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                settings: settings.clone(),
                creates: CreateQueue::start(store.clone(), tracker),
                store,
                broker,
                rules: settings.schedule_rules(),
                max_body_bytes: settings.api.max_body_bytes,
                default_page_size: settings.api.default_page_size,
                max_page_size: settings.api.max_page_size,
                body_read_timeout: settings.api.body_read_timeout(),
                requests: Arc::new(Semaphore::new(settings.api.max_concurrent_requests)),
                backlog_count: Throttle::new(BACKLOG_COUNT_EVERY),
                database_probe: health::DatabaseProbe::default(),
                state_counts: tokio::sync::Mutex::new(None),
                load_chart: tokio::sync::Mutex::new(None),
                progress,
            }),
        }
    }
}

pub fn router(state: AppState, settings: &ApiSettings) -> Router {
    let request_timeout = settings.request_timeout();
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
        .route("/v1/callbacks/bulk", post(callbacks::bulk))
        .route("/v1/callbacks/{id}/events", get(callbacks::events))
        .route("/v1/callbacks/{id}/outcomes", post(callbacks::outcome))
        .route(
            "/v1/skills/{id}",
            put(directory::put_skill).get(directory::get_skill),
        )
        .route("/v1/skills/{id}/capacity", put(directory::put_capacity))
        .route(
            "/v1/skills/{id}/availability",
            get(availability::availability),
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
        .merge(crate::console::router())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(state.max_body_bytes))
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

/// Past `api.max_concurrent_requests` a request is refused at once rather than queued:
/// a client can retry, while a queue would only make every request slower.
async fn limit_concurrency(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let Ok(_permit) = state.requests.clone().try_acquire_owned() else {
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
