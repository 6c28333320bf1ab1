//! The CXone-compatible surface driven as a CXone client drives it — query-string and JSON
//! forms, `/promise` with a local time in a named zone, the list shapes, PUT and DELETE —
//! with every effect checked through the native API (and, for dispatch, on RabbitMQ).

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Duration as Span, NaiveDate, NaiveTime, TimeZone, Utc};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use testkit::prelude::*;
use testkit::tap::Consumer;

const PREFIX: &str = "/cxone";

async fn spawn() -> TestApp {
    TestApp::spawn_with(|s| s.cxone.enabled = true).await
}

/// A CXone request: `query` in the query string, `body` as JSON.
async fn cx(
    app: &TestApp,
    method: Method,
    path: &str,
    token: Option<&str>,
    query: &[(&str, String)],
    body: Option<&Value>,
) -> (StatusCode, Value) {
    let mut request = app
        .client
        .request(method, format!("{}{PREFIX}{path}", app.base))
        .query(query);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(body);
    }
    read(request.send().await.expect("request sent")).await
}

/// The admin's JSON request.
async fn cx_json(app: &TestApp, method: Method, path: &str, body: &Value) -> (StatusCode, Value) {
    cx(app, method, path, Some(&app.admin), &[], Some(body)).await
}

/// The fields of a CXone create that succeeds, as query parameters.
fn schedule_query(at: &str) -> Vec<(&'static str, String)> {
    vec![
        ("firstName", "Ada".into()),
        ("lastName", "Lovelace".into()),
        ("phoneNumber", "+442079460958".into()),
        ("skillId", SKILL.to_string()),
        ("targetAgentId", String::new()),
        ("scheduleDate", at.into()),
        ("notes", "re: invoice 42".into()),
    ]
}

/// Creates through the surface (JSON); returns the callback's number.
async fn schedule_ok(app: &TestApp, body: &Value) -> i64 {
    let (status, answer) = cx_json(app, Method::POST, "/scheduled-callbacks", body).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer.as_object().map(|o| o.len()), Some(1), "{answer}");
    answer["callbackId"]
        .as_i64()
        .expect("an integer callbackId")
}

