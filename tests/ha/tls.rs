//! TLS on the database and broker links: `verify-full` / `amqps://` with the CA from the
//! configuration connect; a wrong CA or a wrong host name is refused with one log line that
//! names the setting; the daemon dispatches end to end over TLS on both links.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use callbackd::config::Settings;
use callbackd::startup::Application;
use callbackd::store::Store;
use futures_util::StreamExt;
use lapin::options::BasicAckOptions;
use sqlx::ConnectOptions;
use tokio_util::sync::CancellationToken;

use crate::pki::Pki;
use crate::servers::{NodeTls, RabbitNode, TlsPostgres};

/// Runs `callbackd` with `env` for at most `limit`, and returns the lines it wrote to stderr.
fn callbackd_lines(args: &[&str], env: &[(&str, String)], limit: Duration) -> Vec<String> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_callbackd"))
        .args(args)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .env("CALLBACKD_LOG__FORMAT", "json")
        .env("CALLBACKD_API__LISTEN", "127.0.0.1:0")
        // Each case names a database of its own, created at start-up.
        .env("CALLBACKD_DATABASE__CREATE_IF_MISSING", "true")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("callbackd runs");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let started = Instant::now();
    let mut lines = Vec::new();
    while started.elapsed() < limit {
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(line) => lines.push(line),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                if child.try_wait().ok().flatten().is_some() {
                    break;
                }
            }
            Err(_) => break,
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    while let Ok(line) = rx.try_recv() {
        lines.push(line);
    }
    lines
}

fn database_url(host: &str, port: u16, name: &str) -> String {
    format!("postgres://postgres@{host}:{port}/{name}?sslmode=verify-full")
}

