//! Reading `scheduleDate`: ISO 8601 with an offset is an instant; without one it is a wall
//! clock time in a time zone. Then the instant must fall between "a little in the past" and
//! "not absurdly far ahead" as seen from the database clock.

use chrono::{
    DateTime, Duration, DurationRound, FixedOffset, LocalResult, NaiveDateTime, TimeZone, Utc,
};
use chrono_tz::Tz;

/// Why a date-time input was refused. The messages do not name the field: the same rules
/// read `scheduleDate` and `expiresAt`, and [`DateError`] says which.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleDateError {
    #[error("missing; send an ISO 8601 date and time such as 2026-11-25T14:30:00Z")]
    Missing,
    #[error(
        "`{0}` is not an ISO 8601 date and time such as 2026-11-25T14:30:00Z, \
         2026-11-25T14:30:00+01:00 or 2026-11-25T14:30:00 (local time)"
    )]
    Unparseable(String),
    #[error("timeZone `{0}` is not an IANA time zone name such as Europe/London")]
    UnknownTimeZone(String),
    #[error("`{input}` does not exist in {zone}: the clocks skip it (daylight saving)")]
    NonexistentLocalTime { input: String, zone: Tz },
    #[error("`{input}` ({instant}) is more than {grace_seconds} s in the past")]
    TooFarInPast {
        input: String,
        instant: DateTime<Utc>,
        grace_seconds: i64,
    },
    #[error("`{input}` ({instant}) is more than {horizon_days} days ahead")]
    TooFarAhead {
        input: String,
        instant: DateTime<Utc>,
        horizon_days: i64,
    },
}

/// A date-time input refused, with the field it came in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DateError {
    pub field: &'static str,
    pub error: ScheduleDateError,
}

impl DateError {
    pub fn new(field: &'static str, error: ScheduleDateError) -> Self {
        Self { field, error }
    }
}

impl std::fmt::Display for DateError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.error {
            // Names its own field.
            ScheduleDateError::UnknownTimeZone(_) => write!(f, "{}", self.error),
            error => write!(f, "{}: {error}", self.field),
        }
    }
}

impl std::error::Error for DateError {}

/// The contact's time zone, which reads local times and calling hours: the one the
/// callback (or request) names, else the skill's, else the configured default.
pub fn contact_zone(own: Option<Tz>, skill_zone: Option<Tz>, default: Tz) -> Tz {
    own.or(skill_zone).unwrap_or(default)
}

/// Configured rules for schedule dates and phone numbers.
#[derive(Debug, Clone, Copy)]
pub struct ScheduleRules {
    pub default_time_zone: Tz,
    pub past_grace: Duration,
    pub horizon: Duration,
    pub default_region: phonenumber::country::Id,
    /// Per-number admission where a skill sets none of its own.
    pub admission: super::NumberAdmission,
}

pub fn parse_time_zone(name: &str) -> Result<Tz, ScheduleDateError> {
    name.parse::<Tz>()
        .map_err(|_| ScheduleDateError::UnknownTimeZone(name.to_owned()))
}

/// Turns `scheduleDate` into the instant it names and the moment it becomes due.
///
/// A local time that occurs twice (the hour repeated when clocks go back) means the earlier
/// of the two instants: a callback promised "at 01:30" is better early than an hour late.
/// A time in the past but within the grace is due immediately (`now`).
pub fn resolve_schedule_date(
    input: &str,
    zone: Tz,
    now: DateTime<Utc>,
    rules: &ScheduleRules,
) -> Result<(DateTime<Utc>, DateTime<Utc>), ScheduleDateError> {
    // The store keeps microseconds; answer with what will be stored.
    let instant = parse_instant(input, zone)?;
    let instant = instant
        .duration_trunc(Duration::microseconds(1))
        .unwrap_or(instant);
    if instant < now - rules.past_grace {
        return Err(ScheduleDateError::TooFarInPast {
            input: input.to_owned(),
            instant,
            grace_seconds: rules.past_grace.num_seconds(),
        });
    }
    if instant > now + rules.horizon {
        return Err(ScheduleDateError::TooFarAhead {
            input: input.to_owned(),
            instant,
            horizon_days: rules.horizon.num_days(),
        });
    }
    Ok((instant, instant.max(now)))
}

