//! The operator commands of the `callbackd` binary: `callbacks list|show|cancel|reschedule`
//! as a named security user.

use std::collections::BTreeSet;

use chrono::{Duration, Utc};
use serde_json::Value;

use testkit::cli::{callbackd, run, stderr};
use testkit::fixtures::schedule;
use testkit::prelude::*;

/// Runs a command that must succeed; answers its stdout as JSON.
fn json(app: &TestApp, args: &[&str]) -> Value {
    let out = run(app, args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON on stdout")
}

fn keys(value: &Value) -> BTreeSet<String> {
    value.as_object().expect("object").keys().cloned().collect()
}

#[tokio::test]
async fn list_filters_like_the_api_and_prints_its_callback_views() {
    let app = TestApp::spawn().await;
    app.token("ops-all", &["callbacks:read"], &[]).await;
    app.token("ops-101", &["callbacks:read"], &[SKILL]).await;
    let soon = schedule(&app, SKILL, 2).await;
    let later = schedule(&app, SKILL, 30).await;
    let other = schedule(&app, SKILL_NEW_YORK, 3).await;

    let all = json(&app, &["callbacks", "list", "--as", "ops-all", "--json"]);
    let ids: Vec<&str> = all["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|c| c["callbackId"].as_str().expect("id"))
        .collect();
    assert_eq!(
        ids,
        [soon.as_str(), other.as_str(), later.as_str()],
        "due order"
    );
    assert_eq!(all["more"], false);
    // The same view as `GET /v1/callbacks/{id}`, field for field.
    let api = app.get_callback(&soon).await;
    assert_eq!(all["items"][0], api);

    let before = in_(Duration::hours(10));
    let filtered = json(
        &app,
        &[
            "callbacks",
            "list",
            "--as",
            "ops-all",
            "--json",
            "--skill",
            "101",
            "--state",
            "pending",
            "--due-before",
            &before,
        ],
    );
    let items = filtered["items"].as_array().expect("items");
    assert_eq!(items.len(), 1, "{filtered}");
    assert_eq!(items[0]["callbackId"], soon.as_str());

    // A user restricted to skill 101 never sees another skill's callbacks.
    let restricted = json(&app, &["callbacks", "list", "--as", "ops-101", "--json"]);
    assert_eq!(restricted["items"].as_array().expect("items").len(), 2);
    let out = run(
        &app,
        &["callbacks", "list", "--as", "ops-101", "--skill", "104"],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("may not use skill 104"),
        "{}",
        stderr(&out)
    );

    let limited = json(
        &app,
        &[
            "callbacks",
            "list",
            "--as",
            "ops-all",
            "--json",
            "--limit",
            "2",
        ],
    );
    assert_eq!(limited["items"].as_array().expect("items").len(), 2);
    assert_eq!(limited["more"], true);

    // Without --json: a table, one aligned line per callback under its headers.
    let out = run(&app, &["callbacks", "list", "--as", "ops-all"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let table = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 4, "{table}");
    assert!(
        lines[0].starts_with("ID ") && lines[0].contains("DUE (UTC)"),
        "{table}"
    );
    assert!(
        lines[1].starts_with(&soon) && lines[1].contains("skill.101"),
        "{table}"
    );
    let state_column = lines[0].find("STATE").expect("STATE header");
    assert!(
        lines
            .iter()
            .skip(1)
            .all(|l| l[state_column..].starts_with("pending")),
        "{table}"
    );
}

#[tokio::test]
async fn show_prints_the_callback_with_its_history() {
    let app = TestApp::spawn().await;
    app.token("ops-reader", &["callbacks:read"], &[]).await;
    let id = schedule(&app, SKILL, 2).await;
    let shown = json(
        &app,
        &["callbacks", "show", &id, "--as", "ops-reader", "--json"],
    );
    assert_eq!(shown["callback"], app.get_callback(&id).await);
    assert_eq!(
        keys(&shown),
        BTreeSet::from(["callback".into(), "events".into()])
    );
    let events = shown["events"].as_array().expect("events");
    assert_eq!(events.len(), 1, "{shown}");
    assert_eq!(events[0]["kind"], "created");
    assert_eq!(events[0], app.events(&id).await[0]);

    let out = run(&app, &["callbacks", "show", &id, "--as", "ops-reader"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(&format!("callbackId     {id}")), "{text}");
    assert!(text.contains("EVENT") && text.contains("created"), "{text}");

    let missing = uuid::Uuid::now_v7().to_string();
    let out = run(&app, &["callbacks", "show", &missing, "--as", "ops-reader"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("does not exist"), "{}", stderr(&out));
}

#[tokio::test]
async fn cancel_records_the_operator_as_actor_with_the_reason() {
    let app = TestApp::spawn().await;
    app.token("ops-jane", &["callbacks:cancel"], &[]).await;
    let id = schedule(&app, SKILL, 2).await;
    let cancelled = json(
        &app,
        &[
            "callbacks",
            "cancel",
            &id,
            "--as",
            "ops-jane",
            "--reason",
            "customer called in",
            "--json",
        ],
    );
    assert_eq!(cancelled["state"], "cancelled");
    assert_eq!(app.get_callback(&id).await["state"], "cancelled");
    let events = app.events(&id).await;
    let last = events.last().expect("events");
    assert_eq!(last["kind"], "cancelled");
    assert_eq!(last["actor"], "ops-jane");
    assert_eq!(last["details"]["reason"], "customer called in");

    // Only pending callbacks can be cancelled: the API's 409, as exit 1.
    let out = run(
        &app,
        &[
            "callbacks",
            "cancel",
            &id,
            "--as",
            "ops-jane",
            "--reason",
            "again",
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("only pending callbacks"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        app.events(&id).await.len(),
        events.len(),
        "nothing recorded"
    );
}

#[tokio::test]
async fn reschedule_moves_due_at_through_the_api_rules() {
    let app = TestApp::spawn().await;
    app.token("ops-planner", &["callbacks:update"], &[]).await;
    let id = schedule(&app, SKILL, 2).await;
    let day = (Utc::now() + Duration::days(2))
        .format("%Y-%m-%d")
        .to_string();
    let at = format!("{day}T09:15");
    let moved = json(
        &app,
        &[
            "callbacks",
            "reschedule",
            &id,
            "--as",
            "ops-planner",
            "--at",
            &at,
            "--time-zone",
            "Asia/Tokyo",
            "--reason",
            "asked for the morning",
            "--json",
        ],
    );
    // 09:15 in Tokyo (UTC+9, no DST) is 00:15 UTC.
    let want = format!("{day}T00:15:00Z");
    assert_eq!(moved["dueAt"], want.as_str());
    let stored = app.get_callback(&id).await;
    assert_eq!(stored["dueAt"], want.as_str());
    assert_eq!(stored["timeZone"], "Asia/Tokyo");
    let events = app.events(&id).await;
    let last = events.last().expect("events");
    assert_eq!(last["kind"], "updated");
    assert_eq!(last["actor"], "ops-planner");
    assert_eq!(last["details"]["reason"], "asked for the morning");
    assert_eq!(last["details"]["dueAt"]["to"], want.as_str());

    // The API's date rules, with its result code.
    let out = run(
        &app,
        &[
            "callbacks",
            "reschedule",
            &id,
            "--as",
            "ops-planner",
            "--at",
            "2099-01-01T00:00:00Z",
            "--reason",
            "far off",
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("InvalidScheduleDate"),
        "{}",
        stderr(&out)
    );
    assert_eq!(app.get_callback(&id).await["dueAt"], want.as_str());
}

#[tokio::test]
async fn an_operator_without_the_permission_or_skill_is_refused() {
    let app = TestApp::spawn().await;
    app.token("ops-reader", &["callbacks:read"], &[]).await;
    app.token(
        "ops-ny",
        &["callbacks:cancel", "callbacks:read"],
        &[SKILL_NEW_YORK],
    )
    .await;
    let id = schedule(&app, SKILL, 2).await;

    let out = run(
        &app,
        &[
            "callbacks",
            "cancel",
            &id,
            "--as",
            "ops-reader",
            "--reason",
            "x",
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out).trim(),
        "callbackd: InvalidSecurityUser: security user `ops-reader` lacks the permission `callbacks:cancel`"
    );
    let out = run(
        &app,
        &[
            "callbacks",
            "reschedule",
            &id,
            "--as",
            "ops-reader",
            "--at",
            &in_(Duration::hours(5)),
            "--reason",
            "not mine",
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("`callbacks:update`"),
        "{}",
        stderr(&out)
    );
    // Another skill's callback does not exist for this user, as in the API.
    let out = run(
        &app,
        &[
            "callbacks",
            "cancel",
            &id,
            "--as",
            "ops-ny",
            "--reason",
            "x",
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("does not exist"), "{}", stderr(&out));
    assert_eq!(app.get_callback(&id).await["state"], "pending");

    let out = run(&app, &["callbacks", "list", "--as", "nobody"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("no security user named `nobody`"),
        "{}",
        stderr(&out)
    );
    let out = callbackd(&app)
        .args(["user", "disable", "ops-reader"])
        .output()
        .expect("runs");
    assert!(out.status.success());
    let out = run(&app, &["callbacks", "list", "--as", "ops-reader"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("is disabled"), "{}", stderr(&out));
    // No user named at all is a usage error; the environment may name it.
    let out = run(&app, &["callbacks", "list"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--as"), "{}", stderr(&out));
    let out = callbackd(&app)
        .env("CALLBACKD_OPERATOR", "ops-ny")
        .args(["callbacks", "list", "--json"])
        .output()
        .expect("runs");
    assert!(out.status.success(), "{}", stderr(&out));
}
