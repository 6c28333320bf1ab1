//! Priority with ageing: where callbacks compete for a full gate's room, the highest
//! effective priority goes first — with two daemons sharing the claim — and the message
//! carries it, in the body and as the AMQP priority.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use testkit::prelude::*;
use testkit::tap::Consumer;

async fn put_skill(app: &TestApp, rules: Value) {
    let (status, answer) = try_put_skill(app, rules).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
}

/// Skill 101 (at most one in flight) with `rules` on top.
async fn try_put_skill(app: &TestApp, rules: Value) -> (StatusCode, Value) {
    let mut body = json!({
        "name": "Outbound", "mediaType": "phone", "direction": "outbound",
        "active": true, "timeZone": "Europe/London", "maxInFlight": 1
    });
    for (k, v) in rules.as_object().expect("object") {
        body[k] = v.clone();
    }
    app.call(
        Method::PUT,
        &format!("/v1/skills/{SKILL}"),
        Some(&app.admin),
        Some(&body),
    )
    .await
}

async fn complete(app: &TestApp, id: &str) {
    let (status, answer) = app
        .call(
            Method::POST,
            &format!("/v1/callbacks/{id}/outcomes"),
            Some(&app.admin),
            Some(&json!({"attempt": 1, "outcome": "completed"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
}

/// Inserts a held-to-be callback due `minutes_ago`, with base `priority`.
async fn due(app: &TestApp, priority: i32, minutes_ago: i32) -> String {
    sqlx::query_scalar(
        "INSERT INTO callbacks (id, first_name, last_name, phone_number, skill_id, notes,
            scheduled_for, due_at, created_by, priority)
         VALUES (gen_random_uuid(), 'P' || $2, '', '+442079460958', $1, '',
                 now() - make_interval(mins => $3), now() - make_interval(mins => $3), 'test', $2)
         RETURNING id::text",
    )
    .bind(SKILL)
    .bind(priority)
    .bind(minutes_ago)
    .fetch_one(&app.pool)
    .await
    .expect("inserted")
}

/// The order a full gate lets held callbacks go: each completion frees the one place.
async fn release_order(
    app: &TestApp,
    consumer: &mut Consumer,
    first: String,
    n: usize,
) -> Vec<String> {
    let mut order = Vec::new();
    let mut in_flight = first;
    for _ in 0..n {
        complete(app, &in_flight).await;
        let next = consumer.take(1, Duration::from_secs(10)).await;
        assert_eq!(next.len(), 1, "one goes when one place frees");
        in_flight = next[0].callback_id();
        app.wait_dispatched(1).await;
        order.push(in_flight.clone());
    }
    order
}

#[tokio::test]
async fn a_full_gate_lets_the_highest_priority_go_first_on_either_daemon() {
    let mut app = TestApp::spawn_dispatching().await;
    app.spawn_peer(|_| {}).await;
    let mut consumer = Consumer::bind(&app.exchange, "#").await;
    put_skill(&app, json!({})).await;
    // One in flight fills the gate.
    let first = due(&app, 0, 0).await;
    assert_eq!(consumer.take(1, Duration::from_secs(10)).await.len(), 1);
    app.wait_dispatched(1).await;
    // Then three wait behind it, the oldest with the lowest priority.
    let low = due(&app, 10, 3).await;
    let high = due(&app, 900, 1).await;
    let mid = due(&app, 500, 2).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        consumer
            .take(1, Duration::from_millis(300))
            .await
            .is_empty(),
        "held"
    );

    let order = release_order(&app, &mut consumer, first, 3).await;
    assert_eq!(order, vec![high, mid, low]);
}

#[tokio::test]
async fn priority_ages_by_the_skills_acceleration_up_to_its_maximum() {
    let app = TestApp::spawn_dispatching().await;
    let mut consumer = Consumer::bind(&app.exchange, "#").await;
    // 10 points a minute: due an hour ago at 0 is 600 by now, ahead of 500 due now...
    put_skill(&app, json!({"priorityAcceleration": 10})).await;
    let first = due(&app, 0, 0).await;
    let received = consumer.take(1, Duration::from_secs(10)).await;
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].body["priority"], 0);
    assert_eq!(received[0].properties.priority(), &Some(0));
    app.wait_dispatched(1).await;
    let fresh = due(&app, 500, 0).await;
    let aged = due(&app, 0, 60).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    complete(&app, &first).await;
    let next = consumer.take(1, Duration::from_secs(10)).await;
    assert_eq!(next[0].callback_id(), aged, "600 beats 500");
    let p = next[0].body["priority"].as_u64().expect("priority");
    assert!((600..=610).contains(&p), "{}", next[0].body);
    assert_eq!(next[0].properties.priority(), &Some(5));
    app.wait_dispatched(1).await;

    // ... up to the maximum, which every priority is capped at: with 550, one at 500 due 10
    // minutes ago (600) and one at 0 due 55 minutes ago (550) tie at 550, and the earlier
    // due goes first; then the 550 before the fresh 500.
    put_skill(
        &app,
        json!({"priorityAcceleration": 10, "maxPriority": 550}),
    )
    .await;
    let newer = due(&app, 500, 10).await;
    let older = due(&app, 0, 55).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    complete(&app, &aged).await;
    let next = consumer.take(1, Duration::from_secs(10)).await;
    assert_eq!(
        next[0].callback_id(),
        older,
        "tied at the maximum: the earlier due"
    );
    assert_eq!(next[0].body["priority"], 550);
    app.wait_dispatched(1).await;
    complete(&app, &older).await;
    let next = consumer.take(1, Duration::from_secs(10)).await;
    assert_eq!(next[0].callback_id(), newer, "550 before 500");
    app.wait_dispatched(1).await;
    complete(&app, &newer).await;
    let next = consumer.take(1, Duration::from_secs(10)).await;
    assert_eq!(next[0].callback_id(), fresh);
}

