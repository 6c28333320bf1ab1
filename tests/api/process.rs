//! The daemon as a real child process: killed with SIGKILL mid-burst and restarted, and
//! stopped with SIGTERM. Nothing may be lost; duplicates only after a kill, with the same id.

use std::collections::{HashMap, HashSet};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use testkit::daemon::Daemon;
use testkit::prelude::*;
use testkit::tap::Consumer;

/// Receives into `seen` (message id → deliveries) until every id is seen or `timeout`.
async fn receive_all(
    consumer: &mut Consumer,
    seen: &mut HashMap<String, usize>,
    ids: &HashSet<String>,
    timeout: Duration,
) {
    let deadline = Instant::now() + timeout;
    while ids.iter().any(|id| !seen.contains_key(id)) && Instant::now() < deadline {
        if let Some(m) = consumer.next(Duration::from_millis(200)).await {
            *seen.entry(m.callback_id()).or_default() += 1;
        }
    }
}

#[tokio::test]
async fn killed_with_sigkill_mid_burst_and_restarted_loses_nothing() {
    let app = TestApp::spawn().await;
    declare_exchange(&app.exchange).await;
    let mut consumer = Consumer::bind(&app.exchange, "#").await;
    let ids: HashSet<String> = app.insert_due(5000, None).await.into_iter().collect();

    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut kills = 0;
    for round in 0..5 {
        let mut daemon = Daemon::start(&app, &format!("victim-{round}"), 200);
        // Let it get going, then kill it wherever it is: claiming, publishing or recording.
        let target = seen.len() + 300;
        let started = Instant::now();
        while seen.len() < target && started.elapsed() < Duration::from_secs(10) {
            if let Some(m) = consumer.next(Duration::from_millis(100)).await {
                *seen.entry(m.callback_id()).or_default() += 1;
            }
        }
        daemon.kill9();
        kills += 1;
    }
    let mut survivor = Daemon::start(&app, "survivor", 200);
    receive_all(&mut consumer, &mut seen, &ids, Duration::from_secs(60)).await;
    let (status, _) = survivor.terminate();
    assert!(status.success(), "{status}");
    // Anything still in flight to the consumer.
    while let Some(m) = consumer.next(Duration::from_millis(500)).await {
        *seen.entry(m.callback_id()).or_default() += 1;
    }

    let missing = ids.iter().filter(|id| !seen.contains_key(*id)).count();
    let strangers = seen.keys().filter(|id| !ids.contains(*id)).count();
    let duplicates: usize = seen.values().map(|n| n - 1).sum();
    eprintln!(
        "sigkill: {} callbacks, {kills} kills, {duplicates} duplicates, {missing} lost",
        ids.len()
    );
    assert_eq!(missing, 0, "every callback delivered at least once");
    assert_eq!(strangers, 0, "every message id is a callback id");
    let states = app.states().await;
    assert_eq!(states.get("dispatched"), Some(&5000), "{states:?}");
    assert_eq!(states.len(), 1, "nothing left pending: {states:?}");
}

#[tokio::test]
async fn sigterm_mid_burst_exits_zero_promptly_and_strands_nothing() {
    let app = TestApp::spawn().await;
    declare_exchange(&app.exchange).await;
    let mut consumer = Consumer::bind(&app.exchange, "#").await;
    let ids: HashSet<String> = app.insert_due(4000, None).await.into_iter().collect();

    let mut daemon = Daemon::start(&app, "graceful", 100);
    // Stopped by what the database has recorded, not by what the consumer has read: a
    // consumer slowed by a busy machine can lag the daemon by the whole burst.
    let started = Instant::now();
    let dispatched = || async { app.states().await.get("dispatched").copied().unwrap_or(0) };
    while dispatched().await < 500 && started.elapsed() < Duration::from_secs(20) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (status, took) = daemon.terminate();
    let mut seen: HashMap<String, usize> = HashMap::new();
    assert!(status.success(), "exit status {status}");
    assert!(
        took < Duration::from_secs(5),
        "stopped in {took:?}, deadline 5 s"
    );
    // What it published it also recorded: the dispatched rows are exactly those delivered.
    let dispatched: HashSet<String> =
        sqlx::query_scalar("SELECT id::text FROM callbacks WHERE state = 'dispatched'")
            .fetch_all(&app.pool)
            .await
            .expect("dispatched ids")
            .into_iter()
            .collect();
    assert!(
        dispatched.len() >= 500 && dispatched.len() < ids.len(),
        "the stop came mid-burst ({} of {} dispatched)",
        dispatched.len(),
        ids.len()
    );
    receive_all(
        &mut consumer,
        &mut seen,
        &dispatched,
        Duration::from_secs(30),
    )
    .await;
    // Anything published but not recorded would arrive now.
    while let Some(m) = consumer.next(Duration::from_millis(500)).await {
        *seen.entry(m.callback_id()).or_default() += 1;
    }
    let delivered: HashSet<String> = seen.keys().cloned().collect();
    let unrecorded = delivered.difference(&dispatched).count();
    let undelivered = dispatched.difference(&delivered).count();
    assert_eq!(
        (unrecorded, undelivered),
        (0, 0),
        "after a graceful stop, what was delivered is exactly what was recorded ({} delivered)",
        delivered.len()
    );
    // No row is left locked: the rest can all be claimed at once.
    let claimable: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT id FROM callbacks WHERE state = 'pending' FOR UPDATE SKIP LOCKED) c",
    )
    .fetch_one(&app.pool)
    .await
    .expect("count");
    assert_eq!(claimable as usize, ids.len() - dispatched.len());

    let mut daemon = Daemon::start(&app, "after", 500);
    receive_all(&mut consumer, &mut seen, &ids, Duration::from_secs(60)).await;
    let (status, _) = daemon.terminate();
    assert!(status.success());
    let duplicates: usize = seen.values().map(|n| n - 1).sum();
    assert_eq!(seen.len(), ids.len(), "all delivered after the restart");
    assert_eq!(duplicates, 0, "a graceful stop causes no duplicate");
}

