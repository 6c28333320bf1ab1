//! The event stream against real PostgreSQL and RabbitMQ: every event of a callback reaches
//! the events exchange in order, from the outbox written with the change; events written
//! while no relay runs are published once one does, none lost.

use std::time::Duration;

use serde_json::json;

use testkit::prelude::*;
use testkit::tap::Consumer;

#[tokio::test]
async fn a_callbacks_events_are_published_in_order_with_their_kind_and_skill() {
    let app = TestApp::spawn_dispatching().await;
    let mut events = Consumer::events(&app.settings.amqp.events_exchange, "#").await;
    let _dialer = Consumer::bind(&app.exchange, "#").await;
    let id = app
        .create_ok(&with("scheduleDate", json!(in_(chrono::Duration::zero()))))
        .await;
    app.wait_state(&id, "dispatched", 10).await;
    app.report(&id, 1, "completed").await;

    let got = events.take(3, Duration::from_secs(10)).await;
    let kinds: Vec<&str> = got.iter().filter_map(|m| m.body["kind"].as_str()).collect();
    assert_eq!(kinds, ["created", "dispatched", "completed"]);
    let keys: Vec<&str> = got.iter().map(|m| m.routing_key.as_str()).collect();
    assert_eq!(
        keys,
        [
            format!("created.{SKILL}"),
            format!("dispatched.{SKILL}"),
            format!("completed.{SKILL}")
        ]
    );
    let ids: Vec<i64> = got
        .iter()
        .filter_map(|m| m.body["eventId"].as_i64())
        .collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    for m in &got {
        assert_eq!(m.body["schema"], "callbackd.event.v1");
        assert_eq!(m.body["callbackId"], json!(id));
        assert_eq!(m.body["skillId"], SKILL);
        assert_eq!(m.message_id(), format!("event:{}", m.body["eventId"]));
    }
    // The history and the stream agree.
    let history = app.events(&id).await;
    assert_eq!(history[0]["id"], got[0].body["eventId"]);
    assert_eq!(history[0]["details"], got[0].body["details"]);
    // Nothing is left in the outbox.
    for _ in 0..50 {
        if app.store.outbox_waiting().await.expect("outbox") == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the outbox was not drained");
}

#[tokio::test]
async fn events_written_while_no_relay_runs_are_published_when_one_starts() {
    // No dispatcher, so no relay: the events wait in the outbox.
    let mut app = TestApp::spawn().await;
    let mut made = Vec::new();
    for _ in 0..20 {
        made.push(app.create_ok(&valid_body()).await);
    }
    assert_eq!(app.store.outbox_waiting().await.expect("outbox"), 20);

    let mut events = Consumer::events(&app.settings.amqp.events_exchange, "created.#").await;
    app.spawn_peer(|s| s.dispatch.enabled = true).await;
    let got = events.take(20, Duration::from_secs(10)).await;
    let published: Vec<String> = got
        .iter()
        .filter_map(|m| m.body["callbackId"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(
        published, made,
        "every create, in the order they were written"
    );
}
