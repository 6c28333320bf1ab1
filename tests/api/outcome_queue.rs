//! The outcomes queue as a hostile or careless publisher meets it: only one JSON object with
//! each key once, only from the configured publishers, only for attempts that were
//! published; dead letters that really reach the dead-letter queue; a consumer that the
//! broker cancels comes back.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::json;

use testkit::fixtures::due_now;
use testkit::prelude::*;
use testkit::tap::Consumer;
use testkit::tap::dispatched;

fn outcome(id: &str, attempt: i64, outcome: &str) -> Vec<u8> {
    json!({"schema": "callbackd.outcome.v1", "callbackId": id, "attempt": attempt, "outcome": outcome})
        .to_string()
        .into_bytes()
}

/// Rows an outcome report would write: its idempotency record and the callback's events.
async fn written(app: &TestApp, id: &str) -> (i64, usize) {
    let outcomes: i64 =
        sqlx::query_scalar("SELECT count(*) FROM callback_outcomes WHERE callback_id = $1::uuid")
            .bind(id)
            .fetch_one(&app.pool)
            .await
            .expect("count");
    (outcomes, app.events(id).await.len())
}

#[tokio::test]
async fn outcome_messages_must_be_one_json_object_with_each_key_once() {
    let app = TestApp::spawn_dispatching().await;
    let mut consumer = Consumer::bind(&app.exchange, "#").await;
    let id = dispatched(&app, &mut consumer, &due_now()).await;
    let before = written(&app, &id).await;

    app.publish_outcome(
        json!(["callbackd.outcome.v1", id, 1, "completed"])
            .to_string()
            .as_bytes(),
    )
    .await;
    let twice = format!(
        r#"{{"schema":"callbackd.outcome.v1","callbackId":"{id}","attempt":1,"outcome":"no_answer","outcome":"completed"}}"#
    );
    app.publish_outcome(twice.as_bytes()).await;
    let reasons = app.dead_letter_reasons(2).await;
    assert_eq!(reasons.len(), 2, "{reasons:?}");
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("must be a JSON object, not an array")),
        "{reasons:?}"
    );
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("`outcome` appears more than once")),
        "{reasons:?}"
    );
    assert_eq!(app.get_callback(&id).await["state"], "dispatched");
    assert_eq!(written(&app, &id).await, before, "nothing written");

    app.publish_outcome(&outcome(&id, 1, "completed")).await;
    app.wait_state(&id, "completed", 10).await;
}

#[tokio::test]
async fn outcomes_are_accepted_only_from_the_configured_publishers() {
    let app = TestApp::spawn_dispatching_with(|s| {
        s.amqp.outcome_publishers = vec!["guest".into()];
    })
    .await;
    let mut consumer = Consumer::bind(&app.exchange, "#").await;
    let id = dispatched(&app, &mut consumer, &due_now()).await;
    let before = written(&app, &id).await;

    // RabbitMQ itself refuses a user_id that is not the connection's user: it cannot be forged.
    let forged = app
        .publish_outcome_as(&outcome(&id, 1, "failed"), Some("trusted-dialer"))
        .await;
    assert!(forged.is_err(), "the broker accepted a forged user_id");
    // Without a user_id, the publisher is unknown: dead-lettered, nothing applied.
    app.publish_outcome_as(&outcome(&id, 1, "failed"), None)
        .await
        .expect("published");
    let reasons = app.dead_letter_reasons(1).await;
    assert!(
        reasons.first().is_some_and(|r| r.contains("no user_id")),
        "{reasons:?}"
    );
    assert_eq!(app.get_callback(&id).await["state"], "dispatched");
    assert_eq!(written(&app, &id).await, before, "nothing written");

    app.publish_outcome_as(&outcome(&id, 1, "completed"), Some("guest"))
        .await
        .expect("published");
    app.wait_state(&id, "completed", 10).await;
    let events = app.events(&id).await;
    assert_eq!(
        events
            .last()
            .map(|e| (e["kind"].clone(), e["actor"].clone())),
        Some((json!("completed"), json!("guest"))),
        "the event names the broker-verified publisher: {events:?}"
    );
}

