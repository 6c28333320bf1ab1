//! Slow and greedy clients: headers or a body trickled byte by byte are cut off, too many
//! requests at once are refused with a clear 503, too many connections wait their turn, a
//! client that stops reading is cut off, and all the while the daemon keeps answering
//! everyone else. An answer sent before the request was read (413) still reaches the client,
//! and a timed-out request is logged.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use testkit::prelude::{TestApp, valid_body};

fn addr(app: &TestApp) -> String {
    app.base.trim_start_matches("http://").to_owned()
}

/// Writes `bytes` one at a time, `gap` apart, until done or the server stops reading;
/// then reads what the server answered until it closes. Returns the answer and how long
/// after the first byte the connection ended.
async fn trickle(
    mut stream: TcpStream,
    head: &[u8],
    bytes: &[u8],
    gap: Duration,
) -> (String, Duration) {
    let started = Instant::now();
    stream.write_all(head).await.expect("head sent");
    for byte in bytes {
        if stream.write_all(&[*byte]).await.is_err() {
            break;
        }
        // Stop early once the server has answered or closed.
        let mut probe = [0u8; 1];
        if tokio::time::timeout(gap, stream.peek(&mut probe))
            .await
            .is_ok()
        {
            break;
        }
    }
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer)).await;
    (
        String::from_utf8_lossy(&answer).into_owned(),
        started.elapsed(),
    )
}

/// A normal request made while the slow clients are at it must be answered promptly.
async fn healthy_meanwhile(app: &TestApp) {
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    let (status, body) = app.create(&valid_body()).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "a normal request took {:?} while slow clients were connected",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_client_sending_headers_byte_by_byte_is_cut_off() {
    let app = TestApp::spawn_with(|s| s.api.header_read_timeout_ms = 800).await;
    let headers = format!(
        "Host: callbackd\r\nAuthorization: Bearer {}\r\nX-Padding: {}\r\n\r\n",
        app.admin,
        "x".repeat(200)
    );
    let stream = TcpStream::connect(addr(&app)).await.expect("connected");
    let slow = trickle(
        stream,
        b"GET /v1/callbacks HTTP/1.1\r\n",
        headers.as_bytes(),
        Duration::from_millis(50),
    );
    let ((answer, took), ()) = tokio::join!(slow, healthy_meanwhile(&app));
    // About 13 s to send it all; cut off after the 0.8 s allowed (408 or a plain close).
    assert!(took < Duration::from_secs(8), "cut off only after {took:?}");
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
        "the slow client got an answer: {answer}"
    );
}

#[tokio::test]
async fn a_connection_that_never_sends_anything_is_closed() {
    let app = TestApp::spawn_with(|s| s.api.header_read_timeout_ms = 500).await;
    let mut stream = TcpStream::connect(addr(&app)).await.expect("connected");
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer)).await;
    assert!(read.is_ok(), "an idle connection was kept open for 5 s");
}

#[tokio::test]
async fn a_client_sending_its_body_byte_by_byte_gets_408() {
    let app = TestApp::spawn_with(|s| s.api.body_read_timeout_ms = 800).await;
    let body = valid_body().to_string();
    let head = format!(
        "POST /v1/callbacks HTTP/1.1\r\nHost: callbackd\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        app.admin,
        body.len()
    );
    let stream = TcpStream::connect(addr(&app)).await.expect("connected");
    let slow = trickle(
        stream,
        head.as_bytes(),
        body.as_bytes(),
        Duration::from_millis(50),
    );
    let ((answer, took), ()) = tokio::join!(slow, healthy_meanwhile(&app));
    // About 9 s to send it all; cut off after the 0.8 s allowed.
    assert!(took < Duration::from_secs(5), "cut off only after {took:?}");
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    let json: Value = answer
        .split_once("\r\n\r\n")
        .and_then(|(_, body)| serde_json::from_str(body).ok())
        .unwrap_or_else(|| panic!("no JSON body: {answer}"));
    assert_eq!(json["result"], "Default", "{json}");
    assert!(
        json["message"]
            .as_str()
            .is_some_and(|m| m.contains("body_read_timeout_ms")),
        "{json}"
    );
    let (count, _, _) = app.row_counts().await;
    assert_eq!(count, 1, "only the normal request created a callback");
}

/// Sends a create request's headers and half its body, then stalls.
async fn stalled_create(app: &TestApp) -> TcpStream {
    let body = valid_body().to_string();
    let head = format!(
        "POST /v1/callbacks HTTP/1.1\r\nHost: callbackd\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{}",
        app.admin,
        body.len(),
        &body[..body.len() / 2]
    );
    let mut stream = TcpStream::connect(addr(app)).await.expect("connected");
    stream.write_all(head.as_bytes()).await.expect("sent");
    stream
}

