//! Calendars of closed dates and special hours: stored as JSON or read from an iCalendar
//! file, assigned to skills, and honoured where calling hours are — at create, by the
//! dispatcher — and kept while a skill uses them.

use std::time::Duration;

use chrono::{Days, Utc};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use testkit::prelude::*;

async fn put_calendar(app: &TestApp, name: &str, body: &Value) -> (StatusCode, Value) {
    app.call(
        Method::PUT,
        &format!("/v1/calendars/{name}"),
        Some(&app.admin),
        Some(body),
    )
    .await
}

async fn assign(app: &TestApp, skill: i64, calendar: Option<&str>) -> (StatusCode, Value) {
    let body = json!({
        "name": format!("skill {skill}"), "mediaType": "phone", "direction": "outbound",
        "active": true, "timeZone": "Europe/London", "calendar": calendar
    });
    app.call(
        Method::PUT,
        &format!("/v1/skills/{skill}"),
        Some(&app.admin),
        Some(&body),
    )
    .await
}

/// A date `days` ahead in London, as `YYYY-MM-DD`.
fn london_date(days: u64) -> chrono::NaiveDate {
    let london: chrono_tz::Tz = "Europe/London".parse().expect("zone");
    Utc::now().with_timezone(&london).date_naive() + Days::new(days)
}

