//! The promise-kept report's rules: a promise is kept when a callback's first publication
//! comes within N seconds of its due time (the time promised: the create's `dueAt`, or the
//! one a person moved it to); figures per skill and day or hour of the promised time, in a
//! zone the reader chooses.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, NaiveDate, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;

/// The default tolerance: a first attempt at most a minute late keeps the promise.
pub const ON_TIME_SECONDS: u32 = 60;
/// The largest tolerance a report takes: a day.
const ON_TIME_MAX: u32 = 86_400;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Period {
    Day,
    Hour,
}

impl Period {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Day => "day",
            Self::Hour => "hour",
        }
    }

    /// The longest range a report of this grouping covers.
    fn max_range(self) -> Duration {
        match self {
            Self::Day => Duration::days(366),
            Self::Hour => Duration::days(31),
        }
    }
}

/// A report request, read and checked.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportRange {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub period: Period,
    pub zone: Tz,
    pub on_time_seconds: u32,
}

/// The raw query: every field optional.
#[derive(Debug, Clone, Default)]
pub struct ReportInput<'a> {
    pub from: Option<&'a str>,
    pub to: Option<&'a str>,
    pub group_by: Option<&'a str>,
    pub time_zone: Option<&'a str>,
    pub on_time_seconds: Option<i64>,
}

impl ReportInput<'_> {
    /// Defaults: the last 7 days to now, by day, in UTC, on time within a minute. `from`
    /// and `to` are RFC 3339 instants or dates (midnight in the zone).
    pub fn read(&self, now: DateTime<Utc>) -> Result<ReportRange, String> {
        let zone: Tz = match self.time_zone {
            None => Tz::UTC,
            Some(z) => z
                .parse()
                .map_err(|_| format!("timeZone: `{z}` is not an IANA time zone name"))?,
        };
        let period = match self.group_by {
            None | Some("day") => Period::Day,
            Some("hour") => Period::Hour,
            Some(other) => return Err(format!("groupBy: `{other}`; expected day or hour")),
        };
        let to = self
            .to
            .map(|v| instant("to", v, zone))
            .transpose()?
            .unwrap_or(now);
        let from = self
            .from
            .map(|v| instant("from", v, zone))
            .transpose()?
            .unwrap_or(to - Duration::days(7));
        if from >= to {
            return Err("from must be before to".into());
        }
        if to - from > period.max_range() {
            return Err(format!(
                "the range is too long for groupBy={}: at most {} days",
                period.as_str(),
                period.max_range().num_days()
            ));
        }
        let on_time_seconds = match self.on_time_seconds {
            None => ON_TIME_SECONDS,
            Some(n) => u32::try_from(n)
                .ok()
                .filter(|n| *n <= ON_TIME_MAX)
                .ok_or_else(|| format!("onTimeSeconds: 0 to {ON_TIME_MAX}, not {n}"))?,
        };
        Ok(ReportRange {
            from,
            to,
            period,
            zone,
            on_time_seconds,
        })
    }
}

fn instant(field: &str, value: &str, zone: Tz) -> Result<DateTime<Utc>, String> {
    if let Ok(t) = DateTime::parse_from_rfc3339(value) {
        return Ok(t.with_timezone(&Utc));
    }
    let date = NaiveDate::parse_from_str(value, "%Y-%m-%d").map_err(|_| {
        format!("{field}: `{value}` is neither an RFC 3339 instant nor a date (YYYY-MM-DD)")
    })?;
    let midnight = date
        .and_hms_opt(0, 0, 0)
        .ok_or_else(|| format!("{field}: `{value}`"))?;
    zone.from_local_datetime(&midnight)
        .earliest()
        .map(|t| t.with_timezone(&Utc))
        .ok_or_else(|| format!("{field}: midnight of {value} does not exist in {zone}"))
}

/// The roll-up's grain: every zone's offset from UTC is a whole number of quarter hours,
/// so every report's days and hours start on one.
pub const ROLLUP_GRAIN: Duration = Duration::minutes(15);

