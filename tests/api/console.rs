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
    for attribute in [
        "HttpOnly",
        "SameSite=Strict",
        "Path=/console",
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
