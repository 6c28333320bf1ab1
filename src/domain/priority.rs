//! Priority with ageing: where callbacks compete for a gate's room, the highest effective
//! priority goes first, then the earliest due. A callback's base priority is its own, else
//! its skill's initial priority when it was created; it gains the skill's acceleration per
//! minute past due, up to the skill's maximum.

use std::cmp::Ordering;

use chrono::{DateTime, Utc};

use super::{Callback, Skill};

/// Priorities run from 0 to this (the highest).
pub const PRIORITY_MAX: u32 = 1000;

/// A skill's priority rules (each `None`: 0 initial, no ageing, the maximum 1000).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PriorityRules {
    pub initial: Option<u32>,
    /// Points gained per minute past due.
    pub acceleration: Option<u32>,
    pub max: Option<u32>,
}

impl PriorityRules {
    /// The effective priority of a callback of base priority `base` due at `due_at`, at
    /// `now`, as a real number (for ordering; the store ranks by the same formula).
    pub fn effective(&self, base: u32, due_at: DateTime<Utc>, now: DateTime<Utc>) -> f64 {
        let minutes = ((now - due_at).num_milliseconds().max(0) as f64) / 60_000.0;
        let aged = f64::from(base) + f64::from(self.acceleration.unwrap_or(0)) * minutes;
        aged.min(f64::from(self.max.unwrap_or(PRIORITY_MAX)))
    }
}

/// A callback's effective priority at `now`, as a whole number (what its message says).
pub fn effective_priority(callback: &Callback, skill: &Skill, now: DateTime<Utc>) -> u32 {
    let p = skill
        .policy
        .routing
        .priority
        .effective(callback.priority, callback.due_at, now);
    // In range by construction: base ≤ 1000, capped by a maximum ≤ 1000.
    p.floor().clamp(0.0, f64::from(PRIORITY_MAX)) as u32
}

/// The AMQP `priority` property (0–9) of an effective priority (0–1000): tenths, rounded
/// down, 1000 in the top one.
pub fn amqp_priority(effective: u32) -> u8 {
    (effective.min(PRIORITY_MAX) * 10 / (PRIORITY_MAX + 1)) as u8
}

/// The order competing callbacks go in: highest effective priority first, then the
/// earliest due, then the id (stable across daemons).
pub fn compete(a: (&Callback, &Skill), b: (&Callback, &Skill), now: DateTime<Utc>) -> Ordering {
    let pa =
        a.1.policy
            .routing
            .priority
            .effective(a.0.priority, a.0.due_at, now);
    let pb =
        b.1.policy
            .routing
            .priority
            .effective(b.0.priority, b.0.due_at, now);
    pb.total_cmp(&pa)
        .then(a.0.due_at.cmp(&b.0.due_at))
        .then(a.0.id.cmp(&b.0.id))
}

/// A priority as a request gives it: 0 to 1000.
pub fn check_priority(field: &str, value: i64) -> Result<u32, String> {
    u32::try_from(value)
        .ok()
        .filter(|p| *p <= PRIORITY_MAX)
        .ok_or_else(|| format!("{field}: {value} is out of range 0 to {PRIORITY_MAX}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(minutes: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + minutes * 60, 0).expect("instant")
    }

    #[test]
    fn priority_ages_up_to_its_maximum() {
        let rules = PriorityRules {
            initial: Some(10),
            acceleration: Some(5),
            max: Some(100),
        };
        assert_eq!(rules.effective(10, at(0), at(0)), 10.0);
        assert_eq!(rules.effective(10, at(0), at(4)), 30.0);
        assert_eq!(rules.effective(10, at(0), at(60)), 100.0, "capped");
        assert_eq!(
            rules.effective(10, at(5), at(0)),
            10.0,
            "not yet due: no ageing"
        );
        let none = PriorityRules::default();
        assert_eq!(none.effective(700, at(0), at(600)), 700.0);
    }

    #[test]
    fn amqp_priorities_span_zero_to_nine() {
        assert_eq!(amqp_priority(0), 0);
        assert_eq!(amqp_priority(99), 0);
        assert_eq!(amqp_priority(100), 0);
        assert_eq!(amqp_priority(101), 1);
        assert_eq!(amqp_priority(500), 4);
        assert_eq!(amqp_priority(999), 9);
        assert_eq!(amqp_priority(1000), 9);
    }

    #[test]
    fn priorities_are_checked() {
        assert_eq!(check_priority("priority", 0), Ok(0));
        assert_eq!(check_priority("priority", 1000), Ok(1000));
        assert!(check_priority("priority", 1001).is_err());
        assert!(check_priority("priority", -1).is_err());
    }
}
