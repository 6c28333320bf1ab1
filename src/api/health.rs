use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};

use super::AppState;

/// The process is alive and serving HTTP.
pub async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// Prometheus metrics (unauthenticated, like the health checks: no personal data).
pub async fn metrics(State(state): State<AppState>) -> impl axum::response::IntoResponse {
    let body = crate::instruments::render(&state.store, state.broker.as_ref()).await;
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        body,
    )
}

/// Ready: the database answers and, when this daemon dispatches, the broker is connected.
pub async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
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
    let body = json!({
        "status": if ready { "ready" } else { "not ready" },
        "database": database,
        "broker": broker,
    });
    (status, Json(body))
}
