//! `PUT/GET /v1/skills/{id}` and `/v1/agents/{id}`.

use reqwest::{Method, StatusCode};
use serde_json::json;

use testkit::prelude::*;

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
    assert_eq!(
        body,
        json!({"id": 900, "username": "mkay", "active": true, "name": "", "skillIds": []})
    );
    // A display name and the skills the agent takes, kept as given (skills in order, once).
    let (status, body) = app
        .call(
            Method::PUT,
            "/v1/agents/901",
            Some(&app.admin),
            Some(&json!({"username": "jlee", "active": true, "name": "Jo Lee", "skillIds": [500, 101, 500]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, body) = app
        .call(Method::GET, "/v1/agents/901", Some(&app.admin), None)
        .await;
    assert_eq!(
        body,
        json!({"id": 901, "username": "jlee", "active": true, "name": "Jo Lee", "skillIds": [101, 500]})
    );
    let (status, body) = app
        .call(
            Method::PUT,
            "/v1/agents/902",
            Some(&app.admin),
            Some(&json!({"username": "x", "active": true, "skillIds": [0]})),
        )
        .await;
    assert!(status.is_client_error(), "{status}: {body}");

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
    assert_result(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "InvalidTargetAgentId",
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

/// A user restricted to some skills can neither read nor change the others.
#[tokio::test]
async fn directory_writes_and_reads_respect_the_skill_restriction() {
    let app = TestApp::spawn().await;
    let token = app.token("ny-admin", &["all"], &[SKILL_NEW_YORK]).await;
    let body =
        json!({"name": "Hijacked", "mediaType": "phone", "direction": "outbound", "active": false});
    for path in [format!("/v1/skills/{SKILL}"), "/v1/skills/4242".to_owned()] {
        let (status, answer) = app
            .call(Method::PUT, &path, Some(&token), Some(&body))
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "PUT {path}: {answer}");
        assert_eq!(answer["result"], "InvalidSecurityUser");
        let (status, answer) = app.call(Method::GET, &path, Some(&token), None).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "GET {path}: {answer}");
    }
    let (_, stored) = app
        .call(
            Method::GET,
            &format!("/v1/skills/{SKILL}"),
            Some(&app.admin),
            None,
        )
        .await;
    assert_eq!(stored["active"], true, "unchanged: {stored}");
    assert_ne!(stored["name"], "Hijacked");
    let (status, answer) = app
        .call(
            Method::PUT,
            &format!("/v1/skills/{SKILL_NEW_YORK}"),
            Some(&token),
            Some(&json!({"name": "NY", "mediaType": "phone", "direction": "outbound", "active": true, "timeZone": "America/New_York"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "its own skill: {answer}");
}

/// Calling hours with no opening would fail every callback of the skill when it matures:
/// refused when given, naming the field.
#[tokio::test]
async fn calling_hours_that_never_open_are_refused() {
    let app = TestApp::spawn().await;
    for hours in [json!({}), json!({"mon": [], "sat": []})] {
        let body = json!({"name": "Never", "mediaType": "phone", "direction": "outbound", "active": true, "callingHours": hours});
        let (status, answer) = app
            .call(Method::PUT, "/v1/skills/600", Some(&app.admin), Some(&body))
            .await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{hours}: {answer}"
        );
        assert_eq!(answer["result"], "Default");
        let message = answer["message"].as_str().unwrap_or_default();
        assert!(message.contains("callingHours"), "{message}");
        assert!(message.contains("no day has an opening"), "{message}");
    }
    let (status, _) = app
        .call(Method::GET, "/v1/skills/600", Some(&app.admin), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "nothing stored");
}

/// Agents serve every skill: a user restricted to some skills may not rename or deactivate
/// one, even with `directory:write`; an unrestricted user may.
#[tokio::test]
async fn only_a_user_of_every_skill_may_change_agents() {
    let app = TestApp::spawn().await;
    let restricted = app
        .token("ny-directory", &["directory:write"], &[SKILL_NEW_YORK])
        .await;
    let path = format!("/v1/agents/{AGENT}");
    let body = json!({"username": "hijacked", "active": false});
    let (status, answer) = app
        .call(Method::PUT, &path, Some(&restricted), Some(&body))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{answer}");
    assert_eq!(answer["result"], "InvalidSecurityUser");
    assert!(
        answer["message"]
            .as_str()
            .is_some_and(|m| m.contains("restricted")),
        "{answer}"
    );
    let (_, stored) = app.call(Method::GET, &path, Some(&app.admin), None).await;
    assert_eq!(stored["active"], true, "unchanged: {stored}");
    assert_ne!(stored["username"], "hijacked");

    let (status, answer) = app
        .call(Method::PUT, &path, Some(&app.admin), Some(&body))
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["active"], false);
}
