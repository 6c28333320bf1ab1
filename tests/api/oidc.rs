//! Console sign-in through an OpenID provider, at the callback endpoint: what a browser
//! cannot easily be made to do. A small provider runs in the test — discovery, keys and a
//! token endpoint that checks the client's secret and the PKCE verifier — and signs ID
//! tokens with a test-only RSA key (`oidc_test_key.pem`) through the `openidconnect` crate,
//! so that each one can be made wrong in one way: expired, signed over other claims, with
//! another nonce, for another audience. The whole flow in a browser against npm
//! `oidc-provider` is `.ci/console` (tests/console/oidc.spec.mjs).

use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode as AxumStatus};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{Duration, Utc};
use openidconnect::core::{
    CoreGenderClaim, CoreJweContentEncryptionAlgorithm, CoreJwsSigningAlgorithm,
    CoreRsaPrivateSigningKey,
};
use openidconnect::{
    AdditionalClaims, Audience, EndUserUsername, IdToken, IdTokenClaims, IssuerUrl, JsonWebKeyId,
    Nonce, PkceCodeChallenge, PkceCodeVerifier, PrivateSigningKey, StandardClaims,
    SubjectIdentifier,
};
use reqwest::StatusCode;
use reqwest::header::{LOCATION, SET_COOKIE};
use serde::{Deserialize, Serialize};
use serde_json::json;

use callbackd::config::{GroupGrantSettings, Settings};
use testkit::prelude::*;

const CLIENT_ID: &str = "callbackd";
const CLIENT_SECRET: &str = "test-secret";

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Groups {
    groups: Vec<String>,
}
impl AdditionalClaims for Groups {}

/// How the next ID token is made.
#[derive(Clone)]
struct Plan {
    subject: String,
    groups: Vec<String>,
    /// `None`: the nonce of the authorization request.
    nonce: Option<String>,
    expires_in: Duration,
    audience: String,
    /// Sign other claims, then put these claims in front of that signature.
    tampered: bool,
}

impl Plan {
    fn person(subject: &str, groups: &[&str]) -> Self {
        Self {
            subject: subject.into(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
            nonce: None,
            expires_in: Duration::minutes(5),
            audience: CLIENT_ID.into(),
            tampered: false,
        }
    }
}

#[derive(Default)]
struct Provider {
    issuer: String,
    /// From the authorization request the browser was sent with.
    challenge: Option<String>,
    nonce: Option<String>,
    plan: Option<Plan>,
}

type Shared = Arc<Mutex<Provider>>;

fn key() -> CoreRsaPrivateSigningKey {
    CoreRsaPrivateSigningKey::from_pem(
        include_str!("oidc_test_key.pem"),
        Some(JsonWebKeyId::new("test".into())),
    )
    .expect("test key")
}

fn sign(issuer: &str, plan: &Plan, nonce: &str) -> String {
    let now = Utc::now();
    let claims = IdTokenClaims::new(
        IssuerUrl::new(issuer.into()).expect("issuer"),
        vec![Audience::new(plan.audience.clone())],
        now + plan.expires_in,
        now + plan.expires_in - Duration::minutes(10),
        StandardClaims::new(SubjectIdentifier::new(plan.subject.clone()))
            .set_preferred_username(Some(EndUserUsername::new(plan.subject.clone()))),
        Groups {
            groups: plan.groups.clone(),
        },
    )
    .set_nonce(Some(Nonce::new(nonce.into())));
    let token = IdToken::<
        Groups,
        CoreGenderClaim,
        CoreJweContentEncryptionAlgorithm,
        CoreJwsSigningAlgorithm,
    >::new(
        claims,
        &key(),
        CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
        None,
        None,
    )
    .expect("signed");
    serde_json::to_value(&token)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .expect("compact JWT")
}

async fn discovery(State(p): State<Shared>) -> Json<serde_json::Value> {
    let issuer = p.lock().expect("provider").issuer.clone();
    Json(json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/auth"),
        "token_endpoint": format!("{issuer}/token"),
        "jwks_uri": format!("{issuer}/jwks"),
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "code_challenge_methods_supported": ["S256"],
    }))
}

