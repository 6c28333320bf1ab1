//! Console sign-in and sign-out, whichever way a person proves who they are: a security
//! user's API token, or the organisation's identity provider (OpenID Connect). Each ends
//! the same way — a session of a security user, its cookie token and CSRF token random,
//! only the cookie token's hash stored. The console only translates to and from HTTP.
//!
//! Every refused sign-in is logged with its reason, never with the token or code.

use std::time::Duration;

use subtle::ConstantTimeEq;

use super::App;
use super::oidc::OidcError;
use crate::config::PermissionSource;
use crate::domain::{SecurityUser, Token, TokenHash};
use crate::store::StoreError;

/// How long a console session lasts.
pub const SESSION_LIFETIME: Duration = Duration::from_secs(8 * 3600);
/// How long a person has at the identity provider before the sign-in must start again.
pub const SIGN_IN_LIFETIME: Duration = Duration::from_secs(10 * 60);

#[derive(Debug, thiserror::Error)]
pub enum SignInError {
    #[error("sign-in with a token is switched off (console.token_sign_in)")]
    TokenSignInOff,
    #[error("sign-in through the identity provider is not configured (console.oidc)")]
    OidcOff,
    #[error("the token is unknown or its user disabled")]
    UnknownToken,
    #[error("too many sign-ins from this address; retry in {} s", .retry_after.as_secs().max(1))]
    TooMany { retry_after: Duration },
    #[error("this browser has no sign-in in progress (expired, already used, or never started)")]
    NoSignIn,
    #[error("the state sent back does not match this browser's sign-in")]
    StateMismatch,
    #[error("the answer names another issuer, `{0}`")]
    WrongIssuer(String),
    #[error("the identity provider sent no authorization code")]
    NoCode,
    #[error("the identity provider answered `{0}`")]
    ProviderRefused(String),
    #[error(transparent)]
    Oidc(#[from] OidcError),
    /// Verified, but not allowed in: no mapped group, no linked user, a disabled user.
    #[error("{0}")]
    NotAllowed(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A session just started: the cookie's token (shown once, to the browser) and its user.
#[derive(Debug)]
pub struct Started {
    pub token: Token,
    pub user: SecurityUser,
}

/// A sign-in through the identity provider, begun: a random value for a short-lived cookie
/// of this browser (its hash keys the state, nonce and PKCE verifier kept server-side), and
/// the provider's URL to send the browser to.
#[derive(Debug)]
pub struct Begun {
    pub browser: Token,
    pub url: String,
}

/// What the provider sent back on the browser's return (the callback's query).
#[derive(Debug, Default)]
pub struct ProviderReturn {
    pub code: Option<String>,
    pub state: Option<String>,
    pub error: Option<String>,
    /// The issuer of the answer (RFC 9207), when the provider says: it must be ours.
    pub iss: Option<String>,
}

/// Signs in with a security user's API token, sent from `peer` (the per-address limit on
/// token lookups applies, as for the API).
pub async fn sign_in_with_token(
    app: &App,
    peer: Option<std::net::IpAddr>,
    token: &str,
) -> Result<Started, SignInError> {
    let result = async {
        if !app.settings.console.token_sign_in {
            return Err(SignInError::TokenSignInOff);
        }
        let user = super::authenticate(app, peer, token.trim())
            .await
            .map_err(|e| match e {
                super::AppError::Unauthenticated(_) => SignInError::UnknownToken,
                super::AppError::TooMany { retry_after } => SignInError::TooMany { retry_after },
                super::AppError::Store(e) => SignInError::Store(e),
                other => SignInError::NotAllowed(other.to_string()),
            })?;
        start(app, user, "token").await
    }
    .await;
    result.inspect_err(|e| refused("token", e))
}

/// Starts a sign-in through the identity provider.
pub async fn begin_oidc(app: &App) -> Result<Begun, SignInError> {
    let result = async {
        let oidc = app.oidc.as_ref().ok_or(SignInError::OidcOff)?;
        let (url, pending) = oidc.authorization().await?;
        let browser = Token::generate();
        app.store
            .begin_sign_in(&browser.hash(), &pending, SIGN_IN_LIFETIME)
            .await?;
        Ok(Begun { browser, url })
    }
    .await;
    result.inspect_err(|e| refused("oidc", e))
}

/// Finishes a sign-in through the identity provider: this browser's sign-in in progress
/// (used up whatever happens next), the state it sent, the code exchanged with the PKCE
/// verifier, the ID token verified with the nonce, then the person's security user —
/// created or refreshed from the mapped claims, or the one linked to them.
pub async fn sign_in_with_oidc(
    app: &App,
    browser: Option<&str>,
    back: ProviderReturn,
) -> Result<Started, SignInError> {
    let result = async {
        let oidc = app.oidc.as_ref().ok_or(SignInError::OidcOff)?;
        let browser = browser.ok_or(SignInError::NoSignIn)?;
        let pending = app
            .store
            .take_sign_in(&TokenHash::of(browser))
            .await?
            .ok_or(SignInError::NoSignIn)?;
        if let Some(error) = back.error {
            return Err(SignInError::ProviderRefused(error));
        }
        if back.iss.as_deref().is_some_and(|iss| iss != oidc.issuer()) {
            return Err(SignInError::WrongIssuer(back.iss.unwrap_or_default()));
        }
        let state = back.state.unwrap_or_default();
        if !bool::from(state.as_bytes().ct_eq(pending.state.as_bytes())) {
            return Err(SignInError::StateMismatch);
        }
        let code = back.code.ok_or(SignInError::NoCode)?;
        let person = oidc.identify(&code, &pending).await?;
        let user = match app.settings.console.oidc.permissions_from {
            PermissionSource::Claims => {
                let grant = oidc.mapping().grant(&person.groups).ok_or_else(|| {
                    SignInError::NotAllowed(format!(
                        "`{}` is in no group that grants console access (groups: {})",
                        person.name,
                        person.groups.join(", ")
                    ))
                })?;
                app.store
                    .upsert_oidc_user(oidc.issuer(), &person.subject, &person.name, &grant)
                    .await?
            }
            PermissionSource::User => {
                app.store
                    .linked_user(oidc.issuer(), &person.subject)
                    .await?
            }
        };
        let user = user.ok_or_else(|| {
            SignInError::NotAllowed(format!(
                "no enabled security user is linked to `{}` (subject {})",
                person.name, person.subject
            ))
        })?;
        start(app, user, "oidc").await
    }
    .await;
    result.inspect_err(|e| refused("oidc", e))
}

/// Ends the session of this cookie token.
pub async fn sign_out(app: &App, session_token: &str) -> Result<(), StoreError> {
    app.store.end_session(&TokenHash::of(session_token)).await
}

/// Links a security user to a person at the configured identity provider (`permissions_from
/// = "user"`); false when no user has that name.
pub async fn link_user(app: &App, name: &str, subject: &str) -> Result<bool, SignInError> {
    let issuer = &app.settings.console.oidc.issuer;
    if issuer.is_empty() {
        return Err(SignInError::OidcOff);
    }
    let linked = app.store.link_user(name, issuer, subject).await?;
    if linked {
        tracing::info!(
            security_user = name,
            subject,
            "linked to the identity provider"
        );
    }
    Ok(linked)
}

async fn start(
    app: &App,
    user: SecurityUser,
    method: &'static str,
) -> Result<Started, SignInError> {
    // Expired sessions are deleted at every sign-in (an indexed delete of a few rows) as
    // well as by the nightly purge, so they never pile up.
    let purged = app.store.purge_expired_sessions().await?;
    let token = Token::generate();
    let csrf = Token::generate();
    app.store
        .create_session(&token.hash(), &user, csrf.expose(), SESSION_LIFETIME)
        .await?;
    tracing::info!(security_user = %user.name, method, purged, "console sign-in");
    Ok(Started { token, user })
}

fn refused(method: &'static str, e: &SignInError) {
    match e {
        SignInError::Store(cause) => {
            tracing::warn!(method, error = %cause, "console sign-in failed")
        }
        _ => tracing::warn!(method, reason = %e, "console sign-in refused"),
    }
}
