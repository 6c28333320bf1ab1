//! Bookable slots: a skill may cut its days into slots of `slotMinutes` (aligned on local
//! midnight in the skill's time zone) that take at most `slotCapacity` callbacks each,
//! optionally varying by hour of the week. A create whose due time falls in a full slot is
//! refused with the nearest free slots, or booked in the nearest one when it asks.

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, Duration, NaiveDateTime, Timelike, Utc};
use chrono_tz::Tz;

use super::{CallingHours, Opening};

const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// At most this many slots are listed or searched at once (a week of 5-minute slots).
pub const SLOTS_MAX: usize = 7 * 24 * 12;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SlotPolicyError {
    #[error("slotMinutes and slotCapacity go together: give both, or neither")]
    Half,
    #[error("slotMinutes: {0} does not divide a day into whole slots (e.g. 5, 10, 15, 20, 30, 60)")]
    Minutes(u32),
    #[error(
        "slotCapacityByHour: `{0}` is not a weekday and an hour such as \"mon 09\" (days mon..sun, hours 00..23)"
    )]
    Hour(String),
    #[error("{field}: {value} is larger than the largest allowed, 2147483647")]
    TooLarge { field: &'static str, value: u32 },
}

/// A skill's slots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotPolicy {
    pub minutes: u32,
    /// Callbacks a slot takes, unless its hour of the week says otherwise.
    pub capacity: u32,
    /// Capacity by (weekday from Monday = 0, local hour) of the slot's start.
    by_hour: BTreeMap<(usize, u32), u32>,
}

/// One slot: its start and end, and how many callbacks it takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub capacity: u32,
}

impl SlotPolicy {
    /// From the skill's fields; `None` when the skill has no slots.
    pub fn new(
        minutes: Option<u32>,
        capacity: Option<u32>,
        by_hour: Option<&BTreeMap<String, u32>>,
    ) -> Result<Option<Self>, SlotPolicyError> {
        let (minutes, capacity) = match (minutes, capacity) {
            (None, None) if by_hour.is_none_or(BTreeMap::is_empty) => return Ok(None),
            (Some(m), Some(c)) => (m, c),
            _ => return Err(SlotPolicyError::Half),
        };
        if minutes == 0 || 1440 % minutes != 0 {
            return Err(SlotPolicyError::Minutes(minutes));
        }
        let too_large = |field, value: u32| {
            (value > i32::MAX as u32).then_some(SlotPolicyError::TooLarge { field, value })
        };
        if let Some(e) = too_large("slotCapacity", capacity) {
            return Err(e);
        }
        let mut hours = BTreeMap::new();
        for (key, value) in by_hour.into_iter().flatten() {
            if let Some(e) = too_large("slotCapacityByHour", *value) {
                return Err(e);
            }
            let bad = || SlotPolicyError::Hour(key.clone());
            let (day, hour) = key.trim().split_once(' ').ok_or_else(bad)?;
            let day = DAYS
                .iter()
                .position(|d| d.eq_ignore_ascii_case(day.trim()))
                .ok_or_else(bad)?;
            let hour: u32 = hour.trim().parse().map_err(|_| bad())?;
            if hour > 23 {
                return Err(bad());
            }
            hours.insert((day, hour), *value);
        }
        Ok(Some(Self {
            minutes,
            capacity,
            by_hour: hours,
        }))
    }

    /// The JSON form of the capacities by hour of the week: `{"mon 09": 12}`.
    pub fn by_hour_json(&self) -> Option<BTreeMap<String, u32>> {
        (!self.by_hour.is_empty()).then(|| {
            self.by_hour
                .iter()
                .map(|((day, hour), n)| (format!("{} {hour:02}", DAYS[*day]), *n))
                .collect()
        })
    }

    fn local(at: DateTime<Utc>, zone: Tz) -> NaiveDateTime {
        at.with_timezone(&zone).naive_local()
    }

    /// The slot an instant falls in.
    pub fn slot_at(&self, at: DateTime<Utc>, zone: Tz) -> Slot {
        let local = Self::local(at, zone);
        let minute_of_day = local.hour() * 60 + local.minute();
        let first = minute_of_day - minute_of_day % self.minutes;
        let start_naive = local.date().and_hms_opt(first / 60, first % 60, 0);
        let start = start_naive
            .map(|n| super::window::local_instant(n.date(), n.time(), zone))
            .unwrap_or(at);
        // A DST change inside the slot can move the local start after the instant.
        let start = start.min(at);
        self.slot_from(start, zone)
    }

