//! Contact-center routing rules: numbers as people write them in a skill's own region,
//! caller ID and the original number, and per-number admission (duplicates, limits) —
//! including two presses at once, on one daemon and across two.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use testkit::prelude::*;
use testkit::tap::Consumer;

/// Puts skill `id` (an outbound phone skill in London) with `rules` on top.
async fn put_skill(app: &TestApp, id: i64, rules: Value) -> (StatusCode, Value) {
    let mut body = json!({
        "name": format!("skill {id}"), "mediaType": "phone", "direction": "outbound",
        "active": true, "timeZone": "Europe/London"
    });
    for (k, v) in rules.as_object().expect("object") {
        body[k] = v.clone();
    }
    app.call(
        Method::PUT,
        &format!("/v1/skills/{id}"),
        Some(&app.admin),
        Some(&body),
    )
    .await
}

/// A `422` with result code `code` whose message says `says`.
fn assert_refused(status: StatusCode, answer: &Value, code: &str, says: &str) {
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    assert_eq!(answer["result"], code, "{answer}");
    assert!(
        answer["message"]
            .as_str()
            .unwrap_or_default()
            .contains(says),
        "`{says}` not in {answer}"
    );
}

fn create_body(skill: i64, phone: &str) -> Value {
    let mut body = valid_body();
    body["skillId"] = json!(skill);
    body["phoneNumber"] = json!(phone);
    body
}

#[tokio::test]
async fn a_skill_reads_national_numbers_in_its_own_region() {
    let app = TestApp::spawn().await;
    let (status, skill) = put_skill(&app, SKILL, json!({"defaultRegion": "gb"})).await;
    assert_eq!(status, StatusCode::OK, "{skill}");
    assert_eq!(skill["defaultRegion"], "GB");

    for written in [
        "020 7946 0958",
        "+44 (0) 20 7946 0958",
        "+44 (0)20-7946-0958",
    ] {
        let (status, created) = app.create(&create_body(SKILL, written)).await;
        assert_eq!(status, StatusCode::CREATED, "{written}: {created}");
        let id = created["callbackId"].as_str().expect("id");
        assert_eq!(
            app.get_callback(id).await["phoneNumber"],
            "+442079460958",
            "{written}"
        );
    }
    // Skill 104 has no region of its own: the global one (US) reads the number, and the
    // refusal says which country was assumed.
    let (status, refused) = app
        .create(&create_body(SKILL_NEW_YORK, "020 7946 0958"))
        .await;
    assert_refused(status, &refused, "InvalidPhoneNumber", "region US");

    for (rules, field) in [
        (json!({"defaultRegion": "GBR"}), "defaultRegion"),
        (json!({"callerId": "12"}), "callerId"),
        (json!({"duplicatePolicy": "sometimes"}), "duplicatePolicy"),
        (json!({"maxPendingPerNumber": 0}), "maxPendingPerNumber"),
        (
            json!({"maxCreatesPerNumberPerDay": 0}),
            "maxCreatesPerNumberPerDay",
        ),
    ] {
        let (status, refused) = put_skill(&app, SKILL_NEW_YORK, rules.clone()).await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{rules}: {refused}"
        );
        assert!(
            refused["message"]
                .as_str()
                .unwrap_or_default()
                .contains(field),
            "{rules}: {refused}"
        );
    }
}

