//! Preferred agents and ownership against real PostgreSQL and RabbitMQ: a callback naming
//! several agents goes to the first active one with room (agents take one callback at a
//! time in these tests), is held at the first when all are busy and offered again when one
//! frees up, and goes to its skill when its ownership ends; the list through create, PATCH,
//! bulk and the CLI, and refusals naming the field.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use testkit::prelude::*;
use testkit::tap::{Consumer, Received};

const SECOND_AGENT: i64 = 21;
const THIRD_AGENT: i64 = 22;

async fn put_agent(app: &TestApp, id: i64, active: bool) {
    let (status, answer) = app
        .call(
            Method::PUT,
            &format!("/v1/agents/{id}"),
            Some(&app.admin),
            Some(&json!({ "username": format!("agent{id}"), "active": active })),
        )
        .await;
    assert!(status.is_success(), "{answer}");
}

fn to_agents(agents: &[i64], due: &str) -> Value {
    let mut body = with("scheduleDate", json!(due));
    body["targetAgentIds"] = json!(agents);
    body
}

async fn next(consumer: &mut Consumer, what: &str) -> Received {
    consumer
        .next(Duration::from_secs(10))
        .await
        .unwrap_or_else(|| panic!("{what}: nothing was published"))
}

/// Agent 7 busy with a callback of its own (agents take one at a time here).
async fn busy_agent(app: &TestApp, consumer: &mut Consumer) -> String {
    let mut body = with("scheduleDate", json!(in_(chrono::Duration::zero())));
    body["targetAgentId"] = json!(AGENT);
    let id = app.create_ok(&body).await;
    let got = next(consumer, "agent 7's own callback").await;
    assert_eq!(got.callback_id(), id);
    id
}

#[tokio::test]
async fn the_first_preferred_agent_with_room_takes_it_and_inactive_ones_are_skipped() {
    let app = TestApp::spawn_dispatching().await;
    put_agent(&app, SECOND_AGENT, true).await;
    put_agent(&app, THIRD_AGENT, true).await;
    let mut consumer = Consumer::bind(&app.exchange, "#").await;
    busy_agent(&app, &mut consumer).await;

    let now = in_(chrono::Duration::zero());
    let id = app
        .create_ok(&to_agents(&[AGENT, SECOND_AGENT], &now))
        .await;
    let got = next(&mut consumer, "the preferred agents' callback").await;
    assert_eq!(got.callback_id(), id);
    assert_eq!(got.routing_key, format!("agent.{SECOND_AGENT}"));
    assert_eq!(got.body["targetAgentId"], SECOND_AGENT);
    assert_eq!(got.body["targetAgentIds"], json!([AGENT, SECOND_AGENT]));
    // Recorded once the broker's confirm is in.
    let view = app.wait_state(&id, "dispatched", 10).await;
    assert_eq!(view["targetAgentId"], SECOND_AGENT, "{view}");
    assert_eq!(view["targetAgentIds"], json!([AGENT, SECOND_AGENT]));

    // Agent 21 deactivated after the create: skipped for agent 22.
    let later = in_(chrono::Duration::seconds(2));
    let id = app
        .create_ok(&to_agents(&[SECOND_AGENT, THIRD_AGENT], &later))
        .await;
    put_agent(&app, SECOND_AGENT, false).await;
    let got = next(&mut consumer, "after a deactivation").await;
    assert_eq!(got.callback_id(), id);
    assert_eq!(got.routing_key, format!("agent.{THIRD_AGENT}"));
}

