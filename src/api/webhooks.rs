//! `/v1/webhooks/{name}`: subscriptions that receive callback events as signed HTTP
//! `POST`s, and their delivery attempts.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use super::error::{ApiError, ResultCode};
use super::extract::{Caller, JsonBody, PathParam, QueryParams};
use crate::app::webhooks;
use crate::domain::{SkillId, Webhook, WebhookInput};

/// The body of `PUT /v1/webhooks/{name}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct WebhookBody {
    /// Where events are POSTed: `https://`, to a public address (settings may allow
    /// `http://` and private targets).
    #[schema(example = "https://crm.example.com/hooks/callbackd")]
    url: String,
    /// The event kinds it receives (`created`, `dispatched`, `completed`…); absent or `[]`:
    /// all.
    #[serde(default)]
    kinds: Vec<String>,
    /// The skills whose callbacks' events it receives; absent or `[]`: all.
    #[serde(default)]
    #[schema(value_type = Vec<i64>)]
    skill_ids: Vec<SkillId>,
    /// `whsec_` and the base64 of 24 to 64 bytes. Absent: kept, or generated for a new
    /// subscription (the answer shows it).
    secret: Option<String>,
    /// `false` stops deliveries; `true` (the default) also resumes a paused subscription.
    #[serde(default = "yes")]
    active: bool,
}

fn yes() -> bool {
    true
}

/// A subscription. Its `secret` is shown only in the answer to the `PUT` that set it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebhookView {
    result: ResultCode,
    name: String,
    url: String,
    kinds: Vec<&'static str>,
    #[schema(value_type = Vec<i64>)]
    skill_ids: Vec<SkillId>,
    active: bool,
    /// Paused after failing for too long (`PUT` it again to resume).
    paused_at: Option<DateTime<Utc>>,
    paused_reason: Option<String>,
    /// Since when every attempt failed.
    failing_since: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    secret: Option<String>,
}

impl WebhookView {
    fn of(webhook: Webhook, show_secret: bool) -> Self {
        let (paused_at, paused_reason) = webhook.paused.unzip();
        Self {
            result: ResultCode::Success,
            secret: show_secret.then(|| webhook.secret.expose().to_owned()),
            name: webhook.name,
            url: webhook.url.to_string(),
            kinds: webhook.kinds.iter().map(|k| k.as_str()).collect(),
            skill_ids: webhook.skill_ids,
            active: webhook.active,
            paused_at,
            paused_reason,
            failing_since: webhook.failing_since,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebhookList {
    items: Vec<WebhookView>,
}

/// One delivery attempt.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AttemptItem {
    id: i64,
    delivery_id: i64,
    event_id: i64,
    at: DateTime<Utc>,
    /// The HTTP status, when an answer came.
    status: Option<i32>,
    /// Why it failed, when it did.
    error: Option<String>,
    duration_ms: i32,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AttemptList {
    result: ResultCode,
    /// Deliveries per state: `pending`, `delivered`, `failed`.
    deliveries: std::collections::BTreeMap<String, i64>,
    /// Newest first.
    items: Vec<AttemptItem>,
    /// Pass as `before` for the next page; `null` on the last one.
    next_before: Option<i64>,
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AttemptsQuery {
    /// Attempts older than this attempt id.
    #[param(minimum = 1)]
    before: Option<i64>,
    /// 1 to 500 (default 100).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<u32>,
}

/// `PUT /v1/webhooks/{name}`: creates or replaces a subscription.
#[utoipa::path(
    put,
    path = "/v1/webhooks/{name}",
    operation_id = "putWebhook",
    tag = "webhooks",
    security(("bearer" = [])),
    params(("name" = String, Path, pattern = "^[A-Za-z0-9._-]{1,100}$", description = "The subscription's name")),
    request_body = WebhookBody,
    responses(
        (status = 200, description = "Success: replaced (the secret shown when this request set it)", body = WebhookView),
        (status = 201, description = "Success: created, with its secret", body = WebhookView),
        (status = 400, description = "Default: malformed JSON or a bad name"),
        (status = 401, description = "InvalidSecurityUser: missing, malformed, unknown or disabled token"),
        (status = 403, description = "InvalidSecurityUser: lacks webhooks:write, or is restricted to some skills"),
        (status = 422, description = "Default: a refused URL (not https, a private address), an unknown event kind, a malformed secret"),
    )
)]
pub async fn put_webhook(
    State(state): State<AppState>,
    caller: Caller,
    PathParam(name): PathParam<String>,
    body: JsonBody<WebhookBody>,
) -> Result<Response, ApiError> {
    let b = body.value;
    let sets_secret = b.secret.as_deref().is_some_and(|s| !s.trim().is_empty());
    let (webhook, created) = webhooks::put(
        &state,
        &caller.0,
        &name,
        WebhookInput {
            url: b.url,
            kinds: b.kinds,
            skill_ids: b.skill_ids,
            secret: b.secret,
            active: b.active,
        },
    )
    .await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let view = WebhookView::of(webhook, created || sets_secret);
    Ok((status, Json(view)).into_response())
}

/// `GET /v1/webhooks/{name}`.
#[utoipa::path(
    get,
    path = "/v1/webhooks/{name}",
    operation_id = "getWebhook",
    tag = "webhooks",
    security(("bearer" = [])),
    params(("name" = String, Path, description = "The subscription's name")),
    responses(
        (status = 200, description = "Success: the subscription (without its secret)", body = WebhookView),
        (status = 400, description = "Default: a bad name"),
        (status = 401, description = "InvalidSecurityUser: missing, malformed, unknown or disabled token"),
        (status = 403, description = "InvalidSecurityUser: lacks webhooks:read"),
        (status = 404, description = "Default: no such subscription"),
    )
)]
pub async fn get_webhook(
    State(state): State<AppState>,
    caller: Caller,
    PathParam(name): PathParam<String>,
) -> Result<Json<WebhookView>, ApiError> {
    let webhook = webhooks::get(&state, &caller.0, &name).await?;
    Ok(Json(WebhookView::of(webhook, false)))
}