#[tokio::test]
async fn a_closed_date_defers_or_refuses_a_create_and_says_why() {
    let app = TestApp::spawn().await;
    let closed = london_date(20);
    let (status, stored) = put_calendar(
        &app,
        "uk-holidays",
        &json!({"timeZone": "Europe/London", "days": [
            {"date": closed.to_string(), "label": "Founders' Day"},
            {"date": (closed + Days::new(1)).to_string(), "hours": ["09:00-13:00"]}
        ]}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{stored}");
    assert_eq!(stored["days"].as_array().map(Vec::len), Some(2));

    let (status, refused) = assign(&app, SKILL, Some("no-such-calendar")).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");
    assert!(
        refused["message"]
            .as_str()
            .unwrap_or_default()
            .contains("calendar")
    );
    let (status, skill) = assign(&app, SKILL, Some("uk-holidays")).await;
    assert_eq!(status, StatusCode::OK, "{skill}");
    assert_eq!(skill["calendar"], "uk-holidays");

    // 10:00 on the closed date: deferred to the next date's special opening, 09:00.
    let mut body = valid_body();
    body["scheduleDate"] = json!(format!("{closed}T10:00:00"));
    let (status, created) = app.create(&body).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let london: chrono_tz::Tz = "Europe/London".parse().expect("zone");
    let due = parse_time(&created["dueAt"]).with_timezone(&london);
    assert_eq!(
        due.naive_local(),
        (closed + Days::new(1)).and_hms_opt(9, 0, 0).expect("time"),
        "{created}"
    );
    let id = created["callbackId"].as_str().expect("id");
    let (_, events) = app
        .call(
            Method::GET,
            &format!("/v1/callbacks/{id}/events"),
            Some(&app.admin),
            None,
        )
        .await;
    assert!(
        events.to_string().contains("Founders' Day")
            && events.to_string().contains("calendar uk-holidays"),
        "the reason names the day and the calendar: {events}"
    );
    // 14:00 on the special date is after its hours: with windowPolicy reject, refused.
    body["scheduleDate"] = json!(format!("{}T14:00:00", closed + Days::new(1)));
    body["windowPolicy"] = json!("reject");
    let (status, refused) = app.create(&body).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");
    assert_eq!(refused["result"], "InvalidScheduleDate");
    assert!(
        refused["message"]
            .as_str()
            .unwrap_or_default()
            .contains("special hours 09:00-13:00"),
        "{refused}"
    );
}

#[tokio::test]
async fn the_dispatcher_holds_a_due_callback_on_a_closed_date() {
    let app = TestApp::spawn_dispatching().await;
    let mut consumer = testkit::tap::Consumer::bind(&app.exchange, "#").await;
    let today = london_date(0);
    put_calendar(
        &app,
        "closed-today",
        &json!({"timeZone": "Europe/London", "days": [{"date": today.to_string()}]}),
    )
    .await;
    assign(&app, SKILL, Some("closed-today")).await;
    // Straight into the table, as if booked before the calendar said so.
    let ids = app.insert_due(1, None).await;
    let received = consumer.take(1, Duration::from_secs(3)).await;
    assert!(received.is_empty(), "nothing is published on a closed date");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let callback = app.get_callback(&ids[0]).await;
        let due = parse_time(&callback["dueAt"]);
        if callback["state"] == "pending" && due > Utc::now() {
            assert!(due >= london_midnight(today + Days::new(1)), "{callback}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not deferred: {callback}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn london_midnight(date: chrono::NaiveDate) -> chrono::DateTime<Utc> {
    let london: chrono_tz::Tz = "Europe/London".parse().expect("zone");
    date.and_hms_opt(0, 0, 0)
        .expect("midnight")
        .and_local_timezone(london)
        .earliest()
        .expect("instant")
        .with_timezone(&Utc)
}

#[tokio::test]
async fn an_icalendar_file_is_a_calendar_and_an_assigned_one_is_kept() {
    let app = TestApp::spawn().await;
    let feed = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\n\
BEGIN:VEVENT\r\nUID:a\r\nDTSTAMP:20261101T000000Z\r\nSUMMARY:Boxing Day\r\n\
DTSTART;VALUE=DATE:20271226\r\nEND:VEVENT\r\n\
BEGIN:VEVENT\r\nUID:b\r\nDTSTAMP:20261101T000000Z\r\nSUMMARY:Half day\r\n\
DTSTART:20271224T090000\r\nDTEND:20271224T130000\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";
    let r = app
        .client
        .put(format!(
            "{}/v1/calendars/uk?timeZone=Europe/London",
            app.base
        ))
        .bearer_auth(&app.admin)
        .header("content-type", "text/calendar")
        .body(feed)
        .send()
        .await
        .expect("sent");
    assert_eq!(r.status(), StatusCode::OK);
    let stored: Value = r.json().await.expect("json");
    assert_eq!(stored["timeZone"], "Europe/London");
    assert_eq!(
        stored["days"],
        json!([
            {"date": "2027-12-24", "hours": ["09:00-13:00"], "label": "Half day"},
            {"date": "2027-12-26", "label": "Boxing Day"}
        ])
    );
    let r = app
        .client
        .put(format!("{}/v1/calendars/bad", app.base))
        .bearer_auth(&app.admin)
        .header("content-type", "text/calendar")
        .body("BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nSUMMARY:no start\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n")
        .send()
        .await
        .expect("sent");
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);

    assign(&app, SKILL, Some("uk")).await;
    let (status, got) = app
        .call(Method::GET, "/v1/calendars/uk", Some(&app.admin), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(got["skillIds"], json!([SKILL]));
    let (status, conflict) = app
        .call(Method::DELETE, "/v1/calendars/uk", Some(&app.admin), None)
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{conflict}");
    assert!(
        conflict["message"]
            .as_str()
            .unwrap_or_default()
            .contains("101")
    );
    assign(&app, SKILL, None).await;
    let (status, _) = app
        .call(Method::DELETE, "/v1/calendars/uk", Some(&app.admin), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = app
        .call(Method::GET, "/v1/calendars/uk", Some(&app.admin), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // A user restricted to some skills may not change calendars (they serve any skill).
    let restricted = app
        .token("ops-101", &["directory:read", "directory:write"], &[SKILL])
        .await;
    let (status, _) = app
        .call(
            Method::PUT,
            "/v1/calendars/theirs",
            Some(&restricted),
            Some(&json!({"timeZone": "UTC", "days": []})),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

/// The operator's command reads an iCalendar file into the same calendar.
#[tokio::test]
async fn calendar_import_reads_an_icalendar_file() {
    let app = TestApp::spawn().await;
    let file = std::env::temp_dir().join(format!(
        "callbackd-cal-{}.ics",
        uuid::Uuid::now_v7().simple()
    ));
    std::fs::write(
        &file,
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\nBEGIN:VEVENT\r\nUID:a\r\n\
DTSTAMP:20261101T000000Z\r\nSUMMARY:Christmas Day\r\nDTSTART;VALUE=DATE:20271225\r\n\
END:VEVENT\r\nEND:VCALENDAR\r\n",
    )
    .expect("written");
    let path = file.to_string_lossy().into_owned();
    let out = testkit::cli::run(
        &app,
        &[
            "calendar",
            "import",
            "uk",
            &path,
            "--time-zone",
            "Europe/London",
            "--as",
            "admin",
        ],
    );
    assert!(out.status.success(), "{}", testkit::cli::stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("1 date (1 closed"));
    let (status, got) = app
        .call(Method::GET, "/v1/calendars/uk", Some(&app.admin), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        got["days"],
        json!([{"date": "2027-12-25", "label": "Christmas Day"}])
    );
    let out = testkit::cli::run(
        &app,
        &["calendar", "import", "bad name", &path, "--as", "admin"],
    );
    assert!(!out.status.success());
    let _ = std::fs::remove_file(file);
}
