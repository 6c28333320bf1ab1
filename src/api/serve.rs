//! The HTTP accept loop: `axum::serve` with the limits it does not offer. A connection must
//! send its request headers within `api.header_read_timeout_ms` (which also bounds how long
//! a kept-alive connection may sit idle), and at most `api.max_connections` are open at once:
//! past that, the loop stops accepting and new clients wait in the kernel's listen backlog,
//! so a flood of idle or slow connections cannot exhaust file descriptors or memory.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::config::ApiSettings;

/// Serves `app` on `listener` until `shutdown` fires, then stops accepting and waits for
/// the open connections to finish their requests (idle ones close at once).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    settings: &ApiSettings,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(settings.header_read_timeout());
    let slots = Arc::new(Semaphore::new(settings.max_connections));
    let graceful = GracefulShutdown::new();
    let mut at_limit_logged = false;

    loop {
        if slots.available_permits() == 0 && !at_limit_logged {
            tracing::warn!(
                max_connections = settings.max_connections,
                "connection limit reached; new clients wait in the listen backlog"
            );
        }
        at_limit_logged = slots.available_permits() == 0;
        let slot = tokio::select! {
            _ = shutdown.cancelled() => break,
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
        };
        let (stream, _peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    accept_error(e).await;
                    continue;
                }
            },
        };
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, "could not set TCP_NODELAY");
        }
        let connection =
            builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(app.clone()));
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                // Timeouts and clients that go away: not the daemon's problem.
                tracing::debug!(error = %e, "connection ended with an error");
            }
            drop(slot);
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// Like hyper's old server: a client that vanished is nothing; anything else (such as
/// running out of file descriptors) is logged and the loop pauses before accepting again.
async fn accept_error(e: std::io::Error) {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(
        e.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset
    ) {
        return;
    }
    tracing::error!(error = %e, "accept failed; pausing for a second");
    tokio::time::sleep(Duration::from_secs(1)).await;
}
