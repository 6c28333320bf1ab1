//! A calendar read from an iCalendar file (RFC 5545), parsed by the `icalendar` crate:
//! each all-day event closes its dates; each timed event opens its date only during the
//! event (special hours). Recurring events (`RRULE`) are taken for their first occurrence
//! only: list each year's dates, as public-holiday feeds do.

use chrono::{Days, NaiveDate, NaiveDateTime, NaiveTime};
use chrono_tz::Tz;
use icalendar::{CalendarComponent, CalendarDateTime, Component, DatePerhapsTime};

use super::calendar::{CALENDAR_DAYS_MAX, CalendarDayJson, CalendarJson};
use super::{Calendar, CalendarError};

impl Calendar {
    /// The calendar `name` in `zone` from an iCalendar file's events.
    pub fn from_ical(name: &str, zone: Tz, text: &str) -> Result<Self, CalendarError> {
        let parsed: icalendar::Calendar = text
            .parse()
            .map_err(|e: String| CalendarError::ICalendar(first_line(&e)))?;
        let mut closed: Vec<(NaiveDate, Option<String>)> = Vec::new();
        let mut special: Vec<(NaiveDate, (NaiveTime, NaiveTime), Option<String>)> = Vec::new();
        for component in &parsed.components {
            let CalendarComponent::Event(event) = component else {
                continue;
            };
            let label = event.get_summary().map(str::to_owned);
            let Some(start) = event.get_start() else {
                return Err(CalendarError::ICalendar(format!(
                    "the event {} has no DTSTART",
                    label.as_deref().unwrap_or("without a summary")
                )));
            };
            match start {
                DatePerhapsTime::Date(first) => {
                    // DTEND of an all-day event is exclusive; absent: one day.
                    let end = match event.get_end() {
                        Some(DatePerhapsTime::Date(end)) if end > first => end,
                        _ => first + Days::new(1),
                    };
                    let mut day = first;
                    while day < end && closed.len() <= CALENDAR_DAYS_MAX {
                        closed.push((day, label.clone()));
                        day = day + Days::new(1);
                    }
                }
                DatePerhapsTime::DateTime(start) => {
                    let start = local(start, zone)?;
                    let end = match event.get_end() {
                        Some(DatePerhapsTime::DateTime(end)) => local(end, zone)?,
                        _ => start,
                    };
                    let close = if end.date() > start.date() {
                        NaiveTime::MIN
                    } else {
                        end.time()
                    };
                    special.push((start.date(), (start.time(), close), label));
                }
            }
        }
        let mut days: Vec<CalendarDayJson> = Vec::new();
        for (date, label) in closed {
            if !days.iter().any(|d| d.date == date.to_string()) {
                days.push(CalendarDayJson {
                    date: date.to_string(),
                    hours: Vec::new(),
                    label,
                });
            }
        }
        for (date, (open, close), label) in special {
            let range = format!(
                "{}-{}",
                open.format("%H:%M"),
                if close == NaiveTime::MIN {
                    "24:00".to_owned()
                } else {
                    close.format("%H:%M").to_string()
                }
            );
            match days.iter_mut().find(|d| d.date == date.to_string()) {
                // A closed day stays closed; another timed event adds its hours.
                Some(day) if day.hours.is_empty() => {}
                Some(day) => day.hours.push(range),
                None => days.push(CalendarDayJson {
                    date: date.to_string(),
                    hours: vec![range],
                    label,
                }),
            }
        }
        Calendar::parse(
            name,
            &CalendarJson {
                time_zone: zone.name().to_owned(),
                days,
            },
        )
    }
}

/// An event's local date and time in the calendar's zone.
fn local(at: CalendarDateTime, zone: Tz) -> Result<NaiveDateTime, CalendarError> {
    match at {
        CalendarDateTime::Floating(local) => Ok(local),
        CalendarDateTime::Utc(instant) => Ok(instant.with_timezone(&zone).naive_local()),
        CalendarDateTime::WithTimezone { date_time, tzid } => {
            let their: Tz = tzid.parse().map_err(|_| {
                CalendarError::ICalendar(format!("TZID `{tzid}` is not an IANA time zone"))
            })?;
            let instant = super::window::local_instant(date_time.date(), date_time.time(), their);
            Ok(instant.with_timezone(&zone).naive_local())
        }
    }
}

fn first_line(error: &str) -> String {
    error
        .lines()
        .next()
        .unwrap_or(error)
        .chars()
        .take(300)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const FEED: &str = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\n\
BEGIN:VEVENT\r\nUID:1\r\nDTSTAMP:20261101T000000Z\r\nSUMMARY:Christmas Day\r\n\
DTSTART;VALUE=DATE:20261225\r\nDTEND;VALUE=DATE:20261227\r\nEND:VEVENT\r\n\
BEGIN:VEVENT\r\nUID:2\r\nDTSTAMP:20261101T000000Z\r\nSUMMARY:Christmas Eve\r\n\
DTSTART:20261224T090000\r\nDTEND:20261224T130000\r\nEND:VEVENT\r\n\
BEGIN:VEVENT\r\nUID:3\r\nDTSTAMP:20261101T000000Z\r\nSUMMARY:New Year's Eve\r\n\
DTSTART;TZID=America/New_York:20261231T040000\r\nDTEND;TZID=America/New_York:20261231T080000\r\nEND:VEVENT\r\n\
END:VCALENDAR\r\n";

    #[test]
    fn all_day_events_close_their_dates_and_timed_ones_open_theirs() {
        let london: Tz = "Europe/London".parse().expect("zone");
        let cal = Calendar::from_ical("uk", london, FEED).expect("read");
        let json = cal.to_json();
        let day = |date: &str| json.days.iter().find(|d| d.date == date).cloned();
        assert_eq!(day("2026-12-25").map(|d| d.hours), Some(vec![]));
        assert_eq!(day("2026-12-26").map(|d| d.hours), Some(vec![]));
        assert_eq!(day("2026-12-27"), None, "DTEND is exclusive");
        assert_eq!(
            day("2026-12-24").map(|d| d.hours),
            Some(vec!["09:00-13:00".to_owned()])
        );
        assert_eq!(
            day("2026-12-31").map(|d| d.hours),
            Some(vec!["09:00-13:00".to_owned()]),
            "04:00 in New York is 09:00 in London"
        );
        assert_eq!(
            day("2026-12-25").and_then(|d| d.label).as_deref(),
            Some("Christmas Day")
        );
    }

    #[test]
    fn a_file_that_is_not_icalendar_is_refused_in_one_line() {
        let e = Calendar::from_ical("x", Tz::UTC, "hello").expect_err("refused");
        assert!(matches!(e, CalendarError::ICalendar(_)), "{e}");
        assert!(!e.to_string().contains('\n'), "{e}");
    }
}
