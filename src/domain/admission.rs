//! Per-number admission: what a create for a number that already has callbacks in a skill
//! gets — a second callback (`allow`), the pending one it already has (`existing`), or a
//! refusal (`refuse`) — and how many pending callbacks and creates a day a number may have
//! in a skill. A customer pressing "call me back" five times gets one call.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::{CallbackId, PhoneNumber, RequestError, SkillId};

/// What a create for a number that already has a pending callback in the skill gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DuplicatePolicy {
    /// Another callback.
    #[default]
    Allow,
    /// The pending one, answered again; nothing new is written.
    Existing,
    /// Refused (`InvalidPhoneNumber`).
    Refuse,
}

impl DuplicatePolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Allow => "allow",
            Self::Existing => "existing",
            Self::Refuse => "refuse",
        }
    }
}

impl FromStr for DuplicatePolicy {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "allow" => Ok(Self::Allow),
            "existing" => Ok(Self::Existing),
            "refuse" => Ok(Self::Refuse),
            other => Err(format!(
                "duplicatePolicy `{other}` is not one of allow, existing, refuse"
            )),
        }
    }
}

impl fmt::Display for DuplicatePolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The admission rules a create is judged by: the skill's, else the configured defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NumberAdmission {
    pub duplicates: DuplicatePolicy,
    /// Pending callbacks one number may have in the skill at once (`None`: no limit).
    pub max_pending: Option<u32>,
    /// Creates one number may have in the skill per calendar day of the skill's zone.
    pub max_per_day: Option<u32>,
}

/// What the store found for a number in a skill, under the lock that serialises its
/// creates.
#[derive(Debug, Clone, Copy)]
pub struct NumberFacts {
    /// Its earliest-due pending callback, if any.
    pub first_pending: Option<CallbackId>,
    pub pending: u32,
    /// Creates admitted today before this one.
    pub created_today: u32,
}

/// What a create becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admitted {
    /// A new callback.
    New,
    /// The number's pending callback, answered instead.
    Existing(CallbackId),
}

impl NumberAdmission {
    /// Nothing to judge: every create is admitted without a look at the number's others
    /// (and may be written with other creates in one group).
    pub fn is_open(&self) -> bool {
        self.duplicates == DuplicatePolicy::Allow
            && self.max_pending.is_none()
            && self.max_per_day.is_none()
    }

    /// Judges a create for `number` in `skill` by what the store found.
    pub fn judge(
        &self,
        number: &PhoneNumber,
        skill: SkillId,
        facts: NumberFacts,
    ) -> Result<Admitted, RequestError> {
        let refused = |limit: String| RequestError::NumberNotAdmitted {
            number: number.masked(),
            skill,
            limit,
        };
        if let Some(existing) = facts.first_pending {
            match self.duplicates {
                DuplicatePolicy::Existing => return Ok(Admitted::Existing(existing)),
                DuplicatePolicy::Refuse => {
                    return Err(refused(format!(
                        "it already has a pending callback ({existing}) and the skill's duplicatePolicy is refuse"
                    )));
                }
                DuplicatePolicy::Allow => {}
            }
        }
        if let Some(max) = self.max_pending
            && facts.pending >= max
        {
            return Err(refused(format!(
                "it has {} pending callbacks, the skill's maxPendingPerNumber is {max}",
                facts.pending
            )));
        }
        if let Some(max) = self.max_per_day
            && facts.created_today >= max
        {
            return Err(refused(format!(
                "it had {} callbacks created today, the skill's maxCreatesPerNumberPerDay is {max}",
                facts.created_today
            )));
        }
        Ok(Admitted::New)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn number() -> PhoneNumber {
        PhoneNumber::parse("+442079460958", phonenumber::country::Id::GB).expect("number")
    }

    fn facts(first: bool, pending: u32, today: u32) -> NumberFacts {
        NumberFacts {
            first_pending: first.then(CallbackId::generate),
            pending,
            created_today: today,
        }
    }

    fn skill() -> SkillId {
        SkillId::new(101).expect("id")
    }

    #[test]
    fn allow_with_no_limits_is_open_and_admits_everything() {
        let open = NumberAdmission::default();
        assert!(open.is_open());
        assert_eq!(
            open.judge(&number(), skill(), facts(true, 50, 50)).ok(),
            Some(Admitted::New)
        );
    }

    #[test]
    fn existing_answers_the_pending_callback_and_refuse_refuses() {
        let existing = NumberAdmission {
            duplicates: DuplicatePolicy::Existing,
            ..NumberAdmission::default()
        };
        let f = facts(true, 1, 1);
        assert_eq!(
            existing.judge(&number(), skill(), f).ok(),
            f.first_pending.map(Admitted::Existing)
        );
        assert_eq!(
            existing.judge(&number(), skill(), facts(false, 0, 3)).ok(),
            Some(Admitted::New)
        );
        let refuse = NumberAdmission {
            duplicates: DuplicatePolicy::Refuse,
            ..NumberAdmission::default()
        };
        let e = refuse
            .judge(&number(), skill(), f)
            .expect_err("refused")
            .to_string();
        assert!(e.contains("duplicatePolicy") && e.contains("+44"), "{e}");
        assert!(!e.contains("2079460958"), "the number is masked: {e}");
    }

    #[test]
    fn the_limits_name_themselves() {
        let limited = NumberAdmission {
            max_pending: Some(2),
            max_per_day: Some(3),
            ..NumberAdmission::default()
        };
        assert!(!limited.is_open());
        assert_eq!(
            limited.judge(&number(), skill(), facts(true, 1, 2)).ok(),
            Some(Admitted::New)
        );
        let e = limited
            .judge(&number(), skill(), facts(true, 2, 2))
            .expect_err("pending")
            .to_string();
        assert!(e.contains("maxPendingPerNumber is 2"), "{e}");
        let e = limited
            .judge(&number(), skill(), facts(false, 0, 3))
            .expect_err("per day")
            .to_string();
        assert!(e.contains("maxCreatesPerNumberPerDay is 3"), "{e}");
    }
}
