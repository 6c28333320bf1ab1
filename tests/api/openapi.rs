//! `GET /openapi.json` documents every route the router has, and every documented route
//! is one the router answers.

use reqwest::{Method, StatusCode};
use serde_json::Value;

use testkit::TestApp;

/// Every route of `api::router`, as (method, path template).
const ROUTES: [(&str, &str); 37] = [
    ("get", "/v1/callbacks"),
    ("post", "/v1/callbacks"),
    ("post", "/v1/callbacks/bulk"),
    ("get", "/v1/callbacks/bulk"),
    ("get", "/v1/callbacks/bulk/{id}"),
    ("get", "/v1/callbacks/{id}"),
    ("patch", "/v1/callbacks/{id}"),
    ("delete", "/v1/callbacks/{id}"),
    ("get", "/v1/callbacks/{id}/events"),
    ("post", "/v1/callbacks/{id}/outcomes"),
    ("post", "/v1/callbacks/{id}/retry"),
    ("put", "/v1/skills/{id}"),
    ("get", "/v1/skills/{id}"),
    ("put", "/v1/skills/{id}/capacity"),
    ("post", "/v1/skills/{id}/pause"),
    ("post", "/v1/skills/{id}/resume"),
    ("get", "/v1/skills/{id}/availability"),
    ("put", "/v1/agents/{id}"),
    ("get", "/v1/agents/{id}"),
    ("put", "/v1/dnc/{phone}"),
    ("get", "/v1/dnc/{phone}"),
    ("delete", "/v1/dnc/{phone}"),
    ("put", "/v1/calendars/{name}"),
    ("get", "/v1/calendars/{name}"),
    ("delete", "/v1/calendars/{name}"),
    ("get", "/v1/webhooks"),
    ("put", "/v1/webhooks/{name}"),
    ("get", "/v1/webhooks/{name}"),
    ("delete", "/v1/webhooks/{name}"),
    ("get", "/v1/webhooks/{name}/attempts"),
    ("get", "/v1/privacy/export"),
    ("post", "/v1/privacy/erasure"),
    ("get", "/v1/reports/promises"),
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("get", "/metrics"),
    ("get", "/openapi.json"),
];

async fn document(app: &TestApp) -> Value {
    let (status, doc) = app.call(Method::GET, "/openapi.json", None, None).await;
    assert_eq!(status, StatusCode::OK, "{doc}");
    doc
}

#[tokio::test]
async fn openapi_document_lists_every_route_without_authentication() {
    let app = TestApp::spawn().await;
    let doc = document(&app).await;
    assert!(
        doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")),
        "{}",
        doc["openapi"]
    );
    for (method, path) in ROUTES {
        let operation = &doc["paths"][path][method];
        assert!(operation.is_object(), "{method} {path} is not documented");
        let secured = path.starts_with("/v1/");
        assert_eq!(
            operation["security"][0].get("bearer").is_some(),
            secured,
            "{method} {path}: bearer security"
        );
    }
    let scheme = &doc["components"]["securitySchemes"]["bearer"];
    assert_eq!(scheme["type"], "http");
    assert_eq!(scheme["scheme"], "bearer");
    let codes = doc["components"]["schemas"]["ResultCode"]["enum"].clone();
    for code in [
        "Success",
        "InvalidSecurityUser",
        "InvalidSkillId",
        "InvalidTargetAgentId",
        "InvalidScheduleDate",
        "InvalidPhoneNumber",
        "Default",
    ] {
        assert!(
            codes.as_array().is_some_and(|c| c.contains(&code.into())),
            "{code} missing from {codes}"
        );
    }
}

/// The CXone-compatible surface's routes under its default prefix, documented (and routed)
/// only when `cxone.enabled`.
const CXONE_ROUTES: [(&str, &str); 6] = [
    ("post", "/cxone/scheduled-callbacks"),
    ("put", "/cxone/scheduled-callbacks/{callbackId}"),
    ("delete", "/cxone/scheduled-callbacks/{callbackId}"),
    ("get", "/cxone/agents/{agentId}/scheduled-callbacks"),
    ("get", "/cxone/skills/{skillId}/scheduled-callbacks"),
    ("post", "/cxone/promise"),
];

#[tokio::test]
async fn every_documented_operation_is_routed() {
    let app = TestApp::spawn().await;
    assert_eq!(documented_and_routed(&app).await, ROUTES.len());
}

