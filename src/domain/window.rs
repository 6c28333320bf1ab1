//! Calling hours: when a contact may be called, per weekday, in a time zone.

use std::fmt;

use chrono::{
    DateTime, Datelike, Days, Duration, LocalResult, NaiveDate, NaiveTime, TimeZone, Utc,
};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallingHoursError {
    #[error("callingHours.{day}: `{value}` is not a range such as \"08:00-21:00\"")]
    Range { day: &'static str, value: String },
    #[error("callingHours.{day}: `{value}` ends before it starts")]
    Backwards { day: &'static str, value: String },
    #[error("callingHours: `{0}` is not a weekday (mon, tue, wed, thu, fri, sat, sun)")]
    Day(String),
    /// Hours that never open would fail every callback of the skill at its due time.
    #[error(
        "callingHours: no day has an opening, so no callback could ever be made; give at least one range, or null for no restriction"
    )]
    NeverOpen,
}

const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// Opening ranges per weekday (Monday first), local time, end exclusive. A day without
/// ranges is closed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CallingHours {
    days: [Vec<(NaiveTime, NaiveTime)>; 7],
}

/// The JSON form: `{"mon": ["08:00-21:00"], "sat": ["09:00-12:00", "13:00-17:00"]}`.
pub type CallingHoursJson = std::collections::BTreeMap<String, Vec<String>>;

impl CallingHours {
    pub fn parse(json: &CallingHoursJson) -> Result<Self, CallingHoursError> {
        let mut hours = Self::default();
        for (day, ranges) in json {
            let index = DAYS
                .iter()
                .position(|d| d.eq_ignore_ascii_case(day))
                .ok_or_else(|| CallingHoursError::Day(day.clone()))?;
            let name = DAYS[index];
            for range in ranges {
                let bad = || CallingHoursError::Range {
                    day: name,
                    value: range.clone(),
                };
                let (start, end) = range.split_once('-').ok_or_else(bad)?;
                let start = NaiveTime::parse_from_str(start.trim(), "%H:%M").map_err(|_| bad())?;
                // "24:00" closes at midnight.
                let end = match end.trim() {
                    "24:00" => NaiveTime::MIN,
                    other => NaiveTime::parse_from_str(other, "%H:%M").map_err(|_| bad())?,
                };
                if end != NaiveTime::MIN && end <= start {
                    return Err(CallingHoursError::Backwards {
                        day: name,
                        value: range.clone(),
                    });
                }
                hours.days[index].push((start, end));
            }
            hours.days[index].sort();
        }
        Ok(hours)
    }

    pub fn to_json(&self) -> CallingHoursJson {
        let mut json = CallingHoursJson::new();
        for (i, ranges) in self.days.iter().enumerate() {
            if !ranges.is_empty() {
                let shown = ranges
                    .iter()
                    .map(|(s, e)| {
                        let end = if *e == NaiveTime::MIN {
                            "24:00".to_owned()
                        } else {
                            e.format("%H:%M").to_string()
                        };
                        format!("{}-{end}", s.format("%H:%M"))
                    })
                    .collect();
                json.insert(DAYS[i].to_owned(), shown);
            }
        }
        json
    }

    fn is_never_open(&self) -> bool {
        self.days.iter().all(Vec::is_empty)
    }

    /// The UTC interval of one local range on one date; a start inside a DST gap opens
    /// when the clocks resume, an ambiguous one at its earlier instant.
    pub(super) fn interval(
        date: NaiveDate,
        (start, end): (NaiveTime, NaiveTime),
        zone: Tz,
    ) -> (DateTime<Utc>, DateTime<Utc>) {
        let end_date = if end == NaiveTime::MIN {
            date + Days::new(1)
        } else {
            date
        };
        (
            local_instant(date, start, zone),
            local_instant(end_date, end, zone),
        )
    }

    /// `at` itself when it falls inside a range, else the next opening; `None` when the
    /// hours never open.
    pub fn next_opening(&self, at: DateTime<Utc>, zone: Tz) -> Option<DateTime<Utc>> {
        if self.is_never_open() {
            return None;
        }
        let local_date = at.with_timezone(&zone).date_naive();
        // Start a day early: yesterday's range may run past midnight ("22:00-24:00").
        for offset in 0..9 {
            let date = local_date - Days::new(1) + Days::new(offset);
            let weekday = date.weekday().num_days_from_monday() as usize;
            for &range in &self.days[weekday] {
                let (open, close) = Self::interval(date, range, zone);
                if at < close && open < close {
                    return Some(at.max(open));
                }
            }
        }
        None
    }