#[tokio::test]
async fn caller_id_and_the_original_number_are_kept_listed_and_published() {
    let app = TestApp::spawn_dispatching().await;
    let mut consumer = Consumer::bind(&app.exchange, "#").await;
    let (status, _) = put_skill(
        &app,
        SKILL,
        json!({"defaultRegion": "GB", "callerId": "020 7183 8750"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let now = in_(chrono::Duration::zero());

    // Its own caller ID and origin, as people write them.
    let mut own = create_body(SKILL, "+442079460958");
    own["scheduleDate"] = json!(now);
    own["callerId"] = json!("+44 (0) 161 496 0000");
    own["origNumber"] = json!("07911 123456");
    let own_id = app.create_ok(&own).await;
    // None of its own: the skill's caller ID.
    let mut default = create_body(SKILL, "+442079460958");
    default["scheduleDate"] = json!(now);
    let default_id = app.create_ok(&default).await;

    let received = consumer.take(2, Duration::from_secs(10)).await;
    assert_eq!(received.len(), 2);
    for m in &received {
        let (caller, orig) = if m.callback_id() == own_id {
            ("+441614960000", json!("+447911123456"))
        } else {
            assert_eq!(m.callback_id(), default_id);
            ("+442071838750", Value::Null)
        };
        assert_eq!(m.body["callerId"], caller, "{}", m.body);
        assert_eq!(
            m.body.get("origNumber").cloned().unwrap_or(Value::Null),
            orig
        );
    }
    let stored = app.get_callback(&own_id).await;
    assert_eq!(
        (&stored["callerId"], &stored["origNumber"]),
        (&json!("+441614960000"), &json!("+447911123456"))
    );

    // Searchable: the list filters by either (written in any form the create takes).
    for (query, want) in [
        ("origNumber=%2B447911123456", vec![own_id.clone()]),
        ("callerId=%2B442071838750", vec![default_id.clone()]),
        (
            "phoneNumber=%2B442079460958",
            vec![own_id.clone(), default_id.clone()],
        ),
    ] {
        let (status, page) = app
            .call(
                Method::GET,
                &format!("/v1/callbacks?{query}"),
                Some(&app.admin),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{page}");
        let mut ids: Vec<String> = page["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|c| c["callbackId"].as_str().expect("id").to_owned())
            .collect();
        ids.sort();
        let mut want = want;
        want.sort();
        assert_eq!(ids, want, "{query}");
    }

    // The operator's list takes the same filters.
    let out = testkit::cli::run(
        &app,
        &[
            "callbacks",
            "list",
            "--as",
            "admin",
            "--json",
            "--orig-number",
            "+44 7911 123456",
        ],
    );
    assert!(out.status.success(), "{}", testkit::cli::stderr(&out));
    let listed: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(
        listed["items"].as_array().map(Vec::len),
        Some(1),
        "{listed}"
    );
    assert_eq!(listed["items"][0]["callbackId"], own_id.as_str());

    // PATCH changes the caller ID (read in the skill's region) or removes it, with an
    // `updated` event; the origin is where the request came from, and does not change.
    let later = app.create_ok(&create_body(SKILL, "+442079460958")).await;
    let patch = |body: Value| {
        let app = &app;
        let id = later.clone();
        async move {
            app.call(
                Method::PATCH,
                &format!("/v1/callbacks/{id}"),
                Some(&app.admin),
                Some(&body),
            )
            .await
        }
    };
    let (status, changed) = patch(json!({"callerId": "0161 496 0001"})).await;
    assert_eq!(status, StatusCode::OK, "{changed}");
    assert_eq!(changed["callerId"], "+441614960001");
    let (status, events) = app
        .call(
            Method::GET,
            &format!("/v1/callbacks/{later}/events"),
            Some(&app.admin),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let updated = events["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|e| e["kind"] == "updated")
        .expect("an updated event")
        .clone();
    assert_eq!(
        updated["details"]["callerId"],
        json!({"from": "+442071838750", "to": "+441614960001"})
    );
    let (status, cleared) = patch(json!({"callerId": null})).await;
    assert_eq!(status, StatusCode::OK, "{cleared}");
    assert_eq!(cleared["callerId"], Value::Null);
    let (status, refused) = patch(json!({"callerId": "12"})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");
    assert_eq!(refused["result"], "InvalidPhoneNumber");
    let (status, _) = patch(json!({"origNumber": "+447911123456"})).await;
    assert_eq!(
        status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "origNumber does not change"
    );

    // A bad one is the number's result code, naming the field; nothing is written.
    let before = app.states().await;
    let mut bad = create_body(SKILL, "+442079460958");
    bad["callerId"] = json!("not a number");
    let (status, refused) = app.create(&bad).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");
    assert_eq!(refused["result"], "InvalidPhoneNumber");
    assert!(
        refused["message"]
            .as_str()
            .unwrap_or_default()
            .starts_with("callerId"),
        "{refused}"
    );
    assert_eq!(app.states().await, before);
}

#[tokio::test]
async fn duplicate_policy_existing_answers_the_pending_callback_and_refuse_refuses() {
    let app = TestApp::spawn().await;
    put_skill(&app, SKILL, json!({"duplicatePolicy": "existing"})).await;
    put_skill(&app, SKILL_NEW_YORK, json!({"duplicatePolicy": "refuse"})).await;

    let first = app.create_ok(&create_body(SKILL, "+442079460958")).await;
    let (status, again) = app.create(&create_body(SKILL, "+44 20 7946 0958")).await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(again["callbackId"], first.as_str());
    assert_eq!(again["existing"], true);
    assert!(
        again["message"]
            .as_str()
            .unwrap_or_default()
            .contains("existing")
    );
    // Another number, or another skill, is not a duplicate.
    app.create_ok(&create_body(SKILL, "+442079460959")).await;
    app.create_ok(&create_body(SKILL_NO_ZONE, "+442079460958"))
        .await;
    assert_eq!(app.states().await.get("pending"), Some(&3));

    app.create_ok(&create_body(SKILL_NEW_YORK, "+12125550123"))
        .await;
    let (status, refused) = app
        .create(&create_body(SKILL_NEW_YORK, "+12125550123"))
        .await;
    assert_refused(
        status,
        &refused,
        "InvalidPhoneNumber",
        "duplicatePolicy is refuse",
    );

    // Once the pending one is cancelled, the number may have another.
    let (status, _) = app
        .call(
            Method::DELETE,
            &format!("/v1/callbacks/{first}"),
            Some(&app.admin),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let second = app.create_ok(&create_body(SKILL, "+442079460958")).await;
    assert_ne!(second, first);
}

#[tokio::test]
async fn per_number_limits_name_themselves() {
    let app = TestApp::spawn().await;
    put_skill(
        &app,
        SKILL,
        json!({"maxPendingPerNumber": 2, "maxCreatesPerNumberPerDay": 3}),
    )
    .await;
    let cancel = |id: String| {
        let app = &app;
        async move {
            let (status, _) = app
                .call(
                    Method::DELETE,
                    &format!("/v1/callbacks/{id}"),
                    Some(&app.admin),
                    None,
                )
                .await;
            assert_eq!(status, StatusCode::OK);
        }
    };
    let refusal = |answer: &Value| answer["message"].as_str().unwrap_or_default().to_owned();
    let a = app.create_ok(&create_body(SKILL, "+442079460958")).await;
    let b = app.create_ok(&create_body(SKILL, "+442079460958")).await;
    let (status, refused) = app.create(&create_body(SKILL, "+442079460958")).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");
    assert_eq!(refused["result"], "InvalidPhoneNumber");
    assert!(
        refusal(&refused).contains("maxPendingPerNumber is 2"),
        "{refused}"
    );
    // One pending fewer: a third create today is admitted (the refused one did not count)...
    cancel(a).await;
    app.create_ok(&create_body(SKILL, "+442079460958")).await;
    // ... and a fourth is not, whatever is pending.
    cancel(b).await;
    let (status, refused) = app.create(&create_body(SKILL, "+442079460958")).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");
    assert!(
        refusal(&refused).contains("maxCreatesPerNumberPerDay is 3"),
        "{refused}"
    );
    // Another number has its own count.
    app.create_ok(&create_body(SKILL, "+442079460959")).await;
}

/// Five presses at once, on each of two daemons sharing the database: one callback.
#[tokio::test]
async fn simultaneous_presses_on_two_daemons_create_one_callback() {
    let mut app = TestApp::spawn().await;
    put_skill(&app, SKILL, json!({"duplicatePolicy": "existing"})).await;
    let peer = app.spawn_peer(|_| {}).await;
    let body = create_body(SKILL, "+442079460958");
    let press = |base: String| {
        let client = app.client.clone();
        let token = app.admin.clone();
        let body = body.clone();
        async move {
            let r = client
                .post(format!("{base}/v1/callbacks"))
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .expect("sent");
            let status = r.status();
            (status, r.json::<Value>().await.expect("json"))
        }
    };
    let presses: Vec<_> = (0..10)
        .map(|i| {
            let base = if i % 2 == 0 {
                app.base.clone()
            } else {
                peer.clone()
            };
            tokio::spawn(press(base))
        })
        .collect();
    let mut ids = std::collections::HashSet::new();
    let mut created = 0;
    for p in presses {
        let (status, answer) = p.await.expect("joined");
        assert!(
            status == StatusCode::CREATED || status == StatusCode::OK,
            "{status} {answer}"
        );
        created += usize::from(status == StatusCode::CREATED);
        ids.insert(answer["callbackId"].as_str().expect("id").to_owned());
    }
    assert_eq!(
        (created, ids.len()),
        (1, 1),
        "one callback, answered ten times"
    );
    assert_eq!(app.states().await.get("pending"), Some(&1));
}
