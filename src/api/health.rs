use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;

use super::AppState;
use super::error::ResultCode;

/// `{"status": "ok"}`.
#[derive(Serialize, ToSchema)]
pub struct Liveness {
    #[schema(example = "ok")]
    status: &'static str,
}

/// What the daemon depends on, and whether it can serve.
#[derive(Serialize, ToSchema)]
pub struct Readiness {
    /// `Default` when not ready, like every other error answer; absent when ready.
    #[serde(skip_serializing_if = "Option::is_none")]
    result: Option<ResultCode>,
    /// `ready` or `not ready`.
    #[schema(example = "ready")]
    status: &'static str,
    /// `up` or `down`.
    #[schema(example = "up")]
    database: &'static str,
    /// `up`, `down`, or `not used` when this daemon runs no dispatcher.
    #[schema(example = "up")]
    broker: &'static str,
}

/// The process is alive and serving HTTP.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "health",
    responses((status = 200, description = "Alive", body = Liveness))
)]
pub async fn healthz() -> Json<Liveness> {
    Json(Liveness { status: "ok" })
}

/// Prometheus metrics (unauthenticated, like the health checks: no personal data).
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "health",
    responses((status = 200, description = "Prometheus text exposition format", body = String, content_type = "text/plain"))
)]
pub async fn metrics(State(state): State<AppState>) -> impl axum::response::IntoResponse {
    let count_backlog = state.backlog_count.due();
    let body = crate::instruments::render(&state.store, state.broker.as_ref(), count_backlog).await;
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        body,
    )
}

/// Ready: the database answers and, when this daemon dispatches, the broker is connected.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "health",
    responses(
        (status = 200, description = "Ready", body = Readiness),
        (status = 503, description = "Not ready: the database or the broker is down", body = Readiness),
    )
)]
pub async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Readiness>) {
    let database = match state.store.ping().await {
        Ok(()) => "up",
        Err(e) => {
            tracing::warn!(error = %e, "readiness: database down");
            "down"
        }
    };
    let broker = match &state.broker {
        None => "not used",
        Some(b) if b.is_up() => "up",
        Some(_) => "down",
    };
    let ready = database == "up" && broker != "down";
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = Readiness {
        result: (!ready).then_some(ResultCode::Default),
        status: if ready { "ready" } else { "not ready" },
        database,
        broker,
    };
    (status, Json(body))
}
