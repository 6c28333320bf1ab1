//! The callback's life after dispatch, with a real consumer acting as the dialer.

use std::time::Duration;

use chrono::{Datelike, Days, NaiveDate, Utc, Weekday};
use reqwest::StatusCode;
use serde_json::{Value, json};

use testkit::fixtures::due_now;
use testkit::prelude::*;
use testkit::tap::{Consumer, dispatched};

/// Due now, on the seeded skill without a time zone (whose rules the tests change).
fn due_now_on_plain_skill() -> Value {
    let mut body = due_now();
    body["skillId"] = json!(SKILL_NO_ZONE);
    body
}

fn kinds(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| e["kind"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[tokio::test]
async fn outcomes_move_the_callback_once_and_repeats_change_nothing() {
    let app = TestApp::spawn_dispatching().await;
    let mut consumer = Consumer::bind(&app.exchange, "#").await;
    let id = dispatched(&app, &mut consumer, &due_now()).await;

    let (status, body) = app.report(&id, 1, "accepted").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        (
            body["applied"].as_bool(),
            body["callback"]["state"].as_str()
        ),
        (Some(true), Some("accepted"))
    );
    let (status, body) = app.report(&id, 1, "accepted").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        (body["applied"].as_bool(), body["duplicate"].as_bool()),
        (Some(false), Some(true))
    );
    let (status, body) = app.report(&id, 1, "completed").await;
    assert_eq!(
        (status, body["callback"]["state"].as_str()),
        (StatusCode::OK, Some("completed")),
        "{body}"
    );
    assert_eq!(body["callback"]["lastOutcome"], "completed");
    // Too late: the callback is closed. Refused, and recorded.
    let (status, body) = app.report(&id, 1, "no_answer").await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(
        kinds(&app.events(&id).await),
        [
            "created",
            "dispatched",
            "accepted",
            "completed",
            "outcome_ignored"
        ]
    );

    for (outcome, needle) in [("failed", "failed"), ("invalid_number", "invalid")] {
        let id = dispatched(&app, &mut consumer, &due_now()).await;
        let (status, body) = app.report(&id, 1, outcome).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let callback = &body["callback"];
        assert_eq!(callback["state"], "failed");
        assert!(
            callback["lastError"]
                .as_str()
                .is_some_and(|e| e.contains(needle)),
            "{callback}"
        );
    }
    let (status, body) = app.report(&id, 1, "teleported").await;
    assert_result(status, &body, StatusCode::UNPROCESSABLE_ENTITY, "Default");
}

#[tokio::test]
async fn unanswered_attempts_retry_with_backoff_then_fail_and_late_outcomes_are_ignored() {
    let app = TestApp::spawn_dispatching().await;
    app.put_skill(
        SKILL_NO_ZONE,
        json!({"retryBackoffSeconds": [1, 2], "maxAttempts": 3}),
    )
    .await;
    let mut consumer = Consumer::bind(&app.exchange, "#").await;
    let id = dispatched(&app, &mut consumer, &due_now_on_plain_skill()).await;

    let mut published_at = Vec::new();
    for (attempt, outcome, backoff) in [(1, "no_answer", 1), (2, "busy", 2)] {
        let reported = Utc::now();
        let (status, body) = app.report(&id, attempt, outcome).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let callback = &body["callback"];
        assert_eq!(callback["state"], "pending");
        assert_eq!(callback["unansweredAttempts"], attempt);
        let next = parse_time(&callback["nextDueAt"]);
        assert!(
            (next - reported).num_milliseconds() >= backoff * 1000 - 50,
            "backoff {backoff} s: {callback}"
        );
        let m = consumer
            .next(Duration::from_secs(10))
            .await
            .expect("retried");
        assert_eq!(m.callback_id(), id);
        assert_eq!(
            m.message_id(),
            format!("{id}:{}", attempt + 1),
            "a new attempt is a new publication id: a dialer that drops repeats keeps it"
        );
        assert_eq!(m.body["attempt"], attempt + 1);
        assert!(m.received_at >= next, "not before its backoff");
        published_at.push(m.received_at);
        app.wait_state(&id, "dispatched", 5).await;
    }
    // A late report for attempt 1 is ignored but recorded.
    let (status, body) = app.report(&id, 1, "completed").await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.contains("attempt 1")),
        "{body}"
    );
    let (status, body) = app.report(&id, 3, "no_answer").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["callback"]["state"], "failed");
    assert!(
        body["callback"]["lastError"]
            .as_str()
            .is_some_and(|e| e.contains("3 unanswered")),
        "{body}"
    );
    assert_eq!(
        body["callback"]["unansweredAttempts"], 3,
        "the last unanswered attempt is counted too"
    );
    let kinds = kinds(&app.events(&id).await);
    assert_eq!(
        kinds,
        [
            "created",
            "dispatched",
            "retry_scheduled",
            "dispatched",
            "retry_scheduled",
            "dispatched",
            "outcome_ignored",
            "failed"
        ]
    );
    assert!(
        consumer.next(Duration::from_millis(1500)).await.is_none(),
        "a failed callback is not published"
    );
}

