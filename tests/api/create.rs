//! `POST /v1/callbacks`: one test per result code and per rule of the spec.

use chrono::{Duration, Utc};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use testkit::prelude::*;

#[tokio::test]
async fn schedule_valid_callback_returns_success_and_stores_it_pending() {
    let app = TestApp::spawn().await;
    let due = in_(Duration::hours(2));
    let (status, body) = app.create(&with("scheduleDate", json!(due))).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["result"], "Success");
    assert_eq!(parse_time(&body["dueAt"]), parse_time(&json!(due)));
    let id = body["callbackId"].as_str().expect("id");

    let stored = app.get_callback(id).await;
    assert_eq!(stored["state"], "pending");
    assert_eq!(stored["firstName"], "Ada");
    assert_eq!(stored["lastName"], "Lovelace");
    assert_eq!(stored["phoneNumber"], "+442079460958");
    assert_eq!(stored["skillId"], SKILL);
    assert_eq!(stored["targetAgentId"], Value::Null);
    assert_eq!(stored["notes"], "re: invoice 42");
    assert_eq!(stored["createdBy"], "admin");
    assert_eq!(stored["attempt"], 0);
    let events = app.events(id).await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["kind"], "created");
    assert_eq!(events[0]["actor"], "admin");
}

#[tokio::test]
async fn target_agent_has_priority_over_the_skill() {
    let app = TestApp::spawn().await;
    let id = app
        .create_ok(&with("targetAgentId", json!(AGENT.to_string())))
        .await;
    let stored = app.get_callback(&id).await;
    assert_eq!(stored["route"], "agent");
    assert_eq!(stored["routingKey"], format!("agent.{AGENT}"));
    assert_eq!(stored["targetAgentId"], AGENT);
    assert_eq!(
        stored["skillId"], SKILL,
        "the skill is kept: the agent dials with it"
    );

    let id = app.create_ok(&with("targetAgentId", json!(AGENT))).await;
    assert_eq!(
        app.get_callback(&id).await["route"],
        "agent",
        "a JSON number works too"
    );
}

#[tokio::test]
async fn empty_absent_or_null_target_agent_routes_to_the_skill() {
    let app = TestApp::spawn().await;
    for body in [
        with("targetAgentId", json!("")),
        with("targetAgentId", Value::Null),
        without("targetAgentId"),
    ] {
        let id = app.create_ok(&body).await;
        let stored = app.get_callback(&id).await;
        assert_eq!(stored["route"], "skill", "{body}");
        assert_eq!(stored["routingKey"], format!("skill.{SKILL}"));
        assert_eq!(stored["targetAgentId"], Value::Null);
    }
}

#[tokio::test]
async fn schedule_with_unknown_inactive_or_non_outbound_phone_skill_returns_invalid_skill_id() {
    let app = TestApp::spawn().await;
    for (skill, needle) in [
        (json!(999), "999 does not exist"),
        (json!(SKILL_INACTIVE), "not active"),
        (json!(SKILL_CHAT), "not an outbound phone skill"),
        (json!(SKILL_INBOUND_PHONE), "not an outbound phone skill"),
        (json!("abc"), "`abc`"),
        (json!(0), "`0`"),
        (json!(-5), "`-5`"),
        (json!(""), "not a valid skill id"),
    ] {
        let (status, body) = app.create(&with("skillId", skill.clone())).await;
        assert_result(
            status,
            &body,
            StatusCode::UNPROCESSABLE_ENTITY,
            "InvalidSkillId",
        );
        assert!(
            body["message"].as_str().is_some_and(|m| m.contains(needle)),
            "{skill}: {body}"
        );
    }
    let (status, body) = app.create(&without("skillId")).await;
    assert_result(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "InvalidSkillId",
    );
    let (status, body) = app.create(&with("skillId", json!(SKILL.to_string()))).await;
    assert_eq!(
        status,
        StatusCode::CREATED,
        "a skill id as a string of digits is fine: {body}"
    );
    assert_eq!(app.row_counts().await.0, 1);
}

#[tokio::test]
async fn schedule_with_unknown_or_inactive_agent_returns_invalid_target_agent_id() {
    let app = TestApp::spawn().await;
    for (agent, needle) in [
        (json!("999"), "999 does not exist"),
        (json!(AGENT_INACTIVE), "is not active"),
        (json!("jdoe"), "`jdoe`"),
        (json!(-1), "`-1`"),
    ] {
        let (status, body) = app.create(&with("targetAgentId", agent.clone())).await;
        assert_result(
            status,
            &body,
            StatusCode::UNPROCESSABLE_ENTITY,
            "InvalidTargetAgentId",
        );
        assert!(
            body["message"].as_str().is_some_and(|m| m.contains(needle)),
            "{agent}: {body}"
        );
    }
    assert_eq!(app.row_counts().await, (0, 0, 0));
}

