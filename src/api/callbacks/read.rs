//! Reading callbacks: one, its history, and the list.

use axum::Json;
use axum::extract::State;
use chrono::Datelike;

use super::views::{
    CallbackPage, CallbackView, EventList, EventView, EventsQuery, ListCursor, ListQuery,
};
use super::{page_size, visible_callback};
use crate::api::AppState;
use crate::api::error::ApiError;
use crate::api::extract::{Caller, PathParam, QueryParams};
use crate::app::Selection;
use crate::domain::{CallbackId, Permission};
use crate::store::CallbackFilter;

/// `GET /v1/callbacks/{id}`.
#[utoipa::path(
    get,
    path = "/v1/callbacks/{id}",
    operation_id = "getCallback",
    tag = "callbacks",
    security(("bearer" = [])),
    params(("id" = String, Path, format = Uuid, description = "The callback id")),
    responses(
        (status = 200, description = "Success: the callback", body = CallbackView),
        (status = 400, description = "Default: the id is not a UUID"),
        (status = 401, description = "InvalidSecurityUser: missing, malformed, unknown or disabled token"),
        (status = 403, description = "InvalidSecurityUser: lacks callbacks:read"),
        (status = 404, description = "Default: no such callback, or one of a skill the caller may not use"),
    )
)]
#[tracing::instrument(skip_all, fields(callback_id = %id))]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    PathParam(id): PathParam<CallbackId>,
) -> Result<Json<CallbackView>, ApiError> {
    caller.require(Permission::CallbacksRead)?;
    Ok(Json(visible_callback(&state, &caller, id).await?.into()))
}

/// `GET /v1/callbacks/{id}/events`: every change, oldest first, a page at a time.
#[utoipa::path(
    get,
    path = "/v1/callbacks/{id}/events",
    operation_id = "callbackEvents",
    tag = "callbacks",
    security(("bearer" = [])),
    params(("id" = String, Path, format = Uuid, description = "The callback id"), EventsQuery),
    responses(
        (status = 200, description = "Success: a page of the callback's history", body = EventList),
        (status = 400, description = "Default: the id is not a UUID, or a bad cursor or limit"),
        (status = 401, description = "InvalidSecurityUser: missing, malformed, unknown or disabled token"),
        (status = 403, description = "InvalidSecurityUser: lacks callbacks:read"),
        (status = 404, description = "Default: no such callback (or one of a skill the caller may not use)"),
    )
)]
#[tracing::instrument(skip_all, fields(callback_id = %id))]
pub async fn events(
    State(state): State<AppState>,
    caller: Caller,
    PathParam(id): PathParam<CallbackId>,
    QueryParams(q): QueryParams<EventsQuery>,
) -> Result<Json<EventList>, ApiError> {
    caller.require(Permission::CallbacksRead)?;
    let limit = page_size(&state, q.limit)?;
    let after = q
        .cursor
        .as_deref()
        .map(|c| {
            c.parse::<i64>().ok().filter(|n| *n > 0).ok_or_else(|| {
                ApiError::bad_request(format!("cursor `{c}` is not one this API issued"))
            })
        })
        .transpose()?;
    visible_callback(&state, &caller, id).await?;
    // One extra row tells whether there is a next page.
    let mut events = state.store.events(id, after, limit + 1).await?;
    let next_cursor = if events.len() > limit as usize {
        events.truncate(limit as usize);
        events.last().map(|e| e.id.to_string())
    } else {
        None
    };
    let items = events.into_iter().map(EventView::from).collect();
    Ok(Json(EventList {
        callback_id: id,
        items,
        next_cursor,
    }))
}

/// `GET /v1/callbacks`: ordered by due time, keyset-paginated with `cursor`.
#[utoipa::path(
    get,
    path = "/v1/callbacks",
    operation_id = "listCallbacks",
    tag = "callbacks",
    security(("bearer" = [])),
    params(ListQuery),
    responses(
        (status = 200, description = "Success: a page of callbacks", body = CallbackPage),
        (status = 400, description = "Default: an unknown or malformed filter, cursor or limit"),
        (status = 401, description = "InvalidSecurityUser: missing, malformed, unknown or disabled token"),
        (status = 403, description = "InvalidSecurityUser: lacks callbacks:read, or may not use that skill"),
    )
)]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    QueryParams(q): QueryParams<ListQuery>,
) -> Result<Json<CallbackPage>, ApiError> {
    caller.require(Permission::CallbacksRead)?;
    let bad = |e: String| ApiError::bad_request(e);
    let limit = page_size(&state, q.limit)?;
    let selection = Selection {
        state: q.state.as_deref(),
        skill_id: q.skill_id.as_deref(),
        agent_id: q.agent_id.as_deref(),
        due_before: q.due_before.as_deref(),
        due_after: q.due_after.as_deref(),
        phone_number: q.phone_number.as_deref(),
        caller_id: q.caller_id.as_deref(),
        orig_number: q.orig_number.as_deref(),
    };
    let by_priority = match q.sort.as_deref() {
        None | Some("dueAt") => false,
        Some("priority") => true,
        Some(other) => {
            return Err(bad(format!("sort `{other}` is not one of dueAt, priority")));
        }
    };
    let cursor = q
        .cursor
        .as_deref()
        .map(|c| {
            // A cursor names a due time the store holds: one outside years 1 to 9999 is
            // forged, and PostgreSQL would refuse it (it used to answer 500). It continues
            // the order it was issued in.
            ListCursor::decode(c)
                .filter(|cursor| (1..=9999).contains(&cursor.due_at.year()))
                .filter(|cursor| cursor.priority.is_some() == by_priority)
                .ok_or_else(|| {
                    bad(format!(
                        "cursor `{c}` is not one this API issued for this sort"
                    ))
                })
        })
        .transpose()?;
    let filter = CallbackFilter {
        after: cursor.map(|c| (c.due_at, CallbackId::from_uuid(c.id))),
        after_priority: cursor.and_then(|c| c.priority),
        by_priority,
        // One extra row tells whether there is a next page.
        limit: limit + 1,
        ..selection.filter(&caller.0, state.rules.default_region)?
    };
    let mut records = state.store.list_callbacks(&filter).await?;
    let next_cursor = if records.len() > limit as usize {
        records.truncate(limit as usize);
        records.last().map(|r| {
            ListCursor {
                due_at: r.due_at,
                id: r.id.as_uuid(),
                priority: by_priority.then_some(r.priority),
            }
            .encode()
        })
    } else {
        None
    };
    let items = records.into_iter().map(Into::into).collect();
    Ok(Json(CallbackPage { items, next_cursor }))
}