#[tokio::test]
async fn reschedule_outcome_moves_the_due_time_and_validates_it() {
    let app = TestApp::spawn_dispatching().await;
    let mut consumer = Consumer::bind(&app.exchange, "#").await;
    let id = dispatched(&app, &mut consumer, &due_now()).await;
    let path = format!("/v1/callbacks/{id}/outcomes");
    let bad = json!({"attempt": 1, "outcome": "reschedule", "scheduleDate": "whenever"});
    let (status, body) = app
        .call(reqwest::Method::POST, &path, Some(&app.admin), Some(&bad))
        .await;
    assert_result(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "InvalidScheduleDate",
    );
    // Over HTTP, a field the OpenAPI document does not list is refused (on the queue, a
    // newer dialer's extra field is ignored).
    let extra = json!({"attempt": 1, "outcome": "reschedule", "scheduledate": "tomorrow"});
    let (status, body) = app
        .call(reqwest::Method::POST, &path, Some(&app.admin), Some(&extra))
        .await;
    assert_result(status, &body, StatusCode::UNPROCESSABLE_ENTITY, "Default");
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.contains("`scheduledate`")),
        "{body}"
    );
    assert_eq!(app.get_callback(&id).await["state"], "dispatched");
    let later = in_(chrono::Duration::hours(3));
    let good = json!({"attempt": 1, "outcome": "reschedule", "scheduleDate": later});
    let (status, body) = app
        .call(reqwest::Method::POST, &path, Some(&app.admin), Some(&good))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["callback"]["state"], "pending");
    assert_eq!(
        parse_time(&body["callback"]["nextDueAt"]),
        parse_time(&json!(later))
    );
}

