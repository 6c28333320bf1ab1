//! Privacy requests against real PostgreSQL and RabbitMQ: an export holds everything about
//! a number; an erasure cancels what still waits, removes the personal data from every
//! callback and event (and what the event stream carries afterwards), keeps the
//! do-not-call entries unless asked, and is audited by a digest of the number.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use testkit::prelude::*;
use testkit::tap::Consumer;

const NUMBER: &str = "+442079460958";
const OTHER: &str = "+442079460000";

async fn officer(app: &TestApp) -> String {
    app.token("dpo", &["privacy:export", "privacy:erase"], &[])
        .await
}

async fn export(app: &TestApp, token: &str) -> (StatusCode, Value) {
    app.call(
        Method::GET,
        &format!(
            "/v1/privacy/export?phoneNumber={}",
            NUMBER.replace('+', "%2B")
        ),
        Some(token),
        None,
    )
    .await
}

#[tokio::test]
async fn an_erasure_removes_the_numbers_personal_data_everywhere_and_is_audited() {
    let app = TestApp::spawn_dispatching().await;
    let _dialer = Consumer::bind(&app.exchange, "#").await;
    let mut stream = Consumer::events(&app.settings.amqp.events_exchange, "erased.#").await;
    let dpo = officer(&app).await;

    let mut done = with("scheduleDate", json!(in_(chrono::Duration::zero())));
    done["phoneNumber"] = json!(NUMBER);
    done["notes"] = json!("prefers Welsh; ask for Ada");
    let done = app.create_ok(&done).await;
    app.wait_state(&done, "dispatched", 10).await;
    app.report(&done, 1, "completed").await;
    let mut waiting = with("scheduleDate", json!(in_(chrono::Duration::hours(2))));
    waiting["phoneNumber"] = json!(NUMBER);
    let waiting = app.create_ok(&waiting).await;
    let mut other = with("scheduleDate", json!(in_(chrono::Duration::hours(2))));
    other["phoneNumber"] = json!(OTHER);
    let other = app.create_ok(&other).await;
    let (status, _) = app
        .call(
            Method::PUT,
            &format!("/v1/dnc/{}", NUMBER.replace('+', "%2B")),
            Some(&app.admin),
            Some(&json!({ "reason": "asked on the phone" })),
        )
        .await;
    assert!(status.is_success());

    let (status, exported) = export(&app, &dpo).await;
    assert_eq!(status, StatusCode::OK, "{exported}");
    let callbacks = exported["callbacks"].as_array().expect("callbacks");
    assert_eq!(callbacks.len(), 2, "{exported}");
    assert_eq!(
        callbacks[0]["callback"]["notes"],
        "prefers Welsh; ask for Ada"
    );
    assert!(
        callbacks[0]["events"]
            .as_array()
            .is_some_and(|e| e.len() >= 3)
    );
    assert_eq!(exported["doNotCall"].as_array().map(Vec::len), Some(1));

    let (status, answer) = app
        .call(
            Method::POST,
            "/v1/privacy/erasure",
            Some(&dpo),
            Some(&json!({ "phoneNumber": NUMBER })),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "a reason is required: {answer}"
    );
    let (status, answer) = app
        .call(
            Method::POST,
            "/v1/privacy/erasure",
            Some(&dpo),
            Some(&json!({ "phoneNumber": NUMBER, "reason": "DSR-0042" })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["callbacks"], 2, "{answer}");
    assert_eq!(answer["cancelled"], 1, "{answer}");
    assert_eq!(answer["doNotCallRemoved"], 0);

    for id in [&done, &waiting] {
        let view = app.get_callback(id).await;
        assert_eq!(view["firstName"], "", "{view}");
        assert_eq!(view["lastName"], "");
        assert_eq!(view["phoneNumber"], "");
        assert_eq!(view["notes"], "");
        let events = app.events(id).await;
        let text = serde_json::to_string(&events).expect("JSON");
        assert!(
            !text.contains("Welsh") && !text.contains("2079460958"),
            "{text}"
        );
        assert_eq!(events.last().expect("events")["kind"], "erased");
    }
    assert_eq!(app.get_callback(&waiting).await["state"], "cancelled");
    let kept = app.get_callback(&other).await;
    assert_eq!(kept["phoneNumber"], OTHER, "another number is untouched");
    assert_eq!(kept["state"], "pending");

    // The stream says so, without personal data.
    let erased = stream.take(2, Duration::from_secs(10)).await;
    assert_eq!(erased.len(), 2);
    for m in &erased {
        assert_eq!(m.body["kind"], "erased");
        assert!(!m.body.to_string().contains("2079460958"), "{}", m.body);
    }

    // Nothing left but the do-not-call entry and the audit of the erasure.
    let (_, exported) = export(&app, &dpo).await;
    assert_eq!(
        exported["callbacks"].as_array().map(Vec::len),
        Some(0),
        "{exported}"
    );
    assert_eq!(exported["doNotCall"].as_array().map(Vec::len), Some(1));
    assert_eq!(exported["erasures"].as_array().map(Vec::len), Some(1));
    assert_eq!(exported["erasures"][0]["requestedBy"], "dpo");
    let audited: Vec<Vec<u8>> = sqlx::query_scalar("SELECT number_sha256 FROM privacy_erasures")
        .fetch_all(&app.pool)
        .await
        .expect("audit");
    assert_eq!(audited.len(), 1);
    assert_eq!(audited[0].len(), 32, "a digest, not the number");

    // Asked to, the do-not-call entry goes too.
    let (status, answer) = app
        .call(
            Method::POST,
            "/v1/privacy/erasure",
            Some(&dpo),
            Some(&json!({ "phoneNumber": NUMBER, "reason": "DSR-0043", "includeDoNotCall": true })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["doNotCallRemoved"], 1);
}

#[tokio::test]
async fn privacy_requests_need_their_own_permissions() {
    let app = TestApp::spawn().await;
    let reader = app
        .token("reader", &["callbacks:read", "callbacks:cancel"], &[])
        .await;
    let (status, _) = export(&app, &reader).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let exporter = app.token("exporter", &["privacy:export"], &[]).await;
    let (status, _) = export(&app, &exporter).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = app
        .call(
            Method::POST,
            "/v1/privacy/erasure",
            Some(&exporter),
            Some(&json!({ "phoneNumber": NUMBER, "reason": "x" })),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let local = app
        .token("local", &["privacy:export", "privacy:erase"], &[SKILL])
        .await;
    let (status, _) = export(&app, &local).await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "a number's callbacks may be in any skill"
    );
    let dpo = officer(&app).await;
    let (status, answer) = app
        .call(
            Method::GET,
            "/v1/privacy/export?phoneNumber=not-a-number",
            Some(&dpo),
            None,
        )
        .await;
    assert_result(
        status,
        &answer,
        StatusCode::UNPROCESSABLE_ENTITY,
        "InvalidPhoneNumber",
    );
}
