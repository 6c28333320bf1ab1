//! The console's session rules over plain HTTP (its pages and actions are driven in a real
//! browser by `.ci/console`): the cookie's attributes, a disabled user's session ends, and
//! the security headers.

use reqwest::StatusCode;
use reqwest::header::{CONTENT_SECURITY_POLICY, LOCATION, SET_COOKIE};

use testkit::prelude::*;

#[tokio::test]
async fn a_console_session_is_a_strict_cookie_and_ends_when_its_user_is_disabled() {
    let app = TestApp::spawn().await;
    let token = app.token("supervisor", &["callbacks:read"], &[]).await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let signed_in = client
        .post(format!("{}/console/login", app.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("x-forwarded-proto", "https")
        .body(format!("token={token}"))
        .send()
        .await
        .expect("sign in");
    assert_eq!(signed_in.status(), StatusCode::SEE_OTHER);
    let cookie = signed_in
        .headers()
        .get(SET_COOKIE)
        .and_then(|v| v.to_str().ok())
        .expect("a session cookie")
        .to_owned();
    assert!(
        cookie.starts_with("__Host-callbackd_console="),
        "over HTTPS the cookie carries the __Host- prefix: {cookie}"
    );
    for attribute in [
        "HttpOnly",
        "SameSite=Strict",
        "Path=/;",
        "Max-Age=28800",
        "Secure",
    ] {
        assert!(cookie.contains(attribute), "{attribute}: {cookie}");
    }
    assert!(
        !cookie.contains(&token),
        "the token itself is never the cookie"
    );
    let session = cookie.split(';').next().unwrap_or_default().to_owned();

    let page = |session: String| {
        let client = client.clone();
        let url = format!("{}/console/callbacks", app.base);
        async move {
            client
                .get(url)
                .header("cookie", session)
                .send()
                .await
                .expect("page")
        }
    };
    let ok = page(session.clone()).await;
    assert_eq!(ok.status(), StatusCode::OK);
    let csp = ok
        .headers()
        .get(CONTENT_SECURITY_POLICY)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );

    assert!(
        app.store
            .disable_user("supervisor")
            .await
            .expect("disabled")
    );
    let after = page(session).await;
    assert_eq!(
        after.status(),
        StatusCode::SEE_OTHER,
        "back to the sign-in form"
    );
    assert_eq!(
        after.headers().get(LOCATION).and_then(|v| v.to_str().ok()),
        Some("/console/login")
    );
}

/// `console.secure_cookies`: the session cookie is prefixed and `Secure` without any proxy
/// header, and a cookie without the prefix — which a plain-http page could have planted —
/// is not a session.
#[tokio::test]
async fn with_secure_cookies_only_the_prefixed_cookie_is_a_session() {
    let app = TestApp::spawn_with(|s| s.console.secure_cookies = true).await;
    let session = session_of(&app, &app.admin).await;
    let (name, value) = session.split_once('=').expect("name=value");
    assert_eq!(name, "__Host-callbackd_console");
    let page = |cookie: String| {
        let url = format!("{}/console/callbacks", app.base);
        async move {
            reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("client")
                .get(url)
                .header("cookie", cookie)
                .send()
                .await
                .expect("page")
        }
    };
    assert_eq!(page(session.clone()).await.status(), StatusCode::OK);
    let bare = page(format!("callbackd_console={value}")).await;
    assert_eq!(bare.status(), StatusCode::SEE_OTHER, "to the sign-in form");
}

#[tokio::test]
async fn a_sign_in_form_posted_from_another_site_is_refused() {
    let app = TestApp::spawn().await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let host = app.base.trim_start_matches("http://").to_owned();
    let post = |origin: String, site: Option<&'static str>| {
        let client = client.clone();
        let url = format!("{}/console/login", app.base);
        let body = format!("token={}", app.admin);
        async move {
            let mut request = client
                .post(url)
                .header("content-type", "application/x-www-form-urlencoded")
                .header("origin", origin);
            if let Some(site) = site {
                request = request.header("sec-fetch-site", site);
            }
            request.body(body).send().await.expect("sign in")
        }
    };
    for (origin, site) in [
        ("https://evil.example", None),
        ("null", None),
        ("https://evil.example", Some("cross-site")),
        // Another port of the same host is the same site, not the same origin.
        ("http://127.0.0.1:1", Some("same-site")),
    ] {
        let r = post(origin.to_owned(), site).await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{origin} {site:?}");
        assert!(r.headers().get(SET_COOKIE).is_none(), "{origin}");
    }
    for site in [None, Some("same-origin")] {
        let r = post(format!("http://{host}"), site).await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER, "{site:?}");
    }
}