/// A daemon whose database is a server that accepts connections and never answers (the
/// listener, which the caller keeps open), waiting up to `acquire_timeout_ms` for it.
fn start_against_silent_database(
    name: &str,
    acquire_timeout_ms: u32,
) -> (std::net::TcpListener, Daemon) {
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("listener");
    let url = format!(
        "postgres://postgres@{}/callbackd",
        silent.local_addr().expect("addr")
    );
    let mut command = Command::new(env!("CARGO_BIN_EXE_callbackd"));
    command
        .env("CALLBACKD_DATABASE__URL", url)
        .env(
            "CALLBACKD_DATABASE__ACQUIRE_TIMEOUT_MS",
            acquire_timeout_ms.to_string(),
        )
        .env("CALLBACKD_API__LISTEN", "127.0.0.1:0");
    (silent, Daemon::spawn_keeping_log(command, name))
}

/// A stop that arrives while start-up still waits for the database ends the process cleanly
/// (exit 0, and the log says so), not by the signal.
#[tokio::test]
async fn sigterm_during_start_up_exits_zero() {
    let (_silent, mut daemon) = start_against_silent_database("starting", 60_000);
    daemon
        .wait_for_log("callbackd starting", Duration::from_secs(30))
        .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        daemon.child.try_wait().expect("try_wait").is_none(),
        "still starting: {}",
        daemon.log_tail()
    );

    let (status, took) = daemon.terminate();
    assert!(status.success(), "exit status {status}");
    assert!(took < Duration::from_secs(5), "stopped in {took:?}");
    let log = daemon.log();
    assert!(log.contains("stopped during start-up"), "{log}");
    assert!(!log.contains("callbackd serving HTTP"), "{log}");
}

/// A database that accepts the connection and never answers fails start-up after
/// `database.acquire_timeout_ms`, with a log line that names the setting; it does not hold
/// the daemon (and systemd's restart) forever.
#[test]
fn a_database_that_never_answers_fails_start_up_in_time() {
    let (_silent, mut daemon) = start_against_silent_database("no-answer", 1_000);
    let status = daemon.wait_for_exit(Duration::from_secs(20), "start-up did not fail");
    assert!(!status.success(), "a failed start exits non-zero");
    assert!(
        status.code().is_some(),
        "it exits, not killed by a signal: {status}"
    );
    let log = daemon.log();
    assert!(
        log.contains("did not answer within 1000 ms (database.acquire_timeout_ms)"),
        "{log}"
    );
}