/// The native view of the callback with this number (found through `/v1/callbacks`).
async fn native(app: &TestApp, number: i64) -> Value {
    let (status, page) = app
        .call(
            Method::GET,
            "/v1/callbacks?limit=1000",
            Some(&app.admin),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    page["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|c| c["number"] == json!(number))
        .cloned()
        .unwrap_or_else(|| panic!("no callback numbered {number} in {page}"))
}

fn assert_cx_error(status: StatusCode, body: &Value, want: StatusCode, result: &str) {
    assert_eq!(status, want, "{body}");
    assert_eq!(body["status"], json!(want.as_u16()), "{body}");
    assert_eq!(body["result"], result, "{body}");
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
}

#[tokio::test]
async fn the_surface_is_off_by_default() {
    let app = TestApp::spawn().await;
    let (status, _) = cx_json(&app, Method::POST, "/scheduled-callbacks", &valid_body()).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, doc) = app.call(Method::GET, "/openapi.json", None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        doc["paths"]["/cxone/promise"].is_null(),
        "undocumented while off"
    );
}

#[tokio::test]
async fn schedule_in_the_query_string_is_a_native_callback_with_a_number() {
    let app = spawn().await;
    let at = in_(Span::hours(2));
    let (status, answer) = cx(
        &app,
        Method::POST,
        "/scheduled-callbacks",
        Some(&app.admin),
        &schedule_query(&at),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let number = answer["callbackId"].as_i64().expect("integer id");
    assert!(number > 0);
    let callback = native(&app, number).await;
    assert_eq!(callback["state"], "pending");
    assert_eq!(callback["firstName"], "Ada");
    assert_eq!(callback["lastName"], "Lovelace");
    assert_eq!(callback["phoneNumber"], "+442079460958");
    assert_eq!(callback["skillId"], SKILL);
    assert_eq!(callback["route"], "skill");
    assert_eq!(callback["notes"], "re: invoice 42");
    assert_eq!(parse_time(&callback["dueAt"]), parse_time(&json!(at)));
    assert_eq!(callback["createdBy"], "admin");
    // The native API keeps its UUID and shows the number too.
    let id = callback["callbackId"].as_str().expect("uuid");
    assert_eq!(app.get_callback(id).await["number"], json!(number));
}

#[tokio::test]
async fn schedule_as_json_with_numeric_ids_and_numbers_increase() {
    let app = spawn().await;
    let mut body = valid_body();
    body["targetAgentId"] = json!(AGENT);
    let first = schedule_ok(&app, &body).await;
    let callback = native(&app, first).await;
    assert_eq!(callback["route"], "agent");
    assert_eq!(callback["targetAgentId"], AGENT);
    let second = schedule_ok(&app, &valid_body()).await;
    assert!(second > first, "{second} after {first}");
    // A native create gets a number too.
    let id = app.create_ok(&valid_body()).await;
    let third = app.get_callback(&id).await["number"]
        .as_i64()
        .expect("number");
    assert!(third > second);
}

#[tokio::test]
async fn promise_reads_a_local_date_and_time_in_the_named_zone() {
    let app = spawn().await;
    let zone: chrono_tz::Tz = "America/New_York".parse().expect("zone");
    // Three days ahead in New York, 14:30 there: its UTC instant depends on the date's offset.
    let date: NaiveDate = (Utc::now().with_timezone(&zone) + Span::days(3)).date_naive();
    let time = NaiveTime::from_hms_opt(14, 30, 0).expect("time");
    let want: DateTime<Utc> = zone
        .from_local_datetime(&date.and_time(time))
        .single()
        .expect("one instant")
        .with_timezone(&Utc);
    let body = json!({
        "firstName": "Grace", "lastName": "Hopper", "phoneNumber": "+12125550123",
        "skill": SKILL_NO_ZONE, "targetAgent": AGENT,
        "promiseDate": date.format("%Y-%m-%d").to_string(), "promiseTime": "14:30",
        "notes": "promised on the phone", "timeZone": "America/New_York",
    });
    let (status, answer) = cx_json(&app, Method::POST, "/promise", &body).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let callback = native(&app, answer["callbackId"].as_i64().expect("id")).await;
    assert_eq!(parse_time(&callback["dueAt"]), want, "{callback}");
    assert_eq!(callback["timeZone"], "America/New_York");
    assert_eq!(callback["targetAgentId"], AGENT);
    assert_eq!(callback["skillId"], SKILL_NO_ZONE);
    assert_eq!(callback["firstName"], "Grace");

    // The query-string form, and a zone that is not one.
    let query = [
        ("phoneNumber", "+12125550123".to_string()),
        ("skill", SKILL_NO_ZONE.to_string()),
        ("promiseDate", date.format("%Y-%m-%d").to_string()),
        ("promiseTime", "09:15:00".to_string()),
        ("timeZone", "America/New_York".to_string()),
    ];
    let (status, answer) = cx(
        &app,
        Method::POST,
        "/promise",
        Some(&app.admin),
        &query,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let callback = native(&app, answer["callbackId"].as_i64().expect("id")).await;
    let nine_fifteen = zone
        .from_local_datetime(&date.and_hms_opt(9, 15, 0).expect("time"))
        .single()
        .expect("one instant");
    assert_eq!(parse_time(&callback["dueAt"]), nine_fifteen);
    let mut bad_zone = body.clone();
    bad_zone["timeZone"] = json!("Eastern Standard Time");
    let (status, error) = cx_json(&app, Method::POST, "/promise", &bad_zone).await;
    assert_cx_error(
        status,
        &error,
        StatusCode::UNPROCESSABLE_ENTITY,
        "InvalidScheduleDate",
    );
    let mut bad_time = body;
    bad_time["promiseTime"] = json!("half past two");
    let (status, error) = cx_json(&app, Method::POST, "/promise", &bad_time).await;
    assert_cx_error(
        status,
        &error,
        StatusCode::UNPROCESSABLE_ENTITY,
        "InvalidScheduleDate",
    );
    assert!(
        error["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("promiseDate and promiseTime")),
        "{error}"
    );
}

#[tokio::test]
async fn agent_and_skill_lists_show_pending_callbacks_in_cxones_shape() {
    let app = spawn().await;
    let mut to_agent = with("scheduleDate", json!(in_(Span::hours(1))));
    to_agent["targetAgentId"] = json!(AGENT);
    to_agent["notes"] = json!("agent's");
    let agents = schedule_ok(&app, &to_agent).await;
    let skills = schedule_ok(&app, &with("scheduleDate", json!(in_(Span::hours(3))))).await;
    let cancelled = schedule_ok(&app, &valid_body()).await;
    let (status, _) = cx(
        &app,
        Method::DELETE,
        &format!("/scheduled-callbacks/{cancelled}"),
        Some(&app.admin),
        &[],
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);

    let (status, list) = cx(
        &app,
        Method::GET,
        &format!("/agents/{AGENT}/scheduled-callbacks"),
        Some(&app.admin),
        &[],
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{list}");
    let items = list["callbacks"].as_array().expect("callbacks");
    assert_eq!(items.len(), 1, "{list}");
    let item = &items[0];
    let stored = native(&app, agents).await;
    assert_eq!(
        item,
        &json!({
            "callbackId": agents, "target": "Agent", "agentId": AGENT, "skillId": SKILL,
            "dialNumber": "+442079460958", "origNumber": null, "firstName": "Ada",
            "lastName": "Lovelace", "notes": "agent's", "callbackTime": stored["dueAt"],
        })
    );

    let (status, list) = cx(
        &app,
        Method::GET,
        &format!("/skills/{SKILL}/scheduled-callbacks"),
        Some(&app.admin),
        &[],
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{list}");
    let ids: Vec<i64> = list["callbacks"]
        .as_array()
        .expect("callbacks")
        .iter()
        .map(|c| c["callbackId"].as_i64().expect("id"))
        .collect();
    assert_eq!(ids, [agents, skills], "pending only, earliest first");
    assert_eq!(list["callbacks"][1]["target"], "Skill");
    assert_eq!(list["callbacks"][1]["agentId"], Value::Null);

    let (status, list) = cx(
        &app,
        Method::GET,
        &format!("/skills/{SKILL_NEW_YORK}/scheduled-callbacks"),
        Some(&app.admin),
        &[],
        None,
    )
    .await;
    assert_eq!((status, list), (StatusCode::OK, json!({"callbacks": []})));
    let (status, error) = cx(
        &app,
        Method::GET,
        "/agents/jdoe/scheduled-callbacks",
        Some(&app.admin),
        &[],
        None,
    )
    .await;
    assert_cx_error(status, &error, StatusCode::BAD_REQUEST, "Default");
}

#[tokio::test]
async fn put_changes_schedule_notes_and_agent_but_not_the_contact() {
    let app = spawn().await;
    let number = schedule_ok(&app, &valid_body()).await;
    let path = format!("/scheduled-callbacks/{number}");
    let later = in_(Span::hours(5));
    let (status, body) = cx_json(
        &app,
        Method::PUT,
        &path,
        &json!({"scheduleDate": later, "notes": "moved"}),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let callback = native(&app, number).await;
    assert_eq!(parse_time(&callback["dueAt"]), parse_time(&json!(later)));
    assert_eq!(callback["notes"], "moved");

    // The query-string form, restating the contact as CXone clients do.
    let query = [
        ("firstName", "Ada".to_string()),
        ("phoneNumber", "+44 20 7946 0958".to_string()),
        ("skillId", SKILL.to_string()),
        ("targetAgentId", AGENT.to_string()),
    ];
    let (status, body) = cx(&app, Method::PUT, &path, Some(&app.admin), &query, None).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    assert_eq!(native(&app, number).await["route"], "agent");

    // Restating everything as it is changes nothing.
    let id = callback["callbackId"].as_str().expect("uuid").to_owned();
    let events = app.events(&id).await.len();
    let (status, _) = cx_json(&app, Method::PUT, &path, &json!({"firstName": "Ada"})).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(app.events(&id).await.len(), events, "nothing written");

    for field in [
        ("firstName", json!("Grace")),
        ("phoneNumber", json!("+12125550123")),
        ("skillId", json!(SKILL_NEW_YORK)),
    ] {
        let (status, error) = cx_json(&app, Method::PUT, &path, &json!({ field.0: field.1 })).await;
        assert_cx_error(status, &error, StatusCode::UNPROCESSABLE_ENTITY, "Default");
        assert!(
            error["message"]
                .as_str()
                .is_some_and(|m| m.contains(field.0)),
            "{error}"
        );
    }
    let (status, error) = cx_json(
        &app,
        Method::PUT,
        &path,
        &json!({"scheduleDate": "next tuesday"}),
    )
    .await;
    assert_cx_error(
        status,
        &error,
        StatusCode::UNPROCESSABLE_ENTITY,
        "InvalidScheduleDate",
    );
    let (status, error) = cx_json(
        &app,
        Method::PUT,
        "/scheduled-callbacks/999999",
        &json!({"notes": "x"}),
    )
    .await;
    assert_cx_error(status, &error, StatusCode::NOT_FOUND, "Default");
    let (status, error) = cx_json(
        &app,
        Method::PUT,
        &format!("/scheduled-callbacks/{id}"),
        &json!({"notes": "x"}),
    )
    .await;
    assert_cx_error(status, &error, StatusCode::BAD_REQUEST, "Default");
}

#[tokio::test]
async fn delete_with_a_description_cancels_with_that_reason() {
    let app = spawn().await;
    let number = schedule_ok(&app, &valid_body()).await;
    let path = format!("/scheduled-callbacks/{number}");
    let description = [("description", "customer called in".to_string())];
    let (status, body) = cx(
        &app,
        Method::DELETE,
        &path,
        Some(&app.admin),
        &description,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let callback = native(&app, number).await;
    assert_eq!(callback["state"], "cancelled");
    let events = app
        .events(callback["callbackId"].as_str().expect("uuid"))
        .await;
    let cancelled = events
        .iter()
        .find(|e| e["kind"] == "cancelled")
        .expect("a cancelled event");
    assert_eq!(cancelled["details"]["reason"], "customer called in");
    assert_eq!(cancelled["actor"], "admin");

    let (status, error) = cx(
        &app,
        Method::DELETE,
        &path,
        Some(&app.admin),
        &description,
        None,
    )
    .await;
    assert_cx_error(status, &error, StatusCode::CONFLICT, "Default");
    // The JSON form.
    let other = schedule_ok(&app, &valid_body()).await;
    let (status, _) = cx_json(
        &app,
        Method::DELETE,
        &format!("/scheduled-callbacks/{other}"),
        &json!({"description": "duplicate"}),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(native(&app, other).await["state"], "cancelled");
}

#[tokio::test]
async fn errors_answer_in_cxones_shape_with_the_specs_result_codes() {
    let app = spawn().await;
    let (status, error) = cx_json(
        &app,
        Method::POST,
        "/scheduled-callbacks",
        &with("phoneNumber", json!("12")),
    )
    .await;
    assert_cx_error(
        status,
        &error,
        StatusCode::UNPROCESSABLE_ENTITY,
        "InvalidPhoneNumber",
    );
    let (status, error) = cx_json(
        &app,
        Method::POST,
        "/scheduled-callbacks",
        &with("skillId", json!(999)),
    )
    .await;
    assert_cx_error(
        status,
        &error,
        StatusCode::UNPROCESSABLE_ENTITY,
        "InvalidSkillId",
    );
    let (status, error) = cx(
        &app,
        Method::POST,
        "/scheduled-callbacks",
        Some("not-a-token"),
        &schedule_query(&in_(Span::hours(1))),
        None,
    )
    .await;
    assert_cx_error(
        status,
        &error,
        StatusCode::UNAUTHORIZED,
        "InvalidSecurityUser",
    );
    let (status, error) = cx(
        &app,
        Method::GET,
        &format!("/skills/{SKILL}/scheduled-callbacks"),
        None,
        &[],
        None,
    )
    .await;
    assert_cx_error(
        status,
        &error,
        StatusCode::UNAUTHORIZED,
        "InvalidSecurityUser",
    );
    let (status, error) = cx(
        &app,
        Method::POST,
        "/scheduled-callbacks",
        Some(&app.admin),
        &schedule_query(&in_(Span::hours(1))),
        Some(&valid_body()),
    )
    .await;
    assert_cx_error(status, &error, StatusCode::BAD_REQUEST, "Default");
    let (status, error) = cx_json(
        &app,
        Method::POST,
        "/scheduled-callbacks",
        &with("timeZone", json!("Europe/Paris")),
    )
    .await;
    assert_cx_error(status, &error, StatusCode::UNPROCESSABLE_ENTITY, "Default");

    // A token restricted to another skill: refused there, and blind to this one's callbacks.
    let number = schedule_ok(&app, &valid_body()).await;
    let new_york = app
        .token(
            "ny",
            &[
                "callbacks:create",
                "callbacks:read",
                "callbacks:update",
                "callbacks:cancel",
            ],
            &[SKILL_NEW_YORK],
        )
        .await;
    let (status, error) = cx(
        &app,
        Method::POST,
        "/scheduled-callbacks",
        Some(&new_york),
        &schedule_query(&in_(Span::hours(1))),
        None,
    )
    .await;
    assert_cx_error(status, &error, StatusCode::FORBIDDEN, "InvalidSecurityUser");
    let (status, error) = cx(
        &app,
        Method::GET,
        &format!("/skills/{SKILL}/scheduled-callbacks"),
        Some(&new_york),
        &[],
        None,
    )
    .await;
    assert_cx_error(status, &error, StatusCode::FORBIDDEN, "InvalidSecurityUser");
    let (status, list) = cx(
        &app,
        Method::GET,
        "/agents/7/scheduled-callbacks",
        Some(&new_york),
        &[],
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list, json!({"callbacks": []}));
    let (status, error) = cx(
        &app,
        Method::DELETE,
        &format!("/scheduled-callbacks/{number}"),
        Some(&new_york),
        &[],
        None,
    )
    .await;
    assert_cx_error(status, &error, StatusCode::NOT_FOUND, "Default");
    // A permission it lacks.
    let reader = app.token("reader", &["callbacks:read"], &[]).await;
    let (status, error) = cx(
        &app,
        Method::DELETE,
        &format!("/scheduled-callbacks/{number}"),
        Some(&reader),
        &[],
        None,
    )
    .await;
    assert_cx_error(status, &error, StatusCode::FORBIDDEN, "InvalidSecurityUser");
    assert_eq!(native(&app, number).await["state"], "pending");
}

#[tokio::test]
async fn the_prefix_is_configurable() {
    let app = TestApp::spawn_with(|s| {
        s.cxone.enabled = true;
        s.cxone.prefix = "/incontact/api/v30.0".into();
    })
    .await;
    let (status, answer) = app
        .call(
            Method::POST,
            "/incontact/api/v30.0/scheduled-callbacks",
            Some(&app.admin),
            Some(&valid_body()),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let (_, doc) = app.call(Method::GET, "/openapi.json", None, None).await;
    assert_eq!(
        doc["paths"]["/incontact/api/v30.0/scheduled-callbacks"]["post"]["tags"],
        json!(["cxone"])
    );
}

/// The dispatch message without what differs between two callbacks.
fn shape(body: &Value) -> Value {
    let mut body = body.clone();
    if let Some(fields) = body.as_object_mut() {
        for field in ["callbackId", "scheduledFor", "dueAt", "createdAt"] {
            assert!(fields.remove(field).is_some(), "{field} in {body:?}");
        }
    }
    body
}

#[tokio::test]
async fn a_callback_scheduled_through_the_surface_is_dispatched_like_a_native_one() {
    let app = TestApp::spawn_dispatching_with(|s| s.cxone.enabled = true).await;
    let mut consumer = Consumer::bind(&app.exchange, "#").await;
    let mut events = Consumer::events(&app.settings.amqp.events_exchange, "#").await;
    // Routed to the skill: an agent takes one callback at a time.
    let body = with("scheduleDate", json!(in_(Span::zero())));
    let native_id = app.create_ok(&body).await;
    let number = schedule_ok(&app, &body).await;
    let cx_id = native(&app, number).await["callbackId"]
        .as_str()
        .expect("uuid")
        .to_owned();

    let received = consumer.take(2, Duration::from_secs(10)).await;
    assert_eq!(received.len(), 2);
    app.wait_dispatched(2).await;
    let by_id: HashMap<String, &testkit::tap::Received> =
        received.iter().map(|m| (m.callback_id(), m)).collect();
    let (ours, theirs) = (&by_id[&cx_id], &by_id[&native_id]);
    assert_eq!(shape(&ours.body), shape(&theirs.body));
    assert_eq!(ours.routing_key, theirs.routing_key);
    assert_eq!(
        ours.body["callbackId"],
        json!(cx_id),
        "the UUID, not the number"
    );
    assert!(
        ours.body.get("number").is_none(),
        "the message is unchanged"
    );

    let kinds = |events: Vec<Value>| -> Vec<(String, String)> {
        events
            .iter()
            .map(|e| {
                (
                    e["kind"].as_str().unwrap_or_default().to_owned(),
                    e["actor"].to_string(),
                )
            })
            .collect()
    };
    let ours = kinds(app.events(&cx_id).await);
    assert_eq!(ours, kinds(app.events(&native_id).await));
    assert!(
        ours.iter().any(|(kind, _)| kind == "dispatched"),
        "{ours:?}"
    );

    // The event stream carries both callbacks' events alike.
    let streamed = events.take(4, Duration::from_secs(10)).await;
    let mut per_callback: HashMap<String, Vec<String>> = HashMap::new();
    for event in &streamed {
        per_callback
            .entry(
                event.body["callbackId"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            )
            .or_default()
            .push(event.routing_key.clone());
    }
    assert!(
        per_callback.get(&cx_id).is_some_and(|keys| keys.len() == 2),
        "created and dispatched: {per_callback:?}"
    );
    assert_eq!(
        per_callback.get(&cx_id),
        per_callback.get(&native_id),
        "{per_callback:?}"
    );
}
