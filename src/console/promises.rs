//! Were promises kept: the report of `GET /v1/reports/promises` for a supervisor — the
//! on-time rate per day (or hour) drawn as SVG on the server, the figures per skill in a
//! table, and the same as a CSV download.

use axum::extract::{Query, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use maud::html;
use serde::Deserialize;

use super::Viewer;
use super::layout::{failure, page};
use crate::app::{App, reports};
use crate::domain::{Permission, ReportInput};
use crate::wire::{PromiseItem, promises_csv};

const WIDTH: f64 = 1000.0;
const HEIGHT: f64 = 160.0;

#[derive(Deserialize, Default)]
pub struct PromiseParams {
    #[serde(default)]
    from: Option<String>,
    #[serde(default)]
    to: Option<String>,
    #[serde(default, rename = "skillId")]
    skill_id: Option<String>,
    #[serde(default, rename = "groupBy")]
    group_by: Option<String>,
    #[serde(default, rename = "onTimeSeconds")]
    on_time_seconds: Option<String>,
}

impl PromiseParams {
    fn non_empty(v: &Option<String>) -> Option<&str> {
        v.as_deref().map(str::trim).filter(|v| !v.is_empty())
    }

    fn input(&self) -> Result<ReportInput<'_>, String> {
        let on_time_seconds = Self::non_empty(&self.on_time_seconds)
            .map(|v| {
                v.parse::<i64>()
                    .map_err(|_| format!("on time within: `{v}` is not a number of seconds"))
            })
            .transpose()?;
        Ok(ReportInput {
            from: Self::non_empty(&self.from),
            to: Self::non_empty(&self.to),
            group_by: Self::non_empty(&self.group_by),
            time_zone: None,
            on_time_seconds,
        })
    }

    fn query(&self) -> String {
        let v = |o: &Option<String>| super::pages::urlencode(o.as_deref().unwrap_or_default());
        format!(
            "from={}&to={}&skillId={}&groupBy={}&onTimeSeconds={}",
            v(&self.from),
            v(&self.to),
            v(&self.skill_id),
            v(&self.group_by),
            v(&self.on_time_seconds)
        )
    }
}

/// The report's rows, or the page's answer to a bad request.
async fn rows(
    state: &App,
    viewer: &Viewer,
    params: &PromiseParams,
) -> Result<(crate::domain::ReportRange, Vec<PromiseItem>), Response> {
    if !viewer.may(Permission::CallbacksRead) {
        return Err(super::layout::forbidden(
            "this security user may not read callbacks",
        ));
    }
    let input = params
        .input()
        .map_err(|e| failure(crate::app::AppError::Malformed(e)))?;
    let (range, rows) = reports::promises(
        state,
        &viewer.user,
        &input,
        PromiseParams::non_empty(&params.skill_id),
    )
    .await
    .map_err(failure)?;
    let items = rows
        .into_iter()
        .map(|r| PromiseItem::of(r, range.period))
        .collect();
    Ok((range, items))
}

pub async fn promises_csv_download(
    State(state): State<App>,
    viewer: Viewer,
    Query(params): Query<PromiseParams>,
) -> Response {
    match rows(&state, &viewer, &params).await {
        Ok((_, items)) => (
            [
                (
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/csv; charset=utf-8"),
                ),
                (
                    header::CONTENT_DISPOSITION,
                    HeaderValue::from_static("attachment; filename=\"promises.csv\""),
                ),
            ],
            promises_csv(&items),
        )
            .into_response(),
        Err(answer) => answer,
    }
}

