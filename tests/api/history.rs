//! History by day: a callback that ends moves, with its events, into the partition of the
//! day it ended on; a retry brings it back; retention drops a whole day once every callback
//! in it ended more than `retention_days` ago, with what refers to them.

use reqwest::{Method, StatusCode};

use testkit::prelude::*;

/// The ended partition of `callback_events` beside the one of `callbacks` named so.
fn events_beside(callbacks: &str) -> String {
    callbacks.replacen("callbacks_", "callback_events_", 1)
}

/// The UTC day `days` from today, as the partitions name their first day (`YYYYMMDD`).
async fn day(app: &TestApp, days: i32) -> String {
    sqlx::query_scalar("SELECT to_char((now() AT TIME ZONE 'UTC')::date + $1, 'YYYYMMDD')")
        .bind(days)
        .fetch_one(&app.pool)
        .await
        .expect("day")
}

/// The partition holding the callback, and those holding its events.
async fn homes(app: &TestApp, id: &str) -> (String, Vec<String>) {
    let callback: String =
        sqlx::query_scalar("SELECT tableoid::regclass::text FROM callbacks WHERE id = $1::uuid")
            .bind(id)
            .fetch_one(&app.pool)
            .await
            .expect("callback's partition");
    let events: Vec<String> = sqlx::query_scalar(
        "SELECT DISTINCT tableoid::regclass::text FROM callback_events WHERE callback_id = $1::uuid",
    )
    .bind(id)
    .fetch_all(&app.pool)
    .await
    .expect("events' partitions");
    (callback, events)
}

