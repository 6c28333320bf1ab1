//! Failed and expired work: the callbacks that ended without reaching the contact, with
//! why, filtered by state, skill and due time; each one retried from its page, or every one
//! a filter selects through "change many".

use axum::extract::{Query, State};
use axum::http::Uri;
use axum::response::{IntoResponse, Response};
use maud::html;
use serde::Deserialize;

use super::Viewer;
use super::layout::{forbidden, page, skill_select, time};
use super::names::Names;
use super::pages::urlencode;
use crate::app::App;
use crate::domain::{CallbackState, Permission, SkillId};
use crate::store::CallbackFilter;

const PAGE: u32 = 50;

#[derive(Deserialize, Default)]
pub struct FailedParams {
    #[serde(default)]
    state: Option<String>,
    #[serde(default, rename = "skillId")]
    skill_id: Option<String>,
    #[serde(default, rename = "dueAfter")]
    due_after: Option<String>,
    #[serde(default, rename = "dueBefore")]
    due_before: Option<String>,
}

pub async fn failed(
    State(state): State<App>,
    viewer: Viewer,
    uri: Uri,
    Query(params): Query<FailedParams>,
) -> Response {
    if !viewer.may(Permission::CallbacksRead) {
        return forbidden("this security user may not read callbacks");
    }
    let shown = match params.state.as_deref() {
        Some("expired") => CallbackState::Expired,
        _ => CallbackState::Failed,
    };
    let skill = params
        .skill_id
        .as_deref()
        .filter(|s| !s.is_empty())
        .and_then(|s| s.parse::<SkillId>().ok())
        .filter(|s| viewer.user.may_use_skill(*s));
    let instant = |v: Option<&str>| {
        v.filter(|v| !v.is_empty())
            .and_then(|v| chrono::DateTime::parse_from_rfc3339(v).ok())
            .map(|t| t.with_timezone(&chrono::Utc))
    };
    let filter = CallbackFilter {
        state: Some(shown),
        skill_id: skill,
        allowed_skills: viewer.user.skills.clone(),
        due_after: instant(params.due_after.as_deref()),
        due_before: instant(params.due_before.as_deref()),
        limit: PAGE,
        ..CallbackFilter::default()
    };
    let rows = match state.store.list_callbacks(&filter).await {
        Ok(rows) => rows,
        Err(e) => return super::layout::failure(e),
    };
    let names = match Names::load(&state.store).await {
        Ok(names) => names,
        Err(e) => return super::layout::failure(e),
    };
    let may_retry = viewer.may(Permission::CallbacksUpdate);
    let bulk = format!(
        "/console/bulk?state={}&skillId={}&dueAfter={}&dueBefore={}",
        shown.as_str(),
        skill.map(|s| s.to_string()).unwrap_or_default(),
        urlencode(params.due_after.as_deref().unwrap_or_default()),
        urlencode(params.due_before.as_deref().unwrap_or_default())
    );
    page(
        "Failed and expired",
        Some(&viewer),
        html! {
            h1 { "Failed and expired" }
            p.muted { "Callbacks that ended without reaching the contact. Open one to see its history and retry it, or retry every one this filter selects." }
            form.filters method="get" action="/console/failed" {
                label { "State"
                    select #failed-state name="state" {
                        option value="failed" selected[shown == CallbackState::Failed] { "failed" }
                        option value="expired" selected[shown == CallbackState::Expired] { "expired" }
                    }
                }
                label { "Skill" (skill_select(&names, &viewer, skill)) }
                label { "Due from (UTC, e.g. 2026-11-27T09:00:00Z)"
                    input type="text" name="dueAfter" value=(params.due_after.as_deref().unwrap_or_default());
                }
                label { "Due before"
                    input type="text" name="dueBefore" value=(params.due_before.as_deref().unwrap_or_default());
                }
                button type="submit" { "Filter" }
            }
            div #live-list data-live hx-get=(uri.to_string()) hx-trigger="every 10s, refresh" hx-select="#live-list" hx-swap="outerHTML" {
            table #failed {
                thead { tr { th { "Due" } th { "Name" } th { "Phone" } th { "Skill" } th { "Attempts" } th { "Why" } } }
                tbody {
                    @for c in &rows {
                        tr data-id=(c.id) {
                            td { a href={"/console/callbacks/" (c.id)} { (time(c.due_at)) } }
                            td { (c.first_name) " " (c.last_name) }
                            td { (c.phone_number.as_str()) }
                            td { (names.skill(c.skill_id.get())) }
                            td { (c.attempt) }
                            td { (c.last_error.as_deref().unwrap_or(if shown == CallbackState::Expired { "expired before it was published" } else { "—" })) }
                        }
                    }
                }
            }
            @if rows.is_empty() { p.muted { "None." } }
            }
            @if rows.len() == PAGE as usize { p.muted { "The first " (PAGE) " shown; narrow the filter for the rest." } }
            @if may_retry && !rows.is_empty() {
                p { a #retry-many href=(bulk) { "Retry every " (shown.as_str()) " callback of this selection…" } }
            }
        },
    )
    .into_response()
}
