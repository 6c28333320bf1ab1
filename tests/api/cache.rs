//! Daemons keep security users and the directory in memory: a change made anywhere — by
//! another daemon, the CLI, another process — reaches every daemon within milliseconds, and
//! a lost listener connection never lets a stale entry through.

use std::time::{Duration, Instant};

use callbackd::store::Store;
use reqwest::{Method, StatusCode};
use serde_json::json;

use testkit::prelude::*;

/// A refusal this soon after the change can only come from its notification: an entry
/// read just before the change would otherwise be served for a whole second.
const NOTIFIED_WITHIN: Duration = Duration::from_millis(500);

async fn status_as(app: &TestApp, base: &str, token: &str) -> StatusCode {
    app.client
        .request(Method::GET, format!("{base}/v1/skills/{SKILL}"))
        .bearer_auth(token)
        .send()
        .await
        .expect("request")
        .status()
}

/// Asks every daemon until each refuses the token; returns how long the slowest took.
async fn refused_everywhere(app: &TestApp, bases: &[&str], token: &str) -> Duration {
    let started = Instant::now();
    for base in bases {
        loop {
            let status = status_as(app, base, token).await;
            if status == StatusCode::UNAUTHORIZED {
                break;
            }
            assert_eq!(status, StatusCode::OK, "{base}");
            assert!(
                started.elapsed() < Duration::from_secs(3),
                "{base} still takes the disabled token after 3 s"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    started.elapsed()
}

/// A store of another process: its writes reach the daemons only by notification.
async fn elsewhere(app: &TestApp) -> Store {
    Store::connect(&app.settings.database)
        .await
        .expect("another store")
}

/// Two daemons on one database, and a token `name` each has just cached (one request each).
async fn pair_caching(name: &str) -> (TestApp, Vec<String>, String) {
    let mut app = TestApp::spawn().await;
    let peer = app.spawn_peer(|_| {}).await;
    let bases = vec![app.base.clone(), peer];
    let token = app.token(name, &["all"], &[]).await;
    for base in &bases {
        assert_eq!(status_as(&app, base, &token).await, StatusCode::OK);
    }
    (app, bases, token)
}

#[tokio::test]
async fn a_disabled_token_is_refused_by_every_daemon_within_milliseconds() {
    let (app, bases, token) = pair_caching("script").await;
    let bases: Vec<&str> = bases.iter().map(String::as_str).collect();
    let other = elsewhere(&app).await;
    assert!(other.disable_user("script").await.expect("disabled"));
    let took = refused_everywhere(&app, &bases, &token).await;
    assert!(
        took < NOTIFIED_WITHIN,
        "refused everywhere only after {took:?}"
    );
}

#[tokio::test]
async fn the_cli_disabling_a_user_takes_effect_on_every_daemon_within_a_second() {
    let (app, bases, token) = pair_caching("leaver").await;
    let bases: Vec<&str> = bases.iter().map(String::as_str).collect();
    let envs = app.child_env();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_callbackd"))
            .args(["user", "disable", "leaver"])
            .envs(envs)
            .output()
    })
    .await
    .expect("joined")
    .expect("callbackd user disable");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let took = refused_everywhere(&app, &bases, &token).await;
    assert!(took < Duration::from_secs(1), "took {took:?}");
}

#[tokio::test]
async fn a_lost_listener_connection_lets_no_stale_token_through_and_comes_back() {
    let app = TestApp::spawn().await;
    let first = app.token("first", &["all"], &[]).await;
    let second = app.token("second", &["all"], &[]).await;
    let other = elsewhere(&app).await;
    assert_eq!(status_as(&app, &app.base, &first).await, StatusCode::OK);

    // Cut the daemon's listener: a change made now notifies nobody.
    let cut: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity
         WHERE datname = current_database() AND query LIKE 'LISTEN \"callbackd_directory\"%') t",
    )
    .fetch_one(&app.pool)
    .await
    .expect("terminate the listener");
    assert_eq!(cut, 1, "one directory listener");
    assert!(other.disable_user("first").await.expect("disabled"));
    let took = refused_everywhere(&app, &[&app.base], &first).await;
    assert!(took < NOTIFIED_WITHIN, "refused only after {took:?}");

    // The listener comes back, and with it the notifications.
    let back = Instant::now();
    loop {
        let listening: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity
             WHERE datname = current_database() AND query LIKE 'LISTEN \"callbackd_directory\"%'",
        )
        .fetch_one(&app.pool)
        .await
        .expect("listeners");
        if listening == 1 {
            break;
        }
        assert!(
            back.elapsed() < Duration::from_secs(5),
            "the listener did not come back"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(status_as(&app, &app.base, &second).await, StatusCode::OK);
    assert!(other.disable_user("second").await.expect("disabled"));
    let took = refused_everywhere(&app, &[&app.base], &second).await;
    assert!(took < NOTIFIED_WITHIN, "refused only after {took:?}");
}

#[tokio::test]
async fn a_skill_changed_elsewhere_is_seen_by_the_next_create() {
    let app = TestApp::spawn().await;
    app.create_ok(&valid_body()).await;
    let other = elsewhere(&app).await;
    let mut skill = other
        .skill(callbackd::domain::SkillId::new(SKILL).expect("id"))
        .await
        .expect("read")
        .expect("seeded");
    skill.active = false;
    other.upsert_skill(&skill).await.expect("deactivated");
    let started = Instant::now();
    loop {
        let (status, body) = app.create(&valid_body()).await;
        if status == StatusCode::UNPROCESSABLE_ENTITY {
            assert_eq!(body["result"], json!("InvalidSkillId"), "{body}");
            break;
        }
        assert_eq!(status, StatusCode::CREATED, "{body}");
        assert!(
            started.elapsed() < NOTIFIED_WITHIN,
            "the create still used the old skill"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