#[tokio::test]
async fn an_ended_callback_and_its_events_move_to_its_day_and_a_retry_brings_them_back() {
    let app = TestApp::spawn().await;
    app.store.make_history_days(30).await.expect("days made");

    let cancelled = app.create_ok(&valid_body()).await;
    assert_eq!(
        homes(&app, &cancelled).await,
        (
            "callbacks_live".to_owned(),
            vec!["callback_events_live".to_owned()]
        ),
        "a pending callback is live"
    );
    let (status, body) = app
        .call(
            Method::DELETE,
            &format!("/v1/callbacks/{cancelled}"),
            Some(&app.admin),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (home, events) = homes(&app, &cancelled).await;
    assert!(home.starts_with("callbacks_ended_2"), "{home}");
    assert_eq!(
        events,
        vec![events_beside(&home)],
        "the cancellation and the events before it moved together"
    );
    let view = app.get_callback(&cancelled).await;
    assert_eq!(view["state"], "cancelled", "{view}");
    let kinds: Vec<_> = app
        .events(&cancelled)
        .await
        .iter()
        .map(|e| e["kind"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(
        kinds.first().map(String::as_str),
        Some("created"),
        "{kinds:?}"
    );
    assert_eq!(
        kinds.last().map(String::as_str),
        Some("cancelled"),
        "{kinds:?}"
    );

    // Failed (as a dialer's last outcome leaves it), then retried: live again, events too.
    let failed = app.create_ok(&valid_body()).await;
    sqlx::query(
        "UPDATE callbacks SET state = 'failed', ended_on = callbackd_ended_on('failed')
         WHERE id = $1::uuid",
    )
    .bind(&failed)
    .execute(&app.pool)
    .await
    .expect("failed");
    assert_eq!(homes(&app, &failed).await.0, home, "today's partition");
    let (status, body) = app
        .call(
            Method::POST,
            &format!("/v1/callbacks/{failed}/retry"),
            Some(&app.admin),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        homes(&app, &failed).await,
        (
            "callbacks_live".to_owned(),
            vec!["callback_events_live".to_owned()]
        ),
        "a retried callback is live again, with every event of its past"
    );
    let kinds: Vec<_> = app
        .events(&failed)
        .await
        .iter()
        .map(|e| e["kind"].clone())
        .collect();
    assert_eq!(kinds.first(), Some(&"created".into()), "{kinds:?}");
    assert_eq!(kinds.last(), Some(&"retried".into()), "{kinds:?}");
}

#[tokio::test]
async fn retention_drops_a_whole_day_with_its_events_and_what_refers_to_its_callbacks() {
    let app = TestApp::spawn().await;
    app.store.make_history_days(30).await.expect("days made");
    let old = day(&app, -40).await;
    let boundary = day(&app, -29).await;
    sqlx::query(
        "SELECT callbackd_make_history_days((now() AT TIME ZONE 'UTC')::date - 40,
                                            (now() AT TIME ZONE 'UTC')::date - 29, 1)",
    )
    .execute(&app.pool)
    .await
    .expect("past days made");

    let ids = app.insert_due(5, None).await;
    sqlx::query("INSERT INTO callback_events (callback_id, actor, kind) SELECT id, 't', 'created' FROM callbacks")
        .execute(&app.pool)
        .await
        .expect("events");
    let end = |ids: &[String], days: i32| {
        let ids: Vec<uuid::Uuid> = ids.iter().map(|s| s.parse().expect("uuid")).collect();
        let pool = app.pool.clone();
        async move {
            sqlx::query(
                "UPDATE callbacks SET state = 'completed',
                     ended_on = (now() AT TIME ZONE 'UTC')::date - $2,
                     updated_at = now() - make_interval(days => $2)
                 WHERE id = ANY($1)",
            )
            .bind(ids)
            .bind(days)
            .execute(&pool)
            .await
            .expect("ended")
        }
    };
    // Two ended 40 days ago, one 29 days ago (kept), one today (kept), one pending.
    end(&ids[0..2], 40).await;
    end(&ids[2..3], 29).await;
    end(&ids[3..4], 0).await;
    sqlx::query(
        "INSERT INTO callback_outcomes (callback_id, attempt, outcome, source, applied)
         SELECT id, 1, 'completed', 'api', true FROM callbacks WHERE state = 'completed'",
    )
    .execute(&app.pool)
    .await
    .expect("outcomes");
    assert_eq!(
        homes(&app, &ids[0]).await.0,
        format!("callbacks_ended_{old}")
    );

    let gone = app.store.purge_terminal(30).await.expect("purge");
    assert_eq!(gone, 2, "the day ended 40 days ago");
    let left: Option<String> = sqlx::query_scalar("SELECT to_regclass($1)::text")
        .bind(format!("callbacks_ended_{old}"))
        .fetch_one(&app.pool)
        .await
        .expect("regclass");
    assert_eq!(left, None, "the day was dropped, not emptied");
    let kept: Option<String> = sqlx::query_scalar("SELECT to_regclass($1)::text")
        .bind(format!("callbacks_ended_{boundary}"))
        .fetch_one(&app.pool)
        .await
        .expect("regclass");
    assert!(kept.is_some(), "a day within retention stays");

    let states = app.states().await;
    assert_eq!(states.get("completed"), Some(&2), "{states:?}");
    assert_eq!(states.get("pending"), Some(&1), "{states:?}");
    let (callbacks, events, _) = app.row_counts().await;
    assert_eq!((callbacks, events), (3, 3), "events went with their day");
    let outcomes: i64 = sqlx::query_scalar("SELECT count(*) FROM callback_outcomes")
        .fetch_one(&app.pool)
        .await
        .expect("outcomes");
    assert_eq!(
        outcomes, 2,
        "outcomes of the dropped day's callbacks went too"
    );
    assert_eq!(
        app.store.purge_terminal(30).await.expect("purge again"),
        0,
        "nothing more to take"
    );
}

/// A change that waits for a callback's lock while another transaction ends it (moving it
/// to its day) answers as it would have had the callback ended before: no server error.
#[tokio::test]
async fn a_change_waiting_on_a_callback_that_ends_meanwhile_sees_it_ended() {
    let app = TestApp::spawn().await;
    app.store.make_history_days(30).await.expect("days made");
    let id = app.create_ok(&valid_body()).await;
    let mut holder = app.pool.begin().await.expect("begin");
    sqlx::query("SELECT 1 FROM callbacks WHERE id = $1::uuid FOR UPDATE")
        .bind(&id)
        .execute(&mut *holder)
        .await
        .expect("locked");

    let path = format!("/v1/callbacks/{id}");
    let cancel = app.call(Method::DELETE, &path, Some(&app.admin), None);
    let end = async {
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        sqlx::query(
            "UPDATE callbacks SET state = 'expired', ended_on = callbackd_ended_on('expired')
             WHERE id = $1::uuid",
        )
        .bind(&id)
        .execute(&mut *holder)
        .await
        .expect("ended");
        holder.commit().await.expect("commit");
    };
    let ((status, body), ()) = tokio::join!(cancel, end);
    assert!(
        !status.is_server_error(),
        "the waiting cancel sees an expired callback: {status} {body}"
    );
    assert_eq!(app.get_callback(&id).await["state"], "expired");
}