async fn jwks() -> Json<serde_json::Value> {
    Json(json!({ "keys": [key().as_verification_key()] }))
}

#[derive(Deserialize)]
struct TokenRequest {
    code: String,
    code_verifier: Option<String>,
}

/// The token endpoint: client_secret_basic, PKCE S256, then the planned ID token.
async fn token(
    State(p): State<Shared>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<serde_json::Value>, (AxumStatus, Json<serde_json::Value>)> {
    let refuse = |error: &str| Err((AxumStatus::BAD_REQUEST, Json(json!({ "error": error }))));
    let Ok(request) = serde_urlencoded::from_bytes::<TokenRequest>(&body) else {
        return refuse("invalid_request");
    };
    use base64::Engine as _;
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{CLIENT_ID}:{CLIENT_SECRET}"))
    );
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(basic.as_str()) {
        return refuse("invalid_client");
    }
    let p = p.lock().expect("provider");
    let verifier = PkceCodeVerifier::new(request.code_verifier.unwrap_or_default());
    let challenge = PkceCodeChallenge::from_code_verifier_sha256(&verifier);
    if request.code != "the-code" || p.challenge.as_deref() != Some(challenge.as_str()) {
        return refuse("invalid_grant");
    }
    let plan = p.plan.clone().expect("a planned token");
    let nonce = plan.nonce.clone().or(p.nonce.clone()).expect("nonce");
    let mut id_token = sign(&p.issuer, &plan, &nonce);
    if plan.tampered {
        // The claims of `plan`, under the signature of a token for a mere reader.
        let honest = sign(
            &p.issuer,
            &Plan {
                groups: vec!["readers".into()],
                ..plan.clone()
            },
            &nonce,
        );
        let signature = honest.rsplit('.').next().expect("signature");
        let (signed, _) = id_token.rsplit_once('.').expect("jwt");
        id_token = format!("{signed}.{signature}");
    }
    Ok(Json(json!({
        "access_token": "at", "token_type": "Bearer", "expires_in": 300, "id_token": id_token,
    })))
}

async fn provider() -> Shared {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let issuer = format!(
        "http://127.0.0.1:{}",
        listener.local_addr().expect("addr").port()
    );
    let shared: Shared = Arc::new(Mutex::new(Provider {
        issuer,
        ..Provider::default()
    }));
    let app = Router::new()
        .route("/.well-known/openid-configuration", get(discovery))
        .route("/jwks", get(jwks))
        .route("/token", post(token))
        .with_state(shared.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    shared
}

fn with_oidc(settings: &mut Settings, issuer: &str) {
    let o = &mut settings.console.oidc;
    o.enabled = true;
    o.issuer = issuer.into();
    o.client_id = CLIENT_ID.into();
    o.client_secret = CLIENT_SECRET.into();
    // The browser is the test: the port in the registered callback is not followed.
    o.redirect_url = "http://127.0.0.1:9/console/oidc/callback".into();
    o.groups = vec![
        GroupGrantSettings {
            group: "supervisors".into(),
            permissions: vec!["all".into()],
            skills: None,
        },
        GroupGrantSettings {
            group: "readers".into(),
            permissions: vec!["callbacks:read".into()],
            skills: Some(vec![SKILL]),
        },
    ];
}

struct Test {
    app: TestApp,
    idp: Shared,
    client: reqwest::Client,
}

/// A browser's sign-in, begun: its binding cookie and the state it must send back.
struct Begun {
    cookie: String,
    state: String,
}

impl Test {
    async fn new() -> Self {
        let idp = provider().await;
        let issuer = idp.lock().expect("provider").issuer.clone();
        let app = TestApp::spawn_with(|s| with_oidc(s, &issuer)).await;
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client");
        Self { app, idp, client }
    }

    /// `/console/oidc/start`, and the provider's side of the authorization request.
    async fn begin(&self) -> Begun {
        let r = self
            .client
            .get(format!("{}/console/oidc/start", self.app.base))
            .send()
            .await
            .expect("start");
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        let cookie = set_cookie(&r, "callbackd_oidc").expect("a binding cookie");
        let location = r.headers()[LOCATION].to_str().expect("location").to_owned();
        let url = url::Url::parse(&location).expect("authorization URL");
        let query: std::collections::HashMap<String, String> =
            url.query_pairs().into_owned().collect();
        let issuer = self.idp.lock().expect("provider").issuer.clone();
        assert!(
            location.starts_with(&format!("{issuer}/auth?")),
            "{location}"
        );
        assert_eq!(query["response_type"], "code");
        assert_eq!(query["client_id"], CLIENT_ID);
        assert_eq!(query["code_challenge_method"], "S256");
        assert!(query["scope"].split(' ').any(|s| s == "openid"));
        let mut p = self.idp.lock().expect("provider");
        p.challenge = Some(query["code_challenge"].clone());
        p.nonce = Some(query["nonce"].clone());
        Begun {
            cookie,
            state: query["state"].clone(),
        }
    }

    fn plan(&self, plan: Plan) {
        self.idp.lock().expect("provider").plan = Some(plan);
    }

    /// The browser back at `/console/oidc/callback`.
    async fn back(&self, cookie: Option<&str>, state: &str) -> reqwest::Response {
        let mut request = self
            .client
            .get(format!("{}/console/oidc/callback", self.app.base))
            .query(&[("code", "the-code"), ("state", state)]);
        if let Some(cookie) = cookie {
            request = request.header("cookie", cookie);
        }
        request.send().await.expect("callback")
    }

    async fn page(&self, session: &str, path: &str) -> reqwest::Response {
        self.client
            .get(format!("{}{path}", self.app.base))
            .header("cookie", session)
            .send()
            .await
            .expect("page")
    }
}

/// `name=value` of the answer's `Set-Cookie` for `name`, when it sets one (not clears it).
fn set_cookie(r: &reqwest::Response, name: &str) -> Option<String> {
    r.headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next())
        .find(|pair| pair.starts_with(&format!("{name}=")) && !pair.ends_with('='))
        .map(str::to_owned)
}

