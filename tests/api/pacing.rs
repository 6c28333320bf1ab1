//! Pacing by capacity against real PostgreSQL and RabbitMQ: limits on callbacks in flight
//! per skill and per agent, held across several daemons, a per-minute rate, and limits
//! changed at run time.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::json;

use testkit::prelude::*;
use testkit::tap::Consumer;

/// Callbacks of `skill` published and without a final outcome.
async fn in_flight(app: &TestApp, skill: i64) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM callbacks WHERE skill_id = $1 AND state IN ('dispatched', 'accepted')",
    )
    .bind(skill)
    .fetch_one(&app.pool)
    .await
    .expect("count")
}

async fn set_capacity(app: &TestApp, skill: i64, body: serde_json::Value) -> serde_json::Value {
    let (status, answer) = app
        .call(
            Method::PUT,
            &format!("/v1/skills/{skill}/capacity"),
            Some(&app.admin),
            Some(&body),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    answer
}

#[tokio::test]
async fn two_daemons_never_exceed_a_skills_limit_and_deliver_a_burst_exactly_once() {
    let mut app = TestApp::spawn_dispatching_with(|s| s.dispatch.poll_interval_ms = 5000).await;
    app.spawn_peer(|_| {}).await;
    set_capacity(&app, SKILL, json!({ "maxInFlight": 20 })).await;
    let mut consumer = Consumer::bind(&app.exchange, "#").await;
    const N: usize = 2000;
    let ids: HashSet<String> = app.insert_due(N as i64, None).await.into_iter().collect();

    // Sample the count in flight all along.
    let highest = Arc::new(AtomicI64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (pool, highest, done) = (app.pool.clone(), highest.clone(), done.clone());
        tokio::spawn(async move {
            let mut samples = 0u32;
            while !done.load(Ordering::Relaxed) {
                let n: i64 = sqlx::query_scalar(
                    "SELECT count(*) FROM callbacks
                     WHERE skill_id = 101 AND state IN ('dispatched', 'accepted')",
                )
                .fetch_one(&pool)
                .await
                .expect("sample");
                highest.fetch_max(n, Ordering::Relaxed);
                samples += 1;
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            samples
        })
    };

    // The dialer: twenty agents; each call lasts 50 ms, then its outcome is reported.
    let started = std::time::Instant::now();
    let mut seen = HashSet::new();
    let mut message_ids = HashSet::new();
    let mut calls = tokio::task::JoinSet::new();
    while seen.len() < N {
        let Some(m) = consumer.next(Duration::from_secs(10)).await else {
            panic!(
                "only {} of {N} delivered: {:?}",
                seen.len(),
                app.states().await
            );
        };
        assert!(
            message_ids.insert(m.message_id()),
            "delivered twice: {}",
            m.message_id()
        );
        let id = m.callback_id();
        seen.insert(id.clone());
        let (client, base, admin) = (app.client.clone(), app.base.clone(), app.admin.clone());
        calls.spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let response = client
                .post(format!("{base}/v1/callbacks/{id}/outcomes"))
                .bearer_auth(admin)
                .json(&json!({ "attempt": 1, "outcome": "completed" }))
                .send()
                .await
                .expect("reported");
            assert_eq!(response.status(), StatusCode::OK);
        });
    }
    while let Some(call) = calls.join_next().await {
        call.expect("a call");
    }
    let elapsed = started.elapsed();
    done.store(true, Ordering::Relaxed);
    let samples = sampler.await.expect("sampler");
    assert_eq!(seen, ids, "every callback delivered");
    assert!(
        consumer.next(Duration::from_millis(500)).await.is_none(),
        "nothing delivered twice"
    );
    let highest = highest.load(Ordering::Relaxed);
    println!(
        "pacing: {N} callbacks, maxInFlight 20, two daemons: {:.1} s ({:.0}/s), highest in flight {highest} over {samples} samples",
        elapsed.as_secs_f64(),
        N as f64 / elapsed.as_secs_f64()
    );
    assert!(highest <= 20, "in flight reached {highest}");
    assert!(highest >= 15, "the limit was used ({highest})");
    let states = app.states().await;
    assert_eq!(states.get("completed"), Some(&(N as i64)), "{states:?}");
    assert_eq!(states.get("expired"), None);
    let held: i64 = sqlx::query_scalar(
        "SELECT count(DISTINCT callback_id) FROM callback_events WHERE kind = 'dispatched'",
    )
    .fetch_one(&app.pool)
    .await
    .expect("events");
    assert_eq!(held, N as i64, "one dispatch each, no event per pass");
    let events: i64 = sqlx::query_scalar("SELECT count(*) FROM callback_events")
        .fetch_one(&app.pool)
        .await
        .expect("events");
    assert_eq!(events, 2 * N as i64, "dispatched and completed only");
}