#[tokio::test]
async fn held_at_the_first_agent_it_goes_to_whichever_frees_up_first() {
    let app = TestApp::spawn_dispatching().await;
    put_agent(&app, SECOND_AGENT, true).await;
    let mut consumer = Consumer::bind(&app.exchange, "#").await;
    busy_agent(&app, &mut consumer).await;
    let mut body = with("scheduleDate", json!(in_(chrono::Duration::zero())));
    body["targetAgentId"] = json!(SECOND_AGENT);
    let seconds = app.create_ok(&body).await;
    assert_eq!(
        next(&mut consumer, "agent 21's own").await.callback_id(),
        seconds
    );

    let id = app
        .create_ok(&to_agents(
            &[AGENT, SECOND_AGENT],
            &in_(chrono::Duration::zero()),
        ))
        .await;
    assert!(
        consumer.next(Duration::from_millis(1500)).await.is_none(),
        "both agents are busy: it waits"
    );
    // The maintenance run lets it go every few seconds and the next pass holds it again.
    let mut held: Option<i64> = None;
    for _ in 0..100 {
        held = sqlx::query_scalar("SELECT paced_gate FROM callbacks WHERE id = $1::uuid")
            .bind(&id)
            .fetch_one(&app.pool)
            .await
            .expect("read");
        if held.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(held, Some(-AGENT), "held at the first listed agent's gate");

    // The second agent frees up; the first stays busy. The timers offer it again.
    app.report(&seconds, 1, "completed").await;
    callbackd::app::timers::run(&app.store).await;
    let got = next(&mut consumer, "re-offered").await;
    assert_eq!(got.callback_id(), id);
    assert_eq!(got.routing_key, format!("agent.{SECOND_AGENT}"));
}

#[tokio::test]
async fn when_the_ownership_ends_it_goes_to_the_skill_with_an_event() {
    let app = TestApp::spawn_dispatching().await;
    let mut consumer = Consumer::bind(&app.exchange, "#").await;
    busy_agent(&app, &mut consumer).await;
    let mut body = with("scheduleDate", json!(in_(chrono::Duration::zero())));
    body["targetAgentId"] = json!(AGENT);
    body["ownershipSeconds"] = json!(1);
    let id = app.create_ok(&body).await;
    assert!(
        consumer.next(Duration::from_millis(1200)).await.is_none(),
        "its agent is busy: it waits while the ownership lasts"
    );
    let view = app.get_callback(&id).await;
    assert_eq!(view["ownershipSeconds"], 1, "{view}");
    assert!(view["ownershipEndsAt"].is_string(), "{view}");

    tokio::time::sleep(Duration::from_millis(300)).await;
    callbackd::app::timers::run(&app.store).await;
    let got = next(&mut consumer, "after the ownership").await;
    assert_eq!(got.callback_id(), id);
    assert_eq!(got.routing_key, format!("skill.{SKILL}"));
    let ended = app
        .events(&id)
        .await
        .into_iter()
        .find(|e| e["kind"] == "ownership_ended")
        .expect("ownership_ended event");
    assert_eq!(ended["details"]["agentIds"], json!([AGENT]));
    assert_eq!(ended["details"]["toSkillId"], SKILL);
    let view = app.get_callback(&id).await;
    assert_eq!(view["route"], "skill", "{view}");
    assert!(view["ownershipEndsAt"].is_null(), "{view}");
}

#[tokio::test]
async fn a_skills_ownership_is_the_default_and_a_callback_may_name_its_own() {
    let app = TestApp::spawn().await;
    app.put_skill(SKILL, json!({ "ownershipSeconds": 3600 }))
        .await;
    let due = in_(chrono::Duration::hours(1));
    let with_default = app.create_ok(&to_agents(&[AGENT], &due)).await;
    assert_eq!(
        app.get_callback(&with_default).await["ownershipSeconds"],
        3600
    );
    let mut own = to_agents(&[AGENT], &due);
    own["ownershipSeconds"] = json!(60);
    let own = app.create_ok(&own).await;
    assert_eq!(app.get_callback(&own).await["ownershipSeconds"], 60);
    // To the skill: no ownership applies.
    let skill_only = app.create_ok(&with("scheduleDate", json!(due))).await;
    assert!(app.get_callback(&skill_only).await["ownershipSeconds"].is_null());
}

#[tokio::test]
async fn bad_lists_and_ownerships_are_refused_naming_the_field_and_write_nothing() {
    let app = TestApp::spawn().await;
    let due = in_(chrono::Duration::hours(1));
    for (agents, code, says) in [
        (
            json!([1, 2, 3, 4, 5, 6]),
            "InvalidTargetAgentId",
            "at most 5",
        ),
        (
            json!([AGENT, AGENT]),
            "InvalidTargetAgentId",
            "listed twice",
        ),
        (
            json!([AGENT, "x"]),
            "InvalidTargetAgentId",
            "targetAgentIds[1]",
        ),
        (
            json!([AGENT, 999]),
            "InvalidTargetAgentId",
            "agent 999 does not exist",
        ),
        (
            json!([AGENT, AGENT_INACTIVE]),
            "InvalidTargetAgentId",
            "not active",
        ),
    ] {
        let mut body = with("scheduleDate", json!(due));
        body["targetAgentIds"] = agents.clone();
        let (status, answer) = app.create(&body).await;
        assert_result(status, &answer, StatusCode::UNPROCESSABLE_ENTITY, code);
        let message = answer["message"].as_str().unwrap_or_default();
        assert!(message.contains(says), "{agents}: {message}");
    }
    let mut disagree = to_agents(&[AGENT], &due);
    disagree["targetAgentId"] = json!(AGENT_INACTIVE);
    let (status, answer) = app.create(&disagree).await;
    assert_result(
        status,
        &answer,
        StatusCode::UNPROCESSABLE_ENTITY,
        "InvalidTargetAgentId",
    );
    let mut without_agent = with("scheduleDate", json!(due));
    without_agent["ownershipSeconds"] = json!(60);
    let (status, answer) = app.create(&without_agent).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    assert!(
        answer["message"]
            .as_str()
            .unwrap_or_default()
            .contains("ownershipSeconds")
    );
    let mut too_long = to_agents(&[AGENT], &due);
    too_long["ownershipSeconds"] = json!(604_801);
    let (status, answer) = app.create(&too_long).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM callbacks")
        .fetch_one(&app.pool)
        .await
        .expect("count");
    assert_eq!(count, 0, "nothing written");
}

#[tokio::test]
async fn reassign_takes_the_list_through_patch_bulk_and_the_cli() {
    let app = TestApp::spawn().await;
    put_agent(&app, SECOND_AGENT, true).await;
    let due = in_(chrono::Duration::hours(1));
    let id = app.create_ok(&with("scheduleDate", json!(due))).await;

    let (status, view) = app
        .call(
            Method::PATCH,
            &format!("/v1/callbacks/{id}"),
            Some(&app.admin),
            Some(&json!({ "targetAgentIds": [SECOND_AGENT, AGENT], "ownershipSeconds": 600 })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{view}");
    assert_eq!(view["targetAgentIds"], json!([SECOND_AGENT, AGENT]));
    assert_eq!(view["targetAgentId"], SECOND_AGENT);
    assert_eq!(view["route"], "agent");
    assert_eq!(view["ownershipSeconds"], 600);
    let updated = app
        .events(&id)
        .await
        .into_iter()
        .find(|e| e["kind"] == "updated")
        .expect("updated event");
    assert_eq!(
        updated["details"]["targetAgentIds"]["to"],
        json!([SECOND_AGENT, AGENT])
    );

    // Back to the skill: the ownership goes with the agents.
    let (status, view) = app
        .call(
            Method::PATCH,
            &format!("/v1/callbacks/{id}"),
            Some(&app.admin),
            Some(&json!({ "targetAgentIds": [] })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{view}");
    assert_eq!(view["route"], "skill");
    assert!(view["ownershipSeconds"].is_null(), "{view}");

    let (status, answer) = app
        .call(
            Method::POST,
            "/v1/callbacks/bulk",
            Some(&app.admin),
            Some(&json!({
                "filter": { "skillId": SKILL.to_string() },
                "action": "reassign", "reason": "team change",
                "targetAgentIds": [AGENT, SECOND_AGENT]
            })),
        )
        .await;
    assert!(status.is_success(), "{answer}");
    app.wait_state(&id, "pending", 5).await;
    let mut view = app.get_callback(&id).await;
    for _ in 0..50 {
        if view["targetAgentIds"] == json!([AGENT, SECOND_AGENT]) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        view = app.get_callback(&id).await;
    }
    assert_eq!(
        view["targetAgentIds"],
        json!([AGENT, SECOND_AGENT]),
        "{view}"
    );

    let out = testkit::cli::run(
        &app,
        &[
            "callbacks",
            "--as",
            "admin",
            "reassign",
            &id,
            "--agents",
            "21",
            "--reason",
            "asked",
        ],
    );
    assert!(out.status.success(), "{out:?}");
    let view = app.get_callback(&id).await;
    assert_eq!(view["targetAgentIds"], json!([SECOND_AGENT]), "{view}");
    let out = testkit::cli::run(
        &app,
        &["callbacks", "--as", "admin", "reassign", &id, "--to-skill"],
    );
    assert!(!out.status.success(), "a person says why: {out:?}");
    let out = testkit::cli::run(
        &app,
        &[
            "callbacks",
            "--as",
            "admin",
            "reassign",
            &id,
            "--to-skill",
            "--reason",
            "back to the team",
        ],
    );
    assert!(out.status.success(), "{out:?}");
    assert_eq!(app.get_callback(&id).await["route"], "skill");
}
