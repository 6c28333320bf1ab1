//! Bookable slots: availability, no overbooking under concurrent creates, the nearest free
//! slot, and places given back by a cancel or taken by a reschedule.

use chrono::{DateTime, Duration, DurationRound, SecondsFormat, Utc};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use testkit::prelude::*;

/// A 15-minute slot start two days ahead (London is a whole number of hours off UTC, so
/// UTC quarter hours are its slots too).
fn slot_start() -> DateTime<Utc> {
    (Utc::now() + Duration::days(2))
        .duration_trunc(Duration::minutes(15))
        .expect("truncated")
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

async fn with_slots(app: &TestApp, capacity: u32) {
    app.put_skill(
        SKILL,
        json!({ "timeZone": "Europe/London", "slotMinutes": 15, "slotCapacity": capacity }),
    )
    .await;
}

fn at(t: DateTime<Utc>) -> Value {
    with("scheduleDate", json!(rfc3339(t)))
}

async fn availability(app: &TestApp, query: &str) -> (StatusCode, Value) {
    app.call(
        Method::GET,
        &format!("/v1/skills/{SKILL}/availability?{query}"),
        Some(&app.admin),
        None,
    )
    .await
}

#[tokio::test]
async fn concurrent_creates_into_one_slot_never_overbook_it() {
    let app = TestApp::spawn().await;
    with_slots(&app, 5).await;
    let start = slot_start();
    let body = at(start + Duration::minutes(7));
    let answers = futures_util::future::join_all((0..24).map(|_| app.create(&body))).await;
    let accepted = answers
        .iter()
        .filter(|(s, _)| *s == StatusCode::CREATED)
        .count();
    assert_eq!(accepted, 5, "{answers:?}");
    for (status, answer) in answers.iter().filter(|(s, _)| *s != StatusCode::CREATED) {
        assert_result(
            *status,
            answer,
            StatusCode::UNPROCESSABLE_ENTITY,
            "InvalidScheduleDate",
        );
        let message = answer["message"].as_str().unwrap_or_default();
        assert!(
            message.contains("is full") && message.contains("nearest free"),
            "{message}"
        );
        let suggestions = answer["suggestions"].as_array().expect("suggestions");
        assert_eq!(suggestions.len(), 3, "{answer}");
        // The nearest: the slots just after and just before, then the one after that.
        assert_eq!(parse_time(&suggestions[0]), start + Duration::minutes(15));
        assert_eq!(parse_time(&suggestions[1]), start - Duration::minutes(15));
    }
    let (in_slot, booked): (i64, i32) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM callbacks WHERE slot_start = $1),
                (SELECT booked FROM slot_bookings WHERE skill_id = 101 AND slot_start = $1)",
    )
    .bind(start)
    .fetch_one(&app.pool)
    .await
    .expect("counts");
    assert_eq!((in_slot, booked), (5, 5));
    assert_eq!(app.row_counts().await.0, 5, "refusals wrote nothing");
}

