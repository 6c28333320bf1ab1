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