#[tokio::test]
#[ignore = "ha suite: starts its own PostgreSQL; run with --ignored"]
async fn database_tls_verify_full_connects_and_a_wrong_ca_or_host_is_refused_naming_the_setting() {
    let pki = Pki::new();
    let pg = TlsPostgres::start(&pki.server_cert, &pki.server_key);

    // verify-full with the configured CA: connected, and the session really is encrypted.
    let mut settings = Settings::default().database;
    settings.url = database_url("localhost", pg.port, "cbtls").into();
    settings.create_if_missing = true;
    settings.ca_file = Some(pki.ca.clone());
    Store::connect(&settings)
        .await
        .expect("verify-full connects");
    let mut conn = settings
        .url
        .expose()
        .parse::<sqlx::postgres::PgConnectOptions>()
        .expect("url")
        .ssl_root_cert(&pki.ca)
        .connect()
        .await
        .expect("connects");
    let ssl: bool = sqlx::query_scalar("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        .fetch_one(&mut conn)
        .await
        .expect("pg_stat_ssl");
    assert!(ssl, "the session is encrypted");

    for (case, host, ca) in [
        ("wrong CA", "localhost", &pki.wrong_ca),
        ("wrong host name", "127.0.0.1", &pki.ca),
    ] {
        let lines = callbackd_lines(
            &["migrate"],
            &[
                (
                    "CALLBACKD_DATABASE__URL",
                    database_url(host, pg.port, "cbtls"),
                ),
                ("CALLBACKD_DATABASE__CA_FILE", ca.display().to_string()),
            ],
            Duration::from_secs(20),
        );
        let naming: Vec<&String> = lines
            .iter()
            .filter(|l| l.contains("database.ca_file"))
            .collect();
        assert_eq!(
            naming.len(),
            1,
            "{case}: one line names the setting: {lines:?}"
        );
        assert!(naming[0].contains("TLS"), "{case}: {}", naming[0]);
        println!("tls: database, {case}: {}", naming[0]);
    }
}

#[tokio::test]
#[ignore = "ha suite: starts its own RabbitMQ node; run with --ignored"]
async fn broker_tls_verify_connects_and_a_wrong_ca_or_host_is_refused_naming_the_setting() {
    let pki = Pki::new();
    let rabbit = RabbitNode::start(Some(NodeTls {
        ca: &pki.ca,
        cert: &pki.server_cert,
        key: &pki.server_key,
    }));
    let database = format!(
        "postgres://postgres@127.0.0.1:5432/callbackd_tls_{}",
        uuid::Uuid::now_v7().simple()
    );
    for (case, host, ca, expect_up) in [
        ("right CA", "localhost", &pki.ca, true),
        ("wrong CA", "localhost", &pki.wrong_ca, false),
        ("wrong host name", "127.0.0.1", &pki.ca, false),
    ] {
        let lines = callbackd_lines(
            &[],
            &[
                ("CALLBACKD_DATABASE__URL", database.clone()),
                (
                    "CALLBACKD_AMQP__URL",
                    format!("amqps://guest:guest@{host}:{}/%2f", rabbit.tls_port),
                ),
                ("CALLBACKD_AMQP__CA_FILE", ca.display().to_string()),
                ("CALLBACKD_AMQP__QUEUES", "[]".into()),
                // One attempt in the time watched: each failure is one line.
                ("CALLBACKD_AMQP__RECONNECT_INITIAL_MS", "30000".into()),
                ("CALLBACKD_AMQP__RECONNECT_MAX_MS", "30000".into()),
            ],
            Duration::from_secs(8),
        );
        let connected = lines.iter().any(|l| l.contains("broker connected"));
        assert_eq!(connected, expect_up, "{case}: {lines:?}");
        if !expect_up {
            let naming: Vec<&String> = lines
                .iter()
                .filter(|l| l.contains("amqp.ca_file"))
                .collect();
            assert_eq!(
                naming.len(),
                1,
                "{case}: one line names the setting: {lines:?}"
            );
            println!("tls: broker, {case}: {}", naming[0]);
        }
    }
    let _ = Command::new("psql")
        .args([
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
            "-c",
            &format!(
                "DROP DATABASE IF EXISTS \"{}\"",
                database.rsplit('/').next().unwrap_or_default()
            ),
        ])
        .output();
}

#[tokio::test]
#[ignore = "ha suite: starts its own PostgreSQL and RabbitMQ; run with --ignored"]
async fn the_daemon_dispatches_end_to_end_over_tls_on_both_links() {
    let pki = Pki::new();
    let pg = TlsPostgres::start(&pki.server_cert, &pki.server_key);
    let rabbit = RabbitNode::start(Some(NodeTls {
        ca: &pki.ca,
        cert: &pki.server_cert,
        key: &pki.server_key,
    }));

    let mut settings = Settings::default();
    settings.api.listen = "127.0.0.1:0".parse().expect("address");
    settings.database.url = database_url("localhost", pg.port, "callbackd").into();
    settings.database.create_if_missing = true;
    settings.database.ca_file = Some(pki.ca.clone());
    settings.amqp.url = format!("amqps://guest:guest@localhost:{}/%2f", rabbit.tls_port).into();
    settings.amqp.ca_file = Some(pki.ca.clone());
    settings.amqp.queues = Vec::new();
    let app = Application::build(settings.clone())
        .await
        .expect("builds over TLS");
    let base = format!("http://{}", app.local_addr());
    let store = app.store().clone();
    testkit::fixtures::seed_skill(&store).await;
    let token = callbackd::cli::add_user(&store, "tls", &["all".into()], &[], None)
        .await
        .expect("user")
        .expose()
        .to_owned();

    // A dialer on the same node (its plain listener), bound before anything is published.
    let (dialer, mut deliveries) = testkit::broker::dialer(
        &format!("amqp://guest:guest@127.0.0.1:{}/%2f", rabbit.port),
        &settings.amqp.exchange,
        "tls-dialer",
    )
    .await;

    let shutdown = CancellationToken::new();
    let running = tokio::spawn(app.run_until_stopped(shutdown.clone()));
    let client = reqwest::Client::new();
    let mut ready = false;
    for _ in 0..100 {
        if let Ok(r) = client.get(format!("{base}/readyz")).send().await
            && r.status() == reqwest::StatusCode::OK
        {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ready, "ready over TLS on both links");
    let created = client
        .post(format!("{base}/v1/callbacks"))
        .bearer_auth(&token)
        .json(&serde_json::json!({
            "phoneNumber": "+442079460958", "skillId": 101,
            "scheduleDate": chrono::Utc::now().to_rfc3339(),
        }))
        .send()
        .await
        .expect("create");
    assert_eq!(created.status(), reqwest::StatusCode::CREATED);
    let answer: serde_json::Value = created.json().await.expect("json");
    let delivery = tokio::time::timeout(Duration::from_secs(15), deliveries.next())
        .await
        .expect("published in time")
        .expect("a delivery")
        .expect("delivered");
    let body: serde_json::Value = serde_json::from_slice(&delivery.data).expect("json body");
    assert_eq!(body["callbackId"], answer["callbackId"]);
    delivery.ack(BasicAckOptions::default()).await.expect("ack");
    println!(
        "tls: end to end over TLS on both links: callback {} dispatched",
        body["callbackId"]
    );
    shutdown.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(15), running).await;
    let _ = dialer.close(200, "done".into()).await;
}
