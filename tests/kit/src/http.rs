//! Talking to the spawned app over real HTTP: requests with a token, the API's answers as
//! JSON, and the calls most tests make.

use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::app::TestApp;

impl TestApp {
    /// Sends a request; answers the status and the JSON body (`Value::Null` when empty).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> (StatusCode, Value) {
        let mut request = self.client.request(method, format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.expect("request sent");
        read(response).await
    }

    /// Sends `body` as it is (not necessarily JSON) with the admin token.
    pub async fn call_raw(&self, method: Method, path: &str, body: &str) -> (StatusCode, Value) {
        let response = self
            .client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.admin)
            .header("content-type", "application/json")
            .body(body.to_owned())
            .send()
            .await
            .expect("request sent");
        read(response).await
    }

    pub async fn create(&self, body: &Value) -> (StatusCode, Value) {
        self.call(Method::POST, "/v1/callbacks", Some(&self.admin), Some(body))
            .await
    }

    /// Creates a callback that must succeed; returns its id.
    pub async fn create_ok(&self, body: &Value) -> String {
        let (status, answer) = self.create(body).await;
        assert_eq!(status, StatusCode::CREATED, "{answer}");
        answer["callbackId"]
            .as_str()
            .expect("callbackId")
            .to_owned()
    }

    pub async fn get_callback(&self, id: &str) -> Value {
        let (status, body) = self
            .call(
                Method::GET,
                &format!("/v1/callbacks/{id}"),
                Some(&self.admin),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }

    pub async fn events(&self, id: &str) -> Vec<Value> {
        let (status, body) = self
            .call(
                Method::GET,
                &format!("/v1/callbacks/{id}/events"),
                Some(&self.admin),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["items"].as_array().expect("items").clone()
    }

    /// PUT a skill (an outbound phone skill plus `extra` fields); panics unless it succeeds.
    pub async fn put_skill(&self, id: i64, extra: serde_json::Value) {
        let mut body = serde_json::json!({
            "name": format!("skill {id}"), "mediaType": "phone", "direction": "outbound", "active": true
        });
        if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
            body.extend(extra.clone());
        }
        let (status, answer) = self
            .call(
                Method::PUT,
                &format!("/v1/skills/{id}"),
                Some(&self.admin),
                Some(&body),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{answer}");
    }

    /// POST an outcome over HTTP.
    pub async fn report(&self, id: &str, attempt: i64, outcome: &str) -> (StatusCode, Value) {
        let body = serde_json::json!({ "attempt": attempt, "outcome": outcome });
        self.call(
            Method::POST,
            &format!("/v1/callbacks/{id}/outcomes"),
            Some(&self.admin),
            Some(&body),
        )
        .await
    }

    /// Waits (up to `secs`) until the callback is in `state`; returns it.
    pub async fn wait_state(&self, id: &str, state: &str, secs: u64) -> Value {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
        loop {
            let callback = self.get_callback(id).await;
            if callback["state"] == state {
                return callback;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "never became {state}: {callback}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }
}

/// An answer other than success: its status, its result code, and a message saying why.
pub fn assert_result(status: StatusCode, body: &Value, want_status: StatusCode, code: &str) {
    assert_eq!(status, want_status, "{body}");
    assert_eq!(body["result"], code, "{body}");
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
}

pub async fn read(response: reqwest::Response) -> (StatusCode, Value) {
    let status = response.status();
    let text = response.text().await.expect("body");
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{status}: not JSON ({e}): {text}"))
    };
    (status, body)
}
