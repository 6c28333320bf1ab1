//! Calendars: named lists of closed dates and dates with special hours, in the calendar's
//! own time zone, assigned to skills. On a date the calendar lists, its hours replace the
//! skill's weekly calling hours (a closed date has none); on other dates the weekly hours
//! apply as they are.

use std::collections::BTreeMap;

use chrono::{DateTime, Days, NaiveDate, NaiveTime, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use super::window::local_instant;
use super::{CallingHours, Opening};

/// Dates a calendar may list at most.
pub const CALENDAR_DAYS_MAX: usize = 2000;
/// A calendar's name: letters, digits, `-`, `_`, `.`, at most this long.
const NAME_MAX: usize = 100;
/// Days looked ahead for an opening before the hours count as never opening.
const LOOK_AHEAD_DAYS: usize = 800;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CalendarError {
    #[error("calendar name `{0}` must be 1 to 100 letters, digits, `-`, `_` or `.`")]
    Name(String),
    #[error("timeZone: `{0}` is not an IANA time zone name")]
    TimeZone(String),
    #[error("days[{index}].date: `{value}` is not a date such as 2026-12-25")]
    Date { index: usize, value: String },
    #[error("days[{index}]: {date} is listed twice")]
    Twice { index: usize, date: NaiveDate },
    #[error(
        "days[{index}].hours: `{value}` is not a range such as \"09:00-13:00\" that ends after it starts"
    )]
    Range { index: usize, value: String },
    #[error("days: at most {CALENDAR_DAYS_MAX} dates")]
    TooMany,
    #[error("the iCalendar file cannot be read: {0}")]
    ICalendar(String),
}

/// One date of a calendar as the API takes it: closed (no `hours`, or `[]`), or open only
/// during `hours`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CalendarDayJson {
    pub date: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hours: Vec<String>,
    /// What the day is (`Christmas Day`); shown, not used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
}

/// A calendar as the API takes and shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CalendarJson {
    pub time_zone: String,
    #[serde(default)]
    pub days: Vec<CalendarDayJson>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Day {
    /// Empty: closed all day.
    hours: Vec<(NaiveTime, NaiveTime)>,
    label: Option<String>,
}

/// A checked calendar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Calendar {
    pub name: String,
    pub zone: Tz,
    days: BTreeMap<NaiveDate, Day>,
}

/// Checks a calendar's name (it appears in URLs and in skills).
pub fn check_calendar_name(name: &str) -> Result<&str, CalendarError> {
    let ok = !name.is_empty()
        && name.len() <= NAME_MAX
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(name)
    } else {
        Err(CalendarError::Name(name.to_owned()))
    }
}

fn parse_range(text: &str) -> Option<(NaiveTime, NaiveTime)> {
    let (start, end) = text.split_once('-')?;
    let start = NaiveTime::parse_from_str(start.trim(), "%H:%M").ok()?;
    let end = match end.trim() {
        "24:00" => NaiveTime::MIN,
        other => NaiveTime::parse_from_str(other, "%H:%M").ok()?,
    };
    (end == NaiveTime::MIN || end > start).then_some((start, end))
}

fn show_range((start, end): (NaiveTime, NaiveTime)) -> String {
    let end = if end == NaiveTime::MIN {
        "24:00".to_owned()
    } else {
        end.format("%H:%M").to_string()
    };
    format!("{}-{end}", start.format("%H:%M"))
}

