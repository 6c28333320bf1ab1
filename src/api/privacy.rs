//! `/v1/privacy`: everything held about a phone number, and the erasure of its personal
//! data (docs/privacy.md).

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use super::dnc::{DncEntryView, DncEventView};
use super::error::{ApiError, ResultCode};
use super::extract::{Caller, JsonBody, QueryParams};
use crate::app::privacy;
use crate::wire::{CallbackView, EventView};

#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ExportQuery {
    /// The number, as a create takes it (national numbers in `schedule.default_region`).
    #[param(example = "+442079460958")]
    phone_number: String,
}

/// One callback to or from the number, with its history.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExportedCallback {
    callback: CallbackView,
    events: Vec<EventView>,
}

/// An earlier erasure of the number.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ErasureItem {
    erasure_id: i64,
    at: DateTime<Utc>,
    requested_by: String,
    callbacks: i32,
}

/// Everything held about a number.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PrivacyExport {
    result: ResultCode,
    phone_number: String,
    exported_at: DateTime<Utc>,
    /// Callbacks to the number or requested from it (`origNumber`), oldest first.
    callbacks: Vec<ExportedCallback>,
    do_not_call: Vec<DncEntryView>,
    do_not_call_events: Vec<DncEventView>,
    /// Earlier erasures of this number (found by its digest).
    erasures: Vec<ErasureItem>,
}

/// The body of `POST /v1/privacy/erasure`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ErasureRequest {
    #[schema(example = "+442079460958")]
    phone_number: String,
    /// Why (recorded with the erasure; at most 500 characters): a ticket reference, not
    /// the person's details.
    #[schema(max_length = 500, example = "DSR-2026-0042")]
    reason: Option<String>,
    /// Also remove the number's do-not-call entries and their audit (default false: the
    /// person's wish not to be called is kept).
    #[serde(default)]
    include_do_not_call: bool,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ErasureAnswer {
    result: ResultCode,
    erasure_id: i64,
    at: DateTime<Utc>,
    /// Callbacks whose personal data was removed.
    callbacks: i64,
    /// Of those, the ones still waiting, cancelled first.
    cancelled: i64,
    do_not_call_removed: i64,
}

/// `GET /v1/privacy/export`: everything held about a phone number.
#[utoipa::path(
    get,
    path = "/v1/privacy/export",
    operation_id = "privacyExport",
    tag = "privacy",
    security(("bearer" = [])),
    params(ExportQuery),
    responses(
        (status = 200, description = "Success: the number's callbacks with their histories, its do-not-call entries, earlier erasures", body = PrivacyExport),
        (status = 400, description = "Default: a missing or unknown query parameter"),
        (status = 401, description = "InvalidSecurityUser: missing, malformed, unknown or disabled token"),
        (status = 403, description = "InvalidSecurityUser: lacks privacy:export, or is restricted to some skills"),
        (status = 422, description = "InvalidPhoneNumber: not a number"),
    )
)]
pub async fn export(
    State(state): State<AppState>,
    caller: Caller,
    QueryParams(q): QueryParams<ExportQuery>,
) -> Result<Json<PrivacyExport>, ApiError> {
    let export = privacy::export(&state, &caller.0, &q.phone_number).await?;
    let now = export.at;
    Ok(Json(PrivacyExport {
        result: ResultCode::Success,
        phone_number: export.phone_number.as_str().to_owned(),
        exported_at: export.at,
        callbacks: export
            .callbacks
            .into_iter()
            .map(|(callback, events)| ExportedCallback {
                callback: callback.into(),
                events: events.into_iter().map(Into::into).collect(),
            })
            .collect(),
        do_not_call: export
            .dnc_entries
            .into_iter()
            .map(|e| DncEntryView::new(e, now))
            .collect(),
        do_not_call_events: export.dnc_events.into_iter().map(Into::into).collect(),
        erasures: export
            .erasures
            .into_iter()
            .map(|e| ErasureItem {
                erasure_id: e.id,
                at: e.at,
                requested_by: e.requested_by,
                callbacks: e.callbacks,
            })
            .collect(),
    }))
}

/// `POST /v1/privacy/erasure`: erases a phone number's personal data.
#[utoipa::path(
    post,
    path = "/v1/privacy/erasure",
    operation_id = "privacyErasure",
    tag = "privacy",
    security(("bearer" = [])),
    request_body = ErasureRequest,
    responses(
        (status = 200, description = "Success: erased (an erasure of a number with nothing left is recorded too)", body = ErasureAnswer),
        (status = 400, description = "Default: malformed JSON"),
        (status = 401, description = "InvalidSecurityUser: missing, malformed, unknown or disabled token"),
        (status = 403, description = "InvalidSecurityUser: lacks privacy:erase, or is restricted to some skills"),
        (status = 422, description = "InvalidPhoneNumber: not a number; Default: no reason"),
    )
)]
pub async fn erase(
    State(state): State<AppState>,
    caller: Caller,
    body: JsonBody<ErasureRequest>,
) -> Result<Json<ErasureAnswer>, ApiError> {
    let b = body.value;
    let report = privacy::erase(
        &state,
        &caller.0,
        &b.phone_number,
        b.reason.as_deref(),
        b.include_do_not_call,
    )
    .await?;
    Ok(Json(ErasureAnswer {
        result: ResultCode::Success,
        erasure_id: report.erasure.id,
        at: report.erasure.at,
        callbacks: report.erasure.callbacks,
        cancelled: report.cancelled,
        do_not_call_removed: report.erasure.dnc_entries_removed,
    }))
}
