//! Throughput over the last day: callbacks dispatched, completed, failed and expired per
//! five minutes, drawn as SVG lines on the server from the counts the event relay keeps
//! (a few hundred rows a day however busy). The load page polls it in place.

use std::collections::HashMap;

use axum::extract::State;
use axum::response::{Html, IntoResponse, Response};
use chrono::{DateTime, Duration, DurationRound, Utc};
use maud::html;

use super::Viewer;
use crate::app::App;
use crate::domain::{EventKind, Permission, THROUGHPUT_BUCKET, THROUGHPUT_KINDS};

const WIDTH: f64 = 1000.0;
const HEIGHT: f64 = 160.0;

fn colour(kind: EventKind) -> &'static str {
    match kind {
        EventKind::Completed => "#1e7b34",
        EventKind::Failed => "#a4262c",
        EventKind::Expired => "#6b5b00",
        _ => "#0b5cad",
    }
}

pub async fn throughput(State(state): State<App>, viewer: Viewer) -> Response {
    // Counts of every skill: a reader restricted to some skills is not shown them.
    if !viewer.may(Permission::CallbacksRead) || viewer.user.skills.is_some() {
        return Html(
            html! { p.muted #throughput-withheld { "Throughput covers every skill: shown to readers of every skill." } }
                .into_string(),
        )
        .into_response();
    }
    let now = Utc::now();
    let end = now.duration_trunc(THROUGHPUT_BUCKET).unwrap_or(now) + THROUGHPUT_BUCKET;
    let start = end - Duration::days(1);
    let rows = match state.store.throughput_since(start).await {
        Ok(rows) => rows,
        Err(e) => return super::layout::failure(e),
    };
    let counts: HashMap<(DateTime<Utc>, String), i64> = rows
        .into_iter()
        .map(|(bucket, kind, n)| ((bucket, kind), n))
        .collect();
    let buckets = (Duration::days(1).num_seconds() / THROUGHPUT_BUCKET.num_seconds()) as usize;
    let series: Vec<(EventKind, Vec<i64>)> = THROUGHPUT_KINDS
        .iter()
        .map(|kind| {
            let values = (0..buckets)
                .map(|i| {
                    let bucket = start + THROUGHPUT_BUCKET * i as i32;
                    counts
                        .get(&(bucket, kind.as_str().to_owned()))
                        .copied()
                        .unwrap_or(0)
                })
                .collect();
            (*kind, values)
        })
        .collect();
    let peak = series
        .iter()
        .flat_map(|(_, v)| v.iter().copied())
        .max()
        .unwrap_or(0)
        .max(1);
    let step = WIDTH / (buckets.max(2) - 1) as f64;
    let points = |values: &[i64]| {
        values
            .iter()
            .enumerate()
            .map(|(i, n)| {
                format!(
                    "{:.1},{:.1}",
                    i as f64 * step,
                    HEIGHT - *n as f64 / peak as f64 * HEIGHT
                )
            })
            .collect::<Vec<_>>()
            .join(" ")
    };
    Html(
        html! {
            svg #throughput-chart viewBox={"0 0 " (WIDTH) " " (HEIGHT + 20.0)} role="img"
                aria-label={"Callbacks per five minutes over the last 24 hours; the highest is " (peak)} {
                @for h in (0..24).step_by(3) {
                    @let x = f64::from(h) * 12.0 * step;
                    @let at = start + Duration::hours(i64::from(h));
                    line.day x1=(x) x2=(x) y1="0" y2=(HEIGHT) {}
                    text x=(x + 2.0) y=(HEIGHT + 14.0) { (at.format("%H:%M")) }
                }
                @for (kind, values) in &series {
                    polyline.series data-kind=(kind.as_str()) points=(points(values)) fill="none"
                        stroke=(colour(*kind)) stroke-width="1.5" {}
                }
            }
            ul.legend #throughput-legend {
                @for (kind, values) in &series {
                    li data-kind=(kind.as_str()) data-total=(values.iter().sum::<i64>()) {
                        svg.swatch viewBox="0 0 10 10" aria-hidden="true" { rect width="10" height="10" fill=(colour(*kind)) {} }
                        (kind.as_str()) ": " (values.iter().sum::<i64>())
                    }
                }
            }
            p.muted { "UTC; the highest five minutes: " (peak) ". Counted as the event stream relays each event." }
        }
        .into_string(),
    )
    .into_response()
}
