//! The console's pages and actions. Each obeys the viewer's permissions and skills as the
//! API does; actions go through the same domain rules and show their result code.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::http::Uri;
use axum::response::{Html, IntoResponse, Response};
use chrono::{DateTime, Utc};
use maud::html;
use serde::Deserialize;

use super::Viewer;
use crate::app::App;
use crate::domain::{
    Callback, CallbackId, CallbackState, Permission, PhoneNumber, SkillId, contact_zone,
};
use crate::store::CallbackFilter;

use super::history::{local, place, sentence};
use super::layout::{forbidden, page, time};
use super::names::Names;

/// Rows per page of the callbacks list.
const PAGE: u32 = 50;
/// How long one count of callbacks per state serves the overview (it scans the table).
const COUNTS_FRESH: std::time::Duration = std::time::Duration::from_secs(4);

pub async fn overview(viewer: Viewer) -> Html<String> {
    page(
        "Overview",
        Some(&viewer),
        html! {
            h1 { "Overview" }
            div #figures data-live hx-get="/console/figures" hx-trigger="load, every 5s, refresh" hx-swap="innerHTML" {
                p.muted { "Loading…" }
            }
        },
    )
}

/// The overview's figures, refreshed in place every few seconds. They count every skill's
/// callbacks, so only a user who may read callbacks of every skill sees them.
pub async fn figures(State(state): State<App>, viewer: Viewer) -> Response {
    if !viewer.may(Permission::CallbacksRead) || viewer.user.skills.is_some() {
        return Html(
            html! {
                p.muted #figures-withheld {
                    "The overview counts every skill's callbacks: it needs a user who may read callbacks of every skill."
                }
            }
            .into_string(),
        )
        .into_response();
    }
    let figures = {
        let mut cached = state.state_counts.lock().await;
        match cached.as_ref() {
            Some((at, figures)) if at.elapsed() < COUNTS_FRESH => Ok(figures.clone()),
            _ => match (
                state.store.state_counts().await,
                state.store.backlog().await,
            ) {
                (Ok(counts), Ok(backlog)) => {
                    *cached = Some((std::time::Instant::now(), (counts.clone(), backlog.clone())));
                    Ok((counts, backlog))
                }
                (Err(e), _) | (_, Err(e)) => Err(e),
            },
        }
    };
    let database_up = figures.is_ok();
    let broker = match &state.broker {
        None => "not used",
        Some(b) if b.is_up() => "up",
        Some(_) => "down",
    };
    let (counts, backlog) = figures.unwrap_or_default();
    let lateness = state
        .progress
        .as_ref()
        .and_then(crate::liveness::Progress::recent_lateness_p99);
    let count = |state: CallbackState| {
        counts
            .iter()
            .find(|(s, _)| s == state.as_str())
            .map_or(0, |(_, n)| *n)
    };
    Html(
        html! {
            div.cards {
                @for state in CallbackState::ALL {
                    div.card data-state=(state.as_str()) {
                        div.n { (count(state)) }
                        div.l { (state.as_str()) }
                    }
                }
                div.card #due-now { div.n { (backlog.due_now) } div.l { "due now" } }
                div.card #due-next-hour { div.n { (backlog.due_next_hour) } div.l { "due in the next hour" } }
                div.card #lateness {
                    div.n { @if let Some(ms) = lateness { (ms.round() as i64) " ms" } @else { "—" } }
                    div.l { "lateness p99 (latest dispatches here)" }
                }
                div.card #paced {
                    div.n { (backlog.paced) }
                    div.l { "held by pacing" }
                }
                div.card #oldest-overdue {
                    div.n { (backlog.oldest_overdue_seconds.round() as i64) " s" }
                    div.l { "oldest overdue" }
                }
                div.card #database {
                    div.n class=(if database_up { "up" } else { "down" }) { (if database_up { "up" } else { "down" }) }
                    div.l { "database" }
                }
                div.card #broker {
                    div.n class=(if broker == "down" { "down" } else { "up" }) { (broker) }
                    div.l { "broker" }
                }
            }
        }
        .into_string(),
    )
    .into_response()
}

