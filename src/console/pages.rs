//! The console's pages and actions. Each obeys the viewer's permissions and skills as the
//! API does; actions go through the same domain rules and show their result code.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use chrono::{DateTime, Utc};
use maud::{DOCTYPE, Markup, html};
use serde::Deserialize;

use super::{SESSION_LIFETIME, Viewer, over_https, session_cookie, session_token};
use crate::api::AppState;
use crate::domain::{
    Callback, CallbackId, CallbackState, ChangeInput, Permission, PhoneNumber, RawId, SkillId,
    Token, TokenHash, check_reason, plan_change,
};
use crate::store::CallbackFilter;

/// Rows per page of the callbacks list.
const PAGE: u32 = 50;
/// How long one count of callbacks per state serves the overview (it scans the table).
const COUNTS_FRESH: std::time::Duration = std::time::Duration::from_secs(4);

pub(super) fn page(title: &str, viewer: Option<&Viewer>, body: Markup) -> Html<String> {
    Html(
        html! {
            (DOCTYPE)
            html lang="en" {
                head {
                    meta charset="utf-8";
                    meta name="viewport" content="width=device-width, initial-scale=1";
                    // htmx would otherwise add an inline style, which the CSP refuses.
                    meta name="htmx-config" content=r#"{"includeIndicatorStyles":false}"#;
                    title { (title) " · callbackd" }
                    link rel="stylesheet" href="/console/assets/console.css";
                    script src="/console/assets/htmx.min.js" defer {}
                    script src="/console/assets/console.js" defer {}
                }
                body {
                    @if let Some(viewer) = viewer {
                        header {
                            strong { "callbackd" }
                            nav {
                                a href="/console/" { "Overview" }
                                a href="/console/load" { "Upcoming load" }
                                a href="/console/callbacks" { "Callbacks" }
                                a href="/console/directory" { "Directory" }
                            }
                            span.who { "Signed in as " (viewer.user.name) }
                            form method="post" action="/console/logout" {
                                input type="hidden" name="csrf" value=(viewer.csrf);
                                button type="submit" { "Sign out" }
                            }
                        }
                    }
                    main { (body) }
                }
            }
        }
        .into_string(),
    )
}

fn time(t: DateTime<Utc>) -> Markup {
    html! { time datetime=(t.to_rfc3339()) { (t.format("%Y-%m-%d %H:%M:%S UTC")) } }
}

/// A request the console refuses, as plain text.
pub struct Refused(pub StatusCode, pub String);

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        (self.0, self.1).into_response()
    }
}

/// A form body (`application/x-www-form-urlencoded`).
pub(super) fn form<T: for<'de> Deserialize<'de>>(body: &Bytes) -> Result<T, Refused> {
    serde_urlencoded::from_bytes(body)
        .map_err(|e| Refused(StatusCode::BAD_REQUEST, format!("bad form: {e}")))
}

pub(super) fn forbidden(message: &str) -> Response {
    Refused(StatusCode::FORBIDDEN, message.to_owned()).into_response()
}

/// The form's CSRF token must be the session's.
pub(super) fn check_csrf(viewer: &Viewer, sent: &str) -> Result<(), Refused> {
    if !sent.is_empty() && sent == viewer.csrf {
        Ok(())
    } else {
        Err(Refused(
            StatusCode::FORBIDDEN,
            "the form is stale or forged (CSRF token); reload the page".into(),
        ))
    }
}

#[derive(Deserialize)]
pub struct LoginForm {
    token: String,
}

fn login_page(error: Option<&str>) -> Html<String> {
    page(
        "Sign in",
        None,
        html! {
            div.login {
                h1 { "callbackd console" }
                @if let Some(error) = error { p.error role="alert" { (error) } }
                form method="post" action="/console/login" {
                    label for="token" { "Security user token" }
                    input #token type="password" name="token" autocomplete="off" required;
                    p { button type="submit" { "Sign in" } }
                }
            }
        },
    )
}

pub async fn login_form() -> Html<String> {
    login_page(None)
}

pub async fn login(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let Ok(LoginForm { token }) = form::<LoginForm>(&body) else {
        return (StatusCode::BAD_REQUEST, login_page(Some("Enter a token."))).into_response();
    };
    let user = match state.store.authenticate(&TokenHash::of(token.trim())).await {
        Ok(Some(user)) => user,
        Ok(None) => {
            return (
                StatusCode::UNAUTHORIZED,
                login_page(Some("That token is unknown or disabled.")),
            )
                .into_response();
        }
        Err(e) => return crate::api::ApiError::from(e).into_response(),
    };
    let session = Token::generate();
    let csrf = Token::generate();
    if let Err(e) = state
        .store
        .create_session(&session.hash(), &user, csrf.expose(), SESSION_LIFETIME)
        .await
    {
        return crate::api::ApiError::from(e).into_response();
    }
    tracing::info!(security_user = %user.name, "console sign-in");
    (
        [(
            header::SET_COOKIE,
            session_cookie(session.expose(), over_https(&headers), SESSION_LIFETIME),
        )],
        Redirect::to("/console/"),
    )
        .into_response()
}

