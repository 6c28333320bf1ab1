//! Property tests of the parsers at the edge: schedule dates, phone numbers and calling
//! hours. Whatever a script sends, they answer a value or an error, never a panic; and
//! what they accept means what it says (a printed instant reads back as itself).
//!
//! Bounded: a few hundred cases per property (`PROPTEST_CASES` overrides).
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use callbackd::domain::{
    CallingHours, CallingHoursJson, PhoneNumber, ScheduleDateError, ScheduleRules,
    resolve_schedule_date,
};
use chrono::{DateTime, Duration, LocalResult, NaiveDateTime, TimeZone, Utc};
use chrono_tz::{TZ_VARIANTS, Tz};
use phonenumber::country::Id as Region;
use proptest::prelude::*;

fn config(cases: u32) -> ProptestConfig {
    let mut config = ProptestConfig::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        config.cases = cases;
    }
    // A failure prints its minimal input; no regression files next to the sources.
    config.failure_persistence = None;
    config
}

fn rules() -> ScheduleRules {
    ScheduleRules {
        default_time_zone: Tz::UTC,
        past_grace: Duration::minutes(5),
        horizon: Duration::days(366),
        default_region: Region::US,
        admission: callbackd::domain::NumberAdmission::default(),
    }
}

fn zone() -> impl Strategy<Value = Tz> {
    proptest::sample::select(&TZ_VARIANTS[..])
}

/// "Now" anywhere from 1971 to 2199.
fn now() -> impl Strategy<Value = DateTime<Utc>> {
    (31_536_000i64..7_258_118_400).prop_map(|s| DateTime::from_timestamp(s, 0).unwrap_or_default())
}

/// Strings shaped like ISO 8601 date-times, valid or not: the parser's interesting inputs.
fn date_like() -> impl Strategy<Value = String> {
    "[0-9+-]{0,2}[0-9]{1,6}-[0-9]{1,2}-[0-9]{1,2}[Tt ][0-9]{1,2}:[0-9]{1,2}(:[0-9]{1,2}(\\.[0-9]{0,12})?)?([Zz]|[+-][0-9]{1,2}(:?[0-9]{1,2})?)?.{0,2}"
}

/// Anything a script could send as `scheduleDate`.
fn schedule_input() -> impl Strategy<Value = String> {
    prop_oneof![date_like(), ".{0,60}", "\\PC{0,50}"]
}

/// An instant the rules accept relative to `now`: up to the grace in the past, up to the
/// horizon ahead, with microseconds.
fn accepted_offset() -> impl Strategy<Value = Duration> {
    (-299_000_000i64..366 * 86_400 * 1_000_000).prop_map(Duration::microseconds)
}

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn schedule_date_parsing_never_panics(input in schedule_input(), zone in zone(), now in now()) {
        match resolve_schedule_date(&input, zone, now, &rules()) {
            Ok((instant, due)) => {
                prop_assert!(instant >= now - rules().past_grace, "{input}: {instant}");
                prop_assert!(instant <= now + rules().horizon, "{input}: {instant}");
                prop_assert_eq!(due, instant.max(now));
            }
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
    }

    /// An instant printed in RFC 3339, with any offset, reads back as the same instant.
    #[test]
    fn an_rfc3339_instant_round_trips(
        now in now(),
        offset in accepted_offset(),
        shift_minutes in -(14 * 60)..=(14 * 60),
        zone in zone(),
    ) {
        let instant = now + offset;
        let shown = chrono::FixedOffset::east_opt(shift_minutes * 60)
            .map(|o| instant.with_timezone(&o).to_rfc3339())
            .unwrap_or_else(|| instant.to_rfc3339());
        let (read, _) = resolve_schedule_date(&shown, zone, now, &rules())
            .map_err(|e| TestCaseError::fail(format!("{shown}: {e}")))?;
        prop_assert_eq!(read, instant, "{}", shown);
    }

    /// A wall-clock time without offset means that time in the zone: read back in the zone
    /// it shows the same clock; a time the clocks skip is refused, one they repeat is the
    /// earlier instant.
    #[test]
    fn a_local_time_means_that_wall_clock_time_in_the_zone(
        now in now(),
        offset in accepted_offset(),
        zone in zone(),
    ) {
        let local: NaiveDateTime = (now + offset).with_timezone(&zone).naive_local();
        let shown = local.format("%Y-%m-%dT%H:%M:%S%.f").to_string();
        let read = resolve_schedule_date(&shown, zone, now, &rules());
        match (zone.from_local_datetime(&local), read) {
            (LocalResult::Single(t), Ok((instant, _))) => {
                prop_assert_eq!(instant, t.with_timezone(&Utc), "{}", shown);
                prop_assert_eq!(instant.with_timezone(&zone).naive_local(), local);
            }
            (LocalResult::Ambiguous(a, b), Ok((instant, _))) => {
                prop_assert_eq!(instant, a.min(b).with_timezone(&Utc), "{}", shown);
            }
            (LocalResult::None, Err(ScheduleDateError::NonexistentLocalTime { .. })) => {}
            // The earlier reading of a repeated hour, or the zone's reading of a time near
            // the window's edges, may fall just outside the grace or the horizon.
            (_, Err(ScheduleDateError::TooFarInPast { .. } | ScheduleDateError::TooFarAhead { .. })) => {}
            (expected, read) => prop_assert!(false, "{shown} in {zone}: {expected:?} but read {read:?}"),
        }
    }

    #[test]
    fn phone_number_parsing_never_panics(
        input in prop_oneof![
            "\\+?[0-9 ()./-]{0,30}",
            "\\+[0-9]{1,3} ?[0-9]{4,14}( ?(ext|x|#)\\.? ?[0-9]{1,6})?",
            ".{0,70}",
        ],
        region in proptest::sample::select(&[Region::US, Region::GB, Region::FR, Region::DE, Region::IN, Region::BR, Region::JP, Region::AU][..]),
    ) {
        if let Ok(number) = PhoneNumber::parse(&input, region) {
            // Stored as E.164: `+` and digits (libphonenumber allows some countries, such
            // as Germany, more than the 15 digits of the standard).
            let e164 = number.as_str();
            prop_assert!(e164.starts_with('+'), "{input} -> {e164}");
            prop_assert!(e164[1..].bytes().all(|b| b.is_ascii_digit()), "{input} -> {e164}");
            prop_assert!((3..=20).contains(&e164.len()), "{input} -> {e164}");
            // E.164 reads back as itself, whatever the default region.
            let again = PhoneNumber::parse(e164, Region::GB)
                .map_err(|e| TestCaseError::fail(format!("{input} -> {e164}: {e}")))?;
            prop_assert_eq!(again, number);
        }
    }
}