/// Shipped closed: with no `amqp.outcome_publishers` (and the open switch off) the outcomes
/// queue is not consumed at all, so no broker user can end a callback; what was sent waits
/// in the queue and is applied once a daemon trusts its publisher.
#[tokio::test]
async fn with_no_trusted_publisher_outcomes_wait_in_the_queue() {
    let mut app = TestApp::spawn_dispatching_with(|s| {
        s.amqp.outcome_publishers_open = false;
    })
    .await;
    let mut consumer = Consumer::bind(&app.exchange, "#").await;
    let id = dispatched(&app, &mut consumer, &due_now()).await;
    app.publish_outcome_as(&outcome(&id, 1, "completed"), Some("guest"))
        .await
        .expect("published");
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    assert_eq!(app.get_callback(&id).await["state"], "dispatched");

    // A second daemon that trusts `guest` takes it from the queue.
    app.spawn_peer(|s| {
        s.dispatch.enabled = true;
        s.amqp.outcome_publishers = vec!["guest".into()];
    })
    .await;
    app.wait_state(&id, "completed", 10).await;
}

#[tokio::test]
async fn outcomes_from_users_not_listed_are_dead_lettered() {
    let app = TestApp::spawn_dispatching_with(|s| {
        s.amqp.outcome_publishers = vec!["dialer".into()];
    })
    .await;
    let mut consumer = Consumer::bind(&app.exchange, "#").await;
    let id = dispatched(&app, &mut consumer, &due_now()).await;
    app.publish_outcome_as(&outcome(&id, 1, "completed"), Some("guest"))
        .await
        .expect("published");
    let reasons = app.dead_letter_reasons(1).await;
    assert!(
        reasons
            .first()
            .is_some_and(|r| r.contains("`guest` is not one of amqp.outcome_publishers")),
        "{reasons:?}"
    );
    assert_eq!(app.get_callback(&id).await["state"], "dispatched");
}