async fn sessions(app: &TestApp) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM console_sessions")
        .fetch_one(&app.pool)
        .await
        .expect("count")
}

#[tokio::test]
async fn oidc_sign_in_maps_the_groups_claim_and_each_sign_in_is_used_once() {
    let t = Test::new().await;
    let begun = t.begin().await;
    t.plan(Plan::person("rita-sub", &["readers", "staff"]));
    let r = t.back(Some(&begun.cookie), &begun.state).await;
    assert_eq!(r.status(), StatusCode::OK);
    let session = set_cookie(&r, "callbackd_console").expect("a session");
    let body = r.text().await.expect("body");
    assert!(
        body.contains("url=/console/"),
        "moves on to the console: {body}"
    );

    let issuer = t.idp.lock().expect("provider").issuer.clone();
    let user = t
        .app
        .store
        .linked_user(&issuer, "rita-sub")
        .await
        .expect("read")
        .expect("created at the first sign-in");
    assert_eq!(user.name, "rita-sub");
    assert_eq!(
        user.permissions,
        vec![callbackd::domain::Permission::CallbacksRead]
    );
    assert_eq!(user.skills.map(|s| s.len()), Some(1));
    let overview = t.page(&session, "/console/").await;
    assert_eq!(overview.status(), StatusCode::OK);
    assert!(
        overview
            .text()
            .await
            .expect("page")
            .contains("Signed in as rita-sub")
    );

    // The same answer again (a replay, or a reload of the callback): refused.
    let again = t.back(Some(&begun.cookie), &begun.state).await;
    assert_eq!(again.status(), StatusCode::BAD_REQUEST);
    assert_eq!(set_cookie(&again, "callbackd_console"), None);

    // A disabled person's session ends, and signing in again does not enable them.
    assert!(t.app.store.disable_user("rita-sub").await.expect("disable"));
    let after = t.page(&session, "/console/").await;
    assert_eq!(after.status(), StatusCode::SEE_OTHER);
    let begun = t.begin().await;
    let refused = t.back(Some(&begun.cookie), &begun.state).await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn oidc_state_must_match_this_browsers_sign_in() {
    let t = Test::new().await;
    t.plan(Plan::person("sam", &["supervisors"]));
    // A forged state.
    let begun = t.begin().await;
    let r = t.back(Some(&begun.cookie), "forged-state").await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(set_cookie(&r, "callbackd_console"), None);
    // The state was used up with that attempt.
    let r = t.back(Some(&begun.cookie), &begun.state).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    // Another browser's answer (login CSRF: the attacker's code and state in the victim's
    // browser, which has no sign-in of its own in progress).
    let begun = t.begin().await;
    let r = t.back(None, &begun.state).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let r = t
        .back(Some("callbackd_oidc=cbd_someone-else"), &begun.state)
        .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(sessions(&t.app).await, 0);
}

#[tokio::test]
async fn oidc_id_tokens_that_fail_verification_are_refused() {
    let t = Test::new().await;
    let person = Plan::person("sam", &["supervisors"]);
    let cases = [
        (
            "another nonce",
            Plan {
                nonce: Some("replayed-from-another-sign-in".into()),
                ..person.clone()
            },
        ),
        (
            "expired",
            Plan {
                expires_in: Duration::minutes(-5),
                ..person.clone()
            },
        ),
        (
            "claims not covered by the signature",
            Plan {
                tampered: true,
                ..person.clone()
            },
        ),
        (
            "another audience",
            Plan {
                audience: "another-client".into(),
                ..person.clone()
            },
        ),
    ];
    for (case, plan) in cases {
        let begun = t.begin().await;
        t.plan(plan);
        let r = t.back(Some(&begun.cookie), &begun.state).await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{case}");
        assert_eq!(set_cookie(&r, "callbackd_console"), None, "{case}");
    }
    assert_eq!(sessions(&t.app).await, 0);
    // The same person with an honest token gets in.
    let begun = t.begin().await;
    t.plan(person);
    let r = t.back(Some(&begun.cookie), &begun.state).await;
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test]
async fn oidc_a_person_in_no_mapped_group_is_refused() {
    let t = Test::new().await;
    let begun = t.begin().await;
    t.plan(Plan::person("olga", &["staff"]));
    let r = t.back(Some(&begun.cookie), &begun.state).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(
        r.text()
            .await
            .expect("page")
            .contains("not allowed into this console")
    );
    assert_eq!(sessions(&t.app).await, 0);
}

#[tokio::test]
async fn the_token_form_can_be_switched_off() {
    let idp = provider().await;
    let issuer = idp.lock().expect("provider").issuer.clone();
    let app = TestApp::spawn_with(|s| {
        with_oidc(s, &issuer);
        s.console.token_sign_in = false;
    })
    .await;
    let client = reqwest::Client::new();
    let page = client
        .get(format!("{}/console/login", app.base))
        .send()
        .await
        .expect("page")
        .text()
        .await
        .expect("body");
    assert!(page.contains("/console/oidc/start"), "{page}");
    assert!(!page.contains("name=\"token\""), "{page}");
    let r = client
        .post(format!("{}/console/login", app.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("token={}", app.admin))
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn oidc_with_permissions_from_a_linked_user() {
    let idp = provider().await;
    let issuer = idp.lock().expect("provider").issuer.clone();
    let app = TestApp::spawn_with(|s| {
        with_oidc(s, &issuer);
        s.console.oidc.groups.clear();
        s.console.oidc.permissions_from = callbackd::config::PermissionSource::User;
    })
    .await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let t = Test { app, idp, client };
    // The groups claim counts for nothing here: only a link does.
    let begun = t.begin().await;
    t.plan(Plan::person("jane-sub", &["supervisors"]));
    let r = t.back(Some(&begun.cookie), &begun.state).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);

    t.app.token("ops-jane", &["callbacks:read"], &[]).await;
    callbackd::cli::user(
        &t.app.store,
        &t.app.settings,
        callbackd::cli::UserCommand::Link {
            name: "ops-jane".into(),
            subject: "jane-sub".into(),
        },
    )
    .await
    .expect("linked");
    let begun = t.begin().await;
    let r = t.back(Some(&begun.cookie), &begun.state).await;
    assert_eq!(r.status(), StatusCode::OK);
    let session = set_cookie(&r, "callbackd_console").expect("a session");
    let page = t.page(&session, "/console/").await;
    assert!(
        page.text()
            .await
            .expect("page")
            .contains("Signed in as ops-jane")
    );
}