/// `GET /v1/webhooks`: every subscription, by name.
#[utoipa::path(
    get,
    path = "/v1/webhooks",
    operation_id = "listWebhooks",
    tag = "webhooks",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Success: the subscriptions (without their secrets)", body = WebhookList),
        (status = 401, description = "InvalidSecurityUser: missing, malformed, unknown or disabled token"),
        (status = 403, description = "InvalidSecurityUser: lacks webhooks:read"),
    )
)]
pub async fn list_webhooks(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<WebhookList>, ApiError> {
    let items = webhooks::list(&state, &caller.0)
        .await?
        .into_iter()
        .map(|w| WebhookView::of(w, false))
        .collect();
    Ok(Json(WebhookList { items }))
}

/// `DELETE /v1/webhooks/{name}`: with its deliveries and attempts.
#[utoipa::path(
    delete,
    path = "/v1/webhooks/{name}",
    operation_id = "deleteWebhook",
    tag = "webhooks",
    security(("bearer" = [])),
    params(("name" = String, Path, description = "The subscription's name")),
    responses(
        (status = 204, description = "Success: deleted"),
        (status = 400, description = "Default: a bad name"),
        (status = 401, description = "InvalidSecurityUser: missing, malformed, unknown or disabled token"),
        (status = 403, description = "InvalidSecurityUser: lacks webhooks:write, or is restricted to some skills"),
        (status = 404, description = "Default: no such subscription"),
    )
)]
pub async fn delete_webhook(
    State(state): State<AppState>,
    caller: Caller,
    PathParam(name): PathParam<String>,
) -> Result<Response, ApiError> {
    webhooks::delete(&state, &caller.0, &name).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `GET /v1/webhooks/{name}/attempts`: delivery attempts, newest first.
#[utoipa::path(
    get,
    path = "/v1/webhooks/{name}/attempts",
    operation_id = "listWebhookAttempts",
    tag = "webhooks",
    security(("bearer" = [])),
    params(("name" = String, Path, description = "The subscription's name"), AttemptsQuery),
    responses(
        (status = 200, description = "Success: attempts, newest first, and deliveries per state", body = AttemptList),
        (status = 400, description = "Default: a bad name or query parameter"),
        (status = 401, description = "InvalidSecurityUser: missing, malformed, unknown or disabled token"),
        (status = 403, description = "InvalidSecurityUser: lacks webhooks:read"),
        (status = 404, description = "Default: no such subscription"),
    )
)]
pub async fn webhook_attempts(
    State(state): State<AppState>,
    caller: Caller,
    PathParam(name): PathParam<String>,
    QueryParams(q): QueryParams<AttemptsQuery>,
) -> Result<Json<AttemptList>, ApiError> {
    let limit = q.limit.unwrap_or(100);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::bad_request("limit: 1 to 500"));
    }
    let (attempts, counts) = webhooks::attempts(&state, &caller.0, &name, q.before, limit).await?;
    let next_before = (attempts.len() == limit as usize)
        .then(|| attempts.last().map(|a| a.id))
        .flatten();
    Ok(Json(AttemptList {
        result: ResultCode::Success,
        deliveries: counts.into_iter().collect(),
        items: attempts
            .into_iter()
            .map(|a| AttemptItem {
                id: a.id,
                delivery_id: a.delivery_id,
                event_id: a.event_id,
                at: a.at,
                status: a.status,
                error: a.error,
                duration_ms: a.duration_ms,
            })
            .collect(),
        next_before,
    }))
}