#[tokio::test]
async fn priority_is_taken_defaulted_changed_and_checked() {
    let app = TestApp::spawn().await;
    put_skill(&app, json!({"initialPriority": 50})).await;
    let defaulted = app.create_ok(&valid_body()).await;
    assert_eq!(app.get_callback(&defaulted).await["priority"], 50);
    let own = app.create_ok(&with("priority", json!(700))).await;
    assert_eq!(app.get_callback(&own).await["priority"], 700);

    let before = app.states().await;
    for bad in [json!(1001), json!(-1), json!("high")] {
        let (status, refused) = app.create(&with("priority", bad.clone())).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}: {refused}");
        assert!(
            refused["message"]
                .as_str()
                .unwrap_or_default()
                .contains("priority"),
            "{refused}"
        );
    }
    assert_eq!(app.states().await, before, "nothing written");

    let (status, changed) = app
        .call(
            Method::PATCH,
            &format!("/v1/callbacks/{own}"),
            Some(&app.admin),
            Some(&json!({"priority": 900})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{changed}");
    assert_eq!(changed["priority"], 900);
    let (_, events) = app
        .call(
            Method::GET,
            &format!("/v1/callbacks/{own}/events"),
            Some(&app.admin),
            None,
        )
        .await;
    assert!(
        events
            .to_string()
            .contains(r#""priority":{"from":700,"to":900}"#),
        "{events}"
    );
    // In bulk, with the reason every bulk change records.
    let (status, done) = app
        .call(
            Method::POST,
            "/v1/callbacks/bulk",
            Some(&app.admin),
            Some(
                &json!({"filter": {"skillId": SKILL.to_string()}, "action": "reprioritize",
                         "priority": 999, "reason": "storm: vulnerable customers first"}),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{done}");
    assert_eq!(done["changed"], 2, "{done}");
    assert_eq!(app.get_callback(&defaulted).await["priority"], 999);
    let (status, refused) = app
        .call(
            Method::POST,
            "/v1/callbacks/bulk",
            Some(&app.admin),
            Some(&json!({"action": "reprioritize", "reason": "x"})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");

    for (rules, field) in [
        (json!({"initialPriority": 1001}), "initialPriority"),
        (json!({"priorityAcceleration": -1}), "priorityAcceleration"),
        (json!({"maxPriority": 5000}), "maxPriority"),
    ] {
        let (status, refused) = try_put_skill(&app, rules.clone()).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{rules}");
        assert!(
            refused["message"]
                .as_str()
                .unwrap_or_default()
                .contains(field)
        );
    }
}

/// The list sorts by base priority, highest first, and pages through that order.
#[tokio::test]
async fn the_list_sorts_by_priority_and_pages_in_that_order() {
    let app = TestApp::spawn().await;
    let low = app.create_ok(&with("priority", json!(10))).await;
    let high = app.create_ok(&with("priority", json!(900))).await;
    let mid = app.create_ok(&with("priority", json!(500))).await;
    let also_mid = app.create_ok(&with("priority", json!(500))).await;
    let page = |query: String| {
        let app = &app;
        async move {
            app.call(
                Method::GET,
                &format!("/v1/callbacks?{query}"),
                Some(&app.admin),
                None,
            )
            .await
        }
    };
    let ids = |page: &Value| -> Vec<String> {
        page["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|c| c["callbackId"].as_str().expect("id").to_owned())
            .collect()
    };
    let (status, first) = page("sort=priority&limit=2".into()).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert_eq!(ids(&first), vec![high.clone(), mid.clone()]);
    let cursor = first["nextCursor"].as_str().expect("more").to_owned();
    let (status, second) = page(format!("sort=priority&limit=2&cursor={cursor}")).await;
    assert_eq!(status, StatusCode::OK, "{second}");
    assert_eq!(ids(&second), vec![also_mid, low]);
    assert_eq!(second["nextCursor"], Value::Null);

    let (_, due_order) = page("limit=1".into()).await;
    let due_cursor = due_order["nextCursor"].as_str().expect("more").to_owned();
    for query in [
        "sort=urgency".to_owned(),
        format!("sort=priority&cursor={due_cursor}"),
        format!("cursor={cursor}"),
    ] {
        let (status, refused) = page(query.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {refused}");
    }
}