    /// The slot starting at `start` (a slot boundary).
    fn slot_from(&self, start: DateTime<Utc>, zone: Tz) -> Slot {
        let local = Self::local(start, zone);
        let end_naive = local + Duration::minutes(i64::from(self.minutes));
        let end = super::window::local_instant(end_naive.date(), end_naive.time(), zone);
        let end = if end > start {
            end
        } else {
            start + Duration::minutes(i64::from(self.minutes))
        };
        let day = local.weekday().num_days_from_monday() as usize;
        let capacity = self
            .by_hour
            .get(&(day, local.hour()))
            .copied()
            .unwrap_or(self.capacity);
        Slot {
            start,
            end,
            capacity,
        }
    }

    /// The slots from the one holding `from` until `to` whose start is in the calling hours
    /// (all of them without hours), at most [`SLOTS_MAX`].
    pub fn slots(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        zone: Tz,
        hours: Option<&CallingHours>,
        calendar: Option<&super::Calendar>,
    ) -> Vec<Slot> {
        let mut slots = Vec::new();
        let mut slot = self.slot_at(from, zone);
        // Bounded: each step moves forward by at least a minute.
        for _ in 0..(SLOTS_MAX * 16) {
            if slot.start >= to || slots.len() >= SLOTS_MAX {
                break;
            }
            if matches!(
                super::opening_with(hours, calendar, slot.start, zone),
                Opening::Now
            ) {
                slots.push(slot);
            }
            slot = self.slot_from(slot.end, zone);
        }
        slots
    }
}

impl super::Skill {
    /// The slot an instant falls in, when the skill has slots: read in the skill's zone
    /// (else `default_zone`), where its calling hours and staffing are.
    pub fn slot_at(&self, at: DateTime<Utc>, default_zone: Tz) -> Option<Slot> {
        let zone = self.slot_zone(default_zone);
        self.policy.slots.as_ref().map(|p| p.slot_at(at, zone))
    }

    /// The zone its slots are cut in: its own, else `default_zone`.
    pub fn slot_zone(&self, default_zone: Tz) -> Tz {
        self.time_zone.unwrap_or(default_zone)
    }
}

/// How far around a full slot free ones are looked for.
pub const SLOT_SEARCH: Duration = Duration::days(1);

/// A create whose slot turned out full, given the skill's slots around it and how many each
/// holds: moved to the nearest free slot that comes before its expiry when the caller asked
/// for that, else refused with the nearest free slots as suggestions.
pub fn replan_full(
    mut callback: super::NewCallback,
    skill: &super::Skill,
    around: &[Slot],
    booked: impl Fn(DateTime<Utc>) -> u32,
    now: DateTime<Utc>,
    default_zone: Tz,
    nearest: bool,
) -> Result<super::NewCallback, super::RequestError> {
    let zone = skill.slot_zone(default_zone);
    let Some(wanted) = callback.slot else {
        return Ok(callback);
    };
    let usable: Vec<Slot> = around
        .iter()
        .copied()
        .filter(|s| s.start != wanted.start)
        .filter(|s| callback.expires_at.is_none_or(|e| e > s.start.max(now)))
        .collect();
    let free = nearest_free(wanted.start, &usable, booked, now, 3);
    match free.first() {
        Some(slot) if nearest => {
            callback.due_at = slot.start.max(now);
            callback.slot = Some(*slot);
            Ok(callback)
        }
        _ => Err(super::RequestError::SlotFull {
            message: slot_full_message(skill.id, &wanted, zone, &free),
            suggestions: free.iter().map(|s| s.start.max(now)).collect(),
        }),
    }
}

/// A create or change that found its slot full: said with the nearest free slots.
pub fn slot_full_message(skill: super::SkillId, slot: &Slot, zone: Tz, free: &[Slot]) -> String {
    let local = |t: DateTime<Utc>| t.with_timezone(&zone).format("%Y-%m-%d %H:%M").to_string();
    let nearest = if free.is_empty() {
        "no slot is free nearby".to_owned()
    } else {
        let starts: Vec<String> = free.iter().map(|s| local(s.start)).collect();
        format!("the nearest free slots start at {}", starts.join(", "))
    };
    format!(
        "scheduleDate: the slot {}–{} ({}) of skill {skill} is full ({} booked); {nearest} (see suggestions)",
        local(slot.start),
        slot.end.with_timezone(&zone).format("%H:%M"),
        zone.name(),
        slot.capacity
    )
}