#[tokio::test]
async fn requests_past_the_concurrency_limit_get_503_and_health_checks_still_answer() {
    let app = TestApp::spawn_with(|s| {
        s.api.max_concurrent_requests = 2;
        s.api.body_read_timeout_ms = 3000;
    })
    .await;
    let stalled = [stalled_create(&app).await, stalled_create(&app).await];
    tokio::time::sleep(Duration::from_millis(400)).await;

    let response = app
        .client
        .post(format!("{}/v1/callbacks", app.base))
        .bearer_auth(&app.admin)
        .json(&valid_body())
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        response.headers().get("retry-after").map(|v| v.as_bytes()),
        Some(&b"1"[..])
    );
    let body: Value = response.json().await.expect("JSON");
    assert_eq!(body["result"], "Default", "{body}");
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.contains("max_concurrent_requests")),
        "{body}"
    );
    let (status, _) = app.call(Method::GET, "/healthz", None, None).await;
    assert_eq!(status, StatusCode::OK, "health checks are not limited");

    // Once the stalled requests are cut off, their permits are back.
    for mut stream in stalled {
        let mut answer = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer)).await;
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    }
    let (status, body) = app.create(&valid_body()).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

#[tokio::test]
async fn connections_past_the_limit_wait_for_a_free_slot() {
    let app = TestApp::spawn_with(|s| {
        s.api.max_connections = 3;
        s.api.header_read_timeout_ms = 1000;
    })
    .await;
    let mut idle = Vec::new();
    for _ in 0..3 {
        idle.push(TcpStream::connect(addr(&app)).await.expect("connected"));
    }
    tokio::time::sleep(Duration::from_millis(100)).await;

    // A fresh client (not a pooled connection) must wait until the idle ones are closed.
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .expect("client");
    let started = Instant::now();
    let response = client
        .get(format!("{}/healthz", app.base))
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .expect("answered once a slot was free");
    let waited = started.elapsed();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        waited >= Duration::from_millis(500),
        "answered after {waited:?}, while every slot was taken"
    );
    for mut stream in idle {
        let mut rest = Vec::new();
        let closed =
            tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut rest)).await;
        assert!(
            closed.is_ok(),
            "an idle connection outlived its header timeout"
        );
    }
    let (status, body) = app.create(&valid_body()).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

/// Writes the whole request before reading anything, with blocking writes on a thread of
/// its own (as `requests` and most blocking clients do, while the daemon reads at its own
/// pace), then reads the answer until the server closes. An error names the step. A small
/// send buffer keeps most of a large request in the client until the daemon reads it, as
/// on a real network; on loopback the kernel would otherwise often swallow it all at once.
async fn write_all_then_read(app: &TestApp, request: &[u8]) -> Result<String, String> {
    use std::io::{Read, Write};
    let addr: std::net::SocketAddr = addr(app).parse().expect("address");
    let request = request.to_vec();
    let client = tokio::task::spawn_blocking(move || {
        let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
            .map_err(|e| format!("socket: {e}"))?;
        socket
            .set_send_buffer_size(64 * 1024)
            .map_err(|e| format!("SO_SNDBUF: {e}"))?;
        socket
            .connect(&addr.into())
            .map_err(|e| format!("connect: {e}"))?;
        let mut stream = std::net::TcpStream::from(socket);
        let limit = Some(Duration::from_secs(10));
        stream.set_read_timeout(limit).map_err(|e| e.to_string())?;
        stream.set_write_timeout(limit).map_err(|e| e.to_string())?;
        stream
            .write_all(&request)
            .map_err(|e| format!("write: {e}"))?;
        let mut answer = Vec::new();
        match stream.read_to_end(&mut answer) {
            Ok(_) => Ok(String::from_utf8_lossy(&answer).into_owned()),
            Err(e) => Err(format!("read after {} bytes: {e}", answer.len())),
        }
    });
    client.await.map_err(|e| format!("client thread: {e}"))?
}