#[tokio::test]
async fn outcome_attempts_outside_the_published_range_are_refused_without_writing() {
    let app = TestApp::spawn_dispatching().await;
    let mut consumer = Consumer::bind(&app.exchange, "#").await;
    let id = dispatched(&app, &mut consumer, &due_now()).await;
    let before = written(&app, &id).await;

    for attempt in [0, 2, -1, 1_000_000] {
        let (status, body) = app.report(&id, attempt, "completed").await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "attempt {attempt}: {body}"
        );
        assert_eq!(body["result"], "Default");
        assert!(
            body["message"]
                .as_str()
                .is_some_and(|m| m.contains("never published")),
            "{body}"
        );
    }
    app.publish_outcome(&outcome(&id, 5, "completed")).await;
    let reasons = app.dead_letter_reasons(1).await;
    assert!(
        reasons
            .first()
            .is_some_and(|r| r.contains("attempt 5 was never published")),
        "{reasons:?}"
    );
    assert_eq!(written(&app, &id).await, before, "nothing written");
    assert_eq!(app.get_callback(&id).await["state"], "dispatched");
    // The published attempt still works.
    let (status, body) = app.report(&id, 1, "completed").await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn events_are_paginated_with_a_cursor() {
    let app = TestApp::spawn().await;
    let id = app.create_ok(&valid_body()).await;
    for n in 0..6 {
        let (status, body) = app
            .call(
                Method::PATCH,
                &format!("/v1/callbacks/{id}"),
                Some(&app.admin),
                Some(&json!({"notes": format!("note {n}")})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let mut seen = Vec::new();
    let mut path = format!("/v1/callbacks/{id}/events?limit=3");
    let mut pages = 0;
    loop {
        let (status, page) = app.call(Method::GET, &path, Some(&app.admin), None).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        pages += 1;
        let items = page["items"].as_array().expect("items");
        assert!(items.len() <= 3);
        seen.extend(items.iter().map(|e| e["id"].as_i64().expect("id")));
        match page["nextCursor"].as_str() {
            Some(cursor) => path = format!("/v1/callbacks/{id}/events?limit=3&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(seen.len(), 7, "created + 6 updates: {seen:?}");
    assert!(
        seen.windows(2).all(|w| w[0] < w[1]),
        "oldest first, no repeat"
    );
    assert_eq!(pages, 3);
    for bad in ["limit=0", "limit=100000", "cursor=abc", "cursor=-5"] {
        let (status, body) = app
            .call(
                Method::GET,
                &format!("/v1/callbacks/{id}/events?{bad}"),
                Some(&app.admin),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
        assert_eq!(body["result"], "Default");
    }
}

/// The queue's own dead-lettering: a message given back more than `x-delivery-limit` times
/// (a consumer that crashes on it every time) lands in the dead-letter queue.
#[tokio::test]
async fn outcomes_queue_dead_letters_a_message_past_its_delivery_limit() {
    let app = TestApp::spawn_with(|s| {
        s.dispatch.enabled = true;
        s.amqp.outcomes_delivery_limit = 2;
    })
    .await;
    // The daemon declared the queues; it stops consuming so that this test can.
    app.wait_ready().await;
    app.shutdown.cancel();
    tokio::time::sleep(Duration::from_millis(500)).await;
    app.publish_outcome(b"poison").await;

    let connection = lapin::Connection::connect(AMQP_URL, lapin::ConnectionProperties::default())
        .await
        .expect("connect");
    let channel = connection.create_channel().await.expect("channel");
    let queue = app.settings.amqp.outcomes_queue.as_str();
    let mut deliveries = 0;
    for _ in 0..50 {
        match channel
            .basic_get(
                queue.into(),
                lapin::options::BasicGetOptions { no_ack: false },
            )
            .await
            .expect("get")
        {
            Some(message) => {
                deliveries += 1;
                message
                    .delivery
                    .nack(lapin::options::BasicNackOptions {
                        requeue: true,
                        ..Default::default()
                    })
                    .await
                    .expect("nack");
            }
            None if deliveries > 0 => break,
            None => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    assert_eq!(deliveries, 3, "delivered once, then twice more (the limit)");
    let dead = channel
        .basic_get(
            app.settings.amqp.dead_letter_queue.as_str().into(),
            lapin::options::BasicGetOptions { no_ack: true },
        )
        .await
        .expect("get");
    let mut dead = dead;
    for _ in 0..20 {
        if dead.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        dead = channel
            .basic_get(
                app.settings.amqp.dead_letter_queue.as_str().into(),
                lapin::options::BasicGetOptions { no_ack: true },
            )
            .await
            .expect("get");
    }
    let dead = dead.expect("the poison message reached the dead-letter queue");
    assert_eq!(dead.delivery.data, b"poison");
    let _ = connection.close(200, "done".into()).await;
}

/// The broker cancels a consumer whose queue goes away; the daemon reconnects, declares
/// the queue again and goes on consuming.
#[tokio::test]
async fn a_consumer_cancelled_by_the_broker_comes_back() {
    let app = TestApp::spawn_dispatching_with(|s| s.amqp.reconnect_initial_ms = 1000).await;
    let mut consumer = Consumer::bind(&app.exchange, "#").await;
    let id = dispatched(&app, &mut consumer, &due_now()).await;

    let connection = lapin::Connection::connect(AMQP_URL, lapin::ConnectionProperties::default())
        .await
        .expect("connect");
    let channel = connection.create_channel().await.expect("channel");
    channel
        .queue_delete(
            app.settings.amqp.outcomes_queue.as_str().into(),
            Default::default(),
        )
        .await
        .expect("queue deleted");
    let _ = connection.close(200, "done".into()).await;

    // Once it is back, an outcome published to the re-declared queue is applied.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        if app
            .publish_outcome_as(&outcome(&id, 1, "completed"), None)
            .await
            .is_ok()
        {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the queue never came back"
        );
    }
    app.wait_state(&id, "completed", 15).await;
}

/// An outcomes queue declared by an older version (without dead-lettering) cannot be
/// re-declared with other arguments; the daemon uses it as it is, with a warning, rather
/// than failing to connect.
#[tokio::test]
async fn an_outcomes_queue_declared_before_dead_lettering_is_still_consumed() {
    let queue = format!("callbackd.test.old-outcomes.{}", uuid::Uuid::now_v7());
    let connection = lapin::Connection::connect(AMQP_URL, lapin::ConnectionProperties::default())
        .await
        .expect("connect");
    let channel = connection.create_channel().await.expect("channel");
    let mut arguments = lapin::types::FieldTable::default();
    arguments.insert(
        "x-queue-type".into(),
        lapin::types::AMQPValue::LongString("quorum".into()),
    );
    channel
        .queue_declare(
            queue.as_str().into(),
            lapin::options::QueueDeclareOptions {
                durable: true,
                ..Default::default()
            },
            arguments,
        )
        .await
        .expect("old queue");
    let _ = connection.close(200, "declared".into()).await;

    let name = queue.clone();
    let app = TestApp::spawn_dispatching_with(move |s| s.amqp.outcomes_queue = name).await;
    app.wait_ready().await;
    let mut consumer = Consumer::bind(&app.exchange, "#").await;
    let id = dispatched(&app, &mut consumer, &due_now()).await;
    app.publish_outcome(&outcome(&id, 1, "completed")).await;
    app.wait_state(&id, "completed", 10).await;
}
