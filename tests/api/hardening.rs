//! What a client is told is what happened: no write after a 408, sessions that give up on
//! a busy database before the request does, case-insensitive `Bearer`, expiry kept after
//! the due time on PATCH, and timers on several daemons that neither repeat nor wait.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::json;

use testkit::prelude::*;

/// Creates pile up behind a database that takes 0.6 s per statement; the request limit is
/// 1 s. Those still queued when their caller was answered 408 must never be written: the
/// writer skips them. (One already being written when its 408 goes out may still land —
/// which is why a 408 means "outcome unknown: retry with the same Idempotency-Key".)
#[tokio::test]
async fn no_create_is_written_after_its_caller_was_answered_408() {
    let app = TestApp::spawn_with(|s| {
        s.api.request_timeout_ms = 1000;
        s.api.max_concurrent_requests = 4000;
        s.api.max_connections = 4000;
    })
    .await;
    sqlx::raw_sql(
        "CREATE FUNCTION slow_insert() RETURNS trigger LANGUAGE plpgsql AS
             $$ BEGIN PERFORM pg_sleep(0.6); RETURN NULL; END $$;
         CREATE TRIGGER slow_insert BEFORE INSERT ON callbacks
             FOR EACH STATEMENT EXECUTE FUNCTION slow_insert();",
    )
    .execute(&app.pool)
    .await
    .expect("slow trigger");

    const N: usize = 1500;
    let mut requests = tokio::task::JoinSet::new();
    for n in 0..N {
        let client = app.client.clone();
        let url = format!("{}/v1/callbacks", app.base);
        let token = app.admin.clone();
        let body = with("notes", json!(format!("flood {n}")));
        requests.spawn(async move {
            let status = client
                .post(url)
                .bearer_auth(token)
                .json(&body)
                .timeout(Duration::from_secs(30))
                .send()
                .await
                .map(|r| r.status());
            (n, status)
        });
    }
    let (mut created, mut timed_out, mut other) = (Vec::new(), 0, Vec::new());
    while let Some(done) = requests.join_next().await {
        match done.expect("request task") {
            (n, Ok(StatusCode::CREATED)) => created.push(format!("flood {n}")),
            (_, Ok(StatusCode::REQUEST_TIMEOUT)) => timed_out += 1,
            (_, answer) => other.push(format!("{answer:?}")),
        }
    }
    // Let the writers finish whatever they had taken.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let written: Vec<String> = sqlx::query_scalar("SELECT notes FROM callbacks")
        .fetch_all(&app.pool)
        .await
        .expect("notes");
    let written_set: std::collections::HashSet<&String> = written.iter().collect();
    eprintln!(
        "408 flood: {N} creates, {} answered 201, {timed_out} answered 408, {} other, {} written",
        created.len(),
        other.len(),
        written.len()
    );
    assert!(
        other.iter().all(|o| o.contains("503")),
        "only 201, 408 or 503: {other:?}"
    );
    assert!(
        created.iter().all(|n| written_set.contains(n)),
        "every 201 is stored"
    );
    assert!(timed_out > 0, "the flood must outlast the request limit");
    assert!(
        written.len() < created.len() + timed_out,
        "creates whose callers were told 408 while they waited were written anyway"
    );
}

/// A row held by another transaction (a dispatcher publishing it, an operator's session):
/// the API's session gives up on the lock before the request limit and answers 503, so
/// the client knows nothing happened, rather than 408 with the change still pending.
#[tokio::test]
async fn api_sessions_give_up_on_a_locked_row_before_the_request_times_out() {
    let app = TestApp::spawn_with(|s| s.api.request_timeout_ms = 2000).await;
    let id = app.create_ok(&valid_body()).await;
    let mut holder = app.pool.begin().await.expect("tx");
    sqlx::query("SELECT 1 FROM callbacks WHERE id = $1::uuid FOR UPDATE")
        .bind(&id)
        .execute(&mut *holder)
        .await
        .expect("row locked");
    let started = Instant::now();
    let (status, body) = app
        .call(
            Method::PATCH,
            &format!("/v1/callbacks/{id}"),
            Some(&app.admin),
            Some(&json!({"notes": "while locked"})),
        )
        .await;
    let took = started.elapsed();
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["result"], "Default");
    assert!(took < Duration::from_millis(1500), "gave up after {took:?}");
    holder.rollback().await.expect("released");
    assert_eq!(app.get_callback(&id).await["notes"], "re: invoice 42");
}

