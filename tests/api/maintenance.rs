//! The maintenance jobs' work: retention purge and backlog figures.

use testkit::prelude::*;

async fn age(app: &TestApp, ids: &[String], state: &str, age: &str) {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE callbacks SET state = '{state}', updated_at = now() - interval '{age}' WHERE id = ANY($1::uuid[])"
    )))
    .bind(ids.iter().map(|s| s.parse::<uuid::Uuid>().expect("uuid")).collect::<Vec<_>>())
    .execute(&app.pool)
    .await
    .expect("aged");
}

/// Retention takes only what has ended: a callback still waiting for its dialer's outcome
/// keeps its row and its history, however old.
#[tokio::test]
async fn retention_purges_only_terminal_callbacks_never_live_ones() {
    let app = TestApp::spawn().await;
    let mut old_terminal = Vec::new();
    for state in ["completed", "failed", "expired", "cancelled"] {
        let ids = app.insert_due(1, None).await;
        age(&app, &ids, state, "40 days").await;
        old_terminal.extend(ids);
    }
    let recent = app.insert_due(2, None).await;
    age(&app, &recent, "cancelled", "2 days").await;
    for state in ["pending", "dispatched", "accepted"] {
        let ids = app.insert_due(1, None).await;
        age(&app, &ids, state, "90 days").await;
    }
    sqlx::query("INSERT INTO callback_events (callback_id, actor, kind) SELECT id, 't', 'created' FROM callbacks")
        .execute(&app.pool)
        .await
        .expect("events");

    let deleted = app.store.purge_terminal(30).await.expect("purge");
    assert_eq!(deleted, 4, "the four old terminal callbacks");
    let states = app.states().await;
    assert_eq!(
        states.get("cancelled"),
        Some(&2),
        "recent terminal rows stay"
    );
    for live in ["pending", "dispatched", "accepted"] {
        assert_eq!(
            states.get(live),
            Some(&1),
            "{live} callbacks are never purged, however old: {states:?}"
        );
    }
    for gone in ["completed", "failed", "expired"] {
        assert_eq!(states.get(gone), None, "{states:?}");
    }
    let (_, events, _) = app.row_counts().await;
    assert_eq!(
        events, 5,
        "events went with their callbacks, and only with them"
    );
}

/// A dispatched or accepted callback whose dialer never reports a final outcome fails at
/// its outcome deadline (the skill's, else the default), with an event; then retention can
/// take it.
#[tokio::test]
async fn outcome_deadline_ends_callbacks_that_wait_for_an_outcome_forever() {
    let app = TestApp::spawn().await;
    let dispatched = app.insert_due(2, None).await;
    let accepted = app.insert_due(1, None).await;
    let in_time = app.insert_due(1, None).await;
    for (ids, state, deadline) in [
        (&dispatched, "dispatched", "now() - interval '1 second'"),
        (&accepted, "accepted", "now() - interval '1 hour'"),
        (&in_time, "dispatched", "now() + interval '1 hour'"),
    ] {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE callbacks SET state = '{state}', attempt = 1, dispatched_at = now() - interval '1 day',
                 outcome_due_at = {deadline} WHERE id = ANY($1::uuid[])"
        )))
        .bind(ids.iter().map(|s| s.parse::<uuid::Uuid>().expect("uuid")).collect::<Vec<_>>())
        .execute(&app.pool)
        .await
        .expect("set up");
    }
    callbackd::app::timers::run(&app.store).await;

    for id in dispatched.iter().chain(&accepted) {
        let callback = app.get_callback(id).await;
        assert_eq!(callback["state"], "failed", "{callback}");
        assert!(
            callback["lastError"]
                .as_str()
                .is_some_and(|e| e.contains("no final outcome") && e.contains("attempt 1")),
            "{callback}"
        );
        let events = app.events(id).await;
        let last = events.last().expect("an event");
        assert_eq!(last["kind"], "outcome_deadline", "{events:?}");
        assert_eq!(last["details"]["attempt"], 1);
    }
    assert_eq!(app.get_callback(&in_time[0]).await["state"], "dispatched");
    // Run again: nothing more changes, and no second event.
    callbackd::app::timers::run(&app.store).await;
    assert_eq!(app.events(&accepted[0]).await.len(), 1);
}

/// A real publication starts the deadline from the skill's setting, else the default.
#[tokio::test]
async fn publication_sets_the_outcome_deadline_from_the_skill_or_the_default() {
    let app =
        TestApp::spawn_dispatching_with(|s| s.lifecycle.outcome_deadline_seconds = 7200).await;
    let mut consumer = testkit::tap::Consumer::bind(&app.exchange, "#").await;
    let default_id = app
        .create_ok(&with(
            "scheduleDate",
            serde_json::json!(in_(chrono::Duration::zero())),
        ))
        .await;
    consumer
        .next(std::time::Duration::from_secs(10))
        .await
        .expect("published");
    app.wait_state(&default_id, "dispatched", 5).await;
    app.put_skill(SKILL, serde_json::json!({"outcomeDeadlineSeconds": 60}))
        .await;
    let skill_id = app
        .create_ok(&with(
            "scheduleDate",
            serde_json::json!(in_(chrono::Duration::zero())),
        ))
        .await;
    consumer
        .next(std::time::Duration::from_secs(10))
        .await
        .expect("published");
    app.wait_state(&skill_id, "dispatched", 5).await;
    for (id, seconds) in [(&default_id, 7200.0), (&skill_id, 60.0)] {
        let after: f64 = sqlx::query_scalar(
            "SELECT EXTRACT(EPOCH FROM outcome_due_at - dispatched_at)::float8 FROM callbacks WHERE id = $1::uuid",
        )
        .bind(id)
        .fetch_one(&app.pool)
        .await
        .expect("deadline");
        assert!(
            (after - seconds).abs() < 1.0,
            "{id}: {after} s, expected {seconds}"
        );
    }
}

#[tokio::test]
async fn backlog_counts_pending_due_now_and_the_oldest_overdue() {
    let app = TestApp::spawn().await;
    app.insert_due(4, None).await;
    sqlx::query("UPDATE callbacks SET due_at = now() - interval '90 seconds' WHERE id = (SELECT id FROM callbacks LIMIT 1)")
        .execute(&app.pool)
        .await
        .expect("overdue");
    let later = app.insert_due(2, None).await;
    sqlx::query(
        "UPDATE callbacks SET due_at = now() + interval '1 hour' WHERE id = ANY($1::uuid[])",
    )
    .bind(
        later
            .iter()
            .map(|s| s.parse::<uuid::Uuid>().expect("uuid"))
            .collect::<Vec<_>>(),
    )
    .execute(&app.pool)
    .await
    .expect("later");
    let backlog = app.store.backlog().await.expect("backlog");
    assert_eq!(backlog.pending, 6);
    assert_eq!(backlog.due_now, 4);
    assert_eq!(
        backlog.due_next_hour, 2,
        "the two due an hour from when they were set"
    );
    assert_eq!(backlog.awaiting_outcome, 0);
    app.force_state(&later[0], "accepted").await;
    assert_eq!(
        app.store.backlog().await.expect("backlog").awaiting_outcome,
        1
    );
    assert!(
        (89.0..120.0).contains(&backlog.oldest_overdue_seconds),
        "{backlog:?}"
    );
}