#[tokio::test]
async fn unaccepted_agent_callback_falls_back_to_the_skill_as_a_new_attempt() {
    let app = TestApp::spawn_dispatching().await;
    app.put_skill(SKILL_NO_ZONE, json!({"agentFallbackSeconds": 1}))
        .await;
    let mut consumer = Consumer::bind(&app.exchange, "#").await;
    let mut body = due_now_on_plain_skill();
    body["targetAgentId"] = json!(AGENT);
    let id = app.create_ok(&body).await;
    let first = consumer
        .next(Duration::from_secs(10))
        .await
        .expect("published to the agent");
    assert_eq!(
        (first.routing_key.as_str(), first.body["attempt"].as_i64()),
        (format!("agent.{AGENT}").as_str(), Some(1))
    );

    let second = consumer
        .next(Duration::from_secs(10))
        .await
        .expect("re-published to the skill");
    assert_eq!(second.callback_id(), id);
    assert_eq!(
        second.message_id(),
        format!("{id}:2"),
        "the fallback is a new publication"
    );
    assert_eq!(second.routing_key, format!("skill.{SKILL_NO_ZONE}"));
    assert_eq!(
        (
            second.body["route"].as_str(),
            second.body["attempt"].as_i64()
        ),
        (Some("skill"), Some(2))
    );
    assert_eq!(
        second.body["targetAgentId"], AGENT,
        "the agent it was meant for is still shown"
    );
    let waited = (second.received_at - first.received_at).num_milliseconds();
    assert!(
        waited >= 1000,
        "fell back after {waited} ms, before the 1 s timeout"
    );
    let events = app.events(&id).await;
    let fallback = events
        .iter()
        .find(|e| e["kind"] == "agent_fallback")
        .expect("agent_fallback event");
    assert_eq!(fallback["details"]["fromAgentId"], AGENT);
    let callback = app.wait_state(&id, "dispatched", 5).await;
    assert_eq!(callback["route"], "skill");
    assert!(callback["fellBackAt"].is_string());

    // Accepted in time: no fallback.
    let mut body = due_now_on_plain_skill();
    body["targetAgentId"] = json!(AGENT);
    let kept = app.create_ok(&body).await;
    consumer
        .next(Duration::from_secs(10))
        .await
        .expect("published");
    app.wait_state(&kept, "dispatched", 5).await;
    assert_eq!(app.report(&kept, 1, "accepted").await.0, StatusCode::OK);
    assert!(
        consumer.next(Duration::from_millis(2500)).await.is_none(),
        "an accepted callback stays with its agent"
    );
}

/// The next `weekday` strictly after today (UTC), at least two days ahead.
fn next(weekday: Weekday) -> NaiveDate {
    let mut day = Utc::now().date_naive() + Days::new(2);
    while day.weekday() != weekday {
        day = day + Days::new(1);
    }
    day
}

/// The first Sunday on or after `from` in `month` that falls `nth` (1-based) or last (0).
fn sunday(year: i32, month: u32, nth: u32) -> NaiveDate {
    let mut day = NaiveDate::from_ymd_opt(year, month, 1).expect("date");
    while day.weekday() != Weekday::Sun {
        day = day + Days::new(1);
    }
    if nth == 0 {
        while (day + Days::new(7)).month() == month {
            day = day + Days::new(7);
        }
        day
    } else {
        day + Days::new(7 * u64::from(nth - 1))
    }
}

/// The next change date at least two days ahead, from `pick(year)`.
fn upcoming(pick: impl Fn(i32) -> NaiveDate) -> NaiveDate {
    let soon = Utc::now().date_naive() + Days::new(2);
    let this = pick(soon.year());
    if this > soon {
        this
    } else {
        pick(soon.year() + 1)
    }
}

