//! The dispatcher against real PostgreSQL and RabbitMQ, with a real consumer as the dialer.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use chrono::Utc;
use lapin::types::AMQPValue;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use testkit::prelude::*;
use testkit::tap::Consumer;

fn header(m: &testkit::tap::Received, name: &str) -> Option<AMQPValue> {
    m.properties
        .headers()
        .as_ref()
        .and_then(|h| h.inner().get(name).cloned())
}

#[tokio::test]
async fn routes_by_agent_then_skill_with_every_field_of_the_message() {
    let app = TestApp::spawn_dispatching().await;
    let mut consumer = Consumer::bind(&app.exchange, "#").await;
    let now = in_(chrono::Duration::zero());
    let mut to_agent = with("scheduleDate", json!(now));
    to_agent["targetAgentId"] = json!(AGENT.to_string());
    to_agent["timeZone"] = json!("Europe/Paris");
    let agent_id = app.create_ok(&to_agent).await;
    let empty_id = app.create_ok(&with("scheduleDate", json!(now))).await;
    let absent_id = app
        .create_ok(&{
            let mut b = with("scheduleDate", json!(now));
            b.as_object_mut().expect("object").remove("targetAgentId");
            b
        })
        .await;

    let received = consumer.take(3, Duration::from_secs(10)).await;
    assert_eq!(received.len(), 3);
    let by_id: HashMap<String, &testkit::tap::Received> =
        received.iter().map(|m| (m.callback_id(), m)).collect();
    app.wait_dispatched(3).await;

    for (id, route, key, agent) in [
        (&agent_id, "agent", format!("agent.{AGENT}"), json!(AGENT)),
        (&empty_id, "skill", format!("skill.{SKILL}"), Value::Null),
        (&absent_id, "skill", format!("skill.{SKILL}"), Value::Null),
    ] {
        let m = by_id
            .get(id.as_str())
            .unwrap_or_else(|| panic!("{id} not received"));
        assert_eq!(m.routing_key, key);
        assert_eq!(m.message_id(), format!("{id}:1"), "publication id");
        assert_eq!(m.callback_id(), *id, "callback_id header");
        let stored = app.get_callback(id).await;
        assert_eq!(stored["state"], "dispatched");
        assert_eq!(stored["attempt"], 1);
        assert!(stored["dispatchedAt"].is_string());

        let body = &m.body;
        assert_eq!(body["schema"], "callbackd.callback.v1");
        assert_eq!(body["callbackId"], json!(id));
        assert_eq!(body["attempt"], 1);
        assert_eq!(body["route"], route);
        assert_eq!(body["routingKey"], key);
        assert_eq!(body["skillId"], SKILL);
        assert_eq!(body["targetAgentId"], agent);
        assert_eq!(body["firstName"], "Ada");
        assert_eq!(body["lastName"], "Lovelace");
        assert_eq!(body["phoneNumber"], "+442079460958");
        assert_eq!(body["notes"], "re: invoice 42");
        assert_eq!(body["createdBy"], "admin");
        for field in ["scheduledFor", "dueAt", "createdAt"] {
            assert_eq!(
                parse_time(&body[field]),
                parse_time(&stored[field]),
                "{field}"
            );
            assert!(
                body[field].as_str().is_some_and(|t| t.ends_with('Z')),
                "{field} in UTC"
            );
        }
        assert_eq!(body["priority"], 0);
        assert_eq!(
            body.as_object().map(|o| o.len()),
            Some(17),
            "no unexpected fields (callerId and origNumber only when set): {body}"
        );

        let p = &m.properties;
        assert_eq!(
            p.content_type().as_ref().map(|c| c.as_str()),
            Some("application/json")
        );
        assert_eq!(*p.delivery_mode(), Some(2), "persistent");
        let ts = p.timestamp().expect("timestamp") as i64;
        assert!(
            (Utc::now().timestamp() - ts).abs() < 60,
            "timestamp is the publish time"
        );
        assert_eq!(
            header(m, "route"),
            Some(AMQPValue::LongString(route.into()))
        );
        assert_eq!(header(m, "skill_id"), Some(AMQPValue::LongLongInt(SKILL)));
        let want_agent = if route == "agent" {
            AMQPValue::LongLongInt(AGENT)
        } else {
            AMQPValue::Void
        };
        assert_eq!(header(m, "agent_id"), Some(want_agent));
        assert_eq!(header(m, "attempt"), Some(AMQPValue::LongLongInt(1)));
    }
    assert_eq!(by_id[&agent_id].body["timeZone"], "Europe/Paris");

    let events = app.events(&agent_id).await;
    let dispatched = events
        .iter()
        .find(|e| e["kind"] == "dispatched")
        .expect("dispatched event");
    assert_eq!(dispatched["actor"], "dispatcher");
    assert_eq!(
        dispatched["details"]["routingKey"],
        format!("agent.{AGENT}")
    );
    assert!(
        consumer.next(Duration::from_millis(500)).await.is_none(),
        "nothing else published"
    );
}

