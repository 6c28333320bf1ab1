//! Pausing a skill's dispatch against real PostgreSQL and RabbitMQ: nothing of the skill is
//! published while it is paused (its due callbacks stay pending, held), a PUT of the skill
//! keeps the pause, and on resume they go out highest priority first; audited.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use testkit::prelude::*;
use testkit::tap::Consumer;

async fn post(app: &TestApp, path: &str, body: Value) -> (StatusCode, Value) {
    app.call(Method::POST, path, Some(&app.admin), Some(&body))
        .await
}

#[tokio::test]
async fn a_paused_skill_publishes_nothing_until_resumed_then_highest_priority_first() {
    let app = TestApp::spawn_dispatching().await;
    let mut consumer = Consumer::bind(&app.exchange, "#").await;
    let pause = format!("/v1/skills/{SKILL}/pause");
    let (status, answer) = post(&app, &pause, json!({})).await;
    assert_eq!(
        status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "a reason is required: {answer}"
    );
    let (status, answer) = post(&app, &pause, json!({ "reason": "site outage" })).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["skill"]["paused"]["by"], "admin");
    assert_eq!(answer["skill"]["paused"]["reason"], "site outage");

    let mut ids = Vec::new();
    for priority in [10, 900, 500] {
        let mut body = with("scheduleDate", json!(in_(chrono::Duration::zero())));
        body["priority"] = json!(priority);
        ids.push(app.create_ok(&body).await);
    }
    // Another skill is not held up.
    let mut other = with("scheduleDate", json!(in_(chrono::Duration::zero())));
    other["skillId"] = json!(SKILL_NEW_YORK);
    let other = app.create_ok(&other).await;
    let got = consumer
        .next(Duration::from_secs(5))
        .await
        .expect("the other skill's");
    assert_eq!(got.callback_id(), other);
    assert!(
        consumer.next(Duration::from_secs(2)).await.is_none(),
        "nothing of the paused skill"
    );
    for id in &ids {
        assert_eq!(app.get_callback(id).await["state"], "pending");
    }
    let backlog = app.store.backlog().await.expect("backlog");
    assert_eq!(backlog.paced, 3, "counted as held: {backlog:?}");

    // Describing the skill again does not resume it.
    app.put_skill(SKILL, json!({ "timeZone": "Europe/London" }))
        .await;
    let (_, skill) = app
        .call(
            Method::GET,
            &format!("/v1/skills/{SKILL}"),
            Some(&app.admin),
            None,
        )
        .await;
    assert!(skill["paused"].is_object(), "{skill}");
    assert!(consumer.next(Duration::from_secs(1)).await.is_none());

    let (status, answer) = post(&app, &format!("/v1/skills/{SKILL}/resume"), json!({})).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert!(answer["skill"].get("paused").is_none(), "{answer}");
    let got = consumer.take(3, Duration::from_secs(10)).await;
    let order: Vec<String> = got.iter().map(|m| m.callback_id()).collect();
    assert_eq!(
        order,
        [ids[1].clone(), ids[2].clone(), ids[0].clone()],
        "highest priority first"
    );

    let audit: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT kind, actor, reason FROM skill_events WHERE skill_id = $1 ORDER BY id",
    )
    .bind(SKILL)
    .fetch_all(&app.pool)
    .await
    .expect("audit");
    assert_eq!(
        audit,
        [
            ("paused".into(), "admin".into(), "site outage".into()),
            ("resumed".into(), "admin".into(), String::new())
        ]
    );
}

#[tokio::test]
async fn pausing_needs_directory_write_and_a_known_skill() {
    let app = TestApp::spawn().await;
    let reader = app.token("reader", &["directory:read"], &[]).await;
    let (status, _) = app
        .call(
            Method::POST,
            &format!("/v1/skills/{SKILL}/pause"),
            Some(&reader),
            Some(&json!({ "reason": "x" })),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = post(&app, "/v1/skills/999/pause", json!({ "reason": "x" })).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // The command line, through the same use cases.
    let out = testkit::cli::run(
        &app,
        &[
            "skill",
            "--as",
            "admin",
            "pause",
            &SKILL.to_string(),
            "--reason",
            "storm",
        ],
    );
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("paused"));
    let (_, skill) = app
        .call(
            Method::GET,
            &format!("/v1/skills/{SKILL}"),
            Some(&app.admin),
            None,
        )
        .await;
    assert_eq!(skill["paused"]["reason"], "storm", "{skill}");
    let out = testkit::cli::run(
        &app,
        &["skill", "--as", "admin", "resume", &SKILL.to_string()],
    );
    assert!(out.status.success(), "{out:?}");
    let (_, skill) = app
        .call(
            Method::GET,
            &format!("/v1/skills/{SKILL}"),
            Some(&app.admin),
            None,
        )
        .await;
    assert!(skill.get("paused").is_none(), "{skill}");
}