#[tokio::test]
async fn availability_lists_the_places_left_in_calling_hours() {
    let app = TestApp::spawn().await;
    with_slots(&app, 3).await;
    let start = slot_start();
    app.create_ok(&at(start)).await;
    app.create_ok(&at(start + Duration::minutes(14))).await;
    let from = rfc3339(start - Duration::minutes(15));
    let to = rfc3339(start + Duration::minutes(45));
    let started = std::time::Instant::now();
    let (status, answer) =
        availability(&app, &format!("from={from}&to={to}&timeZone=Asia/Tokyo")).await;
    println!(
        "availability answered in {} ms",
        started.elapsed().as_millis()
    );
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["slotMinutes"], 15);
    assert_eq!(answer["timeZone"], "Asia/Tokyo");
    let slots = answer["slots"].as_array().expect("slots");
    assert_eq!(slots.len(), 4, "{answer}");
    let ours = &slots[1];
    assert_eq!(parse_time(&ours["start"]), start);
    assert!(
        ours["start"]
            .as_str()
            .unwrap_or_default()
            .ends_with("+09:00"),
        "{ours}"
    );
    assert_eq!(
        (
            ours["capacity"].clone(),
            ours["booked"].clone(),
            ours["remaining"].clone()
        ),
        (json!(3), json!(2), json!(1))
    );
    assert_eq!(slots[0]["remaining"], 3);

    // Calling hours limit what is offered; a skill without slots has no availability.
    app.put_skill(
        SKILL,
        json!({ "timeZone": "UTC", "slotMinutes": 60, "slotCapacity": 1,
                "callingHours": { "mon": ["09:00-11:00"], "tue": ["09:00-11:00"], "wed": ["09:00-11:00"],
                                  "thu": ["09:00-11:00"], "fri": ["09:00-11:00"], "sat": ["09:00-11:00"],
                                  "sun": ["09:00-11:00"] } }),
    )
    .await;
    let day = rfc3339(start.duration_trunc(Duration::days(1)).expect("day"));
    let (_, answer) = availability(&app, &format!("from={day}")).await;
    let starts: Vec<String> = answer["slots"]
        .as_array()
        .expect("slots")
        .iter()
        .map(|s| parse_time(&s["start"]).format("%H:%M").to_string())
        .collect();
    assert_eq!(starts, ["09:00", "10:00"], "{answer}");
    let (status, body) = app
        .call(
            Method::GET,
            &format!("/v1/skills/{SKILL_NEW_YORK}/availability"),
            Some(&app.admin),
            None,
        )
        .await;
    assert_result(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "InvalidSkillId",
    );
    let (status, _) = availability(&app, "from=2030-01-01T00:00:00Z&to=2030-02-01T00:00:00Z").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "more than 7 days");
    let (status, _) = availability(&app, "timeZone=Mars/Olympus").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn the_nearest_policy_books_the_nearest_free_slot_and_changes_move_places() {
    let app = TestApp::spawn().await;
    with_slots(&app, 1).await;
    let start = slot_start();
    let first = app.create_ok(&at(start + Duration::minutes(3))).await;
    let mut nearest = at(start + Duration::minutes(5));
    nearest["slotPolicy"] = json!("nearest");
    let (status, answer) = app.create(&nearest).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    assert_eq!(
        parse_time(&answer["dueAt"]),
        start + Duration::minutes(15),
        "the later of two equally near"
    );
    let (status, answer) = app.create(&nearest).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    assert_eq!(parse_time(&answer["dueAt"]), start - Duration::minutes(15));
    let mut bad = nearest.clone();
    bad["slotPolicy"] = json!("anywhere");
    let (status, _) = app.create(&bad).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);

    // Cancelling gives the place back; a reschedule into a full slot is refused.
    let (status, _) = app
        .call(
            Method::DELETE,
            &format!("/v1/callbacks/{first}"),
            Some(&app.admin),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let second = app.create_ok(&at(start)).await;
    let (status, body) = app
        .call(
            Method::PATCH,
            &format!("/v1/callbacks/{second}"),
            Some(&app.admin),
            Some(&json!({ "scheduleDate": rfc3339(start + Duration::minutes(16)) })),
        )
        .await;
    assert_result(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "InvalidScheduleDate",
    );
    assert_eq!(
        app.get_callback(&second).await["dueAt"],
        json!(rfc3339(start)),
        "unchanged"
    );
    // Into a free slot: the place moves with it.
    let later = start + Duration::minutes(45);
    let (status, body) = app
        .call(
            Method::PATCH,
            &format!("/v1/callbacks/{second}"),
            Some(&app.admin),
            Some(&json!({ "scheduleDate": rfc3339(later) })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let booked: Vec<(DateTime<Utc>, i32)> =
        sqlx::query_as("SELECT slot_start, booked FROM slot_bookings ORDER BY slot_start")
            .fetch_all(&app.pool)
            .await
            .expect("bookings");
    assert_eq!(
        booked,
        [
            (start - Duration::minutes(15), 1),
            (start, 0),
            (start + Duration::minutes(15), 1),
            (later, 1)
        ]
    );
}
