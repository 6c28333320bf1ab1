//! Webhook subscriptions: written, read and deleted through the API, with their delivery
//! attempts. A subscription may receive any skill's events, so, as for calendars, only a
//! user free of skill restrictions may manage one.

use super::{App, AppError, require};
use crate::domain::{Permission, SecurityUser, Webhook, WebhookInput, check_webhook_name};
use crate::store::AttemptView;

/// Creates or replaces the subscription `name`; true when it is new. The secret is kept
/// when the input names none (a new subscription gets a generated one).
pub async fn put(
    app: &App,
    user: &SecurityUser,
    name: &str,
    input: WebhookInput,
) -> Result<(Webhook, bool), AppError> {
    require(user, Permission::WebhooksWrite)?;
    require_every_skill(user)?;
    check_name(name)?;
    let kept = app.store.webhook(name).await?.map(|w| w.secret);
    let webhook = input
        .into_webhook(name, kept, &app.settings.webhooks.rules())
        .map_err(|e| AppError::unacceptable(e.to_string()))?;
    let created = app.store.put_webhook(&webhook).await?;
    tracing::info!(webhook = %webhook.name, url = %webhook.url, active = webhook.active,
        created, security_user = %user.name, "webhook stored");
    Ok((webhook, created))
}

pub async fn get(app: &App, user: &SecurityUser, name: &str) -> Result<Webhook, AppError> {
    require(user, Permission::WebhooksRead)?;
    check_name(name)?;
    app.store
        .webhook(name)
        .await?
        .ok_or_else(|| not_found(name))
}

pub async fn list(app: &App, user: &SecurityUser) -> Result<Vec<Webhook>, AppError> {
    require(user, Permission::WebhooksRead)?;
    Ok(app.store.webhooks().await?)
}

/// Deletes a subscription, with its deliveries and attempts.
pub async fn delete(app: &App, user: &SecurityUser, name: &str) -> Result<(), AppError> {
    require(user, Permission::WebhooksWrite)?;
    require_every_skill(user)?;
    check_name(name)?;
    if !app.store.delete_webhook(name).await? {
        return Err(not_found(name));
    }
    tracing::info!(webhook = %name, security_user = %user.name, "webhook deleted");
    Ok(())
}

/// A subscription's delivery attempts, newest first (`before`: an attempt id, to page).
pub async fn attempts(
    app: &App,
    user: &SecurityUser,
    name: &str,
    before: Option<i64>,
    limit: u32,
) -> Result<(Vec<AttemptView>, Vec<(String, i64)>), AppError> {
    get(app, user, name).await?;
    let attempts = app
        .store
        .webhook_attempts(name, before, i64::from(limit))
        .await?;
    let counts = app.store.webhook_delivery_counts(name).await?;
    Ok((attempts, counts))
}

fn check_name(name: &str) -> Result<(), AppError> {
    check_webhook_name(name)
        .map(|_| ())
        .map_err(|e| AppError::Malformed(e.to_string()))
}

fn not_found(name: &str) -> AppError {
    AppError::NotFound(format!("webhook `{name}` does not exist"))
}

fn require_every_skill(user: &SecurityUser) -> Result<(), AppError> {
    super::directory::require_every_skill(user, "webhooks")
}
