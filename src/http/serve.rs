//! The HTTP accept loop: `axum::serve` with the limits it does not offer. A connection must
//! send its request headers within `api.header_read_timeout_ms` (which also bounds how long
//! a kept-alive connection may sit idle), and at most `api.max_connections` are open at once:
//! past that, the loop stops accepting and new clients wait in the kernel's listen backlog,
//! so a flood of idle or slow connections cannot exhaust file descriptors or memory.
//!
//! Closing is done with care (RFC 9112 §9.6). When the daemon closes a connection whose
//! client may still be sending (a 413 or 401 before the body was read, a 408), it shuts down
//! its sending side, so the answer and a FIN go out, then reads and discards what still
//! arrives, for at most [`LINGER_TIME`] and [`LINGER_BYTES`], before closing. Closing at
//! once would make the kernel answer the unread data with a reset, and a client that writes
//! its whole request before reading would see "connection reset" or "broken pipe" instead
//! of the answer. A lingering connection keeps its slot in `api.max_connections`.
//!
//! A client that stops reading its answers is cut off: a write that makes no progress for
//! `api.write_timeout_ms` fails, the connection is dropped with a reset, and its slot is
//! free again. TCP keepalive probes notice a peer that vanished without a word (after about
//! [`KEEPALIVE_TIME`] plus three unanswered probes).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use socket2::{SockRef, TcpKeepalive};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use crate::config::ApiSettings;

/// How long a closing connection keeps reading what its client still sends. A client that
/// wrote its request before reading is done within milliseconds on any usable network, then
/// sees the answer and the FIN and closes; the limit only bounds clients that do not.
const LINGER_TIME: Duration = Duration::from_secs(2);
/// How much a closing connection reads and discards: 256 times the default
/// `api.max_body_bytes`, so an oversized upload of a few megabytes still gets its 413,
/// while a client streaming without end costs at most this much reading.
const LINGER_BYTES: usize = 16 * 1024 * 1024;
/// Idle time before the first keepalive probe; then one every [`KEEPALIVE_INTERVAL`], and the
/// connection is dropped after [`KEEPALIVE_RETRIES`] unanswered ones.
const KEEPALIVE_TIME: Duration = Duration::from_secs(60);
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);
const KEEPALIVE_RETRIES: u32 = 3;

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
    let write_timeout = settings.write_timeout();
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
        let (stream, peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    accept_error(e).await;
                    continue;
                }
            },
        };
        tune(&stream);
        let io = ClientStream::new(stream, slot, write_timeout);
        // Handlers may ask who is at the other end (`http::Peer`): the per-address limits.
        let service = app
            .clone()
            .map_request(move |mut request: axum::extract::Request<_>| {
                request
                    .extensions_mut()
                    .insert(axum::extract::ConnectInfo(peer));
                request
            });
        let connection =
            builder.serve_connection(TokioIo::new(io), TowerToHyperService::new(service));
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                // Timeouts and clients that go away: not the daemon's problem.
                tracing::debug!(error = %e, "connection ended with an error");
            }
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

/// No Nagle delay (answers are written whole), and keepalive probes so that a peer that
/// vanished (power loss, a dropped NAT mapping) does not hold a slot for ever.
fn tune(stream: &TcpStream) {
    if let Err(e) = stream.set_nodelay(true) {
        tracing::debug!(error = %e, "could not set TCP_NODELAY");
    }
    let keepalive = TcpKeepalive::new()
        .with_time(KEEPALIVE_TIME)
        .with_interval(KEEPALIVE_INTERVAL)
        .with_retries(KEEPALIVE_RETRIES);
    if let Err(e) = SockRef::from(stream).set_tcp_keepalive(&keepalive) {
        tracing::debug!(error = %e, "could not enable TCP keepalive");
    }
}

/// An accepted socket as hyper uses it: writes fail after `write_timeout` without progress,
/// and dropping it hands the socket, with its connection slot, to a lingering close.
struct ClientStream {
    /// `None` only once `drop` has taken it.
    stream: Option<TcpStream>,
    slot: Option<OwnedSemaphorePermit>,
    write_timeout: Duration,
    /// Runs while a write is stalled; allocated at the first stall, then reused.
    stall: Option<Pin<Box<Sleep>>>,
    stalled: bool,
    shut_down: bool,
    timed_out: bool,
}