/// A body far over `api.max_body_bytes` is answered 413 and the connection closed; the
/// daemon must keep reading (and discarding) the rest, else the kernel answers the unread
/// data with a reset and the client never sees the 413.
#[tokio::test]
async fn oversized_body_413_is_readable_by_a_client_that_writes_everything_first() {
    let app = TestApp::spawn().await;
    let notes = "x".repeat(2 * 1024 * 1024);
    let body = serde_json::json!({ "notes": notes }).to_string();
    let authorized = format!(
        "POST /v1/callbacks HTTP/1.1\r\nHost: callbackd\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        app.admin,
        body.len()
    );
    // Without a token the body is never read: 401, and the same unread megabytes.
    let anonymous = format!(
        "POST /v1/callbacks HTTP/1.1\r\nHost: callbackd\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let mut failures = Vec::new();
    let cases = [
        (&authorized, "413", "Default"),
        (&anonymous, "401", "InvalidSecurityUser"),
    ];
    for (request, status, result) in cases {
        for attempt in 0..20 {
            match write_all_then_read(&app, request.as_bytes()).await {
                Ok(answer) if answer.starts_with(&format!("HTTP/1.1 {status} ")) => {
                    let json: Value = answer
                        .split_once("\r\n\r\n")
                        .and_then(|(_, body)| serde_json::from_str(body).ok())
                        .unwrap_or_else(|| panic!("no JSON body: {answer}"));
                    assert_eq!(json["result"], result, "{json}");
                }
                Ok(answer) => failures.push(format!("{status} #{attempt}: answered {answer}")),
                Err(e) => failures.push(format!("{status} #{attempt}: {e}")),
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of 40 tries lost the answer:\n{}",
        failures.len(),
        failures.join("\n")
    );
    let (status, body) = app.create(&valid_body()).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

/// A client that sends requests but never reads the answers must not hold its connection
/// (and slot) for ever: once a write has made no progress for `api.write_timeout_ms`, the
/// daemon drops the connection and the next client in the backlog is served.
#[tokio::test]
async fn a_client_that_stops_reading_is_cut_off_and_frees_its_slot() {
    let app = TestApp::spawn_with(|s| {
        s.api.max_connections = 1;
        s.api.write_timeout_ms = 500;
        // Not what cuts it off: the daemon reads no request head while it cannot write.
        s.api.header_read_timeout_ms = 60_000;
    })
    .await;
    // A small receive window: the answers (about 1000 × the OpenAPI document) back up at once.
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4096).expect("SO_RCVBUF");
    let mut greedy = socket
        .connect(addr(&app).parse().expect("address"))
        .await
        .expect("connected");
    let pipelined = "GET /openapi.json HTTP/1.1\r\nHost: callbackd\r\n\r\n".repeat(1000);
    // The daemon stops reading requests once it cannot write; what is sent is enough.
    let _ = tokio::time::timeout(
        Duration::from_secs(2),
        greedy.write_all(pipelined.as_bytes()),
    )
    .await;

    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .expect("client");
    let started = Instant::now();
    let response = client
        .get(format!("{}/healthz", app.base))
        .timeout(Duration::from_secs(8))
        .send()
        .await;
    let waited = started.elapsed();
    let response = response.unwrap_or_else(|e| {
        panic!("the next client was not served after {waited:?} (the slot is held): {e}")
    });
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        waited < Duration::from_secs(5),
        "served only after {waited:?}"
    );

    // The greedy client finds its connection ended (after what was buffered, or by a reset).
    let mut rest = Vec::new();
    let ended = tokio::time::timeout(Duration::from_secs(10), greedy.read_to_end(&mut rest)).await;
    assert!(ended.is_ok(), "the greedy connection is still open");
}

/// Log lines written while a test runs on this thread (the daemon's tasks run there too).
#[derive(Clone, Default)]
struct CapturedLog(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl CapturedLog {
    fn text(&self) -> String {
        let bytes = self.0.lock().unwrap_or_else(|e| e.into_inner());
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

impl std::io::Write for CapturedLog {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut bytes = self.0.lock().unwrap_or_else(|e| e.into_inner());
        bytes.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for CapturedLog {
    type Writer = CapturedLog;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

#[tokio::test]
async fn a_request_past_the_request_timeout_is_logged_without_its_headers() {
    let log = CapturedLog::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(log.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::WARN)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let app = TestApp::spawn_with(|s| {
        s.api.request_timeout_ms = 300;
        s.api.body_read_timeout_ms = 5000;
    })
    .await;
    let mut stream = stalled_create(&app).await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("request_timeout_ms"), "{answer}");

    let text = log.text();
    let line = text
        .lines()
        .find(|l| l.contains("request timed out"))
        .unwrap_or_else(|| panic!("no \"request timed out\" warning in the log:\n{text}"));
    assert!(line.contains("WARN"), "{line}");
    assert!(line.contains("method=POST"), "{line}");
    assert!(line.contains("path=/v1/callbacks"), "{line}");
    assert!(line.contains("timeout_ms=300"), "{line}");
    assert!(
        !text.contains(&app.admin),
        "the log holds the bearer token:\n{text}"
    );
}
