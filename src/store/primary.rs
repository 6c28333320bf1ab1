//! Several database servers (a primary and its replicas): callbackd keeps its pools on the
//! one that accepts writes, as libpq's `target_session_attrs=read-write` does (sqlx has no
//! such option). Every new session checks `pg_is_in_recovery()`, and a watcher looks at the
//! servers every second: when the primary is gone and a replica has been promoted, new
//! sessions go to it. Until then requests answer 503 and the dispatcher waits.
//!
//! Chosen over a TCP proxy with health checks (HAProxy) because it needs nothing else
//! deployed and cannot send a write to a replica: the check is the session's own. A proxy
//! stays the choice where the topology is managed by Patroni (it reports the primary).

use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, PgPool};

use super::StoreError;

/// How often the watcher looks at the servers.
const WATCH_EVERY: Duration = Duration::from_secs(1);
/// A server that does not answer within this long is taken as down.
const PROBE_LIMIT: Duration = Duration::from_secs(2);

/// Whether the server behind `options` answers and accepts writes.
async fn is_primary(options: &PgConnectOptions) -> bool {
    let probe = async {
        let mut conn = options.connect().await?;
        let in_recovery = sqlx::query_scalar!(r#"SELECT pg_is_in_recovery() AS "in_recovery!""#)
            .fetch_one(&mut conn)
            .await?;
        let _ = conn.close().await;
        Ok::<bool, sqlx::Error>(!in_recovery)
    };
    matches!(tokio::time::timeout(PROBE_LIMIT, probe).await, Ok(Ok(true)))
}

/// The first server that answers and accepts writes, in the order given.
pub(super) async fn find(candidates: &[PgConnectOptions]) -> Option<usize> {
    for (index, options) in candidates.iter().enumerate() {
        if is_primary(options).await {
            return Some(index);
        }
    }
    None
}

/// A session on a replica is refused as "database unavailable" (the caller retries).
pub(super) fn refuse_replicas(options: PgPoolOptions) -> PgPoolOptions {
    options.after_connect(|conn, _meta| {
        Box::pin(async move {
            let in_recovery =
                sqlx::query_scalar!(r#"SELECT pg_is_in_recovery() AS "in_recovery!""#)
                    .fetch_one(&mut *conn)
                    .await?;
            if in_recovery {
                return Err(sqlx::Error::Io(std::io::Error::other(
                    "the server is a read-only replica (recovery); waiting for the primary",
                )));
            }
            Ok(())
        })
    })
}

/// Keeps `pool` on the primary among `candidates` (it starts on `current`), until the pool
/// is closed.
pub(super) fn watch(pool: PgPool, candidates: Vec<PgConnectOptions>, mut current: usize) {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(WATCH_EVERY);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        while !pool.is_closed() {
            ticks.tick().await;
            if is_primary(&candidates[current]).await {
                continue;
            }
            match find(&candidates).await {
                Some(found) if found != current => {
                    tracing::warn!(
                        from = candidates[current].get_host(),
                        from_port = candidates[current].get_port(),
                        to = candidates[found].get_host(),
                        to_port = candidates[found].get_port(),
                        "database primary moved; new sessions go to the new primary"
                    );
                    pool.set_connect_options(candidates[found].clone());
                    current = found;
                }
                Some(_) => {}
                None => tracing::warn!("no database server accepts writes; waiting for a primary"),
            }
        }
    });
}

/// The candidate to start on: the primary when there are several (the first if none
/// answers yet), else the only one.
pub(super) async fn first(candidates: &[PgConnectOptions]) -> usize {
    if candidates.len() > 1 {
        find(candidates).await.unwrap_or(0)
    } else {
        0
    }
}

/// Opens `pool_options` on `candidates[current]`: at once when `lazy` is false (start-up
/// fails if it does not answer), else on first use. With several candidates, sessions on a
/// replica are refused and a watcher follows the primary.
pub(super) async fn open(
    candidates: Vec<PgConnectOptions>,
    current: usize,
    pool_options: PgPoolOptions,
    lazy: bool,
) -> Result<PgPool, StoreError> {
    let several = candidates.len() > 1;
    let options = candidates
        .get(current)
        .cloned()
        .ok_or_else(|| StoreError::Url(sqlx::Error::Configuration("no database URL".into())))?;
    let pool_options = if several {
        refuse_replicas(pool_options)
    } else {
        pool_options
    };
    let pool = if lazy {
        pool_options.connect_lazy_with(options)
    } else {
        pool_options.connect_with(options).await?
    };
    if several {
        watch(pool.clone(), candidates, current);
    }
    Ok(pool)
}
