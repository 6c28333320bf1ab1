use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;

use super::AppState;
use super::error::ResultCode;

/// How long one reading of the database's health serves `/readyz`: probes every few
/// seconds from several load balancers then cost one query a second, not one each.
const READINESS_FRESH: std::time::Duration = std::time::Duration::from_secs(1);
/// A ping that takes longer than this counts as down.
const PING_LIMIT: std::time::Duration = std::time::Duration::from_secs(2);

/// The last reading of the database's health, shared by concurrent `/readyz` requests: at
/// most one ping runs at a time, so health checks cannot take the API's connections.
#[derive(Default)]
pub struct DatabaseProbe {
    last: tokio::sync::Mutex<Option<(std::time::Instant, bool)>>,
}

impl DatabaseProbe {
    pub async fn is_up(&self, store: &crate::store::Store) -> bool {
        self.reading(store.ping()).await
    }

    /// The fresh reading, or a new one taken with `ping` (by one caller at a time).
    async fn reading<E: std::fmt::Display>(
        &self,
        ping: impl std::future::Future<Output = Result<(), E>>,
    ) -> bool {
        let mut last = self.last.lock().await;
        if let Some((at, up)) = *last
            && at.elapsed() < READINESS_FRESH
        {
            return up;
        }
        let up = match tokio::time::timeout(PING_LIMIT, ping).await {
            Ok(Ok(())) => true,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "readiness: database down");
                false
            }
            Err(_) => {
                tracing::warn!(
                    limit_ms = PING_LIMIT.as_millis() as u64,
                    "readiness: database ping timed out"
                );
                false
            }
        };
        *last = Some((std::time::Instant::now(), up));
        up
    }
}

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
    let backlog = if state.http.backlog_count.due() {
        crate::instruments::Backlog::Count
    } else {
        crate::instruments::Backlog::Keep {
            database_up: state.http.database_probe.is_up(&state.store).await,
        }
    };
    let body = crate::instruments::render(&state.store, state.broker.as_ref(), backlog).await;
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
    let database = if state.http.database_probe.is_up(&state.store).await {
        "up"
    } else {
        "down"
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[tokio::test]
    async fn readyz_pings_the_database_once_for_many_probes_and_again_after_a_second() {
        let probe = Arc::new(DatabaseProbe::default());
        let pings = Arc::new(AtomicUsize::new(0));
        let ping = |pings: Arc<AtomicUsize>| async move {
            pings.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            Ok::<(), String>(())
        };
        let mut probes = tokio::task::JoinSet::new();
        for _ in 0..100 {
            let (probe, pings) = (probe.clone(), pings.clone());
            probes.spawn(async move { probe.reading(ping(pings)).await });
        }
        while let Some(up) = probes.join_next().await {
            assert!(matches!(up, Ok(true)));
        }
        assert_eq!(
            pings.load(Ordering::SeqCst),
            1,
            "one ping for 100 concurrent probes"
        );
        tokio::time::sleep(READINESS_FRESH).await;
        assert!(probe.reading(ping(pings.clone())).await);
        assert_eq!(
            pings.load(Ordering::SeqCst),
            2,
            "a stale reading is taken again"
        );
        let down = DatabaseProbe::default();
        assert!(!down.reading(async { Err::<(), _>("refused") }).await);
    }
}