#[tokio::test]
async fn the_cxone_surface_is_documented_under_its_tag_when_on() {
    let app = TestApp::spawn_with(|s| s.cxone.enabled = true).await;
    assert_eq!(
        documented_and_routed(&app).await,
        ROUTES.len() + CXONE_ROUTES.len()
    );
    let doc = document(&app).await;
    for (method, path) in CXONE_ROUTES {
        let operation = &doc["paths"][path][method];
        assert_eq!(
            operation["tags"],
            serde_json::json!(["cxone"]),
            "{method} {path}"
        );
        assert!(
            operation["security"][0].get("bearer").is_some(),
            "{method} {path}"
        );
        for (status, answer) in operation["responses"].as_object().expect("responses") {
            if status.starts_with('4') || status.starts_with('5') {
                assert_eq!(
                    answer["content"]["application/json"]["schema"]["$ref"],
                    "#/components/schemas/CxErrorBody",
                    "{method} {path} {status}"
                );
            }
        }
    }
    // Its schemas are its own, not `/v1`'s of the same name.
    assert_eq!(
        doc["paths"]["/cxone/scheduled-callbacks"]["post"]["responses"]["200"]["content"]["application/json"]
            ["schema"]["$ref"],
        "#/components/schemas/CxCreated"
    );
    assert!(
        doc["tags"]
            .as_array()
            .is_some_and(|tags| tags.iter().any(|t| t["name"] == "cxone"))
    );
}

/// Sends every documented operation without a token; answers how many there are.
async fn documented_and_routed(app: &TestApp) -> usize {
    let doc = document(app).await;
    let paths = doc["paths"].as_object().expect("paths");
    let mut documented = 0;
    for (template, item) in paths {
        let path = template
            .replace("{callbackId}", "1")
            .replace("{agentId}", "7")
            .replace("{skillId}", "101")
            .replace("{id}", "01a21291-eee3-771c-b85e-1be0283a8457")
            .replace("{phone}", "+14155552671")
            .replace("{name}", "uk-holidays");
        let path = if template.contains("/skills/") || template.contains("/agents/") {
            template.replace("{id}", "101")
        } else {
            path
        };
        for method in item.as_object().expect("path item").keys() {
            documented += 1;
            let method =
                Method::from_bytes(method.to_ascii_uppercase().as_bytes()).expect("an HTTP method");
            let response = app
                .client
                .request(method.clone(), format!("{}{path}", app.base))
                .send()
                .await
                .expect("request sent");
            let status = response.status();
            let body = response.text().await.expect("body");
            assert!(
                status != StatusCode::METHOD_NOT_ALLOWED
                    && !(status == StatusCode::NOT_FOUND && body.contains("no such endpoint")),
                "{method} {path}: {status} {body}"
            );
        }
    }
    documented
}

/// Inputs that fuzzing the API from this document turned into 500s.
#[tokio::test]
async fn numbers_beyond_what_the_store_holds_are_refused_with_422() {
    let app = TestApp::spawn().await;
    for (field, value) in [
        ("maxAttempts", serde_json::json!(4_294_967_295u64)),
        ("agentFallbackSeconds", serde_json::json!(3_000_000_000u64)),
        ("defaultTtlSeconds", serde_json::json!(2_147_483_648u64)),
        (
            "retryBackoffSeconds",
            serde_json::json!([600, 3_000_000_000u64]),
        ),
    ] {
        let body = serde_json::json!({
            "name": "big", "mediaType": "phone", "direction": "outbound", "active": true,
            field: value,
        });
        let (status, answer) = app
            .call(Method::PUT, "/v1/skills/150", Some(&app.admin), Some(&body))
            .await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{field}: {answer}"
        );
        assert_eq!(answer["result"], "Default", "{answer}");
        assert!(
            answer["message"]
                .as_str()
                .is_some_and(|m| m.contains(field)),
            "{answer}"
        );
    }
    let (status, answer) = app
        .call(Method::GET, "/v1/skills/150", Some(&app.admin), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "nothing stored: {answer}");
}

#[tokio::test]
async fn a_forged_cursor_far_in_the_past_is_a_bad_request() {
    let app = TestApp::spawn().await;
    for raw in [
        "-8000000000000000000.01a21291-eee3-771c-b85e-1be0283a8457",
        "8000000000000000000.01a21291-eee3-771c-b85e-1be0283a8457",
    ] {
        let cursor: String = raw.bytes().map(|b| format!("{b:02x}")).collect();
        let (status, answer) = app
            .call(
                Method::GET,
                &format!("/v1/callbacks?cursor={cursor}"),
                Some(&app.admin),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{raw}: {answer}");
        assert_eq!(answer["result"], "Default", "{answer}");
    }
}