#[tokio::test]
async fn callback_arrives_at_its_time_and_one_for_now_arrives_promptly() {
    let app = TestApp::spawn_dispatching_with(|s| s.dispatch.poll_interval_ms = 10_000).await;
    let mut consumer = Consumer::bind(&app.exchange, "#").await;

    // The dispatcher is asleep for up to 10 s; a callback due now must wake it.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let sent = Utc::now();
    app.create_ok(&with("scheduleDate", json!(in_(chrono::Duration::zero()))))
        .await;
    let m = consumer
        .next(Duration::from_secs(5))
        .await
        .expect("delivered");
    let after = (m.received_at - sent).num_milliseconds();
    assert!(
        after < 1000,
        "a callback due now arrived {after} ms after creation"
    );

    let due = Utc::now() + chrono::Duration::seconds(2);
    let body = with("scheduleDate", json!(due.to_rfc3339()));
    let id = app.create_ok(&body).await;
    let m = consumer
        .next(Duration::from_secs(10))
        .await
        .expect("delivered");
    assert_eq!(m.callback_id(), id);
    let due = parse_time(&app.get_callback(&id).await["dueAt"]);
    let lateness = (m.received_at - due).num_milliseconds();
    assert!(lateness >= 0, "arrived {lateness} ms before its time");
    assert!(lateness < 1000, "arrived {lateness} ms after its time");
}

#[tokio::test]
async fn unroutable_callback_is_not_dispatched_stays_visible_and_goes_out_once_a_queue_is_bound() {
    let app = TestApp::spawn_dispatching().await;
    let id = app
        .create_ok(&with("scheduleDate", json!(in_(chrono::Duration::zero()))))
        .await;

    // No queue is bound: the broker returns it. It stays pending, with the reason shown.
    let mut returned = Vec::new();
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        returned = app
            .events(&id)
            .await
            .into_iter()
            .filter(|e| e["kind"] == "returned")
            .collect();
        if returned.len() >= 2 {
            break;
        }
    }
    assert!(returned.len() >= 2, "retried with backoff: {returned:?}");
    assert!(
        returned[0]["details"]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("unroutable"))
    );
    let stored = app.get_callback(&id).await;
    assert_eq!(stored["state"], "pending");
    assert_eq!(stored["attempt"], 0, "a returned message is not an attempt");
    assert!(
        stored["lastError"]
            .as_str()
            .is_some_and(|e| e.contains(&format!("skill.{SKILL}"))),
        "{stored}"
    );

    let mut consumer = Consumer::bind(&app.exchange, &format!("skill.{SKILL}")).await;
    let m = consumer
        .next(Duration::from_secs(10))
        .await
        .expect("delivered once bound");
    assert_eq!(m.callback_id(), id);
    assert_eq!(m.body["attempt"], 1);
    assert!(
        consumer.next(Duration::from_millis(1500)).await.is_none(),
        "delivered once"
    );
    let stored = app.get_callback(&id).await;
    assert_eq!(stored["state"], "dispatched");
    assert_eq!(stored["lastError"], Value::Null);
}