#[derive(Deserialize, Default)]
pub struct ListParams {
    #[serde(default)]
    state: Option<String>,
    #[serde(default, rename = "skillId")]
    skill_id: Option<String>,
    #[serde(default, rename = "agentId")]
    agent_id: Option<String>,
    #[serde(default)]
    after: Option<String>,
    #[serde(default, rename = "dueAfter")]
    due_after: Option<String>,
    #[serde(default, rename = "dueBefore")]
    due_before: Option<String>,
    /// A phone number, or the start of a last name.
    #[serde(default)]
    q: Option<String>,
    /// `priority`: the highest base priority first, then due order; else due order.
    #[serde(default)]
    sort: Option<String>,
}

/// A search: a phone number (read as the API reads one) or the start of a last name.
fn search(q: Option<&str>, region: phonenumber::country::Id) -> (Option<String>, Option<String>) {
    let Some(q) = q.map(str::trim).filter(|q| !q.is_empty()) else {
        return (None, None);
    };
    let phone_like = q
        .chars()
        .all(|c| c.is_ascii_digit() || " +-().".contains(c));
    match phone_like
        .then(|| PhoneNumber::parse(q, region).ok())
        .flatten()
    {
        Some(phone) => (Some(phone.as_str().to_owned()), None),
        None => (None, Some(q.to_owned())),
    }
}

fn instant(value: Option<&str>) -> Option<DateTime<Utc>> {
    value
        .filter(|v| !v.is_empty())
        .and_then(|v| DateTime::parse_from_rfc3339(v).ok())
        .map(|t| t.with_timezone(&Utc))
}

/// A list position: `<due micros>.<uuid>`, after `<priority>.` in priority order.
fn position(
    after: Option<&str>,
    by_priority: bool,
) -> (Option<u32>, Option<(DateTime<Utc>, CallbackId)>) {
    let Some(after) = after else {
        return (None, None);
    };
    let (priority, rest) = match after.split_once('.') {
        Some((p, rest)) if by_priority => (p.parse().ok(), rest),
        _ => (None, after),
    };
    let at = rest.split_once('.').and_then(|(micros, id)| {
        Some((
            DateTime::from_timestamp_micros(micros.parse().ok()?)?,
            id.parse().ok()?,
        ))
    });
    match (by_priority, priority, at) {
        (true, Some(p), Some(at)) => (Some(p), Some(at)),
        (false, _, at) => (None, at),
        _ => (None, None),
    }
}