#[tokio::test]
async fn expired_console_sessions_are_purged_at_sign_in() {
    let app = TestApp::spawn().await;
    let user: i64 = sqlx::query_scalar("SELECT id FROM security_users WHERE name = 'admin'")
        .fetch_one(&app.pool)
        .await
        .expect("admin");
    sqlx::query(
        "INSERT INTO console_sessions (token_sha256, security_user_id, csrf, expires_at)
         VALUES (sha256('old'), $1, 'x', now() - interval '1 minute')",
    )
    .bind(user)
    .execute(&app.pool)
    .await
    .expect("an expired session");
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let r = client
        .post(format!("{}/console/login", app.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("token={}", app.admin))
        .send()
        .await
        .expect("sign in");
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let left: Vec<bool> = sqlx::query_scalar("SELECT expires_at > now() FROM console_sessions")
        .fetch_all(&app.pool)
        .await
        .expect("sessions");
    assert_eq!(left, vec![true], "only the new session is left");
}

/// Signs `token`'s user in to the console; the session cookie (`name=value`).
async fn session_of(app: &TestApp, token: &str) -> String {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let signed_in = client
        .post(format!("{}/console/login", app.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("token={token}"))
        .send()
        .await
        .expect("sign in");
    assert_eq!(signed_in.status(), StatusCode::SEE_OTHER);
    signed_in
        .headers()
        .get(SET_COOKIE)
        .and_then(|v| v.to_str().ok())
        .and_then(|c| c.split(';').next())
        .expect("a session cookie")
        .to_owned()
}

/// The overview counts every skill's callbacks: a user restricted to some skills, or one
/// who may not read callbacks, does not see them.
#[tokio::test]
async fn the_overview_figures_need_a_reader_of_every_skill() {
    let app = TestApp::spawn().await;
    app.create_ok(&valid_body()).await;
    let figures = |session: String| {
        let url = format!("{}/console/figures", app.base);
        async move {
            reqwest::Client::new()
                .get(url)
                .header("cookie", session)
                .send()
                .await
                .expect("figures")
                .text()
                .await
                .expect("body")
        }
    };
    let everyone = app.token("lead", &["callbacks:read"], &[]).await;
    let shown = figures(session_of(&app, &everyone).await).await;
    assert!(shown.contains("data-state=\"pending\""), "{shown}");
    for (name, permissions, skills) in [
        ("local", &["callbacks:read"][..], &[SKILL_NEW_YORK][..]),
        ("directory", &["directory:read"][..], &[][..]),
    ] {
        let token = app.token(name, permissions, skills).await;
        let withheld = figures(session_of(&app, &token).await).await;
        assert!(!withheld.contains("data-state"), "{name}: {withheld}");
        assert!(withheld.contains("figures-withheld"), "{name}: {withheld}");
    }
}

/// The list in priority order: the highest base priority first, then due order, page by
/// page (the next-page link carries the order and the position).
#[tokio::test]
async fn the_list_sorts_by_priority_and_resumes_in_that_order() {
    let app = TestApp::spawn().await;
    let mut made = Vec::new();
    for (hours, priority) in [(1, 10), (2, 900), (3, 500), (4, 900)] {
        let mut body = with(
            "scheduleDate",
            serde_json::json!(in_(chrono::Duration::hours(hours))),
        );
        body["priority"] = serde_json::json!(priority);
        made.push(app.create_ok(&body).await);
    }
    let session = session_of(&app, &app.admin).await;
    let page = |path: String| {
        let url = format!("{}{path}", app.base);
        let session = session.clone();
        async move {
            reqwest::Client::new()
                .get(url)
                .header("cookie", session)
                .send()
                .await
                .expect("list")
                .text()
                .await
                .expect("body")
        }
    };
    let order = |html: &str| -> Vec<String> {
        html.split("data-id=\"")
            .skip(1)
            .filter_map(|rest| rest.split('"').next().map(str::to_owned))
            .collect()
    };
    let all = page("/console/callbacks?sort=priority".into()).await;
    assert_eq!(
        order(&all),
        [made[1].as_str(), &made[3], &made[2], &made[0]],
        "priority 900 (earlier due first), 500, 10"
    );
    assert!(all.contains("<option value=\"priority\" selected"), "{all}");
    let by_due = page("/console/callbacks".into()).await;
    assert_eq!(order(&by_due), made, "due order by default");
    // Resuming after the second (priority 900, due in 4 h), as the next-page link does.
    let due = parse_time(&app.get_callback(&made[3]).await["dueAt"]);
    let rest = page(format!(
        "/console/callbacks?sort=priority&after=900.{}.{}",
        due.timestamp_micros(),
        made[3]
    ))
    .await;
    assert_eq!(order(&rest), [made[2].as_str(), &made[0]]);
}

/// The promise-kept page: the summary, the chart and the table, and its CSV download.
#[tokio::test]
async fn the_promises_page_shows_the_report_and_downloads_it() {
    let app = TestApp::spawn().await;
    app.create_ok(&with(
        "scheduleDate",
        serde_json::json!(in_(chrono::Duration::hours(1))),
    ))
    .await;
    let session = session_of(&app, &app.admin).await;
    let get = |path: &str| {
        let url = format!("{}{path}", app.base);
        let session = session.clone();
        async move {
            reqwest::Client::new()
                .get(url)
                .header("cookie", session)
                .send()
                .await
                .expect("page")
        }
    };
    let range = format!(
        "from={}&to={}",
        (chrono::Utc::now() - chrono::Duration::days(1)).format("%Y-%m-%d"),
        (chrono::Utc::now() + chrono::Duration::days(2)).format("%Y-%m-%d")
    );
    let page = get(&format!("/console/promises?{range}"))
        .await
        .text()
        .await
        .expect("body");
    assert!(page.contains("id=\"promise-summary\""), "{page}");
    assert!(page.contains("<strong>1</strong> booked"), "{page}");
    assert!(page.contains("id=\"promise-chart\""));
    assert!(page.contains(&format!("<td>{SKILL}</td>")), "{page}");
    let csv = get(&format!("/console/promises.csv?{range}")).await;
    assert_eq!(csv.status(), StatusCode::OK);
    let text = csv.text().await.expect("csv");
    assert!(text.starts_with("skillId,period,booked"), "{text}");
    assert!(text.contains(&format!("\n{SKILL},")), "{text}");
    let bad = get("/console/promises?groupBy=week").await;
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
}

/// The throughput chart counts what the event relay relays: a callback dispatched and then
/// completed shows in its five minutes; a reader of some skills is not shown the whole.
#[tokio::test]
async fn the_throughput_chart_counts_relayed_dispatches_and_outcomes() {
    let app = TestApp::spawn_dispatching().await;
    let _dialer = testkit::tap::Consumer::bind(&app.exchange, "#").await;
    let id = app
        .create_ok(&with(
            "scheduleDate",
            serde_json::json!(in_(chrono::Duration::zero())),
        ))
        .await;
    app.wait_state(&id, "dispatched", 10).await;
    app.report(&id, 1, "completed").await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let counted = loop {
        let counted: Vec<(String, i64)> =
            sqlx::query_as("SELECT kind, n FROM event_throughput ORDER BY kind")
                .fetch_all(&app.pool)
                .await
                .expect("counts");
        if counted.len() == 2 || std::time::Instant::now() > deadline {
            break counted;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert_eq!(
        counted,
        [("completed".to_owned(), 1), ("dispatched".to_owned(), 1)],
        "created is not counted"
    );
    let chart = |session: String| {
        let url = format!("{}/console/throughput", app.base);
        async move {
            reqwest::Client::new()
                .get(url)
                .header("cookie", session)
                .send()
                .await
                .expect("chart")
                .text()
                .await
                .expect("body")
        }
    };
    let lead = app.token("lead", &["callbacks:read"], &[]).await;
    let shown = chart(session_of(&app, &lead).await).await;
    assert!(
        shown.contains(r#"data-kind="dispatched" data-total="1""#),
        "{shown}"
    );
    assert!(
        shown.contains(r#"data-kind="completed" data-total="1""#),
        "{shown}"
    );
    let local = app
        .token("local", &["callbacks:read"], &[SKILL_NEW_YORK])
        .await;
    let withheld = chart(session_of(&app, &local).await).await;
    assert!(withheld.contains("throughput-withheld"), "{withheld}");
}
