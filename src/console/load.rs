//! The upcoming load: pending callbacks per hour for the next days, stacked by skill, drawn
//! as SVG on the server, with the closed hours of a chosen skill shaded — so the
//! top-of-the-hour herd is seen before it comes. A bar links to its hour's callbacks.

use std::collections::BTreeMap;

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Duration, DurationRound, Utc};
use maud::{Markup, html};
use serde::Deserialize;

use super::Viewer;
use super::layout::{page, skill_colour, skill_select};
use super::names::Names;
use crate::app::App;
use crate::domain::{Opening, Permission, SkillId, contact_zone};

const WIDTH: f64 = 1000.0;
/// How long one count serves the chart.
const LOAD_FRESH: std::time::Duration = std::time::Duration::from_secs(10);
const HEIGHT: f64 = 220.0;

#[derive(Deserialize, Default)]
pub struct LoadParams {
    #[serde(default)]
    days: Option<u32>,
    #[serde(default, rename = "skillId")]
    skill_id: Option<String>,
}

pub async fn load(
    State(state): State<App>,
    viewer: Viewer,
    Query(params): Query<LoadParams>,
) -> Response {
    if !viewer.may(Permission::CallbacksRead) {
        return super::layout::forbidden("this security user may not read callbacks");
    }
    let days = params.days.unwrap_or(7).clamp(1, 31);
    let hours = i64::from(days) * 24;
    let from = Utc::now()
        .duration_trunc(Duration::hours(1))
        .unwrap_or_else(|_| Utc::now());
    let to = from + Duration::hours(hours);
    let chosen = params
        .skill_id
        .as_deref()
        .filter(|s| !s.is_empty())
        .and_then(|s| s.parse::<SkillId>().ok())
        .filter(|s| viewer.user.may_use_skill(*s));
    let skills: Option<Vec<SkillId>> = match (chosen, &viewer.user.skills) {
        (Some(skill), _) => Some(vec![skill]),
        (None, allowed) => allowed.clone(),
    };
    // One count serves every viewer of the same chart for a few seconds: with a million
    // pending it reads them all (about 0.3 s).
    let key = (from, to, skills.clone());
    let rows = {
        let mut cached = state.load_chart.lock().await;
        match cached.as_ref() {
            Some((at, k, rows)) if *k == key && at.elapsed() < LOAD_FRESH => rows.clone(),
            _ => match state.store.load_by_hour(from, to, skills.as_deref()).await {
                Ok(rows) => {
                    *cached = Some((std::time::Instant::now(), key, rows.clone()));
                    rows
                }
                Err(e) => return super::layout::failure(e),
            },
        }
    };
    let skill = match chosen {
        Some(id) => state.store.skill(id).await.ok().flatten(),
        None => None,
    };
    let mut by_hour: BTreeMap<DateTime<Utc>, Vec<(SkillId, i64)>> = BTreeMap::new();
    for (hour, skill, n) in &rows {
        by_hour.entry(*hour).or_default().push((*skill, *n));
    }
    let legend: Vec<SkillId> = {
        let mut ids: Vec<SkillId> = rows.iter().map(|(_, s, _)| *s).collect();
        ids.sort();
        ids.dedup();
        ids
    };
    let names = match Names::load(&state.store).await {
        Ok(names) => names,
        Err(e) => return super::layout::failure(e),
    };
    let colour = |s: SkillId| skill_colour(legend.iter().position(|x| *x == s).unwrap_or(0));
    let peak = by_hour
        .values()
        .map(|v| v.iter().map(|(_, n)| n).sum::<i64>())
        .max()
        .unwrap_or(0)
        .max(1);
    let bar = WIDTH / hours as f64;
    let closed = |hour: DateTime<Utc>| -> bool {
        let Some(skill) = &skill else { return false };
        let zone = contact_zone(None, skill.time_zone, state.rules.default_time_zone);
        !matches!(skill.policy.opening(hour, zone), Opening::Now)
    };
    let chart: Markup = html! {
        // A group, not an image: its bars are links (an image's parts are not reachable).
        svg #load viewBox={"0 0 " (WIDTH) " " (HEIGHT + 20.0)} role="group"
            aria-label={"Pending callbacks per hour, next " (days) " days"} {
            @for i in 0..hours {
                @let hour = from + Duration::hours(i);
                @let x = i as f64 * bar;
                @if closed(hour) {
                    rect.closed x=(x) y="0" width=(bar) height=(HEIGHT) {}
                }
                @if hour.format("%H").to_string() == "00" {
                    line.day x1=(x) x2=(x) y1="0" y2=(HEIGHT) {}
                    text x=(x + 2.0) y=(HEIGHT + 14.0) { (hour.format("%a %d")) }
                }
                @if let Some(stack) = by_hour.get(&hour) {
                    @let mut top = HEIGHT;
                    @for (skill_id, n) in stack {
                        @let h = *n as f64 / peak as f64 * HEIGHT;
                        @let y = { top -= h; top };
                        a aria-label={(hour.format("%a %d %b %H:00 UTC")) ": " (n) " for " (names.skill(skill_id.get()))}
                            href={"/console/callbacks?state=pending&skillId=" (skill_id) "&dueAfter=" (hour.format("%Y-%m-%dT%H:%M:%SZ")) "&dueBefore=" ((hour + Duration::hours(1)).format("%Y-%m-%dT%H:%M:%SZ"))} {
                            rect.bar x=(x) y=(y) width=(bar.max(1.0) - 0.5) height=(h) fill=(colour(*skill_id))
                                data-hour=(hour.format("%Y-%m-%dT%H:00:00Z")) data-skill=(skill_id) data-count=(n) {
                                title { (hour.format("%a %d %b %H:00 UTC")) ": " (n) " for " (names.skill(skill_id.get())) }
                            }
                        }
                    }
                }
            }
        }
    };
    page(
        "Load",
        Some(&viewer),
        html! {
            h1 { "Load" }
            h2 { "The last 24 hours" }
            div #throughput data-live hx-get="/console/throughput" hx-trigger="load, every 30s, refresh" hx-swap="innerHTML" {
                p.muted { "Loading…" }
            }
            h2 { "Pending, per hour ahead" }
            form.filters method="get" action="/console/load" {
                label { "Days" input type="number" name="days" min="1" max="31" value=(days); }
                label { "Skill (shades its closed hours)"
                    (skill_select(&names, &viewer, chosen))
                }
                button type="submit" { "Show" }
            }
            p.muted { "Pending callbacks per hour (UTC), stacked by skill; the tallest bar is " (peak) ". Select a bar for its callbacks." }
            (chart)
            ul.legend #legend {
                @for s in &legend {
                    li {
                        a href={"/console/load?days=" (days) "&skillId=" (s)} aria-current=[(chosen == Some(*s)).then_some("true")] {
                            svg.swatch viewBox="0 0 10 10" aria-hidden="true" { rect width="10" height="10" fill=(colour(*s)) {} }
                            (names.skill(s.get()))
                        }
                    }
                }
                @if chosen.is_some() {
                    li { a href={"/console/load?days=" (days)} { "All skills" } }
                }
            }
        },
    )
    .into_response()
}
