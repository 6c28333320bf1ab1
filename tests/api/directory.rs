//! `PUT/GET /v1/skills/{id}` and `/v1/agents/{id}`.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn put_then_get_skill_and_agent() {
    let app = TestApp::spawn().await;
    let skill = json!({"name": "Renewals", "mediaType": "phone", "direction": "outbound", "active": true, "timeZone": "Europe/Paris"});
    let (status, body) = app
        .call(
            Method::PUT,
            "/v1/skills/500",
            Some(&app.admin),
            Some(&skill),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = app
        .call(Method::GET, "/v1/skills/500", Some(&app.admin), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        json!({"id": 500, "name": "Renewals", "mediaType": "phone", "direction": "outbound", "active": true, "timeZone": "Europe/Paris"})
    );

    let (status, body) = app
        .call(
            Method::PUT,
            "/v1/agents/900",
            Some(&app.admin),
            Some(&json!({"username": "mkay", "active": true})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, body) = app
        .call(Method::GET, "/v1/agents/900", Some(&app.admin), None)
        .await;
    assert_eq!(body, json!({"id": 900, "username": "mkay", "active": true}));

    // The new skill and agent can carry callbacks at once; deactivating the agent stops that.
    let mut cb = valid_body();
    cb["skillId"] = json!(500);
    cb["targetAgentId"] = json!(900);
    app.create_ok(&cb).await;
    let (status, _) = app
        .call(
            Method::PUT,
            "/v1/agents/900",
            Some(&app.admin),
            Some(&json!({"username": "mkay", "active": false})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = app.create(&cb).await;
    assert_eq!(
        (status, body["result"].as_str()),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("InvalidTargetAgentId")
        )
    );
}

#[tokio::test]
async fn bad_directory_input_is_refused() {
    let app = TestApp::spawn().await;
    for body in [
        json!({"name": "x", "mediaType": "pigeon", "direction": "outbound", "active": true}),
        json!({"name": "x", "mediaType": "phone", "direction": "sideways", "active": true}),
        json!({"name": "x", "mediaType": "phone", "direction": "outbound", "active": "yes"}),
        json!({"name": "x", "mediaType": "phone", "direction": "outbound", "active": true, "timeZone": "Nowhere/Land"}),
        json!({"id": 501, "name": "x", "mediaType": "phone", "direction": "outbound", "active": true}),
        json!({"mediaType": "phone", "direction": "outbound", "active": true}),
        json!({"name": "x".repeat(201), "mediaType": "phone", "direction": "outbound", "active": true}),
    ] {
        let (status, answer) = app
            .call(Method::PUT, "/v1/skills/500", Some(&app.admin), Some(&body))
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {answer}");
        assert_eq!(answer["result"], "Default");
    }
    let (status, _) = app
        .call(Method::GET, "/v1/skills/500", Some(&app.admin), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "nothing stored");
}