#[tokio::test]
async fn an_agent_takes_one_callback_at_a_time_and_the_next_goes_when_it_finishes() {
    let app = TestApp::spawn_dispatching().await;
    let mut consumer = Consumer::bind(&app.exchange, "#").await;
    let due = in_(chrono::Duration::zero());
    let mut to_agent = with("scheduleDate", json!(due));
    to_agent["targetAgentId"] = json!(AGENT);
    let first = app.create_ok(&to_agent).await;
    let second = app.create_ok(&to_agent).await;
    let for_skill = app.create_ok(&with("scheduleDate", json!(due))).await;

    let got = consumer.take(2, Duration::from_secs(10)).await;
    let got: HashSet<String> = got.iter().map(|m| m.callback_id()).collect();
    assert!(
        got.contains(&for_skill),
        "the skill's callback is not held by the agent's"
    );
    let (sent, held) = if got.contains(&first) {
        (first, second)
    } else {
        (second, first)
    };
    assert!(got.contains(&sent));
    assert!(
        consumer.next(Duration::from_millis(1500)).await.is_none(),
        "the agent's second callback waits"
    );
    let waiting = app.get_callback(&held).await;
    assert_eq!(
        waiting["state"], "pending",
        "held callbacks stay pending: {waiting}"
    );
    let kinds: Vec<String> = app
        .events(&held)
        .await
        .iter()
        .filter_map(|e| e["kind"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(kinds, ["created"], "no event for being held");
    // The backlog counts it apart, per skill; it is not "overdue" (it waits by design).
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let backlog = app.store.backlog().await.expect("backlog");
    assert_eq!(backlog.paced, 1);
    assert_eq!(backlog.paced_by_skill.len(), 1);
    assert_eq!(backlog.paced_by_skill[0].skill_id, SKILL);
    assert!(
        backlog.paced_by_skill[0].oldest_held_seconds >= 1.0,
        "{backlog:?}"
    );
    assert_eq!(backlog.oldest_overdue_seconds, 0.0, "{backlog:?}");

    app.report(&sent, 1, "completed").await;
    let next = consumer
        .next(Duration::from_secs(5))
        .await
        .expect("released");
    assert_eq!(next.callback_id(), held);
}

#[tokio::test]
async fn a_limit_raised_at_run_time_lets_held_callbacks_go_at_once() {
    let app = TestApp::spawn_dispatching_with(|s| s.dispatch.poll_interval_ms = 30_000).await;
    set_capacity(&app, SKILL, json!({ "maxInFlight": 2 })).await;
    let mut consumer = Consumer::bind(&app.exchange, "#").await;
    app.insert_due(10, None).await;
    assert_eq!(consumer.take(2, Duration::from_secs(10)).await.len(), 2);
    assert!(consumer.next(Duration::from_millis(1000)).await.is_none());
    assert_eq!(in_flight(&app, SKILL).await, 2);

    let skill = set_capacity(&app, SKILL, json!({ "maxInFlight": 5 })).await;
    assert_eq!(skill["maxInFlight"], 5);
    let started = std::time::Instant::now();
    assert_eq!(consumer.take(3, Duration::from_secs(2)).await.len(), 3);
    println!(
        "raised limit applied in {} ms",
        started.elapsed().as_millis()
    );
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "within a second"
    );
    assert!(consumer.next(Duration::from_millis(800)).await.is_none());

    // Removing the limit releases the rest; a limit of 0 is refused.
    let (status, body) = app
        .call(
            Method::PUT,
            &format!("/v1/skills/{SKILL}/capacity"),
            Some(&app.admin),
            Some(&json!({ "maxInFlight": 0 })),
        )
        .await;
    assert_result(status, &body, StatusCode::UNPROCESSABLE_ENTITY, "Default");
    set_capacity(&app, SKILL, json!({})).await;
    assert_eq!(consumer.take(5, Duration::from_secs(2)).await.len(), 5);
    app.wait_dispatched(10).await;
}

#[tokio::test]
async fn a_rate_per_minute_spaces_publications_evenly() {
    let app = TestApp::spawn_dispatching().await;
    set_capacity(&app, SKILL, json!({ "maxPerMinute": 120 })).await;
    let mut consumer = Consumer::bind(&app.exchange, "#").await;
    app.insert_due(5, None).await;
    let mut at = Vec::new();
    for _ in 0..5 {
        consumer
            .next(Duration::from_secs(5))
            .await
            .expect("published");
        at.push(std::time::Instant::now());
    }
    let gaps: Vec<u128> = at.windows(2).map(|w| (w[1] - w[0]).as_millis()).collect();
    println!("gaps at 120/min: {gaps:?} ms");
    for gap in &gaps {
        assert!(*gap >= 400, "spaced about 500 ms apart: {gaps:?}");
    }
    let total = (at[4] - at[0]).as_millis();
    assert!((1900..=3500).contains(&total), "{total} ms for 4 gaps");
}
