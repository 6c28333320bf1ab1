//! Webhooks against real PostgreSQL, RabbitMQ and a real local HTTP receiver: events are
//! POSTed signed (checked with the Standard Webhooks reference library), filtered by kind
//! and skill, retried after a 500 or a timeout, marked failed when their time is over, the
//! subscription paused when it keeps failing; targets the rules refuse are refused.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode as HttpStatus};
use axum::routing::post;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use testkit::prelude::*;

/// What the receiver does with each request, in turn (the last one repeats).
#[derive(Clone, Copy)]
enum Answer {
    Ok,
    Fail,
    /// Answers after longer than the daemon waits.
    Slow,
}

#[derive(Clone, Default)]
struct Receiver {
    got: Arc<Mutex<Vec<(HeaderMap, Bytes)>>>,
    script: Arc<Mutex<Vec<Answer>>>,
}

async fn receive(State(r): State<Receiver>, headers: HeaderMap, body: Bytes) -> HttpStatus {
    let answer = {
        let mut script = r.script.lock().expect("lock");
        if script.len() > 1 {
            script.remove(0)
        } else {
            script.first().copied().unwrap_or(Answer::Ok)
        }
    };
    r.got.lock().expect("lock").push((headers, body));
    match answer {
        Answer::Ok => HttpStatus::NO_CONTENT,
        Answer::Fail => HttpStatus::INTERNAL_SERVER_ERROR,
        Answer::Slow => {
            tokio::time::sleep(Duration::from_secs(3)).await;
            HttpStatus::OK
        }
    }
}