fn parse_instant(input: &str, zone: Tz) -> Result<DateTime<Utc>, ScheduleDateError> {
    let unparseable = || ScheduleDateError::Unparseable(input.to_owned());
    let s = input.trim();
    if s.is_empty() {
        return Err(ScheduleDateError::Missing);
    }
    // Longer than any ISO 8601 date-time with nanoseconds and offset: refuse before parsing.
    if s.len() > 40 || !s.is_ascii() {
        return Err(unparseable());
    }
    // RFC 3339 allows a space between date and time; ISO 8601 a lowercase `t` and `z`.
    let mut normalised = s.to_ascii_uppercase();
    if normalised.as_bytes().get(10) == Some(&b' ') {
        normalised.replace_range(10..11, "T");
    }
    if let Some(stripped) = normalised.strip_suffix('Z') {
        normalised = format!("{stripped}+00:00");
    }

    for format in ["%Y-%m-%dT%H:%M:%S%.f%#z", "%Y-%m-%dT%H:%M%#z"] {
        if let Ok(dt) = DateTime::<FixedOffset>::parse_from_str(&normalised, format) {
            return Ok(dt.with_timezone(&Utc));
        }
    }
    for format in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M"] {
        if let Ok(naive) = NaiveDateTime::parse_from_str(&normalised, format) {
            return match zone.from_local_datetime(&naive) {
                LocalResult::Single(dt) => Ok(dt.with_timezone(&Utc)),
                LocalResult::Ambiguous(earlier, later) => {
                    Ok(earlier.min(later).with_timezone(&Utc))
                }
                LocalResult::None => Err(ScheduleDateError::NonexistentLocalTime {
                    input: input.to_owned(),
                    zone,
                }),
            };
        }
    }
    Err(unparseable())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> ScheduleRules {
        ScheduleRules {
            default_time_zone: Tz::UTC,
            past_grace: Duration::minutes(5),
            horizon: Duration::days(366),
            default_region: phonenumber::country::Id::US,
            admission: crate::domain::NumberAdmission::default(),
        }
    }

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0)
            .single()
            .expect("valid")
    }

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .expect("rfc3339")
            .with_timezone(&Utc)
    }

    #[test]
    fn absolute_forms_are_instants() {
        let zone: Tz = "America/New_York".parse().expect("zone");
        for (input, want) in [
            ("2026-03-02T14:30:00Z", "2026-03-02T14:30:00Z"),
            ("2026-03-02t14:30:00z", "2026-03-02T14:30:00Z"),
            ("2026-03-02T14:30Z", "2026-03-02T14:30:00Z"),
            ("2026-03-02T14:30:00.250Z", "2026-03-02T14:30:00.250Z"),
            ("2026-03-02T14:30:00+01:00", "2026-03-02T13:30:00Z"),
            ("2026-03-02T14:30:00+0100", "2026-03-02T13:30:00Z"),
            ("2026-03-02 14:30:00-05:00", "2026-03-02T19:30:00Z"),
        ] {
            let (instant, _) = resolve_schedule_date(input, zone, now(), &rules())
                .unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(instant, utc(want), "{input}");
        }
    }

    #[test]
    fn local_forms_use_the_zone() {
        let zone: Tz = "Europe/London".parse().expect("zone");
        let (instant, _) =
            resolve_schedule_date("2026-07-01T14:30:00", zone, now(), &rules()).expect("valid");
        assert_eq!(instant, utc("2026-07-01T13:30:00Z"));
        let (instant, _) =
            resolve_schedule_date("2026-07-01T14:30", zone, now(), &rules()).expect("valid");
        assert_eq!(instant, utc("2026-07-01T13:30:00Z"));
    }

    #[test]
    fn dst_gap_is_refused_and_overlap_takes_the_earlier_instant() {
        let zone: Tz = "Europe/London".parse().expect("zone");
        let err = resolve_schedule_date("2026-03-29T01:30:00", zone, now(), &rules())
            .expect_err("01:30 does not exist on 29 March 2026 in London");
        assert!(
            matches!(err, ScheduleDateError::NonexistentLocalTime { .. }),
            "{err}"
        );
        let (instant, _) =
            resolve_schedule_date("2026-10-25T01:30:00", zone, now(), &rules()).expect("valid");
        assert_eq!(
            instant,
            utc("2026-10-25T00:30:00Z"),
            "BST reading, the earlier one"
        );
    }

    #[test]
    fn grace_and_horizon() {
        let (instant, due) =
            resolve_schedule_date("2026-03-01T11:57:00Z", Tz::UTC, now(), &rules()).expect("grace");
        assert_eq!(instant, utc("2026-03-01T11:57:00Z"));
        assert_eq!(due, now(), "inside the grace means due now");
        assert!(matches!(
            resolve_schedule_date("2026-03-01T11:54:59Z", Tz::UTC, now(), &rules()),
            Err(ScheduleDateError::TooFarInPast { .. })
        ));
        assert!(resolve_schedule_date("2027-03-02T12:00:00Z", Tz::UTC, now(), &rules()).is_ok());
        assert!(matches!(
            resolve_schedule_date("2027-03-02T12:00:01Z", Tz::UTC, now(), &rules()),
            Err(ScheduleDateError::TooFarAhead { .. })
        ));
    }

    #[test]
    fn garbage_is_unparseable() {
        for input in [
            "tomorrow",
            "2026-03-02",
            "2026-13-02T10:00:00Z",
            "2026-02-30T10:00:00Z",
            "2026-03-02T25:00:00Z",
            "2026-03-02T10:00:00+25:00",
            "14:30",
            "2026-03-02T10:00:00Zjunk",
            "２０２６-03-02T10:00:00Z",
        ] {
            assert!(
                matches!(
                    resolve_schedule_date(input, Tz::UTC, now(), &rules()),
                    Err(ScheduleDateError::Unparseable(_))
                ),
                "{input}"
            );
        }
        assert_eq!(
            resolve_schedule_date("", Tz::UTC, now(), &rules()),
            Err(ScheduleDateError::Missing)
        );
    }
}