#[tokio::test]
async fn calling_hours_defer_a_saturday_night_callback_to_monday_morning_across_dst() {
    let app = TestApp::spawn().await;
    let hours = json!({"mon": ["08:00-21:00"], "tue": ["08:00-21:00"], "wed": ["08:00-21:00"],
                       "thu": ["08:00-21:00"], "fri": ["08:00-21:00"], "sat": ["09:00-17:00"]});
    app.put_skill(
        SKILL_NO_ZONE,
        json!({"callingHours": hours, "timeZone": "Europe/Paris"}),
    )
    .await;
    let create = |date: NaiveDate, zone: Option<&str>, policy: Option<&str>| {
        let mut body = with("skillId", json!(SKILL_NO_ZONE));
        body["scheduleDate"] = json!(format!("{date}T22:00:00"));
        if let Some(zone) = zone {
            body["timeZone"] = json!(zone);
        }
        if let Some(policy) = policy {
            body["windowPolicy"] = json!(policy);
        }
        let app = &app;
        async move { app.create(&body).await }
    };

    // Saturday 22:00 in Paris → Monday 08:00 Paris.
    let saturday = next(Weekday::Sat);
    let monday = saturday + Days::new(2);
    let (status, answer) = create(saturday, None, None).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    let due = parse_time(&answer["dueAt"]).with_timezone(&chrono_tz::Europe::Paris);
    assert_eq!(
        (due.date_naive(), due.format("%H:%M").to_string()),
        (monday, "08:00".to_owned()),
        "{answer}"
    );
    let id = answer["callbackId"].as_str().expect("id");
    let events = app.events(id).await;
    assert_eq!(kinds(&events), ["created", "deferred"]);
    assert!(
        events[1]["details"]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("calling hours"))
    );

    let (status, answer) = create(saturday, None, Some("reject")).await;
    assert_result(
        status,
        &answer,
        StatusCode::UNPROCESSABLE_ENTITY,
        "InvalidScheduleDate",
    );
    assert!(
        answer["message"]
            .as_str()
            .is_some_and(|m| m.contains("calling hours") && m.contains("next opening")),
        "{answer}"
    );

    // The weekend the clocks go forward in Europe: Saturday 22:00 CET → Monday 08:00 CEST.
    let spring = upcoming(|y| sunday(y, 3, 0));
    let (_, answer) = create(spring - Days::new(1), None, None).await;
    assert_eq!(
        answer["dueAt"],
        format!("{}T06:00:00Z", spring + Days::new(1)),
        "{answer}"
    );
    // The weekend the clocks go back in the US, in the contact's zone: Saturday 22:00 EDT →
    // Monday 08:00 EST.
    let fall = upcoming(|y| sunday(y, 11, 1));
    let (_, answer) = create(fall - Days::new(1), Some("America/New_York"), None).await;
    assert_eq!(
        answer["dueAt"],
        format!("{}T13:00:00Z", fall + Days::new(1)),
        "{answer}"
    );
}

/// Calling hours open all day, only on the weekday three days from now (UTC).
fn opens_in_three_days() -> (Value, chrono::DateTime<Utc>) {
    let day = Utc::now().date_naive() + Days::new(3);
    let name = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
        [day.weekday().num_days_from_monday() as usize];
    let opening = day.and_hms_opt(0, 0, 0).expect("midnight").and_utc();
    (json!({ name: ["00:00-24:00"] }), opening)
}