impl ClientStream {
    fn new(stream: TcpStream, slot: OwnedSemaphorePermit, write_timeout: Duration) -> Self {
        Self {
            stream: Some(stream),
            slot: Some(slot),
            write_timeout,
            stall: None,
            stalled: false,
            shut_down: false,
            timed_out: false,
        }
    }

    fn stream(&mut self) -> io::Result<Pin<&mut TcpStream>> {
        self.stream
            .as_mut()
            .map(Pin::new)
            .ok_or_else(|| io::ErrorKind::NotConnected.into())
    }

    /// Passes a write's outcome through, or fails it once it has been pending for
    /// `write_timeout` since the last write that made progress.
    fn time_write<T>(
        &mut self,
        cx: &mut Context<'_>,
        outcome: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        if outcome.is_ready() {
            self.stalled = false;
            return outcome;
        }
        let deadline = Instant::now() + self.write_timeout;
        let stall = self
            .stall
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if !self.stalled {
            stall.as_mut().reset(deadline);
            self.stalled = true;
        }
        if stall.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        self.timed_out = true;
        Poll::Ready(Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!(
                "the client read nothing for api.write_timeout_ms ({} ms)",
                self.write_timeout.as_millis()
            ),
        )))
    }
}

impl AsyncRead for ClientStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut().stream() {
            Ok(stream) => stream.poll_read(cx, buf),
            Err(e) => Poll::Ready(Err(e)),
        }
    }
}

impl AsyncWrite for ClientStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let outcome = match this.stream() {
            Ok(stream) => stream.poll_write(cx, buf),
            Err(e) => return Poll::Ready(Err(e)),
        };
        this.time_write(cx, outcome)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let outcome = match this.stream() {
            Ok(stream) => stream.poll_write_vectored(cx, bufs),
            Err(e) => return Poll::Ready(Err(e)),
        };
        this.time_write(cx, outcome)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.as_ref().is_some_and(|s| s.is_write_vectored())
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let outcome = match this.stream() {
            Ok(stream) => stream.poll_flush(cx),
            Err(e) => return Poll::Ready(Err(e)),
        };
        this.time_write(cx, outcome)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let outcome = match this.stream() {
            Ok(stream) => stream.poll_shutdown(cx),
            Err(e) => return Poll::Ready(Err(e)),
        };
        if outcome.is_ready() {
            this.shut_down = true;
        }
        outcome
    }
}

impl Drop for ClientStream {
    fn drop(&mut self) {
        let Some(stream) = self.stream.take() else {
            return;
        };
        let slot = self.slot.take();
        if self.timed_out {
            // The client reads nothing, so lingering is pointless: reset at once, which also
            // frees the kernel's buffers rather than leaving them to retransmission.
            if let Err(e) = SockRef::from(&stream).set_linger(Some(Duration::ZERO)) {
                tracing::debug!(error = %e, "could not set SO_LINGER");
            }
            return;
        }
        // The usual case, a client that has closed already (or reset), needs no lingering.
        let mut probe = [0u8; 1];
        match stream.try_read(&mut probe) {
            Ok(0) => return,
            Err(e) if e.kind() != io::ErrorKind::WouldBlock => return,
            _ => {}
        }
        // Outside a runtime (it is shutting down) the socket is simply closed.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(linger(stream, self.shut_down, slot));
        }
    }
}

/// Sends the FIN unless hyper has, then discards what the client still sends until it
/// closes too or the limits run out; then closes and frees the slot.
async fn linger(mut stream: TcpStream, shut_down: bool, slot: Option<OwnedSemaphorePermit>) {
    if !shut_down && stream.shutdown().await.is_err() {
        return;
    }
    let mut discard = vec![0u8; 16 * 1024];
    let mut left = LINGER_BYTES;
    let drain = async {
        while left > 0 {
            match stream.read(&mut discard).await {
                Ok(0) | Err(_) => break,
                Ok(n) => left = left.saturating_sub(n),
            }
        }
    };
    let _ = tokio::time::timeout(LINGER_TIME, drain).await;
    drop(slot);
}
