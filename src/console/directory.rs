//! The directory: skills (with their calling hours drawn as a week grid) and agents.
//! Read-only, but for a user with `directory:write`, who may switch one on or off.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;
use serde::Deserialize;

use super::Viewer;
use super::layout::{Refused, check_csrf, forbidden, form, page};
use crate::app::{self, App};
use crate::domain::{AgentId, Permission, SkillId};

/// Rows shown per table.
const LIMIT: i64 = 500;
const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];

pub async fn directory(State(state): State<App>, viewer: Viewer) -> Response {
    if !viewer.may(Permission::DirectoryRead) {
        return forbidden("this security user may not read the directory");
    }
    let (skills, agents) = match (
        state.store.skills(LIMIT).await,
        state.store.agents(LIMIT).await,
    ) {
        (Ok(s), Ok(a)) => (s, a),
        (Err(e), _) | (_, Err(e)) => return super::layout::failure(e),
    };
    let skills: Vec<_> = skills
        .into_iter()
        .filter(|s| viewer.user.may_use_skill(s.id))
        .collect();
    let writer = viewer.may(Permission::DirectoryWrite);
    page(
        "Directory",
        Some(&viewer),
        html! {
            h1 { "Directory" }
            h2 { "Skills" }
            @for s in &skills {
                section.skill data-id=(s.id) {
                    h3 { (s.id) " · " (s.name) " "
                        span.muted { (s.media_type.as_str()) " " (s.direction.as_str()) ", "
                            (if s.active { "active" } else { "inactive" }) ", "
                            (s.time_zone.map_or("default time zone", |z| z.name())) } }
                    @if let Some(hours) = &s.policy.calling_hours {
                        table.week aria-label={"Calling hours of skill " (s.id)} {
                            tr { th {} @for h in 0..24u32 { th { (h) } } }
                            @for (d, day) in DAYS.iter().enumerate() {
                                tr { th { (day) }
                                    @for h in 0..24u32 {
                                        @let open = hours.hour_open(d, h);
                                        td class=(if open { "open" } else { "shut" }) title={(day) " " (h) ":00 " (if open { "open" } else { "closed" })} {}
                                    }
                                }
                            }
                        }
                    } @else { p.muted { "Callable at any time (no calling hours)." } }
                    @if let Some(calendar) = &s.policy.calendar {
                        @let today = chrono::Utc::now().with_timezone(&calendar.zone).date_naive();
                        @let closed = calendar.closed_from(today, 3);
                        p.calendar { "Calendar " (calendar.name) ": "
                            @if closed.is_empty() { "no closed days ahead." }
                            @else {
                                "next closed "
                                @for (i, (date, label)) in closed.iter().enumerate() {
                                    @if i > 0 { ", " }
                                    time datetime=(date) { (date.format("%a %-d %b %Y")) }
                                    @if let Some(label) = label { " (" (label) ")" }
                                }
                                "."
                            }
                        }
                    }
                    @if let Some(pause) = &s.policy.routing.paused {
                        p.paused { strong { "Dispatch paused" } " since " (super::layout::time(pause.at)) " by " (pause.by) ": " (pause.reason) }
                    }
                    @if writer {
                        @if s.policy.routing.paused.is_some() {
                            form method="post" action={"/console/directory/skills/" (s.id) "/resume"} {
                                input type="hidden" name="csrf" value=(viewer.csrf);
                                button.resume type="submit" { "Resume dispatch" }
                            }
                        } @else {
                            p { a.pause href={"/console/directory/skills/" (s.id) "/pause"} { "Pause dispatch…" } }
                        }
                        form method="post" action={"/console/directory/skills/" (s.id) "/active"} {
                            input type="hidden" name="csrf" value=(viewer.csrf);
                            input type="hidden" name="active" value=(if s.active { "false" } else { "true" });
                            button type="submit" { (if s.active { "Deactivate" } else { "Activate" }) }
                        }
                    }
                }
            }
            h2 { "Agents" }
            table #agents {
                thead { tr { th { "Id" } th { "Username" } th { "Active" } @if writer { th {} } } }
                tbody {
                    @for a in &agents {
                        tr data-id=(a.id) {
                            td { (a.id) } td { (a.username) } td { (if a.active { "yes" } else { "no" }) }
                            @if writer {
                                td { form method="post" action={"/console/directory/agents/" (a.id) "/active"} {
                                    input type="hidden" name="csrf" value=(viewer.csrf);
                                    input type="hidden" name="active" value=(if a.active { "false" } else { "true" });
                                    button type="submit" { (if a.active { "Deactivate" } else { "Activate" }) }
                                } }
                            }
                        }
                    }
                }
            }
        },
    )
    .into_response()
}

#[derive(Deserialize)]
pub struct ActiveForm {
    #[serde(default)]
    csrf: String,
    active: bool,
}

/// Checks the form: the new `active` value.
fn writable(viewer: &Viewer, body: &Bytes) -> Result<bool, Refused> {
    let sent: ActiveForm = form(body)?;
    check_csrf(viewer, &sent.csrf)?;
    Ok(sent.active)
}

pub async fn skill_active(
    State(state): State<App>,
    viewer: Viewer,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let active = match writable(&viewer, &body) {
        Ok(active) => active,
        Err(r) => return r.into_response(),
    };
    let Ok(id) = id.parse::<SkillId>() else {
        return (StatusCode::NOT_FOUND, "no such skill").into_response();
    };
    match app::directory::set_skill_active(&state, &viewer.user, id, active).await {
        Ok(()) => Redirect::to("/console/directory").into_response(),
        Err(e) => super::layout::failure(e),
    }
}

pub async fn agent_active(
    State(state): State<App>,
    viewer: Viewer,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let active = match writable(&viewer, &body) {
        Ok(active) => active,
        Err(r) => return r.into_response(),
    };
    let Ok(id) = id.parse::<AgentId>() else {
        return (StatusCode::NOT_FOUND, "no such agent").into_response();
    };
    match app::directory::set_agent_active(&state, &viewer.user, id, active).await {
        Ok(()) => Redirect::to("/console/directory").into_response(),
        Err(e) => super::layout::failure(e),
    }
}
