//! Reminders against real PostgreSQL and RabbitMQ: a skill's reminders before the due time
//! are written as `reminder` events and published on the event stream (routing key
//! `reminder.<skillId>`), each once; none for a number on the do-not-call list, for a
//! callback no longer pending, or whose time had passed when it was booked.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use testkit::prelude::*;
use testkit::tap::Consumer;

async fn remind(app: &TestApp) {
    callbackd::app::timers::remind(&app.store, chrono_tz::Tz::UTC, None).await;
}

async fn reminders_of(app: &TestApp, id: &str) -> Vec<Value> {
    app.events(id)
        .await
        .into_iter()
        .filter(|e| e["kind"] == "reminder")
        .collect()
}

/// A callback due in `due_in`, booked two days ago (so its reminders' times came after).
async fn booked_early(app: &TestApp, phone: &str, due_in: chrono::Duration) -> String {
    let mut body = with("scheduleDate", json!(in_(due_in)));
    body["phoneNumber"] = json!(phone);
    let id = app.create_ok(&body).await;
    sqlx::query("UPDATE callbacks SET created_at = now() - interval '2 days' WHERE id = $1::uuid")
        .bind(&id)
        .execute(&app.pool)
        .await
        .expect("backdated");
    id
}

#[tokio::test]
async fn each_reminder_goes_once_at_its_time_on_the_event_stream() {
    let app = TestApp::spawn_dispatching().await;
    app.put_skill(
        SKILL,
        json!({ "reminders": [3600, 86400], "timeZone": "Europe/London" }),
    )
    .await;
    let mut stream = Consumer::events(&app.settings.amqp.events_exchange, "reminder.#").await;
    let id = booked_early(&app, "+442079460958", chrono::Duration::hours(2)).await;

    remind(&app).await;
    remind(&app).await;
    let sent = reminders_of(&app, &id).await;
    assert_eq!(sent.len(), 1, "the day-before reminder, once: {sent:?}");
    assert_eq!(sent[0]["details"]["reminderSeconds"], 86400);
    assert_eq!(sent[0]["details"]["phoneNumber"], "+442079460958");
    assert_eq!(sent[0]["details"]["timeZone"], "Europe/London");

    // An hour and a half later (moved by hand): the hour-before one.
    sqlx::query("UPDATE callbacks SET due_at = now() + interval '30 minutes' WHERE id = $1::uuid")
        .bind(&id)
        .execute(&app.pool)
        .await
        .expect("moved");
    remind(&app).await;
    let sent = reminders_of(&app, &id).await;
    assert_eq!(sent.len(), 2, "{sent:?}");
    assert_eq!(sent[1]["details"]["reminderSeconds"], 3600);

    let published = stream.take(2, Duration::from_secs(10)).await;
    assert_eq!(published.len(), 2);
    assert_eq!(published[0].routing_key, format!("reminder.{SKILL}"));
    assert_eq!(published[0].body["details"]["reminderSeconds"], 86400);
    assert_eq!(published[1].body["details"]["reminderSeconds"], 3600);
}

#[tokio::test]
async fn no_reminder_for_a_listed_number_an_ended_callback_or_a_late_booking() {
    let app = TestApp::spawn().await;
    app.put_skill(SKILL, json!({ "reminders": [86400] })).await;
    let listed = booked_early(&app, "+442079460001", chrono::Duration::hours(2)).await;
    app.call(
        Method::PUT,
        "/v1/dnc/%2B442079460001",
        Some(&app.admin),
        Some(&json!({ "reason": "asked" })),
    )
    .await;
    let cancelled = booked_early(&app, "+442079460002", chrono::Duration::hours(2)).await;
    app.call(
        Method::DELETE,
        &format!("/v1/callbacks/{cancelled}?reason=test"),
        Some(&app.admin),
        None,
    )
    .await;
    // Booked two hours ahead: the day-before reminder's time had passed.
    let mut late = with("scheduleDate", json!(in_(chrono::Duration::hours(2))));
    late["phoneNumber"] = json!("+442079460003");
    let late = app.create_ok(&late).await;

    remind(&app).await;
    for id in [&listed, &cancelled, &late] {
        assert!(reminders_of(&app, id).await.is_empty(), "{id}");
    }
    // A skill without reminders is not read at all; refused settings name the field.
    let (status, answer) = app
        .call(
            Method::PUT,
            &format!("/v1/skills/{SKILL}"),
            Some(&app.admin),
            Some(&json!({
                "name": "Sales", "mediaType": "phone", "direction": "outbound", "active": true,
                "reminders": [30]
            })),
        )
        .await;
    assert_eq!(
        status,
        reqwest::StatusCode::UNPROCESSABLE_ENTITY,
        "{answer}"
    );
    assert!(
        answer["message"]
            .as_str()
            .unwrap_or_default()
            .contains("reminders")
    );
}