/// The whole quarters of a report that the roll-up answers, `[start, end)`: from `from`
/// rounded up to `to` rounded down, not past the roll-up's `watermark`. None when there is
/// no such quarter, or in a zone whose offset is not whole quarters (none today); the rest of
/// the range is read callback by callback.
pub fn rolled_quarters(
    range: &ReportRange,
    watermark: Option<DateTime<Utc>>,
) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
    use chrono::{DurationRound, Offset};
    let grain = ROLLUP_GRAIN.num_seconds() as i32;
    let whole = |at: DateTime<Utc>| {
        range
            .zone
            .offset_from_utc_datetime(&at.naive_utc())
            .fix()
            .local_minus_utc()
            % grain
            == 0
    };
    if !whole(range.from) || !whole(range.to) {
        return None;
    }
    let floor = |at: DateTime<Utc>| at.duration_trunc(ROLLUP_GRAIN).ok();
    let start = floor(range.from).map(|f| if f < range.from { f + ROLLUP_GRAIN } else { f })?;
    let end = floor(range.to)?.min(floor(watermark?)?);
    (start < end).then_some((start, end))
}

/// One skill's figures for one period: what the report answers.
#[derive(Debug, Clone, PartialEq)]
pub struct PromiseRow {
    pub skill_id: i64,
    /// The period's start, in the report's zone.
    pub period: NaiveDateTime,
    pub booked: i64,
    pub dispatched: i64,
    pub on_time: i64,
    pub completed: i64,
    pub failed: i64,
    pub expired: i64,
    pub suppressed: i64,
    pub cancelled: i64,
    /// Still pending, or published and waiting for the outcome.
    pub open: i64,
    pub lateness_p50_ms: Option<f64>,
    pub lateness_p95_ms: Option<f64>,
}

/// Part of a skill's period as the store reads it: a rolled-up quarter hour, or callbacks
/// read one by one. Lateness is a histogram: (bucket upper bound in ms, count) pairs.
#[derive(Debug, Clone, Default)]
pub struct PromisePart {
    pub skill_id: i64,
    pub period: NaiveDateTime,
    pub booked: i64,
    pub dispatched: i64,
    pub completed: i64,
    pub failed: i64,
    pub expired: i64,
    pub suppressed: i64,
    pub cancelled: i64,
    pub open: i64,
    pub lateness: Vec<(i64, i64)>,
}

/// Adds up the parts of each skill's period, in period then skill order: the counts, the
/// first publications kept within `on_time_seconds`, and the lateness p50 and p95 by
/// nearest rank over the merged histogram. Parts are added one at a time as the store reads
/// them, so a report holds one merged histogram per skill and period, not every part's.
pub struct Tally {
    on_time_seconds: u32,
    /// Per (period, skill): the summed counts and the histogram merged so far (ascending,
    /// one pair per key).
    groups: BTreeMap<(NaiveDateTime, i64), PromisePart>,
    scratch: Vec<(i64, i64)>,
}

impl Tally {
    pub fn new(on_time_seconds: u32) -> Self {
        Tally {
            on_time_seconds,
            groups: BTreeMap::new(),
            scratch: Vec::new(),
        }
    }

    pub fn add(&mut self, part: PromisePart) {
        let sum = self
            .groups
            .entry((part.period, part.skill_id))
            .or_insert_with(|| PromisePart {
                skill_id: part.skill_id,
                period: part.period,
                ..PromisePart::default()
            });
        sum.booked += part.booked;
        sum.dispatched += part.dispatched;
        sum.completed += part.completed;
        sum.failed += part.failed;
        sum.expired += part.expired;
        sum.suppressed += part.suppressed;
        sum.cancelled += part.cancelled;
        sum.open += part.open;
        merge_histogram(&mut sum.lateness, part.lateness, &mut self.scratch);
    }

    pub fn rows(self) -> Vec<PromiseRow> {
        let on_time_seconds = self.on_time_seconds;
        self.groups
            .into_values()
            .map(|sum| {
                let histogram = &sum.lateness;
                let total: i64 = histogram.iter().map(|(_, n)| n).sum();
                let on_time = histogram
                    .iter()
                    .filter(|(k, _)| kept(*k as f64, on_time_seconds))
                    .map(|(_, n)| n)
                    .sum();
                let rank = |p: f64| {
                    let mut below = 0;
                    histogram.iter().find_map(|(k, n)| {
                        below += n;
                        (below as f64 >= p * total as f64).then_some(*k as f64)
                    })
                };
                PromiseRow {
                    skill_id: sum.skill_id,
                    period: sum.period,
                    booked: sum.booked,
                    dispatched: sum.dispatched,
                    on_time,
                    completed: sum.completed,
                    failed: sum.failed,
                    expired: sum.expired,
                    suppressed: sum.suppressed,
                    cancelled: sum.cancelled,
                    open: sum.open,
                    lateness_p50_ms: (total > 0).then(|| rank(0.5)).flatten(),
                    lateness_p95_ms: (total > 0).then(|| rank(0.95)).flatten(),
                }
            })
            .collect()
    }
}

