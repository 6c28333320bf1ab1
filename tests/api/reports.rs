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