#[tokio::test]
async fn a_callback_maturing_outside_calling_hours_is_deferred_not_published() {
    let app = TestApp::spawn_dispatching().await;
    let mut consumer = Consumer::bind(&app.exchange, "#").await;
    let id = app.create_ok(&with("skillId", json!(SKILL_NO_ZONE))).await;
    let (hours, opening) = opens_in_three_days();
    app.put_skill(
        SKILL_NO_ZONE,
        json!({"callingHours": hours, "timeZone": "UTC"}),
    )
    .await;
    let (status, _) = app
        .call(
            reqwest::Method::PATCH,
            &format!("/v1/callbacks/{id}"),
            Some(&app.admin),
            Some(&json!({"scheduleDate": in_(chrono::Duration::zero())})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    for _ in 0..100 {
        if kinds(&app.events(&id).await).contains(&"deferred".to_owned()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let callback = app.get_callback(&id).await;
    assert_eq!(callback["state"], "pending");
    assert_eq!(parse_time(&callback["nextDueAt"]), opening, "{callback}");
    assert!(
        consumer.next(Duration::from_millis(1000)).await.is_none(),
        "not published outside the window"
    );
}

#[tokio::test]
async fn expired_callbacks_are_never_published() {
    // Nothing dispatches while the first one expires.
    let mut app = TestApp::spawn().await;
    let mut body = with("scheduleDate", json!(in_(chrono::Duration::seconds(1))));
    body["expiresAt"] = json!(in_(chrono::Duration::seconds(2)));
    let (status, answer) = app.create(&body).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    let id = answer["callbackId"].as_str().expect("id").to_owned();
    assert!(answer["expiresAt"].is_string());
    let expired = app.wait_state(&id, "expired", 10).await;
    assert!(
        expired["lastError"]
            .as_str()
            .is_some_and(|e| e.contains("expired")),
        "{expired}"
    );
    let events = app.events(&id).await;
    assert!(kinds(&events).contains(&"expired".to_owned()));
    // Every history's times are written alike, in UTC with a `Z`: as the API answers them.
    let at = events
        .iter()
        .find(|e| e["kind"] == "expired")
        .and_then(|e| e["details"]["expiresAt"].as_str())
        .expect("the expiry in the event");
    assert!(at.ends_with('Z'), "{at}");
    assert_eq!(parse_time(&json!(at)), parse_time(&answer["expiresAt"]));

    // Expiry while waiting for the calling window: it would open after it expires.
    declare_exchange(&app.exchange).await;
    let mut consumer = Consumer::bind(&app.exchange, "#").await;
    app.spawn_peer(|s| s.dispatch.enabled = true).await;
    let mut body = with("skillId", json!(SKILL_NO_ZONE));
    body["scheduleDate"] = json!(in_(chrono::Duration::seconds(2)));
    body["expiresAt"] = json!(in_(chrono::Duration::hours(1)));
    let waiting = app.create_ok(&body).await;
    let (hours, _) = opens_in_three_days();
    app.put_skill(SKILL_NO_ZONE, json!({"callingHours": hours}))
        .await;
    let gone = app.wait_state(&waiting, "expired", 10).await;
    assert!(
        gone["lastError"]
            .as_str()
            .is_some_and(|e| e.contains("calling hours")),
        "{gone}"
    );
    assert!(
        consumer.next(Duration::from_millis(500)).await.is_none(),
        "neither was published"
    );

    // Expiry must come after the due time.
    let mut bad = valid_body();
    bad["expiresAt"] = json!(in_(chrono::Duration::minutes(1)));
    let (status, answer) = app.create(&bad).await;
    assert_result(
        status,
        &answer,
        StatusCode::UNPROCESSABLE_ENTITY,
        "InvalidScheduleDate",
    );
}

#[tokio::test]
async fn outcomes_from_the_queue_apply_and_bad_ones_are_dead_lettered_without_blocking() {
    let app = TestApp::spawn_dispatching().await;
    let mut consumer = Consumer::bind(&app.exchange, "#").await;
    let id = dispatched(&app, &mut consumer, &due_now()).await;

    for garbage in [
        b"not json at all".to_vec(),
        json!({"schema": "callbackd.outcome.v1", "callbackId": uuid::Uuid::now_v7(), "attempt": 1, "outcome": "completed"}).to_string().into_bytes(),
        json!({"schema": "something.else", "callbackId": id, "attempt": 1, "outcome": "completed"}).to_string().into_bytes(),
        json!({"schema": "callbackd.outcome.v1", "callbackId": id, "attempt": 1, "outcome": "exploded"}).to_string().into_bytes(),
    ] {
        app.publish_outcome(&garbage).await;
    }
    let good = json!({"schema": "callbackd.outcome.v1", "callbackId": id, "attempt": 1, "outcome": "completed"});
    app.publish_outcome(good.to_string().as_bytes()).await;
    app.publish_outcome(good.to_string().as_bytes()).await;
    let callback = app.wait_state(&id, "completed", 10).await;
    assert_eq!(callback["lastOutcome"], "completed");
    assert_eq!(
        kinds(&app.events(&id).await)
            .iter()
            .filter(|k| *k == "completed")
            .count(),
        1,
        "applied once"
    );

    // The four bad ones wait in the dead-letter queue, each with its reason.
    let reasons = app.dead_letter_reasons(4).await;
    assert_eq!(reasons.len(), 4, "{reasons:?}");
    for needle in [
        "not a callbackd.outcome.v1",
        "does not exist",
        "something.else",
        "exploded",
    ] {
        assert!(
            reasons.iter().any(|r| r.contains(needle)),
            "{needle}: {reasons:?}"
        );
    }
}
