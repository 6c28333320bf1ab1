//! The do-not-call list: its API and permissions, refusal at booking, and suppression at
//! dispatch of callbacks booked before their number was listed.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::json;

use testkit::prelude::*;
use testkit::tap::Consumer;

const NUMBER: &str = "+442079460958";
const OTHER: &str = "+14155552671";

async fn list(
    app: &TestApp,
    phone: &str,
    body: serde_json::Value,
) -> (StatusCode, serde_json::Value) {
    app.call(
        Method::PUT,
        &format!("/v1/dnc/{phone}"),
        Some(&app.admin),
        Some(&body),
    )
    .await
}

#[tokio::test]
async fn entries_are_listed_read_and_removed_with_an_audit_trail_and_their_own_permissions() {
    let app = TestApp::spawn().await;
    let (status, entry) = list(&app, NUMBER, json!({ "reason": "asked on 2026-11-02" })).await;
    assert_eq!(status, StatusCode::CREATED, "{entry}");
    assert_eq!(entry["phoneNumber"], NUMBER);
    assert_eq!(entry["skillId"], json!(null));
    assert_eq!(entry["active"], true);
    assert_eq!(entry["createdBy"], "admin");
    // The same scope again replaces the entry; another scope is a second entry. Spaces and
    // `%2B` for `+` name the same number.
    let (status, _) = list(&app, "%2B442079460958", json!({ "reason": "asked twice" })).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = list(
        &app,
        "%2B44%2020%207946%200958",
        json!({ "skillId": SKILL_NEW_YORK }),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);

    let (status, number) = app
        .call(
            Method::GET,
            &format!("/v1/dnc/{NUMBER}"),
            Some(&app.admin),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{number}");
    assert_eq!(number["listedForEverySkill"], true);
    let entries = number["entries"].as_array().expect("entries");
    assert_eq!(entries.len(), 2, "{number}");
    assert_eq!(entries[0]["reason"], "asked twice");
    let kinds: Vec<&str> = number["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|e| e["kind"].as_str())
        .collect();
    assert_eq!(
        kinds,
        ["listed", "updated", "listed"],
        "oldest first, as every history: {number}"
    );
    // The same entry again writes nothing: no update, no event.
    let (status, again) = list(&app, NUMBER, json!({ "reason": "asked twice" })).await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(again["reason"], "asked twice");
    let (_, unchanged) = app
        .call(
            Method::GET,
            &format!("/v1/dnc/{NUMBER}"),
            Some(&app.admin),
            None,
        )
        .await;
    assert_eq!(
        unchanged["events"].as_array().map(Vec::len),
        Some(3),
        "{unchanged}"
    );

    // Their own permissions: callbacks and directory rights do not reach the list.
    let clerk = app
        .token(
            "clerk",
            &["callbacks:create", "callbacks:read", "directory:write"],
            &[],
        )
        .await;
    let reader = app.token("reader", &["dnc:read"], &[]).await;
    let path = format!("/v1/dnc/{OTHER}");
    let (status, body) = app
        .call(Method::PUT, &path, Some(&clerk), Some(&json!({})))
        .await;
    assert_result(status, &body, StatusCode::FORBIDDEN, "InvalidSecurityUser");
    let (status, _) = app.call(Method::GET, &path, Some(&clerk), None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, body) = app.call(Method::GET, &path, Some(&reader), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["entries"], json!([]));
    let (status, _) = app
        .call(Method::PUT, &path, Some(&reader), Some(&json!({})))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // A user restricted to a skill may list for that skill only.
    let local = app.token("local", &["dnc:write"], &[SKILL]).await;
    let (status, _) = app
        .call(Method::PUT, &path, Some(&local), Some(&json!({})))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "every skill is beyond it");
    let (status, _) = app
        .call(
            Method::PUT,
            &path,
            Some(&local),
            Some(&json!({ "skillId": SKILL })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);

    // Bad input: a clear error each, nothing written.
    let (status, body) = list(&app, "12", json!({})).await;
    assert_result(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "InvalidPhoneNumber",
    );
    let (status, body) = list(
        &app,
        OTHER,
        json!({ "expiresAt": in_(chrono::Duration::hours(-1)) }),
    )
    .await;
    assert_result(status, &body, StatusCode::UNPROCESSABLE_ENTITY, "Default");
    assert!(
        body["message"]
            .as_str()
            .unwrap_or_default()
            .contains("expiresAt"),
        "{body}"
    );
    let (status, body) = list(&app, OTHER, json!({ "skillId": 999 })).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    let (status, _) = list(&app, OTHER, json!({ "colour": "red" })).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);

    let (status, _) = app
        .call(
            Method::DELETE,
            &format!("/v1/dnc/{NUMBER}?reason=consent%20given"),
            Some(&app.admin),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = app
        .call(
            Method::DELETE,
            &format!("/v1/dnc/{NUMBER}"),
            Some(&app.admin),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "already gone");
    let (_, number) = app
        .call(
            Method::GET,
            &format!("/v1/dnc/{NUMBER}"),
            Some(&app.admin),
            None,
        )
        .await;
    assert_eq!(number["listedForEverySkill"], false);
    assert_eq!(
        number["entries"].as_array().map(Vec::len),
        Some(1),
        "the skill's entry stays"
    );
    let events = number["events"].as_array().expect("events");
    let last = events.last().expect("an event");
    assert_eq!(last["kind"], "removed", "the newest last: {number}");
    assert_eq!(last["details"]["reason"], "consent given");
}

#[tokio::test]
async fn a_listed_number_cannot_be_booked_for_the_skills_it_is_listed_for_until_it_lapses() {
    let app = TestApp::spawn().await;
    // Listed for New York only: London may still book it.
    let (status, _) = list(
        &app,
        NUMBER,
        json!({ "skillId": SKILL_NEW_YORK, "reason": "state list" }),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    app.create_ok(&valid_body()).await;
    let (status, body) = app.create(&with("skillId", json!(SKILL_NEW_YORK))).await;
    assert_result(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "InvalidPhoneNumber",
    );
    let message = body["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("do-not-call list") && message.contains("state list"),
        "{message}"
    );

    // Listed for every skill; written with spaces, it is the same number.
    list(&app, NUMBER, json!({})).await;
    let (status, body) = app
        .create(&with("phoneNumber", json!("+44 20 7946 0958")))
        .await;
    assert_result(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "InvalidPhoneNumber",
    );
    let before = app.row_counts().await;

    // An entry that has lapsed stops nothing (its expiry is moved into the past, as time
    // would).
    sqlx::query("UPDATE dnc_entries SET expires_at = now() - interval '1 second'")
        .execute(&app.pool)
        .await
        .expect("lapsed");
    app.create_ok(&with("skillId", json!(SKILL_NEW_YORK))).await;
    assert_eq!(
        app.row_counts().await.0,
        before.0 + 1,
        "refusals wrote nothing"
    );
}

/// Concurrent creates' look-ups are read together in one statement: each request still
/// gets its own number's and skill's answer.
#[tokio::test]
async fn concurrent_creates_each_get_the_answer_for_their_own_number_and_skill() {
    let app = std::sync::Arc::new(TestApp::spawn().await);
    let (status, _) = list(
        &app,
        NUMBER,
        json!({ "skillId": SKILL_NEW_YORK, "reason": "state list" }),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    // The list held for a moment, so that the creates' look-ups pile up and are read in
    // groups when it is released.
    let mut hold = app.pool.begin().await.expect("begin");
    sqlx::query("LOCK TABLE dnc_entries IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *hold)
        .await
        .expect("lock");
    let mut tasks = Vec::new();
    for i in 0..48 {
        let (phone, skill) = match i % 4 {
            0 => (NUMBER, SKILL_NEW_YORK),
            1 => (NUMBER, SKILL),
            2 => (OTHER, SKILL_NEW_YORK),
            _ => (OTHER, SKILL),
        };
        let mut body = with("phoneNumber", json!(phone));
        body["skillId"] = json!(skill);
        let app = app.clone();
        tasks.push(tokio::spawn(async move { (i, app.create(&body).await) }));
    }
    tokio::time::sleep(Duration::from_millis(400)).await;
    hold.commit().await.expect("release");
    let mut refused = 0;
    for task in tasks {
        let (i, (status, body)) = task.await.expect("task");
        if i % 4 == 0 {
            refused += 1;
            assert_result(
                status,
                &body,
                StatusCode::UNPROCESSABLE_ENTITY,
                "InvalidPhoneNumber",
            );
            let message = body["message"].as_str().unwrap_or_default();
            assert!(message.contains("state list"), "{message}");
        } else {
            assert_eq!(status, StatusCode::CREATED, "create {i}: {body}");
        }
    }
    assert_eq!(refused, 12);
    assert_eq!(app.row_counts().await.0, 36);
}

#[tokio::test]
async fn a_callback_whose_number_was_listed_after_booking_is_suppressed_not_published() {
    let app = TestApp::spawn_dispatching().await;
    let mut consumer = Consumer::bind(&app.exchange, "#").await;
    let due = in_(chrono::Duration::seconds(2));
    let listed_everywhere = app.create_ok(&with("scheduleDate", json!(due))).await;
    let mut for_skill = with("scheduleDate", json!(due));
    for_skill["phoneNumber"] = json!(OTHER);
    let listed_for_skill = app.create_ok(&for_skill).await;
    let mut elsewhere = for_skill.clone();
    elsewhere["skillId"] = json!(SKILL_NEW_YORK);
    let listed_elsewhere = app.create_ok(&elsewhere).await;

    list(&app, NUMBER, json!({ "reason": "asked by letter" })).await;
    list(&app, OTHER, json!({ "skillId": SKILL })).await;

    let received = consumer.take(1, Duration::from_secs(10)).await;
    assert_eq!(received.len(), 1);
    assert_eq!(
        received[0].callback_id(),
        listed_elsewhere,
        "the entry was for another skill"
    );
    for id in [&listed_everywhere, &listed_for_skill] {
        let callback = app.wait_state(id, "suppressed", 10).await;
        assert!(
            callback["lastError"]
                .as_str()
                .unwrap_or_default()
                .contains("do-not-call"),
            "{callback}"
        );
        let events = app.events(id).await;
        let last = events.last().expect("an event");
        assert_eq!(last["kind"], "suppressed", "{events:?}");
    }
    assert!(
        consumer.next(Duration::from_millis(1500)).await.is_none(),
        "nothing suppressed was published"
    );
    // Suppressed is final: it cannot be cancelled or rescheduled, and is listed by state.
    let (status, _) = app
        .call(
            Method::DELETE,
            &format!("/v1/callbacks/{listed_everywhere}"),
            Some(&app.admin),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (_, page) = app
        .call(
            Method::GET,
            "/v1/callbacks?state=suppressed",
            Some(&app.admin),
            None,
        )
        .await;
    assert_eq!(page["items"].as_array().map(Vec::len), Some(2), "{page}");
}

#[tokio::test]
async fn the_cli_imports_a_csv_all_or_nothing_as_a_named_user() {
    let app = TestApp::spawn().await;
    app.token("compliance", &["dnc:write"], &[]).await;
    let dir = std::env::temp_dir().join(format!("callbackd-dnc-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).expect("dir");
    let good = dir.join("good.csv");
    std::fs::write(
        &good,
        format!(
            "phoneNumber,skillId,reason,expiresAt\n\
             {NUMBER},,asked by phone,\n\
             +1 415 555 2671,{SKILL},state list,{}\n\
             {NUMBER},,asked twice,\n",
            in_(chrono::Duration::days(30))
        ),
    )
    .expect("csv");
    let out = testkit::cli::run(
        &app,
        &[
            "dnc",
            "import",
            good.to_str().expect("path"),
            "--as",
            "compliance",
        ],
    );
    assert!(out.status.success(), "{}", testkit::cli::stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("listed 2 numbers as do-not-call"));
    let (_, number) = app
        .call(
            Method::GET,
            &format!("/v1/dnc/{NUMBER}"),
            Some(&app.admin),
            None,
        )
        .await;
    assert_eq!(
        number["entries"][0]["reason"], "asked twice",
        "the last line wins"
    );
    assert_eq!(number["entries"][0]["createdBy"], "compliance");
    let (status, body) = app.create(&with("phoneNumber", json!(OTHER))).await;
    assert_result(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "InvalidPhoneNumber",
    );

    // One bad line: nothing from the file is written, and the line is named.
    let bad = dir.join("bad.csv");
    std::fs::write(&bad, "phoneNumber,reason\n+14155550100,x\n+1 555,typo\n").expect("csv");
    let before: i64 = sqlx::query_scalar("SELECT count(*) FROM dnc_entries")
        .fetch_one(&app.pool)
        .await
        .expect("count");
    let out = testkit::cli::run(
        &app,
        &[
            "dnc",
            "import",
            bad.to_str().expect("path"),
            "--as",
            "compliance",
        ],
    );
    assert!(!out.status.success());
    assert!(
        testkit::cli::stderr(&out).contains("record 2"),
        "{}",
        testkit::cli::stderr(&out)
    );
    let after: i64 = sqlx::query_scalar("SELECT count(*) FROM dnc_entries")
        .fetch_one(&app.pool)
        .await
        .expect("count");
    assert_eq!(after, before);
    // A user without dnc:write is refused.
    app.token("clerk", &["callbacks:create"], &[]).await;
    let out = testkit::cli::run(
        &app,
        &[
            "dnc",
            "import",
            good.to_str().expect("path"),
            "--as",
            "clerk",
        ],
    );
    assert!(!out.status.success());
    assert!(testkit::cli::stderr(&out).contains("dnc:write"));
    let _ = std::fs::remove_dir_all(&dir);
}
