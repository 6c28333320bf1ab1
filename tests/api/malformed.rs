//! A table of malformed requests: every one is answered 4xx with a result code, and nothing
//! is written.

use reqwest::StatusCode;
use serde_json::json;

use testkit::prelude::*;

#[tokio::test]
async fn malformed_bodies_get_a_4xx_with_a_result_code_and_leave_the_tables_unchanged() {
    let app = TestApp::spawn().await;
    app.create_ok(&valid_body()).await;
    let before = app.row_counts().await;

    let mut bodies: Vec<(String, &str)> = vec![
        (String::new(), "Default"),
        ("   ".into(), "Default"),
        ("{".into(), "Default"),
        ("{\"skillId\":".into(), "Default"),
        ("[]".into(), "Default"),
        ("null".into(), "Default"),
        ("42".into(), "Default"),
        ("\"a string\"".into(), "Default"),
        ("{} trailing".into(), "Default"),
        ("\u{feff}{}".into(), "Default"),
        ("{\"skillId\": 101,}".into(), "Default"),
        ("{'skillId': 101}".into(), "Default"),
        ("\u{0}".into(), "Default"),
        (
            String::from_utf8_lossy(&[0xff, 0xfe, 0x00]).into_owned(),
            "Default",
        ),
    ];
    for (field, value, code) in [
        ("skillId", json!(true), "Default"),
        ("skillId", json!(1.5), "Default"),
        ("skillId", json!({"id": 1}), "Default"),
        ("skillId", json!([101]), "Default"),
        ("skillId", json!("12345678901234567890"), "InvalidSkillId"),
        ("skillId", json!(u64::MAX), "InvalidSkillId"),
        ("targetAgentId", json!(false), "Default"),
        (
            "targetAgentId",
            json!("7; DROP TABLE agents"),
            "InvalidTargetAgentId",
        ),
        ("phoneNumber", json!(4155552671u64), "Default"),
        ("phoneNumber", json!(["+14155552671"]), "Default"),
        ("phoneNumber", json!("+1415555267１"), "InvalidPhoneNumber"),
        (
            "phoneNumber",
            json!("9".repeat(10_000)),
            "InvalidPhoneNumber",
        ),
        ("scheduleDate", json!(1764000000), "Default"),
        (
            "scheduleDate",
            json!("2026-11-25T14:30:00+99:00"),
            "InvalidScheduleDate",
        ),
        (
            "scheduleDate",
            json!("9".repeat(5000)),
            "InvalidScheduleDate",
        ),
        (
            "scheduleDate",
            json!("+275760-09-13T00:00:00Z"),
            "InvalidScheduleDate",
        ),
        ("timeZone", json!(3), "Default"),
        ("timeZone", json!("../../etc/passwd"), "InvalidScheduleDate"),
        ("notes", json!({"a": 1}), "Default"),
        ("firstName", json!(12), "Default"),
        ("unknownField", json!("x"), "Default"),
        ("scheduledDate", json!("2026-11-25T14:30:00Z"), "Default"),
    ] {
        bodies.push((with(field, value).to_string(), code));
    }
    bodies.push((
        "{\"notes\": \"".to_owned() + &"x".repeat(20_000) + "\"}",
        "Default",
    ));

    for (body, code) in &bodies {
        let response = app
            .client
            .post(format!("{}/v1/callbacks", app.base))
            .bearer_auth(&app.admin)
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await
            .expect("sent");
        let (status, answer) = read(response).await;
        let shown: String = body.chars().take(80).collect();
        assert!(status.is_client_error(), "{shown}: {status} {answer}");
        assert_eq!(answer["result"], *code, "{shown}: {answer}");
        assert!(
            answer["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{shown}: {answer}"
        );
    }
    assert_eq!(
        app.row_counts().await,
        before,
        "no row written by any malformed request"
    );
}

/// serde would map an array's positions onto a struct's fields, and keep the last of two
/// equal keys: a body must be one JSON object with each key once, at every endpoint.
#[tokio::test]
async fn request_bodies_must_be_one_json_object_with_each_key_once() {
    let app = TestApp::spawn().await;
    let id = app.create_ok(&valid_body()).await;
    let before = app.row_counts().await;
    let events_before = app.events(&id).await.len();
    let when = in_(chrono::Duration::hours(3));
    // The ten create fields in their declared order: once accepted as a create (201).
    let positional = json!([
        "Ada",
        "Lovelace",
        "+442079460958",
        SKILL,
        "",
        when,
        "notes",
        "UTC",
        null,
        "defer"
    ])
    .to_string();
    let callback = format!("/v1/callbacks/{id}");
    let outcome = format!("/v1/callbacks/{id}/outcomes");
    let cases: Vec<(reqwest::Method, &str, String, &str)> = vec![
        (reqwest::Method::POST, "/v1/callbacks", positional.clone(), "not an array"),
        (reqwest::Method::POST, "/v1/callbacks", "[]".into(), "not an array"),
        (reqwest::Method::POST, "/v1/callbacks", "null".into(), "not null"),
        (
            reqwest::Method::POST,
            "/v1/callbacks",
            format!(
                r#"{{"phoneNumber":"+442079460958","phoneNumber":"+14155552671","skillId":{SKILL},"scheduleDate":"{when}"}}"#
            ),
            "`phoneNumber` appears more than once",
        ),
        (
            reqwest::Method::POST,
            "/v1/callbacks",
            format!(
                r#"{{"phoneNumber":"+442079460958","skillId":{SKILL},"skillId":{SKILL},"scheduleDate":"{when}"}}"#
            ),
            "`skillId` appears more than once",
        ),
        (reqwest::Method::PATCH, &callback, r#"["later"]"#.into(), "not an array"),
        (
            reqwest::Method::PATCH,
            &callback,
            r#"{"notes":"a","notes":"b"}"#.into(),
            "`notes` appears more than once",
        ),
        (reqwest::Method::POST, &outcome, r#"[1, "completed"]"#.into(), "not an array"),
        (
            reqwest::Method::POST,
            &outcome,
            r#"{"attempt":1,"outcome":"completed","outcome":"no_answer"}"#.into(),
            "`outcome` appears more than once",
        ),
        (
            reqwest::Method::PUT,
            "/v1/skills/555",
            r#"{"name":"x","name":"y","mediaType":"phone","direction":"outbound","active":true}"#
                .into(),
            "`name` appears more than once",
        ),
        (
            reqwest::Method::PUT,
            "/v1/skills/556",
            r#"{"name":"x","mediaType":"phone","direction":"outbound","active":true,"callingHours":{"mon":["09:00-12:00"],"mon":[]}}"#
                .into(),
            "`mon` appears more than once",
        ),
        (reqwest::Method::PUT, "/v1/agents/77", r#"["jdoe", true]"#.into(), "not an array"),
    ];
    for (method, path, body, needle) in &cases {
        let (status, answer) = app.call_raw(method.clone(), path, body).await;
        assert_eq!(
            status,
            StatusCode::BAD_REQUEST,
            "{method} {path} {body}: {answer}"
        );
        assert_eq!(answer["result"], "Default", "{body}: {answer}");
        let message = answer["message"].as_str().unwrap_or_default();
        assert!(message.contains(needle), "{body}: {message}");
        for internal in ["Request", "struct", "Input", "Report"] {
            assert!(
                !message.contains(internal),
                "names an internal type: {message}"
            );
        }
    }
    assert_eq!(app.row_counts().await, before, "nothing written");
    assert_eq!(
        app.events(&id).await.len(),
        events_before,
        "no event written"
    );
    let (status, _) = app
        .call(
            reqwest::Method::GET,
            "/v1/skills/555",
            Some(&app.admin),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "no skill written");
}

#[tokio::test]
async fn oversized_body_gets_413_with_a_result_code() {
    let app = TestApp::spawn().await;
    let body = with("notes", json!("x".repeat(17 * 1024)));
    let (status, answer) = app.create(&body).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{answer}");
    assert_eq!(answer["result"], "Default");
    assert!(
        answer["message"]
            .as_str()
            .is_some_and(|m| m.contains("16384")),
        "{answer}"
    );
}

#[tokio::test]
async fn bad_paths_and_query_strings_get_400_with_a_result_code() {
    let app = TestApp::spawn().await;
    for path in [
        "/v1/callbacks/not-a-uuid",
        "/v1/callbacks/%FF%FE",
        "/v1/callbacks?limit=0",
        "/v1/callbacks?limit=100000",
        "/v1/callbacks?limit=-1",
        "/v1/callbacks?state=sleeping",
        "/v1/callbacks?skillId=abc",
        "/v1/callbacks?agentId=0",
        "/v1/callbacks?dueBefore=yesterday",
        "/v1/callbacks?cursor=zzzz",
        "/v1/callbacks?bogus=1",
        "/v1/skills/0",
        "/v1/agents/abc",
    ] {
        let (status, answer) = app
            .call(reqwest::Method::GET, path, Some(&app.admin), None)
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {answer}");
        assert_eq!(answer["result"], "Default", "{path}");
    }
    let (status, answer) = app
        .call(reqwest::Method::GET, "/v2/nothing", Some(&app.admin), None)
        .await;
    assert_result(status, &answer, StatusCode::NOT_FOUND, "Default");
    let (status, answer) = app
        .call(
            reqwest::Method::PUT,
            "/v1/callbacks",
            Some(&app.admin),
            None,
        )
        .await;
    assert_result(status, &answer, StatusCode::METHOD_NOT_ALLOWED, "Default");
}

/// A long bad value is named in the answer, but cut: the answer (and the log line) stays
/// readable however much the body holds.
#[tokio::test]
async fn a_long_bad_value_is_named_but_cut_in_the_message() {
    let app = TestApp::spawn().await;
    let long = format!("2030-01-01T10:00:00{}", "9".repeat(10_000));
    let (status, body) = app.create(&with("scheduleDate", json!(long))).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["result"], "InvalidScheduleDate", "{body}");
    let message = body["message"].as_str().expect("message");
    assert!(message.contains("2030-01-01T10:00:0099"), "{message}");
    assert!(message.ends_with("… (message cut)"), "{message}");
    assert!(message.chars().count() < 400, "{message}");
    assert_eq!(app.row_counts().await.0, 0);
}
