//! The promise-kept report against real PostgreSQL and RabbitMQ: a callback published on
//! time keeps its promise, one published five minutes late does not; how they ended is
//! counted per skill; JSON and CSV; the on-time counter on /metrics.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use testkit::prelude::*;
use testkit::tap::Consumer;

/// Sums a field over the report's rows of `skill`.
fn total(report: &Value, skill: i64, field: &str) -> i64 {
    report["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|i| i["skillId"] == skill)
        .map(|i| i[field].as_i64().unwrap_or(0))
        .sum()
}

#[tokio::test]
async fn promises_kept_late_and_ended_are_counted_per_skill_as_json_and_csv() {
    let app = TestApp::spawn_dispatching().await;
    let _dialer = Consumer::bind(&app.exchange, "#").await;
    let on_time = app
        .create_ok(&with("scheduleDate", json!(in_(chrono::Duration::zero()))))
        .await;
    // Due five minutes ago when it is first published: late.
    let late: uuid::Uuid = sqlx::query_scalar(
        "INSERT INTO callbacks (id, first_name, last_name, phone_number, skill_id, notes,
                                scheduled_for, due_at, created_by)
         VALUES (gen_random_uuid(), 'Late', 'One', '+442079460958', $1, '',
                 now() - interval '5 minutes', now() - interval '5 minutes', 'test')
         RETURNING id",
    )
    .bind(SKILL)
    .fetch_one(&app.pool)
    .await
    .expect("late callback");
    app.wait_state(&on_time, "dispatched", 10).await;
    app.wait_state(&late.to_string(), "dispatched", 10).await;
    app.report(&on_time, 1, "completed").await;
    let cancelled = app
        .create_ok(&with(
            "scheduleDate",
            json!(in_(chrono::Duration::hours(1))),
        ))
        .await;
    app.call(
        Method::DELETE,
        &format!("/v1/callbacks/{cancelled}?reason=test"),
        Some(&app.admin),
        None,
    )
    .await;

    let from = (chrono::Utc::now() - chrono::Duration::days(1)).format("%Y-%m-%d");
    let to = (chrono::Utc::now() + chrono::Duration::days(2)).format("%Y-%m-%d");
    let path = format!("/v1/reports/promises?from={from}&to={to}&skillId={SKILL}");
    let (status, report) = app.call(Method::GET, &path, Some(&app.admin), None).await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(report["groupBy"], "day");
    assert_eq!(report["onTimeSeconds"], 60);
    assert_eq!(total(&report, SKILL, "booked"), 3, "{report}");
    assert_eq!(total(&report, SKILL, "dispatched"), 2, "{report}");
    assert_eq!(total(&report, SKILL, "onTime"), 1, "{report}");
    assert_eq!(total(&report, SKILL, "completed"), 1);
    assert_eq!(total(&report, SKILL, "cancelled"), 1);
    assert_eq!(
        total(&report, SKILL, "open"),
        1,
        "the late one awaits its outcome"
    );
    let p95 = report["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|i| i["latenessP95Ms"].as_f64())
        .fold(0.0, f64::max);
    assert!(p95 > 250_000.0, "the late one's lateness shows: {report}");
    // A generous tolerance counts the late one as kept.
    let (_, lenient) = app
        .call(
            Method::GET,
            &format!("{path}&onTimeSeconds=3600"),
            Some(&app.admin),
            None,
        )
        .await;
    assert_eq!(total(&lenient, SKILL, "onTime"), 2, "{lenient}");

    let csv = app
        .client
        .get(format!("{}{path}", app.base))
        .bearer_auth(&app.admin)
        .header("accept", "text/csv")
        .send()
        .await
        .expect("csv");
    assert_eq!(csv.status(), StatusCode::OK);
    assert!(
        csv.headers()["content-type"]
            .to_str()
            .unwrap_or_default()
            .starts_with("text/csv")
    );
    let text = csv.text().await.expect("body");
    let mut lines = text.lines();
    assert!(
        lines
            .next()
            .unwrap_or_default()
            .starts_with("skillId,period,booked")
    );
    assert!(lines.all(|l| l.starts_with(&format!("{SKILL},"))), "{text}");

    let metrics = app
        .client
        .get(format!("{}/metrics", app.base))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(metrics.contains("callbackd_promises_total"), "{metrics}");
}

#[tokio::test]
async fn report_requests_are_checked() {
    let app = TestApp::spawn().await;
    for bad in [
        "groupBy=week",
        "from=2026-12-06&to=2026-12-01",
        "from=2025-01-01&to=2026-12-01&groupBy=hour",
        "onTimeSeconds=-5",
        "timeZone=Mars%2FOlympus",
        "from=yesterday",
    ] {
        let (status, answer) = app
            .call(
                Method::GET,
                &format!("/v1/reports/promises?{bad}"),
                Some(&app.admin),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {answer}");
    }
    let local = app
        .token("local", &["callbacks:read"], &[SKILL_NEW_YORK])
        .await;
    let (status, _) = app
        .call(
            Method::GET,
            &format!("/v1/reports/promises?skillId={SKILL}"),
            Some(&local),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, report) = app
        .call(Method::GET, "/v1/reports/promises", Some(&local), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{report}");
}

/// Ended callbacks over the last few days: finished quarter hours are rolled up (up to one
/// that still has a callback open) and the report reads the same before and after, in any
/// zone (Kathmandu's days start at a quarter past).
#[tokio::test]
async fn finished_quarters_are_rolled_up_and_the_report_reads_the_same() {
    let app = TestApp::spawn().await;
    // 4 days of ended callbacks, a few an hour, with lateness from 0 to 95 s; one published
    // two days ago still awaits its outcome.
    sqlx::query(
        "INSERT INTO callbacks (id, first_name, last_name, phone_number, skill_id, notes,
                                scheduled_for, due_at, created_by, state, attempt,
                                dispatched_at, first_lateness_ms, updated_at)
         SELECT gen_random_uuid(), 'F', 'L', '+442079460958', $1, '', d, d, 'test',
                (ARRAY['completed','failed','expired','cancelled','suppressed'])[1 + i % 5],
                CASE WHEN i % 5 IN (3, 4) THEN 0 ELSE 1 END,
                CASE WHEN i % 5 IN (3, 4) THEN NULL ELSE d END,
                CASE WHEN i % 5 IN (3, 4) THEN NULL ELSE (i * 997 % 95000)::float8 END, d
         FROM (SELECT i, date_trunc('hour', now()) - interval '4 days'
                         + i * interval '17 minutes' AS d
               FROM generate_series(0, 330) AS i) AS t",
    )
    .bind(SKILL)
    .execute(&app.pool)
    .await
    .expect("ended callbacks");
    let open: uuid::Uuid = sqlx::query_scalar(
        "UPDATE callbacks SET state = 'dispatched', updated_at = now()
         WHERE id = (SELECT id FROM callbacks
                     WHERE scheduled_for > now() - interval '2 days' ORDER BY scheduled_for
                     LIMIT 1)
         RETURNING id",
    )
    .fetch_one(&app.pool)
    .await
    .expect("one open");

    let reports = [
        "groupBy=day",
        "groupBy=hour&onTimeSeconds=30",
        "groupBy=day&timeZone=America%2FNew_York&onTimeSeconds=90",
        "groupBy=day&timeZone=Asia%2FKathmandu",
    ];
    let read = || async {
        let mut all = Vec::new();
        for query in reports {
            let from = (chrono::Utc::now() - chrono::Duration::days(5)).to_rfc3339();
            let path = format!("/v1/reports/promises?{query}&from={}", urlencoding(&from));
            let (status, report) = app.call(Method::GET, &path, Some(&app.admin), None).await;
            assert_eq!(status, StatusCode::OK, "{query}: {report}");
            all.push(report["items"].clone());
        }
        all
    };
    let before = read().await;
    assert!(
        before[0].as_array().map(Vec::len).unwrap_or(0) >= 4,
        "a row a day: {:?}",
        before[0]
    );

    for _ in 0..20 {
        callbackd::app::timers::roll_up_promises(&app.store, chrono::Duration::minutes(5)).await;
    }
    let (watermark, quarters): (Option<chrono::DateTime<chrono::Utc>>, i64) = sqlx::query_as(
        "SELECT (SELECT watermark FROM promise_rollup_state),
                (SELECT count(*) FROM promise_rollup)",
    )
    .fetch_one(&app.pool)
    .await
    .expect("roll-up state");
    let open_quarter: chrono::DateTime<chrono::Utc> = sqlx::query_scalar(
        "SELECT date_bin('15 minutes', scheduled_for, timestamptz '2000-01-01')
         FROM callbacks WHERE id = $1",
    )
    .bind(open)
    .fetch_one(&app.pool)
    .await
    .expect("open hour");
    assert_eq!(
        watermark,
        Some(open_quarter),
        "the open callback holds the roll-up"
    );
    assert!(
        quarters >= 150,
        "two days of quarters rolled up: {quarters}"
    );
    assert_eq!(
        read().await,
        before,
        "the roll-up reads as the callbacks did"
    );

    // It ends: the roll-up goes on to the recent past, and the report still agrees.
    sqlx::query("UPDATE callbacks SET state = 'completed' WHERE id = $1")
        .bind(open)
        .execute(&app.pool)
        .await
        .expect("ended");
    let ended = read().await;
    for _ in 0..20 {
        callbackd::app::timers::roll_up_promises(&app.store, chrono::Duration::minutes(5)).await;
    }
    let watermark: Option<chrono::DateTime<chrono::Utc>> =
        sqlx::query_scalar("SELECT watermark FROM promise_rollup_state")
            .fetch_one(&app.pool)
            .await
            .expect("watermark");
    assert!(
        watermark.is_some_and(|w| w > chrono::Utc::now() - chrono::Duration::hours(2)),
        "{watermark:?}"
    );
    assert_eq!(read().await, ended);
    assert_ne!(ended, before, "the ended one moved from open to completed");
}

fn urlencoding(s: &str) -> String {
    s.replace('+', "%2B").replace(':', "%3A")
}