pub async fn promises(
    State(state): State<App>,
    viewer: Viewer,
    Query(params): Query<PromiseParams>,
) -> Response {
    let (range, items) = match rows(&state, &viewer, &params).await {
        Ok(found) => found,
        Err(answer) => return answer,
    };
    // Per period, every skill shown together.
    let mut periods: Vec<(String, i64, i64, i64)> = Vec::new();
    for i in &items {
        match periods.last_mut() {
            Some((p, booked, dispatched, on_time)) if *p == i.period => {
                *booked += i.booked;
                *dispatched += i.dispatched;
                *on_time += i.on_time;
            }
            _ => periods.push((i.period.clone(), i.booked, i.dispatched, i.on_time)),
        }
    }
    let (booked, dispatched, on_time) = periods
        .iter()
        .fold((0, 0, 0), |(b, d, o), p| (b + p.1, d + p.2, o + p.3));
    let rate = |on_time: i64, dispatched: i64| {
        (dispatched > 0).then(|| on_time as f64 / dispatched as f64 * 100.0)
    };
    let bar = WIDTH / periods.len().max(1) as f64;
    page(
        "Promises kept",
        Some(&viewer),
        html! {
            h1 { "Promises kept" }
            form.filters method="get" action="/console/promises" {
                label { "From (date or RFC 3339, UTC)"
                    input type="text" name="from" value=(params.from.as_deref().unwrap_or_default());
                }
                label { "To"
                    input type="text" name="to" value=(params.to.as_deref().unwrap_or_default());
                }
                label { "Skill"
                    input type="text" name="skillId" inputmode="numeric" value=(params.skill_id.as_deref().unwrap_or_default());
                }
                label { "Per"
                    select name="groupBy" {
                        option value="day" selected[range.period.as_str() == "day"] { "day" }
                        option value="hour" selected[range.period.as_str() == "hour"] { "hour" }
                    }
                }
                label { "On time within (seconds)"
                    input type="text" name="onTimeSeconds" inputmode="numeric" value=(range.on_time_seconds);
                }
                button type="submit" { "Show" }
            }
            p #promise-summary {
                "From " (range.from.format("%Y-%m-%d %H:%M UTC")) " to " (range.to.format("%Y-%m-%d %H:%M UTC")) ": "
                strong { (booked) } " booked, " strong { (dispatched) } " dispatched, "
                strong { (on_time) } " first attempts within " (range.on_time_seconds) " s of the promised time"
                @if let Some(r) = rate(on_time, dispatched) { " (" strong { (format!("{r:.1}")) " %" } ")" }
                "."
            }
            svg #promise-chart viewBox={"0 0 " (WIDTH) " " (HEIGHT + 20.0)} role="img"
                aria-label="Share of first attempts on time per period" {
                @for (i, (period, _, d, o)) in periods.iter().enumerate() {
                    @if let Some(r) = rate(*o, *d) {
                        @let h = r / 100.0 * HEIGHT;
                        rect.bar x=(i as f64 * bar) y=(HEIGHT - h) width=(bar.max(1.0) - 1.0) height=(h) fill="#1e7b34"
                            data-period=(period) data-rate=(format!("{r:.1}")) {
                            title { (period) ": " (format!("{r:.1}")) " % on time of " (d) " dispatched" }
                        }
                    }
                    @if periods.len() <= 31 || i % 24 == 0 {
                        text x=(i as f64 * bar + 2.0) y=(HEIGHT + 14.0) { (period) }
                    }
                }
            }
            p { a #promise-csv href={"/console/promises.csv?" (params.query())} download="promises.csv" { "Download as CSV" } }
            table #promises {
                thead { tr {
                    th { "Period" } th { "Skill" } th { "Booked" } th { "Dispatched" } th { "On time" }
                    th { "Completed" } th { "Failed" } th { "Expired" } th { "Suppressed" } th { "Cancelled" }
                    th { "Open" } th { "Lateness p50 / p95" }
                } }
                tbody {
                    @for i in &items {
                        tr {
                            td { (i.period) } td { (i.skill_id) } td { (i.booked) } td { (i.dispatched) }
                            td { (i.on_time) @if let Some(r) = i.on_time_rate { " (" (format!("{:.0}", r * 100.0)) " %)" } }
                            td { (i.completed) } td { (i.failed) } td { (i.expired) } td { (i.suppressed) }
                            td { (i.cancelled) } td { (i.open) }
                            td { (seconds(i.lateness_p50_ms)) " / " (seconds(i.lateness_p95_ms)) }
                        }
                    }
                }
            }
            @if items.is_empty() { p.muted { "No callbacks were promised in this range." } }
        },
    )
    .into_response()
}

fn seconds(ms: Option<f64>) -> String {
    ms.map_or_else(|| "—".to_owned(), |ms| format!("{:.1} s", ms / 1000.0))
}