/// systemd's side of the notify protocol: a datagram socket the daemon reports to.
#[tokio::test]
async fn reports_ready_status_watchdog_and_stopping_to_systemd() {
    use std::os::unix::net::UnixDatagram;

    let app = TestApp::spawn().await;
    let path = std::env::temp_dir().join(format!(
        "callbackd-notify-{}.sock",
        uuid::Uuid::now_v7().simple()
    ));
    let socket = UnixDatagram::bind(&path).expect("notify socket");
    socket
        .set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");

    let mut command = Command::new(env!("CARGO_BIN_EXE_callbackd"));
    command
        .envs(app.child_env())
        .env("CALLBACKD_API__LISTEN", "127.0.0.1:0")
        .env("CALLBACKD_DISPATCH__POLL_INTERVAL_MS", "200")
        .env("NOTIFY_SOCKET", &path)
        .env("WATCHDOG_USEC", "1000000")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut daemon = Daemon::adopt(command.spawn().expect("starts"));

    let mut seen: Vec<String> = Vec::new();
    let mut buf = [0u8; 4096];
    let started = Instant::now();
    let wanted = |seen: &[String], line: &str| {
        seen.iter()
            .any(|m| m.lines().any(|l| l == line || l.starts_with(line)))
    };
    while !(wanted(&seen, "READY=1") && wanted(&seen, "WATCHDOG=1") && wanted(&seen, "STATUS="))
        && started.elapsed() < Duration::from_secs(15)
    {
        if let Ok(n) = socket.recv(&mut buf) {
            seen.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
    }
    assert!(wanted(&seen, "READY=1"), "{seen:?}");
    assert!(wanted(&seen, "STATUS="), "{seen:?}");
    assert!(
        wanted(&seen, "WATCHDOG=1"),
        "pinged while the loop runs: {seen:?}"
    );

    let (status, _) = daemon.terminate();
    assert!(status.success());
    let mut after = Vec::new();
    while let Ok(n) = socket.recv(&mut buf) {
        after.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    assert!(wanted(&after, "STOPPING=1"), "{after:?}");
    std::fs::remove_file(&path).ok();
}

#[tokio::test]
async fn tokens_never_appear_in_the_logs_even_at_debug_level() {
    let app = TestApp::spawn().await;
    let log_path = std::env::temp_dir().join(format!(
        "callbackd-log-{}.json",
        uuid::Uuid::now_v7().simple()
    ));
    let log = std::fs::File::create(&log_path).expect("log file");
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("free port");
        listener.local_addr().expect("addr").port()
    };
    let mut daemon = Daemon::adopt(
        Command::new(env!("CARGO_BIN_EXE_callbackd"))
            .env(
                "CALLBACKD_DATABASE__URL",
                app.settings.database.url.expose(),
            )
            .env("CALLBACKD_DISPATCH__ENABLED", "false")
            .env("CALLBACKD_API__LISTEN", format!("127.0.0.1:{port}"))
            .env("RUST_LOG", "debug")
            .env("CALLBACKD_LOG__FORMAT", "json")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("starts"),
    );
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let mut up = false;
    for _ in 0..100 {
        if client.get(format!("{base}/healthz")).send().await.is_ok() {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(up, "daemon answered");
    let unknown = format!("cbd_{}", "7".repeat(64));
    for token in [
        app.admin.as_str(),
        unknown.as_str(),
        "not-even-a-token-secret-xyz",
    ] {
        for path in ["/v1/callbacks", "/v1/skills/101"] {
            client
                .get(format!("{base}{path}"))
                .bearer_auth(token)
                .send()
                .await
                .expect("sent");
        }
        client
            .post(format!("{base}/v1/callbacks"))
            .bearer_auth(token)
            .json(&valid_body())
            .send()
            .await
            .expect("sent");
    }
    let (status, _) = daemon.terminate();
    assert!(status.success());
    let logs = std::fs::read_to_string(&log_path).expect("logs");
    std::fs::remove_file(&log_path).ok();
    assert!(
        logs.contains("\"message\":\"request\""),
        "the requests were logged: {logs}"
    );
    assert!(logs.contains("callback created"), "the create was logged");
    for secret in [
        app.admin.as_str(),
        unknown.as_str(),
        "not-even-a-token-secret-xyz",
    ] {
        assert!(!logs.contains(secret), "a token reached the log");
    }
    assert!(
        !logs.to_ascii_lowercase().contains("authorization"),
        "no header names either"
    );
}

/// Found by accident: with its log pipe closed (the reader gone), the daemon used to ignore
/// SIGTERM, because the log subscriber's own error report panicked the signal task.
#[tokio::test]
async fn sigterm_still_stops_the_daemon_when_its_log_pipe_is_closed() {
    let app = TestApp::spawn().await;
    let mut child = Command::new(env!("CARGO_BIN_EXE_callbackd"))
        .envs(app.child_env())
        .env("CALLBACKD_AMQP__OUTCOMES_QUEUE", "")
        .env("CALLBACKD_API__LISTEN", "127.0.0.1:0")
        .env("CALLBACKD_LOG__FORMAT", "json")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starts");
    // Read the first line, then hang up on the pipe.
    let mut stderr = child.stderr.take().expect("stderr");
    let mut first = [0u8; 64];
    let _ = std::io::Read::read(&mut stderr, &mut first);
    drop(stderr);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mut daemon = Daemon::adopt(child);
    let (status, took) = daemon.terminate();
    assert!(status.success(), "{status}");
    assert!(took < Duration::from_secs(10), "stopped in {took:?}");
}
