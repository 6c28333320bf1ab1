//! Security users: who may do what, on which skills.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use testkit::prelude::*;

/// Every authenticated endpoint, with a body where it takes one.
fn endpoints(callback: &str) -> Vec<(Method, String, Option<Value>)> {
    vec![
        (Method::POST, "/v1/callbacks".into(), Some(valid_body())),
        (Method::GET, "/v1/callbacks".into(), None),
        (Method::GET, format!("/v1/callbacks/{callback}"), None),
        (
            Method::PATCH,
            format!("/v1/callbacks/{callback}"),
            Some(json!({"notes": "x"})),
        ),
        (Method::DELETE, format!("/v1/callbacks/{callback}"), None),
        (
            Method::GET,
            format!("/v1/callbacks/{callback}/events"),
            None,
        ),
        (
            Method::PUT,
            format!("/v1/skills/{SKILL}"),
            Some(
                json!({"name": "s", "mediaType": "phone", "direction": "outbound", "active": true}),
            ),
        ),
        (Method::GET, format!("/v1/skills/{SKILL}"), None),
        (
            Method::PUT,
            format!("/v1/agents/{AGENT}"),
            Some(json!({"username": "jdoe", "active": true})),
        ),
        (Method::GET, format!("/v1/agents/{AGENT}"), None),
    ]
}

#[tokio::test]
async fn every_endpoint_refuses_missing_malformed_unknown_and_disabled_tokens() {
    let app = TestApp::spawn().await;
    let id = app.create_ok(&valid_body()).await;
    let disabled = app.token("leaver", &["all"], &[]).await;
    assert!(app.store.disable_user("leaver").await.expect("disabled"));
    let before = app.row_counts().await;

    for (method, path, body) in endpoints(&id) {
        for authorization in [
            None,
            Some("Basic YWRtaW46YWRtaW4=".to_owned()),
            Some("Bearer".to_owned()),
            Some("Bearer    ".to_owned()),
            Some(format!("Bearer {}", "cbd_".to_owned() + &"0".repeat(64))),
            Some(format!("Bearer {disabled}")),
        ] {
            let mut request = app
                .client
                .request(method.clone(), format!("{}{path}", app.base));
            if let Some(value) = &authorization {
                request = request.header("Authorization", value);
            }
            if let Some(body) = &body {
                request = request.json(body);
            }
            let response = request.send().await.expect("sent");
            assert_eq!(
                response
                    .headers()
                    .get("www-authenticate")
                    .and_then(|v| v.to_str().ok()),
                Some("Bearer")
            );
            let (status, answer) = read(response).await;
            assert_eq!(
                status,
                StatusCode::UNAUTHORIZED,
                "{method} {path} {authorization:?}: {answer}"
            );
            assert_eq!(answer["result"], "InvalidSecurityUser", "{answer}");
        }
    }
    assert_eq!(app.row_counts().await, before, "nothing written");
    assert_eq!(app.get_callback(&id).await["state"], "pending");
}

#[tokio::test]
async fn each_endpoint_needs_its_permission() {
    let app = TestApp::spawn().await;
    let id = app.create_ok(&valid_body()).await;
    let needs = [
        "callbacks:create",
        "callbacks:read",
        "callbacks:read",
        "callbacks:update",
        "callbacks:cancel",
        "callbacks:read",
        "directory:write",
        "directory:read",
        "directory:write",
        "directory:read",
    ];
    let all = [
        "callbacks:create",
        "callbacks:read",
        "callbacks:update",
        "callbacks:cancel",
        "directory:read",
        "directory:write",
    ];
    for (i, ((method, path, body), needed)) in endpoints(&id).into_iter().zip(needs).enumerate() {
        // A user with every permission but the needed one (directory:write implies read).
        let others: Vec<&str> = all
            .iter()
            .copied()
            .filter(|p| *p != needed && !(needed == "directory:read" && *p == "directory:write"))
            .collect();
        let token = app.token(&format!("lacks-{i}"), &others, &[]).await;
        let (status, answer) = app
            .call(method.clone(), &path, Some(&token), body.as_ref())
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{method} {path}: {answer}");
        assert_eq!(answer["result"], "InvalidSecurityUser");
        assert!(
            answer["message"]
                .as_str()
                .is_some_and(|m| m.contains(needed)),
            "{answer}"
        );

        let token = app.token(&format!("has-{i}"), &[needed], &[]).await;
        let (status, answer) = app
            .call(method.clone(), &path, Some(&token), body.as_ref())
            .await;
        assert!(
            status.is_success(),
            "{method} {path} with {needed}: {status} {answer}"
        );
    }
}