    /// Whether the hour starting at `hour` (0–23) of weekday `day` (0: Monday) is open, for
    /// drawing the hours as a week grid.
    pub fn hour_open(&self, day: usize, hour: u32) -> bool {
        let Some(start) = NaiveTime::from_hms_opt(hour, 0, 0) else {
            return false;
        };
        self.days.get(day).is_some_and(|ranges| {
            ranges
                .iter()
                .any(|&(open, close)| open <= start && (close == NaiveTime::MIN || start < close))
        })
    }

    pub fn is_open(&self, at: DateTime<Utc>, zone: Tz) -> bool {
        self.next_opening(at, zone) == Some(at)
    }
}

/// When a callback may be called, from a given instant on, under calling hours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opening {
    /// At that instant: no calling hours, or inside them.
    Now,
    /// Not before this later instant.
    At(DateTime<Utc>),
    /// The hours never open.
    Never,
}

/// The one reading of calling hours (`None`: call at any time) at `at`, in `zone`.
pub fn opening(hours: Option<&CallingHours>, at: DateTime<Utc>, zone: Tz) -> Opening {
    match hours.map(|h| h.next_opening(at, zone)) {
        None => Opening::Now,
        Some(Some(open)) if open <= at => Opening::Now,
        Some(Some(open)) => Opening::At(open),
        Some(None) => Opening::Never,
    }
}

/// What the dispatcher does with a callback that is due now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DispatchWindow {
    Publish,
    /// Outside the calling hours: due again at the next opening.
    Defer {
        until: DateTime<Utc>,
        reason: String,
    },
    /// It can never be published: it would expire first, or the hours never open.
    End {
        state: super::CallbackState,
        reason: String,
    },
}

/// Whether a due callback may be published now: never when its number has been put on the
/// do-not-call list since it was booked; else as its skill's calling hours say, read in the
/// contact's time zone.
pub fn dispatch_window(
    callback: &super::Callback,
    skill: &super::Skill,
    suppression: Option<&super::Suppression>,
    now: DateTime<Utc>,
    default_zone: Tz,
) -> DispatchWindow {
    if let Some(suppression) = suppression {
        return DispatchWindow::End {
            state: super::CallbackState::Suppressed,
            reason: suppression.describe(callback.phone_number.as_str()),
        };
    }
    let zone = super::contact_zone(callback.time_zone, skill.time_zone, default_zone);
    let hours = skill.policy.calling_hours.as_ref();
    match skill.policy.opening(now, zone) {
        Opening::Now => DispatchWindow::Publish,
        Opening::At(open) if callback.expires_at.is_some_and(|e| e <= open) => {
            DispatchWindow::End {
                state: super::CallbackState::Expired,
                reason: format!(
                    "expires before the calling hours of skill {} open again",
                    skill.id
                ),
            }
        }
        Opening::At(open) => DispatchWindow::Defer {
            until: open,
            reason: match skill.policy.calendar.as_ref().and_then(|c| c.describe(now)) {
                Some(day) => format!("outside the calling hours of skill {}: {day}", skill.id),
                None => format!(
                    "outside the calling hours of skill {} ({}) in {}",
                    skill.id,
                    hours.map(ToString::to_string).unwrap_or_default(),
                    zone.name()
                ),
            },
        },
        Opening::Never => DispatchWindow::End {
            state: super::CallbackState::Failed,
            reason: format!("the calling hours of skill {} never open", skill.id),
        },
    }
}

/// The instant of a local date and time; inside a DST gap, the first instant after it.
pub(super) fn local_instant(date: NaiveDate, time: NaiveTime, zone: Tz) -> DateTime<Utc> {
    let naive = date.and_time(time);
    match zone.from_local_datetime(&naive) {
        LocalResult::Single(t) => t.with_timezone(&Utc),
        LocalResult::Ambiguous(a, b) => a.min(b).with_timezone(&Utc),
        LocalResult::None => {
            // Gaps are at most a few hours: walk forward minute by minute to the resumption.
            let mut probe = naive;
            for _ in 0..(24 * 60) {
                probe += Duration::minutes(1);
                if let Some(t) = zone.from_local_datetime(&probe).earliest() {
                    return t.with_timezone(&Utc);
                }
            }
            zone.from_utc_datetime(&naive).with_timezone(&Utc)
        }
    }
}

impl fmt::Display for CallingHours {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .to_json()
            .iter()
            .map(|(day, ranges)| format!("{day} {}", ranges.join(",")))
            .collect();
        if parts.is_empty() {
            f.write_str("never")
        } else {
            f.write_str(&parts.join("; "))
        }
    }
}