/// The free slots nearest to `wanted` (earlier or later), nearest first, at most `n`;
/// none that ended by `now`. `booked` says how many a slot already holds.
pub fn nearest_free(
    wanted: DateTime<Utc>,
    candidates: &[Slot],
    booked: impl Fn(DateTime<Utc>) -> u32,
    now: DateTime<Utc>,
    n: usize,
) -> Vec<Slot> {
    let mut free: Vec<Slot> = candidates
        .iter()
        .copied()
        .filter(|s| s.end > now && booked(s.start) < s.capacity)
        .collect();
    // Ties go to the later slot: a callback moved later is better than one made early.
    free.sort_by_key(|s| ((s.start - wanted).num_seconds().abs(), s.start < wanted));
    free.truncate(n);
    free
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).expect("time").to_utc()
    }

    fn policy(by_hour: &[(&str, u32)]) -> SlotPolicy {
        let by_hour: BTreeMap<String, u32> =
            by_hour.iter().map(|(k, v)| (k.to_string(), *v)).collect();
        SlotPolicy::new(Some(15), Some(5), Some(&by_hour))
            .expect("valid")
            .expect("slots")
    }

    #[test]
    fn slots_align_on_local_midnight_and_take_their_hours_capacity() {
        let london: Tz = "Europe/London".parse().expect("zone");
        let p = policy(&[("thu 09", 2)]);
        // 2026-11-26 is a Thursday; London is on UTC in November.
        let slot = p.slot_at(at("2026-11-26T09:37:12Z"), london);
        assert_eq!(slot.start, at("2026-11-26T09:30:00Z"));
        assert_eq!(slot.end, at("2026-11-26T09:45:00Z"));
        assert_eq!(slot.capacity, 2, "thursday 09:xx");
        assert_eq!(p.slot_at(at("2026-11-26T10:00:00Z"), london).capacity, 5);
        let tokyo: Tz = "Asia/Tokyo".parse().expect("zone");
        assert_eq!(
            p.slot_at(at("2026-11-26T00:05:00Z"), tokyo).start,
            at("2026-11-26T00:00:00Z"),
            "09:00 in Tokyo"
        );
        assert_eq!(p.by_hour_json().expect("json")["thu 09"], 2);
    }

    #[test]
    fn slots_are_listed_within_calling_hours_only() {
        let london: Tz = "Europe/London".parse().expect("zone");
        let hours = CallingHours::parse(&BTreeMap::from([(
            "thu".to_string(),
            vec!["09:00-10:00".to_string()],
        )]))
        .expect("hours");
        let slots = policy(&[]).slots(
            at("2026-11-26T08:00:00Z"),
            at("2026-11-26T12:00:00Z"),
            london,
            Some(&hours),
            None,
        );
        let starts: Vec<String> = slots
            .iter()
            .map(|s| s.start.format("%H:%M").to_string())
            .collect();
        assert_eq!(starts, ["09:00", "09:15", "09:30", "09:45"]);
    }

    #[test]
    fn the_nearest_free_slots_come_first_and_later_wins_a_tie() {
        let london: Tz = "Europe/London".parse().expect("zone");
        let p = policy(&[]);
        let slots = p.slots(
            at("2026-11-26T09:00:00Z"),
            at("2026-11-26T11:00:00Z"),
            london,
            None,
            None,
        );
        let full = [at("2026-11-26T10:00:00Z")];
        let booked = |s| if full.contains(&s) { 5 } else { 0 };
        let nearest = nearest_free(
            at("2026-11-26T10:00:00Z"),
            &slots,
            booked,
            at("2026-11-26T08:00:00Z"),
            3,
        );
        let starts: Vec<String> = nearest
            .iter()
            .map(|s| s.start.format("%H:%M").to_string())
            .collect();
        assert_eq!(starts, ["10:15", "09:45", "10:30"]);
        // Slots already over are never offered.
        let late = nearest_free(
            at("2026-11-26T10:00:00Z"),
            &slots,
            booked,
            at("2026-11-26T09:50:00Z"),
            1,
        );
        assert_eq!(late[0].start, at("2026-11-26T10:15:00Z"));
    }

    #[test]
    fn a_policy_needs_both_fields_and_whole_slots_a_day() {
        assert_eq!(SlotPolicy::new(None, None, None), Ok(None));
        assert_eq!(
            SlotPolicy::new(Some(15), None, None),
            Err(SlotPolicyError::Half)
        );
        assert_eq!(
            SlotPolicy::new(Some(7), Some(1), None),
            Err(SlotPolicyError::Minutes(7))
        );
        let bad = BTreeMap::from([("monday 9".to_string(), 1)]);
        assert!(matches!(
            SlotPolicy::new(Some(15), Some(1), Some(&bad)),
            Err(SlotPolicyError::Hour(_))
        ));
    }
}
