//! The maintenance jobs' work: retention purge and backlog figures.

use crate::helpers::*;

#[tokio::test]
async fn purge_deletes_old_terminal_callbacks_with_their_events_and_keeps_the_rest() {
    let app = TestApp::spawn().await;
    let old = app.insert_due(3, None).await;
    let recent = app.insert_due(2, None).await;
    let pending_old = app.insert_due(1, None).await;
    for (ids, state, age) in [
        (&old, "dispatched", "40 days"),
        (&recent, "cancelled", "2 days"),
        (&pending_old, "pending", "90 days"),
    ] {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE callbacks SET state = '{state}', updated_at = now() - interval '{age}' WHERE id = ANY($1::uuid[])"
        )))
        .bind(ids.iter().map(|s| s.parse::<uuid::Uuid>().expect("uuid")).collect::<Vec<_>>())
        .execute(&app.pool)
        .await
        .expect("aged");
    }
    sqlx::query("INSERT INTO callback_events (callback_id, actor, kind) SELECT id, 't', 'created' FROM callbacks")
        .execute(&app.pool)
        .await
        .expect("events");

    let deleted = app.store.purge_terminal(30).await.expect("purge");
    assert_eq!(deleted, 3);
    let states = app.states().await;
    assert_eq!(
        states.get("cancelled"),
        Some(&2),
        "recent terminal rows stay"
    );
    assert_eq!(
        states.get("pending"),
        Some(&1),
        "pending rows are never purged, however old"
    );
    assert_eq!(states.get("dispatched"), None);
    let (_, events, _) = app.row_counts().await;
    assert_eq!(events, 3, "events went with their callbacks");
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