/// Adds `part`'s buckets into `merged` (ascending, one pair per key), in one pass over
/// both: a month's report merges thousands of parts of up to a few thousand buckets each, and
/// sorting them all together instead was most of its time. `scratch` is reused across calls.
fn merge_histogram(
    merged: &mut Vec<(i64, i64)>,
    mut part: Vec<(i64, i64)>,
    scratch: &mut Vec<(i64, i64)>,
) {
    // The store hands them sorted; any other caller's are sorted here first.
    if !part.is_sorted_by_key(|(k, _)| *k) {
        part.sort_unstable_by_key(|(k, _)| *k);
    }
    scratch.clear();
    scratch.reserve(merged.len() + part.len());
    let (mut i, mut j) = (0, 0);
    while i < merged.len() || j < part.len() {
        let (k, n) = if j == part.len() || (i < merged.len() && merged[i].0 < part[j].0) {
            i += 1;
            merged[i - 1]
        } else {
            j += 1;
            part[j - 1]
        };
        match scratch.last_mut() {
            Some(last) if last.0 == k => last.1 += n,
            _ => scratch.push((k, n)),
        }
    }
    std::mem::swap(merged, scratch);
}

/// Whether a first publication `lateness_ms` after its due time kept the promise.
pub fn kept(lateness_ms: f64, on_time_seconds: u32) -> bool {
    lateness_ms <= f64::from(on_time_seconds) * 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tally(parts: Vec<PromisePart>, on_time_seconds: u32) -> Vec<PromiseRow> {
        let mut tally = Tally::new(on_time_seconds);
        for part in parts {
            tally.add(part);
        }
        tally.rows()
    }

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .expect("instant")
            .with_timezone(&Utc)
    }

    fn range(from: &str, to: &str, zone: Tz) -> ReportRange {
        ReportRange {
            from: at(from),
            to: at(to),
            period: Period::Day,
            zone,
            on_time_seconds: ON_TIME_SECONDS,
        }
    }

    #[test]
    fn parts_add_up_per_skill_and_period_with_nearest_rank_percentiles() {
        let day = |d: u32| {
            NaiveDate::from_ymd_opt(2026, 12, d)
                .and_then(|d| d.and_hms_opt(0, 0, 0))
                .expect("day")
        };
        let part = |skill, d, keys: &[i64], counts: &[i64]| PromisePart {
            skill_id: skill,
            period: day(d),
            booked: counts.iter().sum::<i64>() + 1,
            dispatched: counts.iter().sum(),
            lateness: keys.iter().copied().zip(counts.iter().copied()).collect(),
            ..PromisePart::default()
        };
        let rows = tally(
            vec![
                part(102, 1, &[5], &[1]),
                part(101, 1, &[10, 200, 61_000], &[6, 2, 1]),
                part(101, 1, &[10, 90_000], &[1, 10]),
                part(101, 2, &[], &[]),
            ],
            60,
        );
        use chrono::Datelike;
        let keys: Vec<(i64, u32)> = rows
            .iter()
            .map(|r| (r.skill_id, r.period.date().day0() + 1))
            .collect();
        assert_eq!(keys, [(101, 1), (102, 1), (101, 2)]);
        let r = &rows[0];
        assert_eq!((r.booked, r.dispatched, r.on_time), (22, 20, 9));
        // 20 first publications (7 at 10 ms, 2 at 200 ms, 1 at 61 s, 10 at 90 s): the 10th
        // is 61 s late, the 19th 90 s.
        assert_eq!(r.lateness_p50_ms, Some(61_000.0));
        assert_eq!(r.lateness_p95_ms, Some(90_000.0));
        assert_eq!(rows[2].lateness_p50_ms, None, "nothing published");
        assert_eq!(rows[2].on_time, 0);
    }

    #[test]
    fn many_parts_merge_to_the_percentiles_of_all_their_samples() {
        // 200 parts of one period, overlapping keys, some given out of order: the merged
        // histogram answers what every sample sorted together answers.
        let mut samples = Vec::new();
        let parts: Vec<PromisePart> = (0..200i64)
            .map(|p| {
                let mut lateness: Vec<(i64, i64)> = (0..40i64)
                    .map(|i| ((p * 7 + i * 13) % 97 * 1_000, 1 + (p + i) % 3))
                    .collect();
                lateness.sort_by_key(|(k, _)| *k);
                lateness.dedup_by_key(|(k, _)| *k);
                if p % 5 == 0 {
                    lateness.reverse();
                }
                for &(k, n) in &lateness {
                    samples.extend(std::iter::repeat_n(k, n as usize));
                }
                PromisePart {
                    skill_id: 1,
                    lateness,
                    ..PromisePart::default()
                }
            })
            .collect();
        samples.sort_unstable();
        let rank = |p: f64| samples[(p * samples.len() as f64).ceil() as usize - 1] as f64;
        let rows = tally(parts, 30);
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].lateness_p50_ms, Some(rank(0.5)));
        assert_eq!(rows[0].lateness_p95_ms, Some(rank(0.95)));
        let on_time = samples.iter().filter(|&&k| k <= 30_000).count() as i64;
        assert_eq!(rows[0].on_time, on_time);
    }

    #[test]
    fn the_roll_up_answers_whole_quarters_up_to_its_watermark() {
        let r = range("2026-11-01T10:20:00Z", "2026-11-03T08:05:00Z", Tz::UTC);
        let wm = Some(at("2026-11-02T06:00:00Z"));
        assert_eq!(
            rolled_quarters(&r, wm),
            Some((at("2026-11-01T10:30:00Z"), at("2026-11-02T06:00:00Z")))
        );
        let later = Some(at("2026-12-01T00:00:00Z"));
        assert_eq!(
            rolled_quarters(&r, later),
            Some((at("2026-11-01T10:30:00Z"), at("2026-11-03T08:00:00Z")))
        );
        assert_eq!(rolled_quarters(&r, None), None, "nothing rolled up yet");
        let early = Some(at("2026-11-01T10:30:00Z"));
        assert_eq!(
            rolled_quarters(&r, early),
            None,
            "no whole quarter below it"
        );
        let aligned = range("2026-11-01T00:00:00Z", "2026-11-02T00:00:00Z", Tz::UTC);
        assert_eq!(
            rolled_quarters(&aligned, later),
            Some((at("2026-11-01T00:00:00Z"), at("2026-11-02T00:00:00Z")))
        );
        // Kathmandu is UTC+05:45: its midnight is 18:15 UTC, a quarter's start.
        let kathmandu = range(
            "2026-11-01T18:15:00Z",
            "2026-11-03T18:15:00Z",
            chrono_tz::Asia::Kathmandu,
        );
        assert_eq!(
            rolled_quarters(&kathmandu, later),
            Some((at("2026-11-01T18:15:00Z"), at("2026-11-03T18:15:00Z")))
        );
    }

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-12-05T12:00:00Z")
            .expect("time")
            .with_timezone(&Utc)
    }

    #[test]
    fn defaults_and_limits() {
        let r = ReportInput::default().read(now()).expect("defaults");
        assert_eq!(r.to - r.from, Duration::days(7));
        assert_eq!(
            (r.period, r.zone, r.on_time_seconds),
            (Period::Day, Tz::UTC, 60)
        );
        let dates = ReportInput {
            from: Some("2026-12-01"),
            to: Some("2026-12-03"),
            time_zone: Some("America/New_York"),
            ..ReportInput::default()
        }
        .read(now())
        .expect("dates");
        assert_eq!(dates.from.to_rfc3339(), "2026-12-01T05:00:00+00:00");
        for bad in [
            ReportInput {
                group_by: Some("week"),
                ..ReportInput::default()
            },
            ReportInput {
                from: Some("2026-12-06"),
                ..ReportInput::default()
            },
            ReportInput {
                from: Some("2026-01-01"),
                group_by: Some("hour"),
                ..ReportInput::default()
            },
            ReportInput {
                on_time_seconds: Some(-1),
                ..ReportInput::default()
            },
            ReportInput {
                time_zone: Some("Mars/Olympus"),
                ..ReportInput::default()
            },
        ] {
            assert!(bad.read(now()).is_err(), "{bad:?}");
        }
        assert!(kept(60_000.0, 60) && !kept(60_001.0, 60));
    }
}