pub async fn callbacks(
    State(state): State<App>,
    viewer: Viewer,
    uri: Uri,
    Query(params): Query<ListParams>,
) -> Response {
    if !viewer.may(Permission::CallbacksRead) {
        return forbidden("this security user may not read callbacks");
    }
    let wanted_state = params
        .state
        .as_deref()
        .filter(|s| !s.is_empty())
        .and_then(|s| s.parse::<CallbackState>().ok());
    let skill_id = params
        .skill_id
        .as_deref()
        .filter(|s| !s.is_empty())
        .and_then(|s| s.parse::<SkillId>().ok())
        .filter(|s| viewer.user.may_use_skill(*s));
    let (phone_number, last_name_prefix) = search(params.q.as_deref(), state.rules.default_region);
    let agent_id = params
        .agent_id
        .as_deref()
        .filter(|s| !s.is_empty())
        .and_then(|s| s.parse().ok());
    let by_priority = params.sort.as_deref() == Some("priority");
    let (after_priority, after) = position(params.after.as_deref(), by_priority);
    let filter = CallbackFilter {
        state: wanted_state,
        skill_id,
        agent_id,
        phone_number,
        last_name_prefix,
        allowed_skills: viewer.user.skills.clone(),
        due_after: instant(params.due_after.as_deref()),
        due_before: instant(params.due_before.as_deref()),
        after,
        limit: PAGE + 1,
        caller_id: None,
        orig_number: None,
        by_priority,
        after_priority,
    };
    let mut rows = match state.store.list_callbacks(&filter).await {
        Ok(rows) => rows,
        Err(e) => return super::layout::failure(e),
    };
    let names = match Names::load(&state.store).await {
        Ok(names) => names,
        Err(e) => return super::layout::failure(e),
    };
    let next = (rows.len() > PAGE as usize).then(|| {
        rows.truncate(PAGE as usize);
        rows.last().map(|c| {
            let at = format!("{}.{}", c.due_at.timestamp_micros(), c.id);
            if by_priority {
                format!("{}.{at}", c.priority)
            } else {
                at
            }
        })
    });
    let next_link = next.flatten().map(|after| {
        format!(
            "/console/callbacks?state={}&skillId={}&agentId={}&q={}&dueAfter={}&dueBefore={}&sort={}&after={after}",
            params.state.as_deref().unwrap_or_default(),
            params.skill_id.as_deref().unwrap_or_default(),
            params.agent_id.as_deref().unwrap_or_default(),
            urlencode(params.q.as_deref().unwrap_or_default()),
            urlencode(params.due_after.as_deref().unwrap_or_default()),
            urlencode(params.due_before.as_deref().unwrap_or_default()),
            if by_priority { "priority" } else { "due" },
        )
    });
    page(
        "Callbacks",
        Some(&viewer),
        html! {
            h1 { "Callbacks" }
            form.filters method="get" action="/console/callbacks" {
                label { "State"
                    select name="state" {
                        option value="" { "any" }
                        @for s in CallbackState::ALL {
                            option value=(s.as_str()) selected[wanted_state == Some(s)] { (s.as_str()) }
                        }
                    }
                }
                label { "Skill"
                    input type="text" name="skillId" inputmode="numeric" value=(params.skill_id.as_deref().unwrap_or_default());
                }
                label { "Agent"
                    input type="text" name="agentId" inputmode="numeric" value=(params.agent_id.as_deref().unwrap_or_default());
                }
                label { "Phone number or last name"
                    input #q type="search" name="q" value=(params.q.as_deref().unwrap_or_default());
                }
                label { "Due from (UTC, e.g. 2026-11-27T09:00:00Z)"
                    input type="text" name="dueAfter" value=(params.due_after.as_deref().unwrap_or_default());
                }
                label { "Due before"
                    input type="text" name="dueBefore" value=(params.due_before.as_deref().unwrap_or_default());
                }
                label { "Order"
                    select #sort name="sort" {
                        option value="due" selected[!by_priority] { "due time" }
                        option value="priority" selected[by_priority] { "priority, then due time" }
                    }
                }
                button type="submit" { "Filter" }
            }
            // Refreshed in place (console.js pauses it while the tab is hidden).
            div #live-list data-live hx-get=(uri.to_string()) hx-trigger="every 10s, refresh" hx-select="#live-list" hx-swap="outerHTML" {
            table #callbacks {
                thead { tr { th { "Due" } th { "State" } th { "Name" } th { "Phone" } th { "Skill" } th { "Route" } th { "Priority" } } }
                tbody {
                    @for c in &rows {
                        tr data-id=(c.id) {
                            td { a href={"/console/callbacks/" (c.id)} { (time(c.due_at)) } }
                            td { (c.state.as_str()) }
                            td { (c.first_name) " " (c.last_name) }
                            td { (c.phone_number.as_str()) }
                            td { (names.skill(c.skill_id.get())) }
                            td { @if let Some(agent) = c.target_agent_id { (names.agent(agent.get())) } @else { "skill queue" } }
                            td { (c.priority) }
                        }
                    }
                }
            }
            @if rows.is_empty() { p.muted { "No callbacks match." } }
            }
            @if viewer.may(Permission::CallbacksUpdate) || viewer.may(Permission::CallbacksCancel) {
                p { a #change-many href={"/console/bulk?skillId=" (params.skill_id.as_deref().unwrap_or_default()) "&dueAfter=" (urlencode(params.due_after.as_deref().unwrap_or_default())) "&dueBefore=" (urlencode(params.due_before.as_deref().unwrap_or_default()))} { "Change all pending callbacks of this selection…" } }
            }
            @if let Some(link) = next_link { p { a #next href=(link) { "Next page →" } } }
        },
    )
    .into_response()
}

