//! Retrying failed and expired callbacks (`POST /v1/callbacks/{id}/retry`, bulk `retry`),
//! against real PostgreSQL and RabbitMQ: a dialer gives up, a person retries, the callback
//! is published again as a new attempt with a `retried` event; only failed or expired ones
//! can be retried.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::json;

use testkit::prelude::*;
use testkit::tap::Consumer;

async fn retry(
    app: &TestApp,
    token: &str,
    id: &str,
    query: &str,
) -> (StatusCode, serde_json::Value) {
    app.call(
        Method::POST,
        &format!("/v1/callbacks/{id}/retry{query}"),
        Some(token),
        None,
    )
    .await
}

#[tokio::test]
async fn a_failed_callback_retried_is_published_again_as_a_new_attempt() {
    let app = TestApp::spawn_dispatching().await;
    let mut dialer = Consumer::bind(&app.exchange, "#").await;
    let id = app
        .create_ok(&with("scheduleDate", json!(in_(chrono::Duration::zero()))))
        .await;
    let first = dialer
        .next(Duration::from_secs(10))
        .await
        .expect("first publication");
    app.wait_state(&id, "dispatched", 10).await;
    let (status, body) = app.report(&id, 1, "failed").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(app.get_callback(&id).await["state"], "failed");

    let (status, body) = retry(&app, &app.admin, &id, "?reason=customer%20asked%20again").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["state"], "pending", "{body}");
    let again = dialer
        .next(Duration::from_secs(10))
        .await
        .expect("published again");
    assert_ne!(
        again.message_id(),
        first.message_id(),
        "a new attempt is a new message"
    );
    let view = app.wait_state(&id, "dispatched", 10).await;
    assert_eq!(view["attempt"], 2, "{view}");
    let events = app.events(&id).await;
    let retried: Vec<_> = events.iter().filter(|e| e["kind"] == "retried").collect();
    assert_eq!(retried.len(), 1, "{events:?}");
    assert_eq!(retried[0]["details"]["from"], "failed");
    assert_eq!(retried[0]["details"]["reason"], "customer asked again");
    assert_eq!(retried[0]["actor"], "admin");

    // Once published again it is in flight: no second retry.
    let (status, body) = retry(&app, &app.admin, &id, "").await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
}

#[tokio::test]
async fn an_expired_callback_retried_later_keeps_no_expiry_and_gets_a_new_promise() {
    let app = TestApp::spawn().await;
    let id = app.create_ok(&valid_body()).await;
    sqlx::query(
        "UPDATE callbacks SET state = 'expired', expires_at = now() - interval '1 minute'
         WHERE id = $1::uuid",
    )
    .bind(&id)
    .execute(&app.pool)
    .await
    .expect("expired");
    let at = (chrono::Utc::now() + chrono::Duration::days(2))
        .format("%Y-%m-%dT10:00:00")
        .to_string();
    let (status, body) = retry(
        &app,
        &app.admin,
        &id,
        &format!("?scheduleDate={at}&timeZone=America%2FNew_York&reason=moved"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["state"], "pending");
    assert_eq!(body["expiresAt"], serde_json::Value::Null, "{body}");
    let due: chrono::DateTime<chrono::Utc> = body["dueAt"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .expect("dueAt");
    let local = due.with_timezone(&chrono_tz::America::New_York);
    assert_eq!(local.format("%H:%M").to_string(), "10:00", "{body}");
    assert_eq!(body["scheduledFor"], body["dueAt"], "a new promise: {body}");
}

#[tokio::test]
async fn only_failed_or_expired_callbacks_of_the_callers_skills_are_retried() {
    let app = TestApp::spawn().await;
    let pending = app.create_ok(&valid_body()).await;
    let (status, body) = retry(&app, &app.admin, &pending, "").await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap_or_default()
            .contains("only failed or expired")
    );

    for state in ["cancelled", "suppressed", "completed"] {
        let id = app.create_ok(&valid_body()).await;
        app.force_state(&id, state).await;
        let (status, _) = retry(&app, &app.admin, &id, "").await;
        assert_eq!(status, StatusCode::CONFLICT, "{state}");
    }

    let failed = app.create_ok(&valid_body()).await;
    app.force_state(&failed, "failed").await;
    let reader = app.token("reader", &["callbacks:read"], &[]).await;
    let (status, _) = retry(&app, &reader, &failed, "").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let elsewhere = app
        .token("elsewhere", &["callbacks:update"], &[SKILL_NEW_YORK])
        .await;
    let (status, _) = retry(&app, &elsewhere, &failed, "").await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "another skill's callback is not seen"
    );
    let (status, body) = retry(&app, &app.admin, &failed, "?scheduleDate=yesterday").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["result"], "InvalidScheduleDate");
    assert_eq!(
        app.get_callback(&failed).await["state"],
        "failed",
        "nothing half-written"
    );
    let (status, _) = retry(&app, &app.admin, &uuid::Uuid::now_v7().to_string(), "").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_bulk_retry_retries_the_failed_and_expired_it_selects_and_skips_the_rest() {
    let app = TestApp::spawn().await;
    let mut ended = Vec::new();
    for state in ["failed", "failed", "expired"] {
        let id = app.create_ok(&valid_body()).await;
        app.force_state(&id, state).await;
        ended.push(id);
    }
    let pending = app.create_ok(&valid_body()).await;
    let body = json!({
        "filter": {"skillId": SKILL.to_string()},
        "action": "retry",
        "reason": "the dialer outage is over"
    });
    let (status, report) = app
        .call(
            Method::POST,
            "/v1/callbacks/bulk",
            Some(&app.admin),
            Some(&body),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(report["changed"], 3, "{report}");
    assert_eq!(report["skipped"], 1, "{report}");
    for id in &ended {
        assert_eq!(app.get_callback(id).await["state"], "pending");
        let events = app.events(id).await;
        assert!(
            events
                .iter()
                .any(|e| e["kind"] == "retried"
                    && e["details"]["reason"] == "the dialer outage is over"),
            "{events:?}"
        );
    }
    assert!(
        app.events(&pending)
            .await
            .iter()
            .all(|e| e["kind"] != "retried"),
        "a pending one is left alone"
    );
}

#[tokio::test]
async fn a_retry_reopens_its_quarter_of_the_promise_report() {
    let app = TestApp::spawn().await;
    let id: uuid::Uuid = sqlx::query_scalar(
        "INSERT INTO callbacks (id, first_name, last_name, phone_number, skill_id, notes,
                                scheduled_for, due_at, created_by, state, attempt)
         VALUES (gen_random_uuid(), 'F', 'L', '+442079460958', $1, '',
                 now() - interval '2 days', now() - interval '2 days', 'test', 'failed', 1)
         RETURNING id",
    )
    .bind(SKILL)
    .fetch_one(&app.pool)
    .await
    .expect("failed two days ago");
    for _ in 0..10 {
        callbackd::app::timers::roll_up_promises(&app.store, chrono::Duration::minutes(5)).await;
    }
    let read = || async {
        let (_, report) = app
            .call(Method::GET, "/v1/reports/promises", Some(&app.admin), None)
            .await;
        let items = report["items"].as_array().cloned().unwrap_or_default();
        let sum = |field: &str| {
            items
                .iter()
                .map(|i| i[field].as_i64().unwrap_or(0))
                .sum::<i64>()
        };
        (sum("failed"), sum("open"))
    };
    assert_eq!(read().await, (1, 0));
    let (status, _) = retry(&app, &app.admin, &id.to_string(), "").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(read().await, (0, 1), "the rolled-up quarter is read again");
}