impl Calendar {
    pub fn parse(name: &str, json: &CalendarJson) -> Result<Self, CalendarError> {
        let name = check_calendar_name(name)?.to_owned();
        let zone = json
            .time_zone
            .trim()
            .parse::<Tz>()
            .map_err(|_| CalendarError::TimeZone(json.time_zone.clone()))?;
        if json.days.len() > CALENDAR_DAYS_MAX {
            return Err(CalendarError::TooMany);
        }
        let mut days = BTreeMap::new();
        for (index, day) in json.days.iter().enumerate() {
            let date = NaiveDate::parse_from_str(day.date.trim(), "%Y-%m-%d").map_err(|_| {
                CalendarError::Date {
                    index,
                    value: day.date.clone(),
                }
            })?;
            let mut hours = day
                .hours
                .iter()
                .map(|h| {
                    parse_range(h).ok_or_else(|| CalendarError::Range {
                        index,
                        value: h.clone(),
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            hours.sort();
            let label = day.label.clone().filter(|l| !l.trim().is_empty());
            if days.insert(date, Day { hours, label }).is_some() {
                return Err(CalendarError::Twice { index, date });
            }
        }
        Ok(Self { name, zone, days })
    }

    pub fn to_json(&self) -> CalendarJson {
        CalendarJson {
            time_zone: self.zone.name().to_owned(),
            days: self
                .days
                .iter()
                .map(|(date, day)| CalendarDayJson {
                    date: date.to_string(),
                    hours: day.hours.iter().copied().map(show_range).collect(),
                    label: day.label.clone(),
                })
                .collect(),
        }
    }

    /// How many dates it lists closed, and how many with special hours.
    pub fn counts(&self) -> (usize, usize) {
        let closed = self.days.values().filter(|d| d.hours.is_empty()).count();
        (closed, self.days.len() - closed)
    }

    /// The closed dates from `from` on (in the calendar's zone), at most `n`.
    pub fn closed_from(&self, from: NaiveDate, n: usize) -> Vec<(NaiveDate, Option<&str>)> {
        self.days
            .range(from..)
            .filter(|(_, day)| day.hours.is_empty())
            .take(n)
            .map(|(date, day)| (*date, day.label.as_deref()))
            .collect()
    }

    /// What the calendar says about the date of `at` (in its zone), when it lists it: for
    /// the reason a callback waits.
    pub fn describe(&self, at: DateTime<Utc>) -> Option<String> {
        let date = at.with_timezone(&self.zone).date_naive();
        let day = self.days.get(&date)?;
        let label = day
            .label
            .as_deref()
            .map(|l| format!(" ({l})"))
            .unwrap_or_default();
        Some(if day.hours.is_empty() {
            format!("{date}{label} is closed in calendar {}", self.name)
        } else {
            let hours: Vec<String> = day.hours.iter().copied().map(show_range).collect();
            format!(
                "{date}{label} has special hours {} in calendar {}",
                hours.join(", "),
                self.name
            )
        })
    }

    /// The calendar's reading of `date`: `None` when it does not list it (the weekly hours
    /// apply), else that date's hours (empty: closed).
    fn hours_on(&self, date: NaiveDate) -> Option<&[(NaiveTime, NaiveTime)]> {
        self.days.get(&date).map(|d| d.hours.as_slice())
    }

    /// The start of `date` in the calendar's zone.
    fn day_start(&self, date: NaiveDate) -> DateTime<Utc> {
        local_instant(date, NaiveTime::MIN, self.zone)
    }
}

/// When a callback may be called from `at` on, under weekly calling hours read in `zone`
/// (`None`: any time) and a calendar (`None`: none): `at` itself when open, else the next
/// opening; `None` when there is none within two years.
pub fn next_opening(
    hours: Option<&CallingHours>,
    calendar: Option<&Calendar>,
    at: DateTime<Utc>,
    zone: Tz,
) -> Option<DateTime<Utc>> {
    let Some(calendar) = calendar else {
        return match hours {
            None => Some(at),
            Some(h) => h.next_opening(at, zone),
        };
    };
    let mut at = at;
    for _ in 0..LOOK_AHEAD_DAYS {
        let date = at.with_timezone(&calendar.zone).date_naive();
        let next_day = calendar.day_start(date + Days::new(1));
        if let Some(ranges) = calendar.hours_on(date) {
            // A listed date: its own hours, and nothing else.
            for &range in ranges {
                let (open, close) = CallingHours::interval(date, range, calendar.zone);
                if at < close && open < close {
                    return Some(at.max(open));
                }
            }
            at = next_day;
            continue;
        }
        let weekly = match hours {
            None => at,
            Some(h) => h.next_opening(at, zone)?,
        };
        // A listed date between now and the weekly opening decides first.
        let weekly_date = weekly.with_timezone(&calendar.zone).date_naive();
        let after = date + Days::new(1);
        if weekly_date < after {
            // Still `date`, which the calendar does not list.
            return Some(weekly);
        }
        match calendar.days.range(after..=weekly_date).next() {
            Some((listed, _)) => at = calendar.day_start(*listed).max(at),
            None => return Some(weekly),
        }
    }
    None
}

/// As [`super::opening`], with a calendar.
pub fn opening_with(
    hours: Option<&CallingHours>,
    calendar: Option<&Calendar>,
    at: DateTime<Utc>,
    zone: Tz,
) -> Opening {
    if hours.is_none() && calendar.is_none() {
        return Opening::Now;
    }
    match next_opening(hours, calendar, at, zone) {
        Some(open) if open <= at => Opening::Now,
        Some(open) => Opening::At(open),
        None => Opening::Never,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .expect("instant")
            .with_timezone(&Utc)
    }

    fn weekdays() -> CallingHours {
        let json: super::super::CallingHoursJson = ["mon", "tue", "wed", "thu", "fri"]
            .iter()
            .map(|d| ((*d).to_owned(), vec!["09:00-17:00".to_owned()]))
            .collect();
        CallingHours::parse(&json).expect("hours")
    }

    fn christmas() -> Calendar {
        Calendar::parse(
            "uk-holidays",
            &CalendarJson {
                time_zone: "Europe/London".into(),
                days: vec![
                    CalendarDayJson {
                        date: "2026-12-24".into(),
                        hours: vec!["09:00-13:00".into()],
                        label: Some("Christmas Eve".into()),
                    },
                    CalendarDayJson {
                        date: "2026-12-25".into(),
                        hours: vec![],
                        label: Some("Christmas Day".into()),
                    },
                    CalendarDayJson {
                        date: "2026-12-28".into(),
                        hours: vec![],
                        label: None,
                    },
                ],
            },
        )
        .expect("calendar")
    }

    #[test]
    fn a_closed_date_moves_the_opening_past_it() {
        let london: Tz = "Europe/London".parse().expect("zone");
        let hours = weekdays();
        let cal = christmas();
        // Friday 25th 10:00: closed; Sat/Sun closed weekly; Mon 28th closed: Tue 29th 09:00.
        assert_eq!(
            next_opening(
                Some(&hours),
                Some(&cal),
                utc("2026-12-25T10:00:00Z"),
                london
            ),
            Some(utc("2026-12-29T09:00:00Z"))
        );
        // Without the calendar, Friday 10:00 is open.
        assert_eq!(
            next_opening(Some(&hours), None, utc("2026-12-25T10:00:00Z"), london),
            Some(utc("2026-12-25T10:00:00Z"))
        );
    }

    #[test]
    fn special_hours_replace_the_weekly_ones_on_their_date() {
        let london: Tz = "Europe/London".parse().expect("zone");
        let hours = weekdays();
        let cal = christmas();
        // Thursday 24th 14:00: the special hours ended at 13:00; the 25th is closed,
        // then the weekend and the 28th: Tue 29th.
        assert_eq!(
            next_opening(
                Some(&hours),
                Some(&cal),
                utc("2026-12-24T14:00:00Z"),
                london
            ),
            Some(utc("2026-12-29T09:00:00Z"))
        );
        assert_eq!(
            opening_with(
                Some(&hours),
                Some(&cal),
                utc("2026-12-24T12:00:00Z"),
                london
            ),
            Opening::Now
        );
        // Wednesday 23rd 18:00 (after hours): the next weekly opening would be the 24th at
        // 09:00, which the special hours also open.
        assert_eq!(
            next_opening(
                Some(&hours),
                Some(&cal),
                utc("2026-12-23T18:00:00Z"),
                london
            ),
            Some(utc("2026-12-24T09:00:00Z"))
        );
        // With no weekly hours, only the listed dates restrict.
        assert_eq!(
            next_opening(None, Some(&cal), utc("2026-12-25T10:00:00Z"), london),
            Some(utc("2026-12-26T00:00:00Z"))
        );
    }

    /// Every hour for a month around the listed dates, in zones either side of the
    /// calendar's: an answer at or after the instant asked, never a panic.
    #[test]
    fn every_instant_gets_an_opening_at_or_after_it() {
        let cal = christmas();
        let hours = weekdays();
        let start = utc("2026-12-10T00:00:00Z");
        for zone in ["Europe/London", "Pacific/Kiritimati", "Pacific/Pago_Pago"] {
            let zone: Tz = zone.parse().expect("zone");
            for h in 0..(31 * 24) {
                let at = start + chrono::Duration::hours(h);
                for weekly in [Some(&hours), None] {
                    let open = next_opening(weekly, Some(&cal), at, zone).expect("opens");
                    assert!(open >= at, "{at} {zone}");
                    assert!(cal.describe(open).is_none_or(|d| d.contains("special")));
                }
            }
        }
    }

    #[test]
    fn calendars_are_checked_and_read_back_as_written() {
        let cal = christmas();
        let json = cal.to_json();
        assert_eq!(Calendar::parse("uk-holidays", &json), Ok(cal.clone()));
        assert_eq!(
            cal.closed_from(NaiveDate::from_ymd_opt(2026, 12, 1).expect("date"), 5)
                .len(),
            2
        );
        for (json, wanted) in [
            (
                CalendarJson {
                    time_zone: "Mars/Olympus".into(),
                    days: vec![],
                },
                "timeZone",
            ),
            (
                CalendarJson {
                    time_zone: "UTC".into(),
                    days: vec![CalendarDayJson {
                        date: "25/12/2026".into(),
                        hours: vec![],
                        label: None,
                    }],
                },
                "days[0].date",
            ),
            (
                CalendarJson {
                    time_zone: "UTC".into(),
                    days: vec![CalendarDayJson {
                        date: "2026-12-24".into(),
                        hours: vec!["13:00-09:00".into()],
                        label: None,
                    }],
                },
                "days[0].hours",
            ),
        ] {
            let e = Calendar::parse("x", &json)
                .expect_err("refused")
                .to_string();
            assert!(e.starts_with(wanted), "{e}");
        }
        assert!(check_calendar_name("uk holidays").is_err());
        assert!(check_calendar_name("uk-holidays.2026").is_ok());
    }
}