/// `+` in an offset must not become a space.
pub(super) fn urlencode(value: &str) -> String {
    value
        .replace('%', "%25")
        .replace('+', "%2B")
        .replace(':', "%3A")
        .replace('&', "%26")
        .replace(' ', "%20")
        .replace('#', "%23")
}

fn visible(viewer: &Viewer, callback: Option<Callback>) -> Option<Callback> {
    callback.filter(|c| viewer.user.may_use_skill(c.skill_id))
}

pub async fn callback(
    State(state): State<App>,
    viewer: Viewer,
    Path(id): Path<String>,
) -> Response {
    if !viewer.may(Permission::CallbacksRead) {
        return forbidden("this security user may not read callbacks");
    }
    let Ok(id) = id.parse::<CallbackId>() else {
        return (StatusCode::NOT_FOUND, "no such callback").into_response();
    };
    let callback = match state.store.callback(id).await {
        Ok(c) => visible(&viewer, c),
        Err(e) => return super::layout::failure(e),
    };
    let Some(c) = callback else {
        return (StatusCode::NOT_FOUND, "no such callback").into_response();
    };
    let events = match state.store.events(id, None, 200).await {
        Ok(events) => events,
        Err(e) => return super::layout::failure(e),
    };
    let names = match Names::load(&state.store).await {
        Ok(names) => names,
        Err(e) => return super::layout::failure(e),
    };
    let skill_zone = match state.store.skill(c.skill_id).await {
        Ok(skill) => skill.and_then(|s| s.time_zone),
        Err(e) => return super::layout::failure(e),
    };
    // The time promised to the contact is in the contact's zone: the callback's own, else
    // its skill's, else the configured default (as the create resolved it).
    let zone = contact_zone(c.time_zone, skill_zone, state.rules.default_time_zone);
    let zone_source = if c.time_zone.is_some() {
        "the callback's"
    } else if skill_zone.is_some() {
        "its skill's"
    } else {
        "the default"
    };
    let in_zone = |at: DateTime<Utc>| {
        let local = at.with_timezone(&zone);
        format!(
            "{} ({}, {})",
            local.format("%a %-d %b %Y %H:%M"),
            place(zone),
            local.format("%Z")
        )
    };
    let can_cancel = viewer.may(Permission::CallbacksCancel) && c.state == CallbackState::Pending;
    let can_change = viewer.may(Permission::CallbacksUpdate) && c.state == CallbackState::Pending;
    let can_retry = viewer.may(Permission::CallbacksUpdate) && c.state.may_retry();
    let agents = |ids: &[crate::domain::AgentId]| {
        ids.iter()
            .map(|a| names.agent(a.get()))
            .collect::<Vec<_>>()
            .join(", ")
    };
    page(
        "Callback",
        Some(&viewer),
        html! {
            h1 { "Callback " code { (c.id) } }
            table #detail {
                tr { th { "State" } td #state { (c.state.as_str()) } }
                tr { th { "Name" } td { (c.first_name) " " (c.last_name) } }
                tr { th { "Phone" } td { (c.phone_number.as_str()) } }
                tr { th { "Priority" } td { (c.priority) } }
                @if let Some(caller_id) = &c.caller_id {
                    tr { th { "Caller ID" } td { (caller_id.as_str()) } }
                }
                @if let Some(orig) = &c.orig_number {
                    tr { th { "Requested from" } td { (orig.as_str()) } }
                }
                tr { th { "Skill" } td #skill { (names.skill(c.skill_id.get())) } }
                tr { th { "Target agent" } td #routed-agent { (c.target_agent_id.map_or("—".to_owned(), |a| names.agent(a.get()))) } }
                @if c.target_agent_ids.len() > 1 {
                    tr { th { "Preferred agents" } td { (agents(&c.target_agent_ids)) } }
                }
                @if let Some(s) = c.ownership_seconds {
                    tr { th { "Ownership" } td { (s) " s past due, then the skill" } }
                }
                tr { th { "Route" } td { (c.route().routing_key()) } }
                tr { th { "Due (contact's time)" } td #due-local { strong { (in_zone(c.due_at)) } " · " (time(c.due_at)) } }
                @if c.scheduled_for != c.due_at {
                    tr { th { "Promised for" } td { (in_zone(c.scheduled_for)) " · " (time(c.scheduled_for)) } }
                }
                tr { th { "Contact's time zone" } td #zone { (zone.name()) " (" (zone_source) ")" } }
                tr { th { "Attempt" } td { (c.attempt) } }
                tr { th { "Expires" } td { @if let Some(e) = c.expires_at { (time(e)) } @else { "—" } } }
                tr { th { "Notes" } td { (c.notes) } }
                tr { th { "Last error" } td { (c.last_error.as_deref().unwrap_or("—")) } }
                tr { th { "Created" } td { (in_zone(c.created_at)) " · " (time(c.created_at)) " by " (c.created_by) } }
            }
            @if can_change {
                h2 { "Reschedule" }
                form #reschedule method="post" action={"/console/callbacks/" (c.id) "/reschedule"} {
                    input type="hidden" name="csrf" value=(viewer.csrf);
                    label for="when" { "New date and time, in the contact's time (" (zone.name()) ")" }
                    input #when type="datetime-local" name="when" required
                        value=(c.due_at.with_timezone(&zone).format("%Y-%m-%dT%H:%M"));
                    label for="reschedule-reason" { "Reason (required)" }
                    input #reschedule-reason type="text" name="reason" required maxlength="500";
                    p { button type="submit" { "Reschedule" } }
                }
                h2 { "Reassign" }
                form #reassign method="post" action={"/console/callbacks/" (c.id) "/reassign"} {
                    input type="hidden" name="csrf" value=(viewer.csrf);
                    (names.picker(Some(c.skill_id), &c.target_agent_ids.iter().map(|a| a.get()).collect::<Vec<_>>()))
                    label for="reassign-reason" { "Reason (required)" }
                    input #reassign-reason type="text" name="reason" required maxlength="500";
                    p { button type="submit" { "Reassign" } }
                }
            }
            @if can_retry {
                h2 { "Retry" }
                form #retry method="post" action={"/console/callbacks/" (c.id) "/retry"} {
                    input type="hidden" name="csrf" value=(viewer.csrf);
                    label for="retry-when" { "When, in the contact's time (" (zone.name()) "); empty: now" }
                    input #retry-when type="datetime-local" name="when";
                    label for="retry-reason" { "Reason (required)" }
                    input #retry-reason type="text" name="reason" required maxlength="500";
                    p { button type="submit" { "Retry" } }
                }
            }
            @if can_cancel {
                h2 { "Cancel" }
                form #cancel method="post" action={"/console/callbacks/" (c.id) "/cancel"} {
                    input type="hidden" name="csrf" value=(viewer.csrf);
                    label for="reason" { "Reason (required)" }
                    textarea #reason name="reason" required maxlength="500" rows="2" {}
                    p { button.danger type="submit" { "Cancel this callback" } }
                }
            }
            h2 { "History" }
            ol.timeline #events {
                @for e in &events {
                    li data-kind=(e.kind) {
                        (sentence(e, zone, &names))
                        div.muted { (local(e.at, zone)) " · " (time(e.at)) }
                    }
                }
            }
        },
    )
    .into_response()
}