#[tokio::test]
async fn restricted_user_gets_404_for_other_skills_callbacks_and_cannot_touch_them() {
    let app = TestApp::spawn().await;
    let other = app.create_ok(&valid_body()).await;
    let mut ny_body = valid_body();
    ny_body["skillId"] = json!(SKILL_NEW_YORK);
    let own = app.create_ok(&ny_body).await;
    let token = app.token("ny-team", &["all"], &[SKILL_NEW_YORK]).await;

    let (status, answer) = app
        .call(
            Method::POST,
            "/v1/callbacks",
            Some(&token),
            Some(&valid_body()),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{answer}");
    assert_eq!(answer["result"], "InvalidSecurityUser");
    assert!(
        answer["message"]
            .as_str()
            .is_some_and(|m| m.contains(&SKILL.to_string())),
        "{answer}"
    );

    // Another skill's callback is answered as absent (a 403 would confirm it exists), exactly
    // as one that does not exist.
    let absent = uuid::Uuid::now_v7();
    for callback in [other.clone(), absent.to_string()] {
        for (method, path, body) in [
            (Method::GET, format!("/v1/callbacks/{callback}"), None),
            (
                Method::GET,
                format!("/v1/callbacks/{callback}/events"),
                None,
            ),
            (
                Method::PATCH,
                format!("/v1/callbacks/{callback}"),
                Some(json!({"notes": "mine now"})),
            ),
            (Method::DELETE, format!("/v1/callbacks/{callback}"), None),
            (
                Method::POST,
                format!("/v1/callbacks/{callback}/outcomes"),
                Some(json!({"attempt": 1, "outcome": "completed"})),
            ),
        ] {
            let (status, answer) = app
                .call(method.clone(), &path, Some(&token), body.as_ref())
                .await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{method} {path}: {answer}");
            assert_eq!(answer["result"], "Default");
            assert_eq!(
                answer["message"],
                format!("callback {callback} does not exist")
            );
        }
    }
    // Naming another skill confirms nothing the caller did not say: 403.
    let (status, answer) = app
        .call(
            Method::GET,
            &format!("/v1/callbacks?skillId={SKILL}"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{answer}");
    assert_eq!(answer["result"], "InvalidSecurityUser");
    let untouched = app.get_callback(&other).await;
    assert_eq!(untouched["state"], "pending");
    assert_eq!(untouched["notes"], "re: invoice 42");

    let (status, list) = app
        .call(Method::GET, "/v1/callbacks", Some(&token), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let ids: Vec<&str> = list["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|c| c["callbackId"].as_str())
        .collect();
    assert_eq!(
        ids,
        vec![own.as_str()],
        "only its own skill's callbacks are listed"
    );

    let (status, _) = app
        .call(Method::POST, "/v1/callbacks", Some(&token), Some(&ny_body))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _) = app
        .call(
            Method::DELETE,
            &format!("/v1/callbacks/{own}"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
}

/// Failed token lookups are limited per address: past the budget, that address's tokens
/// not in the cache get 429 with Retry-After and no query. A repeated unknown token is
/// answered from the cache, and the budget recovers at its rate.
#[tokio::test]
async fn token_lookups_are_limited_per_address() {
    let app = TestApp::spawn_with(|s| s.api.token_lookups_per_second = 1).await;
    let (status, _) = app
        .call(Method::GET, "/v1/callbacks", Some(&app.admin), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let mut statuses = Vec::new();
    for n in 0..8 {
        let (status, body) = app
            .call(
                Method::GET,
                "/v1/callbacks",
                Some(&format!("cbd_guess{n}")),
                None,
            )
            .await;
        if status == StatusCode::TOO_MANY_REQUESTS {
            assert_eq!(body["result"], "Default", "{body}");
        }
        statuses.push(status);
    }
    let refused = statuses
        .iter()
        .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert!(
        refused >= 2,
        "a burst of five lookups, then 429: {statuses:?}"
    );
    assert_eq!(statuses[0], StatusCode::UNAUTHORIZED);
    let response = app
        .client
        .get(format!("{}/v1/callbacks", app.base))
        .bearer_auth("cbd_guess99")
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(response.headers().contains_key("retry-after"));
    // The same unknown token again is answered from the cache (401, not counted).
    let (status, _) = app
        .call(Method::GET, "/v1/callbacks", Some("cbd_guess0"), None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // The limit recovers at its rate: a second later, a lookup is allowed again.
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    let (status, _) = app
        .call(Method::GET, "/v1/callbacks", Some(&app.admin), None)
        .await;
    assert_eq!(status, StatusCode::OK);
}