const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// Valid opening ranges: `HH:MM-HH:MM` with the end after the start, or `…-24:00`.
fn range() -> impl Strategy<Value = String> {
    (0u32..24 * 60 - 1, 1u32..=24 * 60).prop_map(|(start, length)| {
        let end = (start + length).min(24 * 60);
        let end = if end == start { start + 1 } else { end };
        format!(
            "{:02}:{:02}-{:02}:{:02}",
            start / 60,
            start % 60,
            end / 60,
            end % 60
        )
    })
}

fn valid_hours() -> impl Strategy<Value = CallingHoursJson> {
    proptest::collection::btree_map(
        proptest::sample::select(&DAYS[..]).prop_map(str::to_owned),
        proptest::collection::vec(range(), 1..4),
        1..7,
    )
}

/// Anything a script could send as `callingHours`.
fn any_hours() -> impl Strategy<Value = CallingHoursJson> {
    let day = prop_oneof![
        proptest::sample::select(&DAYS[..]).prop_map(str::to_owned),
        "[A-Za-z]{0,4}",
        ".{0,6}",
    ];
    let range = prop_oneof![
        range(),
        "[0-9]{1,2}:[0-9]{1,2} ?- ?[0-9]{1,2}:[0-9]{1,2}",
        ".{0,14}"
    ];
    proptest::collection::btree_map(day, proptest::collection::vec(range, 0..4), 0..8)
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn calling_hours_parsing_never_panics(json in any_hours(), at in now(), zone in zone()) {
        if let Ok(hours) = CallingHours::parse(&json) {
            let _ = hours.next_opening(at, zone);
            let _ = hours.to_string();
        }
    }

    /// Valid hours print as they were given (sorted) and read back equal.
    #[test]
    fn calling_hours_round_trip(json in valid_hours()) {
        let hours = CallingHours::parse(&json)
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        let shown = hours.to_json();
        let again = CallingHours::parse(&shown).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(&again, &hours);
        prop_assert_eq!(again.to_json(), shown);
    }

    /// Hours open on some day always open again within the week, at or after the asked
    /// time, and at an instant they are open.
    #[test]
    fn the_next_opening_is_open_and_not_earlier(json in valid_hours(), at in now(), zone in zone()) {
        let hours = CallingHours::parse(&json).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let open = hours.next_opening(at, zone);
        let open = open.ok_or_else(|| TestCaseError::fail(format!("{hours} never opens after {at} in {zone}")))?;
        prop_assert!(open >= at, "{} in {}: {} before {}", hours, zone, open, at);
        prop_assert!(open - at <= Duration::days(8), "{} in {}: {} is over a week after {}", hours, zone, open, at);
        prop_assert!(hours.is_open(open, zone), "{} in {}: not open at {}", hours, zone, open);
        prop_assert_eq!(hours.is_open(at, zone), open == at);
    }
}
