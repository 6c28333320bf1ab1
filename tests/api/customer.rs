//! The customer's own link against real PostgreSQL: the create answer and reminders carry
//! it; the page shows when the call comes in the customer's zone; cancelling and moving go
//! through the rules and are recorded as the customer's; a dead or wrong link gets one
//! plain page, and too many of them from one address are refused.

use reqwest::{Method, StatusCode};
use serde_json::json;

use testkit::prelude::*;

const BASE: &str = "https://callbacks.example.com";

async fn app() -> TestApp {
    TestApp::spawn_with(|s| {
        s.public.base_url = BASE.into();
        s.public.link_failures_per_second = 1;
    })
    .await
}

/// The path of a manage URL (`/c/<token>`).
fn path_of(url: &str) -> String {
    url.strip_prefix(BASE)
        .expect("under the base URL")
        .to_owned()
}

async fn get(app: &TestApp, path: &str) -> (StatusCode, reqwest::header::HeaderMap, String) {
    let r = reqwest::get(format!("{}{path}", app.base))
        .await
        .expect("page");
    let status = r.status();
    let headers = r.headers().clone();
    (status, headers, r.text().await.expect("body"))
}

async fn post(app: &TestApp, path: &str, form: &str) -> (StatusCode, String) {
    let r = reqwest::Client::new()
        .post(format!("{}{path}", app.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form.to_owned())
        .send()
        .await
        .expect("post");
    (r.status(), r.text().await.expect("body"))
}

#[tokio::test]
async fn a_customer_sees_moves_and_cancels_their_callback_through_their_link() {
    let app = app().await;
    let day = (chrono::Utc::now() + chrono::Duration::days(10)).date_naive();
    let mut body = with("scheduleDate", json!(format!("{day}T14:30:00")));
    body["timeZone"] = json!("Europe/London");
    let (status, created) = app.create(&body).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let url = created["manageUrl"]
        .as_str()
        .expect("a manage URL")
        .to_owned();
    let page = path_of(&url);

    let (status, headers, html) = get(&app, &page).await;
    assert_eq!(status, StatusCode::OK, "{html}");
    let shown = format!("{} at 14:30", day.format("%A %-d %B"));
    assert!(html.contains(&shown), "{shown}: {html}");
    assert!(html.contains("Europe/London"));
    assert!(!html.contains("2079460958"), "the number is masked: {html}");
    assert!(headers.get("content-security-policy").is_some());
    assert!(headers.get("set-cookie").is_none(), "no cookie");
    let first_option = html
        .split("<option value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("another time offered")
        .to_owned();

    let (status, moved) = post(
        &app,
        &format!("{page}/reschedule"),
        &format!(
            "at={}",
            first_option.replace('+', "%2B").replace(':', "%3A")
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{moved}");
    assert!(moved.contains("Call moved"), "{moved}");
    let id = created["callbackId"].as_str().expect("id");
    let view = app.get_callback(id).await;
    assert_eq!(
        parse_time(&view["dueAt"]),
        parse_time(&json!(first_option)),
        "{view}"
    );
    let events = app.events(id).await;
    let updated = events
        .iter()
        .find(|e| e["kind"] == "updated")
        .expect("updated");
    assert_eq!(updated["actor"], "customer");
    assert!(
        updated["details"]["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("customer")
    );

    let (status, cancelled) = post(&app, &format!("{page}/cancel"), "").await;
    assert_eq!(status, StatusCode::OK, "{cancelled}");
    assert_eq!(app.get_callback(id).await["state"], "cancelled");
    let events = app.events(id).await;
    assert_eq!(events.last().expect("events")["actor"], "customer");

    // The link died with the callback.
    let (status, _, dead) = get(&app, &page).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(dead.contains("id=\"link-dead\""), "{dead}");
    let (status, _) = post(&app, &format!("{page}/cancel"), "").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn wrong_links_get_one_plain_page_and_too_many_are_refused() {
    let app = app().await;
    let mut statuses = Vec::new();
    for i in 0..12 {
        let (status, _, html) = get(&app, &format!("/c/{}", "A".repeat(42) + &i.to_string())).await;
        if status == StatusCode::NOT_FOUND {
            assert!(html.contains("id=\"link-dead\""), "{html}");
        }
        statuses.push(status);
    }
    assert_eq!(statuses[0], StatusCode::NOT_FOUND);
    assert!(
        statuses.contains(&StatusCode::TOO_MANY_REQUESTS),
        "past the budget: {statuses:?}"
    );
}

#[tokio::test]
async fn reminders_carry_a_working_link_and_without_a_base_url_there_is_none() {
    let app = app().await;
    app.put_skill(SKILL, json!({ "reminders": [86400] })).await;
    let id = app
        .create_ok(&with(
            "scheduleDate",
            json!(in_(chrono::Duration::hours(2))),
        ))
        .await;
    sqlx::query("UPDATE callbacks SET created_at = now() - interval '2 days' WHERE id = $1::uuid")
        .bind(&id)
        .execute(&app.pool)
        .await
        .expect("backdated");
    callbackd::app::timers::remind(&app.store, chrono_tz::Tz::UTC, Some(BASE)).await;
    let reminder = app
        .events(&id)
        .await
        .into_iter()
        .find(|e| e["kind"] == "reminder")
        .expect("a reminder");
    let url = reminder["details"]["manageUrl"]
        .as_str()
        .expect("manageUrl");
    let (status, _, _) = get(&app, &path_of(url)).await;
    assert_eq!(status, StatusCode::OK);

    let plain = TestApp::spawn().await;
    let (status, created) = plain
        .call(
            Method::POST,
            "/v1/callbacks",
            Some(&plain.admin),
            Some(&valid_body()),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert!(created.get("manageUrl").is_none(), "{created}");
}