#[derive(Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

pub async fn logout(
    State(state): State<AppState>,
    viewer: Viewer,
    request_headers: HeaderMap,
    body: Bytes,
) -> Response {
    let sent: CsrfForm = match form(&body) {
        Ok(f) => f,
        Err(r) => return r.into_response(),
    };
    if let Err(r) = check_csrf(&viewer, &sent.csrf) {
        return r.into_response();
    }
    let mut parts = axum::http::Request::new(()).into_parts().0;
    parts.headers = request_headers.clone();
    if let Some(token) = session_token(&parts)
        && let Err(e) = state.store.end_session(&TokenHash::of(&token)).await
    {
        return crate::api::ApiError::from(e).into_response();
    }
    (
        [(
            header::SET_COOKIE,
            session_cookie("", over_https(&request_headers), std::time::Duration::ZERO),
        )],
        Redirect::to("/console/login"),
    )
        .into_response()
}

pub async fn overview(viewer: Viewer) -> Html<String> {
    page(
        "Overview",
        Some(&viewer),
        html! {
            h1 { "Overview" }
            div #figures hx-get="/console/figures" hx-trigger="load, every 5s" hx-swap="innerHTML" {
                p.muted { "Loading…" }
            }
        },
    )
}

/// The overview's figures, refreshed in place every few seconds.
pub async fn figures(State(state): State<AppState>, _viewer: Viewer) -> Response {
    let figures = {
        let mut cached = state.state_counts.lock().await;
        match cached.as_ref() {
            Some((at, figures)) if at.elapsed() < COUNTS_FRESH => Ok(figures.clone()),
            _ => match (
                state.store.state_counts().await,
                state.store.backlog().await,
            ) {
                (Ok(counts), Ok(backlog)) => {
                    *cached = Some((std::time::Instant::now(), (counts.clone(), backlog)));
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

/// A list position: `<due micros>.<uuid>`.
fn position(after: Option<&str>) -> Option<(DateTime<Utc>, CallbackId)> {
    let (micros, id) = after?.split_once('.')?;
    Some((
        DateTime::from_timestamp_micros(micros.parse().ok()?)?,
        id.parse().ok()?,
    ))
}

pub async fn callbacks(
    State(state): State<AppState>,
    viewer: Viewer,
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
    let filter = CallbackFilter {
        state: wanted_state,
        skill_id,
        agent_id,
        phone_number,
        last_name_prefix,
        allowed_skills: viewer.user.skills.clone(),
        due_after: instant(params.due_after.as_deref()),
        due_before: instant(params.due_before.as_deref()),
        after: position(params.after.as_deref()),
        limit: PAGE + 1,
    };
    let mut rows = match state.store.list_callbacks(&filter).await {
        Ok(rows) => rows,
        Err(e) => return crate::api::ApiError::from(e).into_response(),
    };
    let next = (rows.len() > PAGE as usize).then(|| {
        rows.truncate(PAGE as usize);
        rows.last()
            .map(|c| format!("{}.{}", c.due_at.timestamp_micros(), c.id))
    });
    let next_link = next.flatten().map(|after| {
        format!(
            "/console/callbacks?state={}&skillId={}&agentId={}&q={}&dueAfter={}&dueBefore={}&after={after}",
            params.state.as_deref().unwrap_or_default(),
            params.skill_id.as_deref().unwrap_or_default(),
            params.agent_id.as_deref().unwrap_or_default(),
            urlencode(params.q.as_deref().unwrap_or_default()),
            urlencode(params.due_after.as_deref().unwrap_or_default()),
            urlencode(params.due_before.as_deref().unwrap_or_default()),
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
                button type="submit" { "Filter" }
            }
            table #callbacks {
                thead { tr { th { "Due" } th { "State" } th { "Name" } th { "Phone" } th { "Skill" } th { "Route" } } }
                tbody {
                    @for c in &rows {
                        tr data-id=(c.id) {
                            td { a href={"/console/callbacks/" (c.id)} { (time(c.due_at)) } }
                            td { (c.state.as_str()) }
                            td { (c.first_name) " " (c.last_name) }
                            td { (c.phone_number.as_str()) }
                            td { (c.skill_id) }
                            td { (c.route().routing_key()) }
                        }
                    }
                }
            }
            @if rows.is_empty() { p.muted { "No callbacks match." } }
            @if viewer.may(Permission::CallbacksUpdate) || viewer.may(Permission::CallbacksCancel) {
                p { a #change-many href={"/console/bulk?skillId=" (params.skill_id.as_deref().unwrap_or_default()) "&dueAfter=" (urlencode(params.due_after.as_deref().unwrap_or_default())) "&dueBefore=" (urlencode(params.due_before.as_deref().unwrap_or_default()))} { "Change all pending callbacks of this selection…" } }
            }
            @if let Some(link) = next_link { p { a #next href=(link) { "Next page →" } } }
        },
    )
    .into_response()
}

/// `+` in an offset must not become a space.
fn urlencode(value: &str) -> String {
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
    State(state): State<AppState>,
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
        Err(e) => return crate::api::ApiError::from(e).into_response(),
    };
    let Some(c) = callback else {
        return (StatusCode::NOT_FOUND, "no such callback").into_response();
    };
    let events = match state.store.events(id, None, 200).await {
        Ok(events) => events,
        Err(e) => return crate::api::ApiError::from(e).into_response(),
    };
    let zone = c.time_zone.map_or("—".to_owned(), |z| z.name().to_owned());
    let can_cancel = viewer.may(Permission::CallbacksCancel) && c.state == CallbackState::Pending;
    let can_change = viewer.may(Permission::CallbacksUpdate) && c.state == CallbackState::Pending;
    let contact_zone = c
        .time_zone
        .map_or("the skill's time zone".to_owned(), |z| z.name().to_owned());
    page(
        "Callback",
        Some(&viewer),
        html! {
            h1 { "Callback " code { (c.id) } }
            table #detail {
                tr { th { "State" } td #state { (c.state.as_str()) } }
                tr { th { "Name" } td { (c.first_name) " " (c.last_name) } }
                tr { th { "Phone" } td { (c.phone_number.as_str()) } }
                tr { th { "Skill" } td { (c.skill_id) } }
                tr { th { "Target agent" } td { (c.target_agent_id.map_or("—".to_owned(), |a| a.to_string())) } }
                tr { th { "Route" } td { (c.route().routing_key()) } }
                tr { th { "Due" } td { (time(c.due_at))
                    @if let Some(tz) = c.time_zone { " · contact: " (c.due_at.with_timezone(&tz).format("%Y-%m-%d %H:%M %Z")) } } }
                tr { th { "Contact's time zone" } td { (zone) } }
                tr { th { "Attempt" } td { (c.attempt) } }
                tr { th { "Expires" } td { @if let Some(e) = c.expires_at { (time(e)) } @else { "—" } } }
                tr { th { "Notes" } td { (c.notes) } }
                tr { th { "Last error" } td { (c.last_error.as_deref().unwrap_or("—")) } }
                tr { th { "Created" } td { (time(c.created_at)) " by " (c.created_by) } }
            }
            @if can_change {
                h2 { "Reschedule" }
                form #reschedule method="post" action={"/console/callbacks/" (c.id) "/reschedule"} {
                    input type="hidden" name="csrf" value=(viewer.csrf);
                    label for="when" { "New date and time (in " (contact_zone) ")" }
                    input #when type="datetime-local" name="when" required;
                    label for="reschedule-reason" { "Reason (optional)" }
                    input #reschedule-reason type="text" name="reason" maxlength="500";
                    p { button type="submit" { "Reschedule" } }
                }
                h2 { "Reassign" }
                form #reassign method="post" action={"/console/callbacks/" (c.id) "/reassign"} {
                    input type="hidden" name="csrf" value=(viewer.csrf);
                    label for="agent" { "Target agent id (empty: back to the skill's queue)" }
                    input #agent type="text" name="targetAgentId" inputmode="numeric";
                    label for="reassign-reason" { "Reason (optional)" }
                    input #reassign-reason type="text" name="reason" maxlength="500";
                    p { button type="submit" { "Reassign" } }
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
                        strong { (e.kind) } " · " (time(e.at)) " · " (e.actor)
                        @if e.details.as_object().is_some_and(|d| !d.is_empty()) {
                            div.muted { code { (e.details.to_string()) } }
                        }
                    }
                }
            }
        },
    )
    .into_response()
}

#[derive(Deserialize)]
pub struct CancelForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    reason: String,
}

pub async fn cancel(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let sent: CancelForm = match form(&body) {
        Ok(f) => f,
        Err(r) => return r.into_response(),
    };
    if let Err(r) = check_csrf(&viewer, &sent.csrf) {
        return r.into_response();
    }
    if !viewer.may(Permission::CallbacksCancel) {
        return forbidden("this security user may not cancel callbacks");
    }
    let Ok(id) = id.parse::<CallbackId>() else {
        return (StatusCode::NOT_FOUND, "no such callback").into_response();
    };
    let reason = match check_reason(Some(&sent.reason), true) {
        Ok(reason) => reason,
        Err(e) => {
            return refused_page(
                &viewer,
                id,
                "Not cancelled",
                e.code().as_str(),
                &e.to_string(),
            );
        }
    };
    let change = match state.store.begin_change(id).await {
        Ok(Some(change)) if viewer.user.may_use_skill(change.record.skill_id) => change,
        Ok(_) => return (StatusCode::NOT_FOUND, "no such callback").into_response(),
        Err(e) => return crate::api::ApiError::from(e).into_response(),
    };
    if change.record.state != CallbackState::Pending {
        let state_now = change.record.state;
        return refused_page(
            &viewer,
            id,
            "Not cancelled",
            "Default",
            &format!("the callback is {state_now}; only pending callbacks can be cancelled"),
        );
    }
    match change.cancel(&viewer.user.name, reason.as_deref()).await {
        Ok(_) => {
            tracing::info!(callback_id = %id, security_user = %viewer.user.name, "callback cancelled (console)");
            Redirect::to(&format!("/console/callbacks/{id}")).into_response()
        }
        Err(e) => crate::api::ApiError::from(e).into_response(),
    }
}

#[derive(Deserialize)]
pub struct ChangeForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    when: Option<String>,
    #[serde(default, rename = "targetAgentId")]
    target_agent_id: Option<String>,
}

/// A refused action: its result code and message, and the way back.
fn refused_page(
    viewer: &Viewer,
    id: CallbackId,
    title: &str,
    code: &str,
    message: &str,
) -> Response {
    (
        StatusCode::UNPROCESSABLE_ENTITY,
        page(
            title,
            Some(viewer),
            html! {
                h1 { (title) }
                p.error role="alert" { (code) ": " (message) }
                p { a href={"/console/callbacks/" (id)} { "Back to the callback" } }
            },
        ),
    )
        .into_response()
}

pub async fn reschedule(
    state: State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    change(state, viewer, id, body, true).await
}

pub async fn reassign(
    state: State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    change(state, viewer, id, body, false).await
}

/// Reschedule or reassign one pending callback, through the same rules as `PATCH`.
async fn change(
    State(state): State<AppState>,
    viewer: Viewer,
    id: String,
    body: Bytes,
    reschedule: bool,
) -> Response {
    let sent: ChangeForm = match form(&body) {
        Ok(f) => f,
        Err(r) => return r.into_response(),
    };
    if let Err(r) = check_csrf(&viewer, &sent.csrf) {
        return r.into_response();
    }
    if !viewer.may(Permission::CallbacksUpdate) {
        return forbidden("this security user may not change callbacks");
    }
    let Ok(id) = id.parse::<CallbackId>() else {
        return (StatusCode::NOT_FOUND, "no such callback").into_response();
    };
    let title = if reschedule {
        "Not rescheduled"
    } else {
        "Not reassigned"
    };
    let input = if reschedule {
        ChangeInput {
            schedule_date: Some(sent.when.unwrap_or_default()),
            ..ChangeInput::default()
        }
    } else {
        ChangeInput {
            target_agent_id: Some(Some(RawId(sent.target_agent_id.unwrap_or_default()))),
            ..ChangeInput::default()
        }
    };
    let reason = match check_reason(Some(&sent.reason), false) {
        Ok(reason) => reason,
        Err(e) => return refused_page(&viewer, id, title, e.code().as_str(), &e.to_string()),
    };
    let target = match input.requested() {
        Ok(target) => target,
        Err(e) => return refused_page(&viewer, id, title, e.code().as_str(), &e.to_string()),
    };
    let mut locked = match state.store.begin_change(id).await {
        Ok(Some(change)) if viewer.user.may_use_skill(change.record.skill_id) => change,
        Ok(_) => return (StatusCode::NOT_FOUND, "no such callback").into_response(),
        Err(e) => return crate::api::ApiError::from(e).into_response(),
    };
    if locked.record.state != CallbackState::Pending {
        let now = locked.record.state;
        return refused_page(
            &viewer,
            id,
            title,
            "Default",
            &format!("the callback is {now}; only pending callbacks can be changed"),
        );
    }
    let agent = match target {
        Some(Some(agent_id)) => match locked.agent(agent_id).await {
            Ok(agent) => agent,
            Err(e) => return crate::api::ApiError::from(e).into_response(),
        },
        _ => None,
    };
    let planned = plan_change(
        input,
        target,
        agent.as_ref(),
        &locked.record,
        &locked.skill,
        locked.now,
        &state.rules,
    );
    let mut changes = match planned {
        Ok(changes) => changes,
        Err(e) => return refused_page(&viewer, id, title, e.code().as_str(), &e.to_string()),
    };
    changes.reason = reason;
    match locked.apply(&changes, &viewer.user.name).await {
        Ok(_) => Redirect::to(&format!("/console/callbacks/{id}")).into_response(),
        Err(e) => crate::api::ApiError::from(e).into_response(),
    }
}