#[tokio::test]
async fn schedule_with_unparseable_date_returns_invalid_schedule_date() {
    let app = TestApp::spawn().await;
    for date in [
        json!("tomorrow at 3"),
        json!("2026-02-30T10:00:00Z"),
        json!("2026-11-25"),
        json!(""),
    ] {
        let (status, body) = app.create(&with("scheduleDate", date.clone())).await;
        assert_result(
            status,
            &body,
            StatusCode::UNPROCESSABLE_ENTITY,
            "InvalidScheduleDate",
        );
    }
    let (status, body) = app.create(&without("scheduleDate")).await;
    assert_result(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "InvalidScheduleDate",
    );
    let (status, body) = app
        .create(&with("timeZone", json!("Mars/Olympus_Mons")))
        .await;
    assert_result(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "InvalidScheduleDate",
    );
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.contains("Mars/Olympus_Mons")),
        "{body}"
    );
}

#[tokio::test]
async fn local_time_reads_in_request_zone_then_skill_zone_then_default() {
    let app = TestApp::spawn().await;
    let year = Utc::now()
        .date_naive()
        .format("%Y")
        .to_string()
        .parse::<i32>()
        .expect("year")
        + 1;
    let local = format!("{year}-01-15T09:00:00");

    let mut body = with("scheduleDate", json!(local));
    body["timeZone"] = json!("Asia/Tokyo");
    let (_, answer) = app.create(&body).await;
    assert_eq!(
        answer["dueAt"],
        format!("{year}-01-15T00:00:00Z"),
        "request zone: {answer}"
    );

    let body = with("scheduleDate", json!(local));
    let (_, answer) = app.create(&body).await;
    assert_eq!(
        answer["dueAt"],
        format!("{year}-01-15T09:00:00Z"),
        "skill zone London (GMT): {answer}"
    );

    let mut body = with("scheduleDate", json!(local));
    body["skillId"] = json!(SKILL_NEW_YORK);
    let (_, answer) = app.create(&body).await;
    assert_eq!(
        answer["dueAt"],
        format!("{year}-01-15T14:00:00Z"),
        "skill zone New York: {answer}"
    );

    let mut body = with("scheduleDate", json!(local));
    body["skillId"] = json!(SKILL_NO_ZONE);
    let (_, answer) = app.create(&body).await;
    assert_eq!(
        answer["dueAt"],
        format!("{year}-01-15T09:00:00Z"),
        "default zone UTC: {answer}"
    );
}

#[tokio::test]
async fn local_time_in_a_dst_gap_is_invalid_and_a_repeated_one_takes_the_earlier_instant() {
    let app = TestApp::spawn().await;
    // Pick next spring's and autumn's change days in London (last Sunday of March/October).
    let (gap, overlap) = next_london_changes();
    let (status, body) = app
        .create(&with("scheduleDate", json!(format!("{gap}T01:30:00"))))
        .await;
    assert_result(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "InvalidScheduleDate",
    );
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.contains("does not exist")),
        "{body}"
    );

    let (status, body) = app
        .create(&with("scheduleDate", json!(format!("{overlap}T01:30:00"))))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(
        body["dueAt"],
        format!("{overlap}T00:30:00Z"),
        "01:30 BST, the earlier of the two"
    );
}

/// The next last-Sunday-of-March and last-Sunday-of-October that lie in the future.
fn next_london_changes() -> (String, String) {
    use chrono::{Datelike, NaiveDate, Weekday};
    let last_sunday = |year: i32, month: u32| {
        let mut day = NaiveDate::from_ymd_opt(year, month, 31).expect("date");
        while day.weekday() != Weekday::Sun {
            day = day.pred_opt().expect("date");
        }
        day
    };
    let today = Utc::now().date_naive();
    let pick = |month| {
        let this = last_sunday(today.year(), month);
        if this > today + chrono::Days::new(1) {
            this
        } else {
            last_sunday(today.year() + 1, month)
        }
    };
    (pick(3).to_string(), pick(10).to_string())
}