#[tokio::test]
async fn two_dispatchers_on_one_database_deliver_each_callback_exactly_once() {
    let mut app = TestApp::spawn_dispatching_with(|s| {
        s.dispatch.batch_size = 50;
        s.dispatch.instance_name = Some("first".into());
    })
    .await;
    app.spawn_peer(|s| s.dispatch.instance_name = Some("second".into()))
        .await;
    let mut consumer = Consumer::bind(&app.exchange, "#").await;

    let ids: HashSet<String> = app.insert_due(2000, None).await.into_iter().collect();
    let received = consumer.take(2000, Duration::from_secs(60)).await;
    assert!(
        consumer.next(Duration::from_secs(2)).await.is_none(),
        "no duplicate after the 2000"
    );
    let got: Vec<String> = received.iter().map(|m| m.callback_id()).collect();
    let unique: HashSet<String> = got.iter().cloned().collect();
    assert_eq!(got.len(), 2000);
    assert!(
        unique == ids,
        "each callback exactly once: {} unique of {}",
        unique.len(),
        ids.len()
    );
    assert_eq!(app.states().await.get("dispatched"), Some(&2000));

    let by_instance: Vec<(String, i64)> = sqlx::query_as(
        "SELECT details->>'instance', count(*) FROM callback_events WHERE kind = 'dispatched' GROUP BY 1",
    )
    .fetch_all(&app.pool)
    .await
    .expect("events");
    assert_eq!(
        by_instance.len(),
        2,
        "both instances took part: {by_instance:?}"
    );
}

#[tokio::test]
async fn cancelled_before_due_is_never_published() {
    let app = TestApp::spawn_dispatching().await;
    let mut consumer = Consumer::bind(&app.exchange, "#").await;
    let id = app
        .create_ok(&with(
            "scheduleDate",
            json!(in_(chrono::Duration::seconds(2))),
        ))
        .await;
    let (status, _) = app
        .call(
            Method::DELETE,
            &format!("/v1/callbacks/{id}"),
            Some(&app.admin),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let keep = app
        .create_ok(&with(
            "scheduleDate",
            json!(in_(chrono::Duration::seconds(2))),
        ))
        .await;
    let m = consumer
        .next(Duration::from_secs(6))
        .await
        .expect("the other one is delivered");
    assert_eq!(m.callback_id(), keep);
    assert!(consumer.next(Duration::from_secs(1)).await.is_none());
    assert_eq!(app.get_callback(&id).await["state"], "cancelled");
}

#[tokio::test]
async fn readyz_reports_the_broker() {
    let app = TestApp::spawn_dispatching().await;
    let (status, body) = app.call(Method::GET, "/readyz", None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        json!({"status": "ready", "database": "up", "broker": "up"})
    );

    let broken = TestApp::spawn_with(|s| {
        s.dispatch.enabled = true;
        s.amqp.url = "amqp://guest:guest@127.0.0.1:1/%2f".into();
    })
    .await;
    let (status, body) = broken.call(Method::GET, "/readyz", None, None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["broker"], "down");
    let (status, _) = broken.create(&valid_body()).await;
    assert_eq!(
        status,
        StatusCode::CREATED,
        "the API keeps accepting callbacks without the broker"
    );
}

/// Closes this daemon's broker connection from the broker's side, as a broker restart or a
/// network cut would, without disturbing the other tests' connections.
fn drop_broker_connection(instance: &str) {
    let out = std::process::Command::new("rabbitmqctl")
        .args(["-q", "list_connections", "pid", "client_properties"])
        .output()
        .expect("rabbitmqctl runs");
    let listing = String::from_utf8_lossy(&out.stdout);
    let pid = listing
        .lines()
        .find(|l| l.contains(&format!("callbackd {instance}")))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("no broker connection for {instance}: {listing}"))
        .to_owned();
    let closed = std::process::Command::new("rabbitmqctl")
        .args([
            "-q",
            "close_connection",
            &pid,
            "test: simulated broker loss",
        ])
        .status()
        .expect("rabbitmqctl runs");
    assert!(closed.success());
}

