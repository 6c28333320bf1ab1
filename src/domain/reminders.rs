//! Reminders before a callback: a skill may ask for a few (say 24 hours and 1 hour before
//! the due time), each published as a `reminder` event for a notifier that sends the SMS
//! or e-mail. None goes to a callback no longer pending, inside the skill's closed hours
//! (it waits for the opening, if that comes before the call), or to a number on the
//! do-not-call list; one whose time had passed when the callback was booked is skipped
//! (the booking's confirmation covers it), and of several whose time has passed only the
//! latest goes.

use chrono::{DateTime, Duration, Utc};
use chrono_tz::Tz;
use serde_json::{Value, json};

use super::{PhoneNumber, SkillId};

pub const MAX_REMINDERS: usize = 3;
/// The earliest reminder: a week before.
pub const MAX_REMINDER_SECONDS: u32 = 7 * 24 * 3600;
/// The latest reminder: a minute before.
const MIN_REMINDER_SECONDS: u32 = 60;

/// A skill's `reminders` (seconds before the due time): at most three, distinct, a minute
/// to a week; kept earliest first.
pub fn check_reminders(raw: &[i64]) -> Result<Vec<u32>, String> {
    if raw.len() > MAX_REMINDERS {
        return Err(format!(
            "reminders: at most {MAX_REMINDERS}, not {}",
            raw.len()
        ));
    }
    let mut offsets = Vec::with_capacity(raw.len());
    for r in raw {
        let seconds = u32::try_from(*r)
            .ok()
            .filter(|s| (MIN_REMINDER_SECONDS..=MAX_REMINDER_SECONDS).contains(s))
            .ok_or_else(|| {
                format!(
                    "reminders: {r} is out of range; each is {MIN_REMINDER_SECONDS} to {MAX_REMINDER_SECONDS} seconds before the due time"
                )
            })?;
        if offsets.contains(&seconds) {
            return Err(format!("reminders: {seconds} is listed twice"));
        }
        offsets.push(seconds);
    }
    offsets.sort_unstable_by(|a, b| b.cmp(a));
    Ok(offsets)
}

/// What the reminder timer knows of one pending callback.
#[derive(Debug, Clone, Copy)]
pub struct ReminderFacts {
    pub due_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    /// How many of the skill's reminders (earliest first) are done: sent or skipped.
    pub done: usize,
    /// The skill's calling hours are open now, in the contact's zone.
    pub open_now: bool,
    /// The number is on the do-not-call list for the skill.
    pub suppressed: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReminderStep {
    /// Nothing to do now.
    Wait,
    /// Send reminder `index`; `done` of them are then done.
    Send { index: usize, done: usize },
    /// Mark `done` of them done without sending.
    Skip { done: usize },
}

/// The next step for a callback, given its skill's reminders (earliest first).
pub fn next_reminder(offsets: &[u32], facts: ReminderFacts, now: DateTime<Utc>) -> ReminderStep {
    let at = |i: usize| facts.due_at - Duration::seconds(i64::from(offsets[i]));
    let Some(latest) = (facts.done..offsets.len()).rev().find(|i| at(*i) <= now) else {
        return ReminderStep::Wait;
    };
    let done = latest + 1;
    if facts.suppressed || at(latest) <= facts.created_at || facts.due_at <= now {
        return ReminderStep::Skip { done };
    }
    if !facts.open_now {
        return ReminderStep::Wait;
    }
    ReminderStep::Send {
        index: latest,
        done,
    }
}

/// Who a reminder is for: what a notifier needs to write the message.
#[derive(Debug, Clone)]
pub struct ReminderFor<'a> {
    pub skill_id: SkillId,
    pub phone_number: &'a PhoneNumber,
    pub first_name: &'a str,
    pub last_name: &'a str,
    pub due_at: DateTime<Utc>,
    /// The contact's zone (the callback's, else the skill's, else the default).
    pub zone: Tz,
}

/// The `reminder` event's details.
pub fn reminder_details(r: &ReminderFor<'_>, seconds_before: u32) -> Value {
    json!({
        "reminderSeconds": seconds_before,
        "skillId": r.skill_id,
        "phoneNumber": r.phone_number.as_str(),
        "firstName": r.first_name,
        "lastName": r.last_name,
        "dueAt": r.due_at,
        "timeZone": r.zone.name(),
        "localDueAt": r.due_at.with_timezone(&r.zone).format("%Y-%m-%dT%H:%M:%S").to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .expect("time")
            .with_timezone(&Utc)
    }

    fn facts(done: usize) -> ReminderFacts {
        ReminderFacts {
            due_at: t("2026-12-10T14:00:00Z"),
            created_at: t("2026-12-01T09:00:00Z"),
            done,
            open_now: true,
            suppressed: false,
        }
    }

    #[test]
    fn reminders_are_checked_and_kept_earliest_first() {
        assert_eq!(check_reminders(&[3600, 86400]), Ok(vec![86400, 3600]));
        assert!(check_reminders(&[3600, 3600]).is_err());
        assert!(check_reminders(&[30]).is_err());
        assert!(check_reminders(&[60, 120, 180, 240]).is_err());
    }

    #[test]
    fn each_reminder_goes_once_at_its_time_and_only_the_latest_of_several() {
        let offsets = [86400, 3600];
        assert_eq!(
            next_reminder(&offsets, facts(0), t("2026-12-09T13:00:00Z")),
            ReminderStep::Wait
        );
        assert_eq!(
            next_reminder(&offsets, facts(0), t("2026-12-09T14:00:01Z")),
            ReminderStep::Send { index: 0, done: 1 }
        );
        assert_eq!(
            next_reminder(&offsets, facts(1), t("2026-12-10T12:00:00Z")),
            ReminderStep::Wait
        );
        // Both passed (the daemon was away): only the hour-before one.
        assert_eq!(
            next_reminder(&offsets, facts(0), t("2026-12-10T13:30:00Z")),
            ReminderStep::Send { index: 1, done: 2 }
        );
        let closed = ReminderFacts {
            open_now: false,
            ..facts(0)
        };
        assert_eq!(
            next_reminder(&offsets, closed, t("2026-12-09T20:00:00Z")),
            ReminderStep::Wait
        );
        let listed = ReminderFacts {
            suppressed: true,
            ..facts(0)
        };
        assert_eq!(
            next_reminder(&offsets, listed, t("2026-12-09T20:00:00Z")),
            ReminderStep::Skip { done: 1 }
        );
        let booked_late = ReminderFacts {
            created_at: t("2026-12-10T13:30:00Z"),
            ..facts(0)
        };
        assert_eq!(
            next_reminder(&offsets, booked_late, t("2026-12-10T13:30:05Z")),
            ReminderStep::Skip { done: 2 }
        );
    }
}