#[tokio::test]
async fn schedule_date_outside_grace_or_horizon_is_invalid_and_inside_grace_is_due_now() {
    let app = TestApp::spawn().await;
    let (status, body) = app
        .create(&with("scheduleDate", json!(in_(-Duration::minutes(6)))))
        .await;
    assert_result(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "InvalidScheduleDate",
    );
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.contains("in the past")),
        "{body}"
    );

    let (status, body) = app
        .create(&with("scheduleDate", json!(in_(Duration::days(367)))))
        .await;
    assert_result(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "InvalidScheduleDate",
    );
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.contains("366 days")),
        "{body}"
    );

    let before = Utc::now();
    let id = app
        .create_ok(&with("scheduleDate", json!(in_(-Duration::minutes(4)))))
        .await;
    let stored = app.get_callback(&id).await;
    let due = parse_time(&stored["dueAt"]);
    assert!(
        due >= before - Duration::seconds(1) && due <= Utc::now() + Duration::seconds(1),
        "due now: {stored}"
    );
    assert!(
        parse_time(&stored["scheduledFor"]) < before - Duration::minutes(3),
        "asked-for time kept: {stored}"
    );
    assert!(
        app.create(&with("scheduleDate", json!(in_(Duration::days(365)))))
            .await
            .0
            .is_success()
    );
}

#[tokio::test]
async fn schedule_with_missing_or_malformed_phone_number_returns_invalid_phone_number() {
    let app = TestApp::spawn().await;
    for phone in [
        json!(""),
        json!("+448675309"),
        json!("call me"),
        json!("+1"),
        Value::Null,
    ] {
        let (status, body) = app.create(&with("phoneNumber", phone.clone())).await;
        assert_result(
            status,
            &body,
            StatusCode::UNPROCESSABLE_ENTITY,
            "InvalidPhoneNumber",
        );
    }
    let (status, body) = app.create(&without("phoneNumber")).await;
    assert_result(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "InvalidPhoneNumber",
    );
    assert_eq!(app.row_counts().await, (0, 0, 0));
}

#[tokio::test]
async fn phone_numbers_are_stored_as_e164_with_national_ones_read_in_the_default_region() {
    let app = TestApp::spawn().await;
    for (input, e164) in [
        ("+44 20 7946 0958", "+442079460958"),
        ("(415) 555-2671", "+14155552671"),
        ("+1-415-555-2671", "+14155552671"),
        // The national trunk prefix in parentheses, as UK numbers are printed.
        ("+44 (0) 20 7946 0958", "+442079460958"),
    ] {
        let id = app.create_ok(&with("phoneNumber", json!(input))).await;
        assert_eq!(app.get_callback(&id).await["phoneNumber"], e164, "{input}");
    }
    // A national number is read in the default region, and a refusal says which.
    let (status, body) = app
        .create(&with("phoneNumber", json!("020 7946 095")))
        .await;
    assert_result(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "InvalidPhoneNumber",
    );
    let message = body["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("national number of region US"),
        "{message}"
    );
}

#[tokio::test]
async fn repeated_request_with_the_same_idempotency_key_returns_the_first_answer() {
    let app = TestApp::spawn().await;
    let body = valid_body();
    let send = |body: Value, key: &'static str| {
        let request = app
            .client
            .post(format!("{}/v1/callbacks", app.base))
            .bearer_auth(&app.admin)
            .header("Idempotency-Key", key)
            .json(&body);
        async move { read(request.send().await.expect("sent")).await }
    };
    let (status, first) = send(body.clone(), "order-42").await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, again) = send(body.clone(), "order-42").await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(first, again);
    assert_eq!(app.row_counts().await, (1, 1, 1));

    let (status, reused) = send(with("notes", json!("other")), "order-42").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{reused}");
    assert_eq!(reused["result"], "Default");
    assert!(
        reused["message"]
            .as_str()
            .is_some_and(|m| m.contains("order-42")),
        "{reused}"
    );

    // Concurrent repeats: still one callback.
    let results = futures_join(
        (0..8)
            .map(|_| send(body.clone(), "burst-1"))
            .collect::<Vec<_>>(),
    )
    .await;
    let ids: std::collections::HashSet<_> = results
        .iter()
        .map(|(status, b)| {
            assert_eq!(*status, StatusCode::CREATED, "{b}");
            b["callbackId"].as_str().expect("id").to_owned()
        })
        .collect();
    assert_eq!(ids.len(), 1, "{results:?}");
    assert_eq!(app.row_counts().await.0, 2);
}

