//! Throughput over time: how many callbacks were dispatched, completed, failed and expired
//! in each five minutes, counted from their events — what the console charts for the last
//! day.

use chrono::{DateTime, Duration, DurationRound, Utc};

use super::EventKind;

/// The events the chart counts, in the order it draws them.
pub const THROUGHPUT_KINDS: [EventKind; 4] = [
    EventKind::Dispatched,
    EventKind::Completed,
    EventKind::Failed,
    EventKind::Expired,
];

/// One bar's width.
pub const THROUGHPUT_BUCKET: Duration = Duration::minutes(5);

/// How many events of each counted kind fall in each five minutes: `(bucket start, kind,
/// count)`, in bucket then kind order; the other kinds are left out.
pub fn throughput<'a>(
    events: impl IntoIterator<Item = (DateTime<Utc>, &'a str)>,
) -> Vec<(DateTime<Utc>, EventKind, i64)> {
    let mut counts: std::collections::BTreeMap<(DateTime<Utc>, usize), i64> =
        std::collections::BTreeMap::new();
    for (at, kind) in events {
        let Some(i) = THROUGHPUT_KINDS.iter().position(|k| k.as_str() == kind) else {
            continue;
        };
        let bucket = at.duration_trunc(THROUGHPUT_BUCKET).unwrap_or(at);
        *counts.entry((bucket, i)).or_default() += 1;
    }
    counts
        .into_iter()
        .map(|((bucket, i), n)| (bucket, THROUGHPUT_KINDS[i], n))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counted_kinds_add_up_per_five_minutes() {
        let at = |s: &str| {
            DateTime::parse_from_rfc3339(s)
                .expect("instant")
                .with_timezone(&Utc)
        };
        let counts = throughput([
            (at("2026-12-06T10:04:59Z"), "dispatched"),
            (at("2026-12-06T10:00:00Z"), "dispatched"),
            (at("2026-12-06T10:05:00Z"), "dispatched"),
            (at("2026-12-06T10:01:00Z"), "created"),
            (at("2026-12-06T10:02:00Z"), "failed"),
        ]);
        assert_eq!(
            counts,
            [
                (at("2026-12-06T10:00:00Z"), EventKind::Dispatched, 2),
                (at("2026-12-06T10:00:00Z"), EventKind::Failed, 1),
                (at("2026-12-06T10:05:00Z"), EventKind::Dispatched, 1),
            ]
        );
    }
}