#[tokio::test]
async fn dispatch_resumes_by_itself_after_the_broker_drops_the_connection() {
    let instance = format!("reconnect-{}", uuid::Uuid::now_v7().simple());
    let app = TestApp::spawn_dispatching_with(|s| {
        s.dispatch.instance_name = Some(instance.clone());
        s.amqp.reconnect_initial_ms = 1000;
    })
    .await;
    let mut consumer = Consumer::bind(&app.exchange, "#").await;
    let first = app
        .create_ok(&with("scheduleDate", json!(in_(chrono::Duration::zero()))))
        .await;
    assert_eq!(
        consumer
            .next(Duration::from_secs(5))
            .await
            .map(|m| m.callback_id()),
        Some(first)
    );

    drop_broker_connection(&instance);
    let mut saw_down = false;
    for _ in 0..20 {
        let (status, body) = app.call(Method::GET, "/readyz", None, None).await;
        if status == StatusCode::SERVICE_UNAVAILABLE && body["broker"] == "down" {
            saw_down = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(saw_down, "/readyz reports the broker down");
    // Accepted while the broker is away; delivered once it is back, without a restart.
    let mut ids = HashSet::new();
    for _ in 0..5 {
        ids.insert(
            app.create_ok(&with("scheduleDate", json!(in_(chrono::Duration::zero()))))
                .await,
        );
    }
    let received: HashSet<String> = consumer
        .take(5, Duration::from_secs(20))
        .await
        .iter()
        .map(|m| m.callback_id())
        .collect();
    assert_eq!(received, ids);
    app.wait_dispatched(6).await;
}

/// The daemon runs as its own process here: the metrics recorder is process-wide, and in
/// this test binary other tests would add to its counters.
#[tokio::test]
async fn metrics_count_dispatches_lateness_backlog_and_links() {
    let app = TestApp::spawn().await;
    declare_exchange(&app.exchange).await;
    let mut consumer = Consumer::bind(&app.exchange, "#").await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let _daemon =
        testkit::daemon::Daemon::start_on(&app, "metrics", 100, &format!("127.0.0.1:{port}"));
    let base = format!("http://127.0.0.1:{port}");
    let mut ready = false;
    for _ in 0..200 {
        if let Ok(r) = app.client.get(format!("{base}/readyz")).send().await
            && r.status() == StatusCode::OK
        {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(ready, "the daemon became ready");
    for body in [
        with("scheduleDate", json!(in_(chrono::Duration::zero()))),
        valid_body(),
    ] {
        let response = app
            .client
            .post(format!("{base}/v1/callbacks"))
            .bearer_auth(&app.admin)
            .json(&body)
            .send()
            .await
            .expect("create");
        assert_eq!(response.status(), StatusCode::CREATED);
    }
    consumer
        .next(Duration::from_secs(10))
        .await
        .expect("dispatched");
    app.wait_dispatched(1).await;

    let response = app
        .client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .expect("scrape");
    assert_eq!(response.status(), StatusCode::OK);
    let text = response.text().await.expect("body");
    let value = |prefix: &str| -> f64 {
        text.lines()
            .find(|l| l.starts_with(prefix))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{prefix} missing from:\n{text}"))
    };
    assert!(value("callbackd_callbacks_dispatched_total{route=\"skill\"}") >= 1.0);
    assert!(value("callbackd_callbacks_created_total{route=\"skill\"}") >= 2.0);
    assert!(value("callbackd_dispatch_lateness_seconds_count") >= 1.0);
    // Its own process: exactly what this test did.
    assert_eq!(
        value("callbackd_callbacks_dispatched_total{route=\"skill\"}"),
        1.0
    );
    assert_eq!(
        value("callbackd_callbacks_created_total{route=\"skill\"}"),
        2.0
    );
    assert_eq!(value("callbackd_dispatch_lateness_seconds_count"), 1.0);
    assert!(
        text.contains("callbackd_dispatch_lateness_seconds_bucket{le=\"0.05\"}"),
        "{text}"
    );
    // Gauges are this daemon's own reading at scrape time.
    assert_eq!(
        value("callbackd_backlog_pending "),
        1.0,
        "the one due in two hours"
    );
    assert_eq!(value("callbackd_backlog_awaiting_outcome "), 1.0);
    assert_eq!(value("callbackd_database_up "), 1.0);
    assert_eq!(value("callbackd_broker_up "), 1.0);
}
