//! Reading, listing, changing and cancelling callbacks.

use chrono::Duration;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use testkit::prelude::*;

#[tokio::test]
async fn get_unknown_callback_is_404_with_a_result_code() {
    let app = TestApp::spawn().await;
    let id = uuid::Uuid::now_v7();
    for (method, path) in [
        (Method::GET, format!("/v1/callbacks/{id}")),
        (Method::GET, format!("/v1/callbacks/{id}/events")),
        (Method::DELETE, format!("/v1/callbacks/{id}")),
    ] {
        let (status, body) = app.call(method, &path, Some(&app.admin), None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
        assert_eq!(body["result"], "Default");
        assert!(
            body["message"]
                .as_str()
                .is_some_and(|m| m.contains(&id.to_string())),
            "{body}"
        );
    }
}

#[tokio::test]
async fn list_is_ordered_by_due_time_and_pages_with_a_cursor() {
    let app = TestApp::spawn().await;
    let mut expected = Vec::new();
    // Created out of order; listed in due order.
    for hours in [5, 1, 4, 2, 3, 6, 7] {
        let id = app
            .create_ok(&with("scheduleDate", json!(in_(Duration::hours(hours)))))
            .await;
        expected.push((hours, id));
    }
    expected.sort();
    let expected: Vec<String> = expected.into_iter().map(|(_, id)| id).collect();

    let mut seen = Vec::new();
    let mut path = "/v1/callbacks?limit=3".to_owned();
    let mut pages = 0;
    loop {
        let (status, page) = app.call(Method::GET, &path, Some(&app.admin), None).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        pages += 1;
        let items = page["items"].as_array().expect("items");
        assert!(items.len() <= 3);
        seen.extend(
            items
                .iter()
                .map(|c| c["callbackId"].as_str().expect("id").to_owned()),
        );
        match page["nextCursor"].as_str() {
            Some(cursor) => path = format!("/v1/callbacks?limit=3&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, expected);
}

#[tokio::test]
async fn list_filters_by_state_skill_agent_and_due_window() {
    let app = TestApp::spawn().await;
    let soon = app
        .create_ok(&with("scheduleDate", json!(in_(Duration::hours(1)))))
        .await;
    let to_agent = app
        .create_ok(&{
            let mut b = with("scheduleDate", json!(in_(Duration::hours(2))));
            b["targetAgentId"] = json!(AGENT);
            b
        })
        .await;
    let ny = app
        .create_ok(&{
            let mut b = with("scheduleDate", json!(in_(Duration::hours(3))));
            b["skillId"] = json!(SKILL_NEW_YORK);
            b
        })
        .await;
    let cancelled = app
        .create_ok(&with("scheduleDate", json!(in_(Duration::hours(4)))))
        .await;
    let (status, _) = app
        .call(
            Method::DELETE,
            &format!("/v1/callbacks/{cancelled}"),
            Some(&app.admin),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);

    let ids = |query: String| {
        let app = &app;
        async move {
            let (status, page) = app
                .call(
                    Method::GET,
                    &format!("/v1/callbacks?{query}"),
                    Some(&app.admin),
                    None,
                )
                .await;
            assert_eq!(status, StatusCode::OK, "{query}: {page}");
            page["items"]
                .as_array()
                .expect("items")
                .iter()
                .map(|c| c["callbackId"].as_str().expect("id").to_owned())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        ids("state=pending".into()).await,
        vec![soon.clone(), to_agent.clone(), ny.clone()]
    );
    assert_eq!(ids("state=cancelled".into()).await, vec![cancelled.clone()]);
    assert_eq!(
        ids(format!("skillId={SKILL_NEW_YORK}")).await,
        vec![ny.clone()]
    );
    assert_eq!(
        ids(format!("agentId={AGENT}")).await,
        vec![to_agent.clone()]
    );
    let after = urlencode(&in_(Duration::minutes(90)));
    let before = urlencode(&in_(Duration::minutes(210)));
    assert_eq!(
        ids(format!("dueAfter={after}&dueBefore={before}")).await,
        vec![to_agent.clone(), ny.clone()]
    );
    assert_eq!(
        ids(format!("state=pending&skillId={SKILL}&dueAfter={after}")).await,
        vec![to_agent]
    );
}

fn urlencode(s: &str) -> String {
    s.replace('+', "%2B").replace(':', "%3A")
}

#[tokio::test]
async fn reschedule_changes_due_time_and_records_who_when_what() {
    let app = TestApp::spawn().await;
    let id = app.create_ok(&valid_body()).await;
    let old_due = app.get_callback(&id).await["dueAt"].clone();
    let new_date = in_(Duration::hours(5));
    let (status, updated) = app
        .call(
            Method::PATCH,
            &format!("/v1/callbacks/{id}"),
            Some(&app.admin),
            Some(&json!({"scheduleDate": new_date, "notes": "moved"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert_eq!(parse_time(&updated["dueAt"]), parse_time(&json!(new_date)));
    assert_eq!(updated["notes"], "moved");
    assert_eq!(updated["state"], "pending");

    let events = app.events(&id).await;
    assert_eq!(
        events
            .iter()
            .map(|e| e["kind"].as_str().expect("kind"))
            .collect::<Vec<_>>(),
        ["created", "updated"]
    );
    let change = &events[1];
    assert_eq!(change["actor"], "admin");
    assert!(change["at"].is_string());
    assert_eq!(change["details"]["dueAt"]["from"], old_due);
    assert_eq!(
        parse_time(&change["details"]["dueAt"]["to"]),
        parse_time(&json!(new_date))
    );
    assert_eq!(
        change["details"]["notes"],
        json!({"from": "re: invoice 42", "to": "moved"})
    );
}

/// A change to what the callback already has is answered with the callback as it is, and
/// writes nothing: no update, no `updated` event.
#[tokio::test]
async fn a_change_that_changes_nothing_writes_nothing() {
    let app = TestApp::spawn().await;
    let id = app.create_ok(&valid_body()).await;
    let before = app.get_callback(&id).await;
    let same = json!({
        "scheduleDate": before["scheduledFor"],
        "notes": before["notes"],
        "targetAgentId": before["targetAgentId"],
    });
    let (status, answer) = app
        .call(
            Method::PATCH,
            &format!("/v1/callbacks/{id}"),
            Some(&app.admin),
            Some(&same),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["dueAt"], before["dueAt"]);
    assert_eq!(answer["updatedAt"], before["updatedAt"], "not written");
    let kinds: Vec<String> = app
        .events(&id)
        .await
        .iter()
        .filter_map(|e| e["kind"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(kinds, ["created"]);
}

#[tokio::test]
async fn patch_changes_target_and_validates_like_create() {
    let app = TestApp::spawn().await;
    let id = app.create_ok(&valid_body()).await;
    let path = format!("/v1/callbacks/{id}");
    let patch = |body: Value| {
        let app = &app;
        let path = path.clone();
        async move {
            app.call(Method::PATCH, &path, Some(&app.admin), Some(&body))
                .await
        }
    };
    let (status, body) = patch(json!({"targetAgentId": AGENT})).await;
    assert_eq!(
        (status, body["route"].as_str()),
        (StatusCode::OK, Some("agent")),
        "{body}"
    );
    let (status, body) = patch(json!({"targetAgentId": ""})).await;
    assert_eq!(
        (status, body["route"].as_str()),
        (StatusCode::OK, Some("skill")),
        "{body}"
    );
    let (status, body) = patch(json!({"targetAgentId": AGENT_INACTIVE})).await;
    assert_result(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "InvalidTargetAgentId",
    );
    let (status, body) = patch(json!({"scheduleDate": "next week"})).await;
    assert_result(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "InvalidScheduleDate",
    );
    let (status, body) = patch(json!({"scheduleDate": in_(Duration::days(400))})).await;
    assert_result(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "InvalidScheduleDate",
    );
    let (status, body) = patch(json!({})).await;
    assert_result(status, &body, StatusCode::UNPROCESSABLE_ENTITY, "Default");
    let (status, body) = patch(json!({"skillId": SKILL_NEW_YORK})).await;
    assert_result(status, &body, StatusCode::UNPROCESSABLE_ENTITY, "Default");

    let events = app.events(&id).await;
    assert_eq!(
        events.len(),
        3,
        "created + two successful changes, none for refused ones: {events:?}"
    );
    let stored = app.get_callback(&id).await;
    assert_eq!(stored["targetAgentId"], Value::Null);
}

#[tokio::test]
async fn cancel_before_dispatch_then_further_changes_are_refused() {
    let app = TestApp::spawn().await;
    let id = app.create_ok(&valid_body()).await;
    let path = format!("/v1/callbacks/{id}");
    let (status, body) = app
        .call(Method::DELETE, &path, Some(&app.admin), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["state"], "cancelled");

    let (status, body) = app
        .call(Method::DELETE, &path, Some(&app.admin), None)
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.contains("cancelled")),
        "{body}"
    );
    let (status, body) = app
        .call(
            Method::PATCH,
            &path,
            Some(&app.admin),
            Some(&json!({"notes": "late"})),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");

    let kinds: Vec<String> = app
        .events(&id)
        .await
        .iter()
        .map(|e| e["kind"].as_str().expect("kind").to_owned())
        .collect();
    assert_eq!(kinds, ["created", "cancelled"]);
}

#[tokio::test]
async fn reschedule_or_cancel_after_dispatch_is_refused_with_409() {
    let app = TestApp::spawn().await;
    for state in ["dispatched", "completed", "failed", "expired"] {
        let id = app.create_ok(&valid_body()).await;
        app.force_state(&id, state).await;
        let path = format!("/v1/callbacks/{id}");
        let (status, body) = app
            .call(
                Method::PATCH,
                &path,
                Some(&app.admin),
                Some(&json!({"scheduleDate": in_(Duration::hours(9))})),
            )
            .await;
        assert_eq!(status, StatusCode::CONFLICT, "{state}: {body}");
        assert_eq!(body["result"], "Default");
        assert!(
            body["message"]
                .as_str()
                .is_some_and(|m| m.contains(state) && m.contains("pending")),
            "{body}"
        );
        let (status, body) = app
            .call(Method::DELETE, &path, Some(&app.admin), None)
            .await;
        assert_eq!(status, StatusCode::CONFLICT, "{state}: {body}");
        let stored = app.get_callback(&id).await;
        assert_eq!(stored["state"], state);
        assert_eq!(
            app.events(&id).await.len(),
            1,
            "no event for a refused change"
        );
    }
}