impl Serialize for CallingHours {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.to_json().serialize(s)
    }
}

impl<'de> Deserialize<'de> for CallingHours {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let json = CallingHoursJson::deserialize(d)?;
        // Input (API, import) must open at some time; stored hours are read with `parse`, so a
        // skill saved before this rule still loads.
        let hours = Self::parse(&json).map_err(serde::de::Error::custom)?;
        if hours.days.iter().all(Vec::is_empty) {
            return Err(serde::de::Error::custom(CallingHoursError::NeverOpen));
        }
        Ok(hours)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hours() -> CallingHours {
        serde_json::from_value(serde_json::json!({
            "mon": ["08:00-21:00"], "tue": ["08:00-21:00"], "wed": ["08:00-21:00"],
            "thu": ["08:00-21:00"], "fri": ["08:00-21:00"], "sat": ["09:00-17:00"]
        }))
        .expect("valid hours")
    }

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .expect("rfc3339")
            .with_timezone(&Utc)
    }

    #[test]
    fn saturday_night_waits_for_monday_morning() {
        let zone: Tz = "Europe/Paris".parse().expect("zone");
        // Saturday 2026-11-28 22:00 in Paris (UTC+1).
        let at = utc("2026-11-28T21:00:00Z");
        assert!(!hours().is_open(at, zone));
        assert_eq!(
            hours().next_opening(at, zone),
            Some(utc("2026-11-30T07:00:00Z"))
        );
    }

    #[test]
    fn inside_a_range_is_open_now() {
        let zone: Tz = "America/New_York".parse().expect("zone");
        let at = utc("2026-11-25T15:00:00Z"); // Wednesday 10:00 EST
        assert!(hours().is_open(at, zone));
        assert_eq!(hours().next_opening(at, zone), Some(at));
        let closing = utc("2026-11-26T02:00:00Z"); // Wednesday 21:00 EST, end exclusive
        assert_eq!(
            hours().next_opening(closing, zone),
            Some(utc("2026-11-26T13:00:00Z"))
        );
    }

    #[test]
    fn dst_changes_move_the_utc_opening() {
        let zone: Tz = "Europe/London".parse().expect("zone");
        // Sunday 2026-03-29 clocks go forward: Monday opens at 08:00 BST = 07:00 UTC.
        assert_eq!(
            hours().next_opening(utc("2026-03-28T20:00:00Z"), zone),
            Some(utc("2026-03-30T07:00:00Z"))
        );
        // Sunday 2026-10-25 clocks go back: Monday opens at 08:00 GMT = 08:00 UTC.
        assert_eq!(
            hours().next_opening(utc("2026-10-24T20:00:00Z"), zone),
            Some(utc("2026-10-26T08:00:00Z"))
        );
        let us: Tz = "America/Chicago".parse().expect("zone");
        // US spring-forward 2026-03-08: a range starting in the gap opens at 03:00 CDT.
        let night: CallingHours =
            serde_json::from_value(serde_json::json!({"sun": ["02:30-05:00"]})).expect("valid");
        assert_eq!(
            night.next_opening(utc("2026-03-08T06:00:00Z"), us),
            Some(utc("2026-03-08T08:00:00Z"))
        );
        // US fall-back 2026-11-01: 01:30 happens twice; the window opens at the first.
        let early: CallingHours =
            serde_json::from_value(serde_json::json!({"sun": ["01:30-03:00"]})).expect("valid");
        assert_eq!(
            early.next_opening(utc("2026-11-01T05:00:00Z"), us),
            Some(utc("2026-11-01T06:30:00Z"))
        );
    }

    #[test]
    fn bad_hours_are_refused_and_empty_hours_never_open() {
        for bad in [
            serde_json::json!({"mon": ["8-21"]}),
            serde_json::json!({"mon": ["21:00-08:00"]}),
            serde_json::json!({"funday": ["08:00-09:00"]}),
            serde_json::json!({"mon": ["08:00-25:00"]}),
        ] {
            assert!(
                serde_json::from_value::<CallingHours>(bad.clone()).is_err(),
                "{bad}"
            );
        }
        let never = CallingHours::default();
        assert_eq!(
            never.next_opening(utc("2026-11-25T15:00:00Z"), Tz::UTC),
            None
        );
        let late: CallingHours =
            serde_json::from_value(serde_json::json!({"fri": ["22:00-24:00"]})).expect("valid");
        assert!(late.is_open(utc("2026-11-27T23:30:00Z"), Tz::UTC));
        assert_eq!(late.to_json()["fri"], vec!["22:00-24:00".to_owned()]);
    }
}