#[tokio::test]
async fn an_operator_retries_from_the_command_line_saying_why() {
    let app = TestApp::spawn().await;
    let id = app.create_ok(&valid_body()).await;
    app.force_state(&id, "failed").await;
    let out = testkit::cli::run(&app, &["callbacks", "--as", "admin", "retry", &id]);
    assert!(!out.status.success(), "a reason is required: {out:?}");
    let out = testkit::cli::run(
        &app,
        &[
            "callbacks",
            "--as",
            "admin",
            "retry",
            &id,
            "--reason",
            "line fixed",
        ],
    );
    assert!(out.status.success(), "{out:?}");
    assert_eq!(app.get_callback(&id).await["state"], "pending");
    let out = testkit::cli::run(
        &app,
        &[
            "callbacks",
            "--as",
            "admin",
            "retry",
            &id,
            "--reason",
            "again",
        ],
    );
    assert!(!out.status.success(), "pending: nothing to retry");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("only failed or expired"),
        "{out:?}"
    );
}

#[tokio::test]
async fn a_retry_at_a_new_time_leaves_no_stale_figures_in_its_old_quarter() {
    let app = TestApp::spawn().await;
    let id: uuid::Uuid = sqlx::query_scalar(
        "INSERT INTO callbacks (id, first_name, last_name, phone_number, skill_id, notes,
                                scheduled_for, due_at, created_by, state, attempt)
         VALUES (gen_random_uuid(), 'F', 'L', '+442079460958', $1, '',
                 now() - interval '2 days', now() - interval '2 days', 'test', 'failed', 1)
         RETURNING id",
    )
    .bind(SKILL)
    .fetch_one(&app.pool)
    .await
    .expect("failed two days ago");
    let roll_up = || async {
        for _ in 0..10 {
            callbackd::app::timers::roll_up_promises(&app.store, chrono::Duration::minutes(5))
                .await;
        }
    };
    roll_up().await;
    let at = (chrono::Utc::now() + chrono::Duration::days(1)).to_rfc3339();
    let (status, body) = retry(
        &app,
        &app.admin,
        &id.to_string(),
        &format!("?scheduleDate={}", at.replace('+', "%2B")),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    roll_up().await;
    let (_, report) = app
        .call(Method::GET, "/v1/reports/promises", Some(&app.admin), None)
        .await;
    let failed: i64 = report["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|i| i["failed"].as_i64().unwrap_or(0))
        .sum();
    assert_eq!(
        failed, 0,
        "the old quarter is rolled up without it: {report}"
    );
}
