//! Do-not-call suppression: numbers that must not be called, for every skill or for one,
//! until an optional expiry. Checked when a callback is booked and again when it is due
//! (the number may have been added in between).

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{PhoneNumber, SecurityUser, SkillId, TextField, TextFieldError};

/// A do-not-call entry as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DncEntry {
    pub phone_number: PhoneNumber,
    /// `None`: every skill.
    pub skill_id: Option<SkillId>,
    pub reason: String,
    /// `None`: until removed.
    pub expires_at: Option<DateTime<Utc>>,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// The entry that stops a callback: the scope and the reason it was listed with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Suppression {
    /// `None`: listed for every skill.
    pub skill_id: Option<SkillId>,
    pub reason: String,
}

impl Suppression {
    /// Said to the caller (on a create) and recorded in the callback's events (at dispatch).
    pub fn describe(&self, phone_number: &str) -> String {
        let scope = match self.skill_id {
            Some(skill) => format!("for skill {skill}"),
            None => "for every skill".to_owned(),
        };
        if self.reason.is_empty() {
            format!("phoneNumber {phone_number} is on the do-not-call list ({scope})")
        } else {
            format!(
                "phoneNumber {phone_number} is on the do-not-call list ({scope}): {}",
                self.reason
            )
        }
    }
}

/// A listing as asked for: the number (already parsed), a scope, a reason, an expiry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDncEntry {
    pub phone_number: PhoneNumber,
    pub skill_id: Option<SkillId>,
    pub reason: String,
    pub expires_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DncError {
    #[error(transparent)]
    Text(#[from] TextFieldError),
    #[error("expiresAt {} is not in the future", .0.to_rfc3339())]
    ExpiryInPast(DateTime<Utc>),
}

impl NewDncEntry {
    /// The rules of a listing: a reason of at most 500 characters and an expiry, if any,
    /// still to come (an entry that has already lapsed would suppress nothing).
    pub fn new(
        phone_number: PhoneNumber,
        skill_id: Option<SkillId>,
        reason: Option<String>,
        expires_at: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<Self, DncError> {
        let reason = reason.unwrap_or_default().trim().to_owned();
        TextField::check("reason", &reason, TextField::REASON_MAX)?;
        if let Some(at) = expires_at.filter(|at| *at <= now) {
            return Err(DncError::ExpiryInPast(at));
        }
        Ok(Self {
            phone_number,
            skill_id,
            reason,
            expires_at,
        })
    }
}

/// Who may change the list for a scope (`None`: every skill): a user restricted to some
/// skills, only for those.
pub fn check_dnc_scope(user: &SecurityUser, skill: Option<SkillId>) -> Result<(), String> {
    match skill {
        Some(skill) if !user.may_use_skill(skill) => Err(format!(
            "security user `{}` may not use skill {skill}",
            user.name
        )),
        None if user.skills.is_some() => Err(format!(
            "security user `{}` is restricted to some skills and may not list a number for every skill; give skillId",
            user.name
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn phone() -> PhoneNumber {
        PhoneNumber::from_stored("+442079460958".into())
    }

    #[test]
    fn a_listing_needs_a_future_expiry_and_a_short_reason() {
        let now = Utc::now();
        let past = now - chrono::Duration::seconds(1);
        assert_eq!(
            NewDncEntry::new(phone(), None, None, Some(past), now),
            Err(DncError::ExpiryInPast(past))
        );
        assert!(NewDncEntry::new(phone(), None, Some("x".repeat(501)), None, now).is_err());
        let entry =
            NewDncEntry::new(phone(), None, Some("  asked  ".into()), None, now).expect("valid");
        assert_eq!(entry.reason, "asked");
    }

    #[test]
    fn the_description_names_the_scope_and_the_reason() {
        let global = Suppression {
            skill_id: None,
            reason: String::new(),
        };
        assert_eq!(
            global.describe("+442079460958"),
            "phoneNumber +442079460958 is on the do-not-call list (for every skill)"
        );
        let one = Suppression {
            skill_id: Some(SkillId::new(101).expect("id")),
            reason: "asked not to be called".into(),
        };
        assert!(
            one.describe("+1")
                .ends_with("(for skill 101): asked not to be called"),
            "{}",
            one.describe("+1")
        );
    }
}
