//! The promise-kept report's rules: a promise is kept when a callback's first publication
//! comes within N seconds of its due time (the time promised: the create's `dueAt`, or the
//! one a person moved it to); figures per skill and day or hour of the promised time, in a
//! zone the reader chooses.

use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
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

/// The whole hours of a report that the roll-up answers, `[start, end)`: from `from` rounded
/// up to `to` rounded down, not past the roll-up's `watermark`. None when there is no such
/// hour, or when the report's zone is off UTC by a fraction of an hour (its days do not start
/// on a UTC hour); the rest of the range is read callback by callback.
pub fn rolled_hours(
    range: &ReportRange,
    watermark: Option<DateTime<Utc>>,
) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
    use chrono::{DurationRound, Offset};
    let whole_hours = |at: DateTime<Utc>| {
        range
            .zone
            .offset_from_utc_datetime(&at.naive_utc())
            .fix()
            .local_minus_utc()
            % 3600
            == 0
    };
    if !whole_hours(range.from) || !whole_hours(range.to) {
        return None;
    }
    let hour = Duration::hours(1);
    let floor = |at: DateTime<Utc>| at.duration_trunc(hour).ok();
    let start = floor(range.from).map(|f| if f < range.from { f + hour } else { f })?;
    let end = floor(range.to)?.min(floor(watermark?)?);
    (start < end).then_some((start, end))
}

/// Whether a first publication `lateness_ms` after its due time kept the promise.
pub fn kept(lateness_ms: f64, on_time_seconds: u32) -> bool {
    lateness_ms <= f64::from(on_time_seconds) * 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn the_roll_up_answers_whole_hours_up_to_its_watermark() {
        let r = range("2026-11-01T10:30:00Z", "2026-11-03T08:15:00Z", Tz::UTC);
        let wm = Some(at("2026-11-02T06:00:00Z"));
        assert_eq!(
            rolled_hours(&r, wm),
            Some((at("2026-11-01T11:00:00Z"), at("2026-11-02T06:00:00Z")))
        );
        let later = Some(at("2026-12-01T00:00:00Z"));
        assert_eq!(
            rolled_hours(&r, later),
            Some((at("2026-11-01T11:00:00Z"), at("2026-11-03T08:00:00Z")))
        );
        assert_eq!(rolled_hours(&r, None), None, "nothing rolled up yet");
        let early = Some(at("2026-11-01T11:00:00Z"));
        assert_eq!(rolled_hours(&r, early), None, "no whole hour below it");
        let aligned = range("2026-11-01T00:00:00Z", "2026-11-02T00:00:00Z", Tz::UTC);
        assert_eq!(
            rolled_hours(&aligned, later),
            Some((at("2026-11-01T00:00:00Z"), at("2026-11-02T00:00:00Z")))
        );
        let new_york = range(
            "2026-11-01T04:00:00Z",
            "2026-11-03T05:00:00Z",
            chrono_tz::America::New_York,
        );
        assert!(rolled_hours(&new_york, later).is_some());
        let kolkata = range(
            "2026-11-01T00:00:00Z",
            "2026-11-03T00:00:00Z",
            chrono_tz::Asia::Kolkata,
        );
        assert_eq!(
            rolled_hours(&kolkata, later),
            None,
            "days start on a half hour"
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