#[tokio::test]
async fn bearer_scheme_is_matched_case_insensitively() {
    let app = TestApp::spawn().await;
    for scheme in ["Bearer", "bearer", "BEARER", "bEaReR"] {
        let response = app
            .client
            .get(format!("{}/v1/callbacks", app.base))
            .header("Authorization", format!("{scheme} {}", app.admin))
            .send()
            .await
            .expect("sent");
        assert_eq!(response.status(), StatusCode::OK, "{scheme}");
    }
    for bad in [
        format!("Basic {}", app.admin),
        format!("Bearer{}", app.admin),
    ] {
        let response = app
            .client
            .get(format!("{}/v1/callbacks", app.base))
            .header("Authorization", bad.clone())
            .send()
            .await
            .expect("sent");
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{bad}");
    }
}

/// As on create, a callback must be due before it expires: PATCH refuses an `expiresAt`
/// not after the due time, and a `scheduleDate` at or past the kept `expiresAt`, naming the
/// field; nothing changes.
#[tokio::test]
async fn patch_refuses_an_expiry_not_after_the_due_time_and_names_the_field() {
    let app = TestApp::spawn().await;
    let due = chrono::Utc::now() + chrono::Duration::hours(2);
    let expires = due + chrono::Duration::hours(1);
    let mut body = with("scheduleDate", json!(due.to_rfc3339()));
    body["expiresAt"] = json!(expires.to_rfc3339());
    let id = app.create_ok(&body).await;
    let path = format!("/v1/callbacks/{id}");
    let before = app.events(&id).await.len();
    for (change, field) in [
        (
            json!({"expiresAt": (due - chrono::Duration::minutes(1)).to_rfc3339()}),
            "expiresAt",
        ),
        (json!({"expiresAt": due.to_rfc3339()}), "expiresAt"),
        (
            json!({"scheduleDate": (expires + chrono::Duration::minutes(5)).to_rfc3339()}),
            "scheduleDate",
        ),
        (
            json!({"scheduleDate": (due + chrono::Duration::hours(3)).to_rfc3339(),
                   "expiresAt": (due + chrono::Duration::hours(2)).to_rfc3339()}),
            "expiresAt",
        ),
    ] {
        let (status, answer) = app
            .call(Method::PATCH, &path, Some(&app.admin), Some(&change))
            .await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{change}: {answer}"
        );
        assert_eq!(answer["result"], "InvalidScheduleDate", "{answer}");
        let message = answer["message"].as_str().unwrap_or_default();
        assert!(message.starts_with(field), "{change}: {message}");
    }
    assert_eq!(app.events(&id).await.len(), before, "nothing changed");

    // Moving both together is fine.
    let later = due + chrono::Duration::hours(5);
    let (status, answer) = app
        .call(
            Method::PATCH,
            &path,
            Some(&app.admin),
            Some(&json!({"scheduleDate": later.to_rfc3339(),
                         "expiresAt": (later + chrono::Duration::hours(1)).to_rfc3339()})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let stored = parse_time(&answer["expiresAt"]);
    let asked = later + chrono::Duration::hours(1);
    assert!(
        (stored - asked).num_milliseconds().abs() < 1,
        "{stored} vs {asked}"
    );
}

/// Two daemons' timer jobs at once over the same expired callbacks: each callback ends
/// once, with one event, and neither job fails or waits on the other's rows.
#[tokio::test]
async fn timers_on_several_daemons_end_each_callback_once() {
    let app = TestApp::spawn().await;
    let ids = app.insert_due(3000, None).await;
    sqlx::query("UPDATE callbacks SET expires_at = now() - interval '1 second'")
        .execute(&app.pool)
        .await
        .expect("expired");
    let (a, b) = (app.store.clone(), app.store.clone());
    let started = Instant::now();
    tokio::join!(
        callbackd::app::timers::run(&a),
        callbackd::app::timers::run(&b)
    );
    let took = started.elapsed();
    let states = app.states().await;
    assert_eq!(
        states.get("expired"),
        Some(&(ids.len() as i64)),
        "{states:?}"
    );
    let events: i64 =
        sqlx::query_scalar("SELECT count(*) FROM callback_events WHERE kind = 'expired'")
            .fetch_one(&app.pool)
            .await
            .expect("events");
    assert_eq!(events, ids.len() as i64, "one event per callback");
    eprintln!("two timer runs over {} callbacks: {took:?}", ids.len());
}
