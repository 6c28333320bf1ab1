//! Changes to many callbacks at once (`POST /v1/callbacks/bulk`), and cancelling with a
//! reason: only pending callbacks change, each under its own lock with its own event
//! carrying the reason; a dry run changes nothing.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use testkit::prelude::*;

async fn bulk(app: &TestApp, token: &str, body: Value) -> (StatusCode, Value) {
    app.call(Method::POST, "/v1/callbacks/bulk", Some(token), Some(&body))
        .await
}

fn kinds_with_reason(events: &[Value], kind: &str, reason: &str) -> usize {
    events
        .iter()
        .filter(|e| e["kind"] == kind && e["details"]["reason"] == reason)
        .count()
}

#[tokio::test]
async fn bulk_cancel_changes_only_pending_callbacks_of_the_filter_each_with_an_event_and_the_reason()
 {
    let app = TestApp::spawn().await;
    let mut ours = Vec::new();
    for _ in 0..5 {
        ours.push(app.create_ok(&valid_body()).await);
    }
    let mut ny = valid_body();
    ny["skillId"] = json!(SKILL_NEW_YORK);
    let theirs = app.create_ok(&ny).await;
    app.force_state(&ours[0], "dispatched").await;
    let filter = json!({"skillId": SKILL.to_string()});

    let (status, dry) = bulk(
        &app,
        &app.admin,
        json!({"filter": filter, "action": "cancel", "reason": "campaign withdrawn", "dryRun": true}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{dry}");
    assert_eq!(
        (
            dry["matched"].as_u64(),
            dry["changed"].as_u64(),
            dry["skipped"].as_u64()
        ),
        (Some(5), Some(4), Some(1)),
        "{dry}"
    );
    assert_eq!(dry["dryRun"], true);
    assert_eq!(
        app.states().await.get("cancelled"),
        None,
        "a dry run changes nothing"
    );

    let (status, done) = bulk(
        &app,
        &app.admin,
        json!({"filter": filter, "action": "cancel", "reason": "campaign withdrawn"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{done}");
    assert_eq!(
        (
            done["matched"].as_u64(),
            done["changed"].as_u64(),
            done["skipped"].as_u64()
        ),
        (Some(5), Some(4), Some(1)),
        "{done}"
    );
    for id in &ours[1..] {
        assert_eq!(app.get_callback(id).await["state"], "cancelled");
        let events = app.events(id).await;
        assert_eq!(
            kinds_with_reason(&events, "cancelled", "campaign withdrawn"),
            1,
            "{events:?}"
        );
    }
    assert_eq!(
        app.get_callback(&ours[0]).await["state"],
        "dispatched",
        "not pending: skipped"
    );
    assert_eq!(
        app.get_callback(&theirs).await["state"],
        "pending",
        "outside the filter"
    );

    // Again: nothing left to change.
    let (_, again) = bulk(
        &app,
        &app.admin,
        json!({"filter": filter, "action": "cancel", "reason": "campaign withdrawn"}),
    )
    .await;
    assert_eq!(again["changed"], 0, "{again}");
}

#[tokio::test]
async fn bulk_reschedule_and_reassign_go_through_the_rules_of_a_single_change() {
    let app = TestApp::spawn().await;
    let a = app.create_ok(&valid_body()).await;
    let b = app.create_ok(&valid_body()).await;
    let filter = json!({"skillId": SKILL.to_string(), "state": "pending"});
    let later = in_(chrono::Duration::days(2));
    let (status, done) = bulk(
        &app,
        &app.admin,
        json!({"filter": filter, "action": "reschedule", "scheduleDate": later, "reason": "storm"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{done}");
    assert_eq!(done["changed"], 2, "{done}");
    for id in [&a, &b] {
        let callback = app.get_callback(id).await;
        assert_eq!(parse_time(&callback["dueAt"]), parse_time(&json!(later)));
        assert_eq!(
            kinds_with_reason(&app.events(id).await, "updated", "storm"),
            1
        );
    }

    let (status, done) = bulk(
        &app,
        &app.admin,
        json!({"filter": filter, "action": "reassign", "targetAgentId": AGENT, "reason": "her clients"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{done}");
    assert_eq!(done["changed"], 2, "{done}");
    assert_eq!(app.get_callback(&a).await["targetAgentId"], AGENT);
    let (_, back) = bulk(
        &app,
        &app.admin,
        json!({"filter": filter, "action": "reassign", "targetAgentId": "", "reason": "back to the queue"}),
    )
    .await;
    assert_eq!(back["changed"], 2, "{back}");
    assert_eq!(app.get_callback(&b).await["route"], "skill");

    // A value the rules refuse for every callback: the result code of a single change.
    for (body, code) in [
        (
            json!({"filter": filter, "action": "reassign", "targetAgentId": AGENT_INACTIVE, "reason": "x"}),
            "InvalidTargetAgentId",
        ),
        (
            json!({"filter": filter, "action": "reschedule", "scheduleDate": "2001-01-01T00:00:00Z", "reason": "x"}),
            "InvalidScheduleDate",
        ),
    ] {
        let (status, answer) = bulk(&app, &app.admin, body).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        assert_eq!(answer["changed"], 0, "{answer}");
        assert_eq!(answer["refused"][0]["result"], code, "{answer}");
    }
}

#[tokio::test]
async fn bulk_changes_need_a_reason_their_permission_and_stay_within_the_callers_skills() {
    let app = TestApp::spawn().await;
    let ours = app.create_ok(&valid_body()).await;
    let mut ny = valid_body();
    ny["skillId"] = json!(SKILL_NEW_YORK);
    let theirs = app.create_ok(&ny).await;
    for (body, status, code) in [
        (
            json!({"action": "cancel"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "Default",
        ),
        (
            json!({"action": "cancel", "reason": "  "}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "Default",
        ),
        (
            json!({"action": "reschedule", "reason": "x"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "Default",
        ),
        (
            json!({"action": "reassign", "reason": "x"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "Default",
        ),
        (
            json!({"action": "explode", "reason": "x"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "Default",
        ),
        (
            json!({"action": "cancel", "reason": "x", "filter": {"dueBefore": "soon"}}),
            StatusCode::BAD_REQUEST,
            "Default",
        ),
    ] {
        let (got, answer) = bulk(&app, &app.admin, body.clone()).await;
        assert_result(got, &answer, status, code);
    }
    let reader = app.token("reader", &["callbacks:read"], &[]).await;
    let (status, answer) = bulk(&app, &reader, json!({"action": "cancel", "reason": "x"})).await;
    assert_result(
        status,
        &answer,
        StatusCode::FORBIDDEN,
        "InvalidSecurityUser",
    );

    let ny_team = app.token("ny-team", &["all"], &[SKILL_NEW_YORK]).await;
    let (status, answer) = bulk(
        &app,
        &ny_team,
        json!({"action": "cancel", "reason": "x", "filter": {"skillId": SKILL.to_string()}}),
    )
    .await;
    assert_result(
        status,
        &answer,
        StatusCode::FORBIDDEN,
        "InvalidSecurityUser",
    );
    let (status, answer) = bulk(&app, &ny_team, json!({"action": "cancel", "reason": "x"})).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["changed"], 1, "only its own skill's: {answer}");
    assert_eq!(app.get_callback(&ours).await["state"], "pending");
    assert_eq!(app.get_callback(&theirs).await["state"], "cancelled");
}

#[tokio::test]
async fn cancel_with_a_reason_records_it() {
    let app = TestApp::spawn().await;
    let id = app.create_ok(&valid_body()).await;
    let (status, body) = app
        .call(
            Method::DELETE,
            &format!("/v1/callbacks/{id}?reason=customer%20called%20in"),
            Some(&app.admin),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let events = app.events(&id).await;
    assert_eq!(
        kinds_with_reason(&events, "cancelled", "customer called in"),
        1,
        "{events:?}"
    );
    let other = app.create_ok(&valid_body()).await;
    let (status, body) = app
        .call(
            Method::DELETE,
            &format!("/v1/callbacks/{other}?reason={}", "x".repeat(600)),
            Some(&app.admin),
            None,
        )
        .await;
    assert_result(status, &body, StatusCode::UNPROCESSABLE_ENTITY, "Default");
    assert_eq!(app.get_callback(&other).await["state"], "pending");
}

/// A bulk change whose request ends first (here its time limit, 408) goes on to the end;
/// the client learns where it stands by repeating the request with its Idempotency-Key, or
/// by the change's id from its list — and nothing is changed twice.
#[tokio::test]
async fn a_bulk_change_outlives_its_request_and_reports_its_progress() {
    let app = TestApp::spawn_with(|s| s.api.request_timeout_ms = 300).await;
    app.insert_due(3000, None).await;
    let body = json!({"filter": {"skillId": SKILL.to_string()}, "action": "cancel", "reason": "site closed"});
    let send = |key: &'static str, body: Value| {
        let client = app.client.clone();
        let url = format!("{}/v1/callbacks/bulk", app.base);
        let token = app.admin.clone();
        async move {
            let r = client
                .post(url)
                .bearer_auth(token)
                .header("idempotency-key", key)
                .json(&body)
                .send()
                .await
                .expect("sent");
            let status = r.status();
            let replayed = r.headers().contains_key("idempotent-replayed");
            (status, replayed, r.json::<Value>().await.expect("json"))
        }
    };
    let (status, _, timed_out) = send("storm-1", body.clone()).await;
    assert_eq!(status, StatusCode::REQUEST_TIMEOUT, "{timed_out}");

    // The same request again: the change that key began, not a second one.
    let (status, replayed, progress) = send("storm-1", body.clone()).await;
    assert!(replayed, "{progress}");
    assert!(
        matches!(
            (status, progress["state"].as_str()),
            (StatusCode::ACCEPTED, Some("running")) | (StatusCode::OK, Some("done"))
        ),
        "{status} {progress}"
    );
    assert_eq!(progress["matched"], 3000);
    let changed = progress["changed"].as_u64().expect("changed");
    assert_eq!(
        progress["remaining"].as_u64(),
        Some(3000 - changed - progress["skipped"].as_u64().expect("skipped"))
    );
    let id = progress["bulkId"].as_str().expect("an id").to_owned();

    // Its id is in the caller's list; reading it shows it to the end.
    let (status, list) = app
        .call(Method::GET, "/v1/callbacks/bulk", Some(&app.admin), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert_eq!(list["bulkChanges"][0]["bulkId"], id.as_str());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let done = loop {
        let (status, now) = app
            .call(
                Method::GET,
                &format!("/v1/callbacks/bulk/{id}"),
                Some(&app.admin),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{now}");
        assert!(
            now["changed"].as_u64() >= Some(changed),
            "progress only grows"
        );
        if now["state"] == "done" {
            break now;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not done within a minute: {now}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert_eq!(
        (
            done["changed"].as_u64(),
            done["skipped"].as_u64(),
            done["remaining"].as_u64()
        ),
        (Some(3000), Some(0), Some(0)),
        "{done}"
    );
    assert!(done["finishedAt"].is_string(), "{done}");
    assert_eq!(app.states().await.get("cancelled"), Some(&3000));

    // Once done, a repeat answers the finished change (200) and changes nothing more.
    let (status, replayed, again) = send("storm-1", body.clone()).await;
    assert_eq!((status, replayed), (StatusCode::OK, true), "{again}");
    assert_eq!(again["bulkId"], id.as_str());
    let events: i64 =
        sqlx::query_scalar("SELECT count(*) FROM callback_events WHERE kind = 'cancelled'")
            .fetch_one(&app.pool)
            .await
            .expect("events");
    assert_eq!(events, 3000, "one event per callback, none twice");

    // The key belongs to that change: another body under it is refused.
    let mut other = body.clone();
    other["reason"] = json!("something else");
    let (status, _, refused) = send("storm-1", other).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");

    // Another user does not see it.
    let reader = app.token("reader", &["callbacks:read"], &[]).await;
    let (status, _) = app
        .call(
            Method::GET,
            &format!("/v1/callbacks/bulk/{id}"),
            Some(&reader),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, theirs) = app
        .call(Method::GET, "/v1/callbacks/bulk", Some(&reader), None)
        .await;
    assert_eq!(theirs["bulkChanges"], json!([]));
}