/// A retry of a stored create (its answer lost, say, to a 408) gets the stored answer even
/// when the create would now be refused: here its number was listed as do-not-call since.
/// Judging it again would have the client create it a second time without the key.
#[tokio::test]
async fn a_retry_of_a_stored_create_is_answered_before_the_rules_are_judged_again() {
    let app = TestApp::spawn().await;
    let body = valid_body();
    let send = |key: &'static str| {
        let request = app
            .client
            .post(format!("{}/v1/callbacks", app.base))
            .bearer_auth(&app.admin)
            .header("Idempotency-Key", key)
            .json(&body);
        async move {
            let response = request.send().await.expect("sent");
            let replayed = response.headers().contains_key("idempotent-replayed");
            let (status, answer) = read(response).await;
            (status, answer, replayed)
        }
    };
    let (status, first, _) = send("ivr-7781").await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    let phone = body["phoneNumber"]
        .as_str()
        .expect("phone")
        .replace('+', "%2B");
    let (status, listed) = app
        .call(
            Method::PUT,
            &format!("/v1/dnc/{phone}"),
            Some(&app.admin),
            Some(&json!({ "reason": "asked after booking" })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{listed}");

    let (status, again, replayed) = send("ivr-7781").await;
    assert_eq!(status, StatusCode::CREATED, "{again}");
    assert!(replayed);
    assert_eq!(again, first);
    // A new create of the number is refused: the rule holds for what is not stored yet.
    let (status, refused, _) = send("ivr-7782").await;
    assert_result(
        status,
        &refused,
        StatusCode::UNPROCESSABLE_ENTITY,
        "InvalidPhoneNumber",
    );
    assert_eq!(app.row_counts().await.0, 1);
}

async fn futures_join<F>(futures: Vec<F>) -> Vec<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let mut handles = Vec::new();
    for f in futures {
        handles.push(tokio::spawn(f));
    }
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.expect("task"));
    }
    out
}

#[tokio::test]
async fn over_long_and_nul_text_fields_return_default_and_store_nothing() {
    let app = TestApp::spawn().await;
    for (field, value) in [
        ("firstName", json!("x".repeat(101))),
        ("lastName", json!("x".repeat(101))),
        ("notes", json!("x".repeat(4001))),
        ("notes", json!("nul \u{0} byte")),
    ] {
        let (status, body) = app.create(&with(field, value)).await;
        assert_result(status, &body, StatusCode::UNPROCESSABLE_ENTITY, "Default");
        assert!(
            body["message"].as_str().is_some_and(|m| m.contains(field)),
            "{body}"
        );
    }
    assert_eq!(app.row_counts().await, (0, 0, 0));
}

#[tokio::test]
async fn unicode_and_sql_metacharacters_round_trip_unchanged() {
    let app = TestApp::spawn().await;
    let mut body = valid_body();
    body["firstName"] = json!("Zoë'); DROP TABLE callbacks;--");
    body["lastName"] = json!("Ñandú 日本 🚀");
    body["notes"] = json!("line 1\nline 2\t\"quoted\" \\ %s $1");
    let id = app.create_ok(&body).await;
    let stored = app.get_callback(&id).await;
    for field in ["firstName", "lastName", "notes"] {
        assert_eq!(stored[field], body[field], "{field}");
    }
    let (status, _) = app
        .call(Method::GET, "/v1/callbacks", Some(&app.admin), None)
        .await;
    assert_eq!(status, StatusCode::OK, "the table is still there");
}

/// Concurrent creates are written in groups (one statement, one commit): each request still
/// gets its own callback, readable with its own fields and its own `created` event.
#[tokio::test]
async fn concurrent_creates_each_get_their_own_callback_and_event() {
    let app = TestApp::spawn().await;
    let results = futures_join(
        (0..48)
            .map(|i| {
                let request = app
                    .client
                    .post(format!("{}/v1/callbacks", app.base))
                    .bearer_auth(&app.admin)
                    .json(&with("firstName", json!(format!("Caller {i}"))));
                async move { (i, read(request.send().await.expect("sent")).await) }
            })
            .collect::<Vec<_>>(),
    )
    .await;
    let mut ids = std::collections::HashSet::new();
    for (i, (status, body)) in &results {
        assert_eq!(*status, StatusCode::CREATED, "{body}");
        let id = body["callbackId"].as_str().expect("id").to_owned();
        let stored = app.get_callback(&id).await;
        assert_eq!(stored["firstName"], format!("Caller {i}"), "{stored}");
        let events = app.events(&id).await;
        assert_eq!(events[0]["kind"], "created", "{events:?}");
        ids.insert(id);
    }
    assert_eq!(ids.len(), 48);
    assert_eq!(app.row_counts().await, (48, 48, 0));
}