/// A receiver on 127.0.0.1; returns its URL.
async fn receiver(script: Vec<Answer>) -> (Receiver, String) {
    let r = Receiver {
        script: Arc::new(Mutex::new(script)),
        ..Receiver::default()
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
    let app = axum::Router::new()
        .route("/hook", post(receive))
        .with_state(r.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (r, url)
}

async fn local_app() -> TestApp {
    TestApp::spawn_dispatching_with(|s| {
        s.webhooks.allow_http = true;
        s.webhooks.allow_private_targets = true;
        s.webhooks.timeout_ms = 1000;
    })
    .await
}

async fn put_webhook(app: &TestApp, name: &str, body: Value) -> (StatusCode, Value) {
    app.call(
        Method::PUT,
        &format!("/v1/webhooks/{name}"),
        Some(&app.admin),
        Some(&body),
    )
    .await
}

/// Waits until the receiver got `n` requests.
async fn wait_for(r: &Receiver, n: usize, secs: u64) -> Vec<(HeaderMap, Bytes)> {
    for _ in 0..secs * 10 {
        let got = r.got.lock().expect("lock").clone();
        if got.len() >= n {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "the receiver got {} requests, not {n}",
        r.got.lock().expect("lock").len()
    );
}

#[tokio::test]
async fn events_are_posted_signed_and_filtered_by_kind_and_skill() {
    let app = local_app().await;
    let (r, url) = receiver(vec![Answer::Ok]).await;
    let (status, created) = put_webhook(
        &app,
        "crm",
        json!({ "url": url, "kinds": ["created", "cancelled"], "skillIds": [SKILL] }),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let secret = created["secret"]
        .as_str()
        .expect("a generated secret")
        .to_owned();
    assert!(secret.starts_with("whsec_"));
    let (_, shown) = app
        .call(Method::GET, "/v1/webhooks/crm", Some(&app.admin), None)
        .await;
    assert!(
        shown.get("secret").is_none(),
        "GET never shows the secret: {shown}"
    );

    let later = with("scheduleDate", json!(in_(chrono::Duration::hours(1))));
    let id = app.create_ok(&later).await;
    let mut elsewhere = later.clone();
    elsewhere["skillId"] = json!(SKILL_NEW_YORK);
    app.create_ok(&elsewhere).await;
    app.call(
        Method::DELETE,
        &format!("/v1/callbacks/{id}?reason=asked"),
        Some(&app.admin),
        None,
    )
    .await;

    let got = wait_for(&r, 2, 15).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let got_now = r.got.lock().expect("lock").clone();
    assert_eq!(got_now.len(), 2, "only the skill's created and cancelled");
    let verifier = standardwebhooks::Webhook::new(&secret).expect("secret");
    let mut kinds = Vec::new();
    for (headers, body) in &got {
        verifier.verify(body, headers).expect("a valid signature");
        let event: Value = serde_json::from_slice(body).expect("JSON");
        assert_eq!(event["schema"], "callbackd.event.v1");
        assert_eq!(event["callbackId"], json!(id));
        assert_eq!(
            headers["webhook-id"].to_str().expect("id"),
            format!("evt_{}", event["eventId"])
        );
        kinds.push(event["kind"].as_str().unwrap_or_default().to_owned());
    }
    assert_eq!(kinds, ["created", "cancelled"]);
    // A tampered body fails the same check.
    let (headers, body) = &got[0];
    let mut tampered = body.to_vec();
    tampered[0] = b' ';
    assert!(verifier.verify(&tampered, headers).is_err());

    let (status, attempts) = app
        .call(
            Method::GET,
            "/v1/webhooks/crm/attempts",
            Some(&app.admin),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{attempts}");
    assert_eq!(
        attempts["items"].as_array().map(Vec::len),
        Some(2),
        "{attempts}"
    );
    assert_eq!(attempts["items"][0]["status"], 204);
    assert_eq!(attempts["deliveries"]["delivered"], 2);
}

#[tokio::test]
async fn a_failing_receiver_is_retried_until_it_answers() {
    let app = local_app().await;
    // A 500, then a timeout, then success.
    let (r, url) = receiver(vec![Answer::Fail, Answer::Slow, Answer::Ok]).await;
    put_webhook(&app, "flaky", json!({ "url": url, "kinds": ["created"] })).await;
    app.create_ok(&with(
        "scheduleDate",
        json!(in_(chrono::Duration::hours(1))),
    ))
    .await;
    // 5 s, then 10 s after each failure.
    let got = wait_for(&r, 3, 30).await;
    let ids: Vec<&str> = got
        .iter()
        .map(|(h, _)| h["webhook-id"].to_str().unwrap_or_default())
        .collect();
    assert!(
        ids.iter().all(|id| *id == ids[0]),
        "the same id on every retry: {ids:?}"
    );
    let mut attempts = Value::Null;
    for _ in 0..50 {
        attempts = app
            .call(
                Method::GET,
                "/v1/webhooks/flaky/attempts",
                Some(&app.admin),
                None,
            )
            .await
            .1;
        if attempts["deliveries"]["delivered"] == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(attempts["deliveries"]["delivered"], 1, "{attempts}");
    let items = attempts["items"].as_array().expect("items");
    assert_eq!(items.len(), 3, "{attempts}");
    assert_eq!(items[2]["status"], 500);
    assert!(
        items[1]["status"].is_null() && items[1]["error"].is_string(),
        "{attempts}"
    );
    assert_eq!(items[0]["status"], 204);
}

#[tokio::test]
async fn a_delivery_past_its_time_fails_and_a_subscription_failing_too_long_pauses() {
    let app = TestApp::spawn_dispatching_with(|s| {
        s.webhooks.allow_http = true;
        s.webhooks.allow_private_targets = true;
        s.webhooks.retry_for_seconds = 1;
        s.webhooks.pause_after_seconds = 0;
    })
    .await;
    let (r, url) = receiver(vec![Answer::Fail]).await;
    put_webhook(&app, "down", json!({ "url": url, "kinds": ["created"] })).await;
    app.create_ok(&with(
        "scheduleDate",
        json!(in_(chrono::Duration::hours(1))),
    ))
    .await;
    wait_for(&r, 1, 15).await;
    let mut view = Value::Null;
    for _ in 0..50 {
        view = app
            .call(Method::GET, "/v1/webhooks/down", Some(&app.admin), None)
            .await
            .1;
        if view["pausedAt"].is_string() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(view["pausedAt"].is_string(), "{view}");
    assert!(
        view["pausedReason"]
            .as_str()
            .unwrap_or_default()
            .contains("500"),
        "{view}"
    );
    let (_, attempts) = app
        .call(
            Method::GET,
            "/v1/webhooks/down/attempts",
            Some(&app.admin),
            None,
        )
        .await;
    assert_eq!(attempts["deliveries"]["failed"], 1, "{attempts}");
    // Paused: a new event is not delivered.
    app.create_ok(&with(
        "scheduleDate",
        json!(in_(chrono::Duration::hours(1))),
    ))
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(r.got.lock().expect("lock").len(), 1);
    // PUT again: resumed.
    let (status, view) =
        put_webhook(&app, "down", json!({ "url": url, "kinds": ["created"] })).await;
    assert_eq!(status, StatusCode::OK, "{view}");
    assert!(view["pausedAt"].is_null(), "{view}");
    assert!(
        view.get("secret").is_none(),
        "the kept secret is not shown again: {view}"
    );
}

#[tokio::test]
async fn targets_the_rules_refuse_are_refused_and_permissions_apply() {
    let app = TestApp::spawn().await;
    for url in [
        "http://crm.example.com/hook",
        "https://127.0.0.1/hook",
        "https://10.0.0.5/hook",
        "https://169.254.169.254/latest/meta-data",
        "https://localhost/hook",
        "https://[::1]/hook",
        "ftp://crm.example.com/hook",
    ] {
        let (status, answer) = put_webhook(&app, "bad", json!({ "url": url })).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{url}: {answer}");
        assert!(
            answer["message"]
                .as_str()
                .unwrap_or_default()
                .starts_with("url: "),
            "{answer}"
        );
    }
    let (status, answer) = put_webhook(
        &app,
        "bad",
        json!({ "url": "https://crm.example.com/hook", "kinds": ["nonsense"] }),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    let (status, answer) = put_webhook(
        &app,
        "bad",
        json!({ "url": "https://crm.example.com/hook", "secret": "hunter2" }),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    let (status, _) =
        put_webhook(&app, "ok", json!({ "url": "https://crm.example.com/hook" })).await;
    assert_eq!(status, StatusCode::CREATED);

    let reader = app.token("reader", &["webhooks:read"], &[]).await;
    let (status, _) = app
        .call(Method::GET, "/v1/webhooks", Some(&reader), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = app
        .call(
            Method::PUT,
            "/v1/webhooks/other",
            Some(&reader),
            Some(&json!({ "url": "https://crm.example.com/hook" })),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let callbacks_only = app.token("ops", &["callbacks:read"], &[]).await;
    let (status, _) = app
        .call(Method::GET, "/v1/webhooks/ok", Some(&callbacks_only), None)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = app
        .call(Method::DELETE, "/v1/webhooks/ok", Some(&app.admin), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = app
        .call(Method::GET, "/v1/webhooks/ok", Some(&app.admin), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}
