//! Which callbacks a list or a bulk change selects, as a caller sends it: the filters are
//! read once here for the API, the console and the bulk change alike.

use chrono::{DateTime, Utc};

use super::{AppError, require_skill};
use crate::domain::{IdError, PhoneNumber, SecurityUser, SkillId};
use crate::store::CallbackFilter;

/// The filters of a list, or of a bulk change, as sent.
#[derive(Debug, Clone, Copy, Default)]
pub struct Selection<'a> {
    pub state: Option<&'a str>,
    pub skill_id: Option<&'a str>,
    pub agent_id: Option<&'a str>,
    pub due_before: Option<&'a str>,
    pub due_after: Option<&'a str>,
    /// Numbers, as a create takes them (national ones read in `schedule.default_region`).
    pub phone_number: Option<&'a str>,
    pub caller_id: Option<&'a str>,
    pub orig_number: Option<&'a str>,
}

impl Selection<'_> {
    /// The store's filter, within the skills `user` may use: naming another skill is
    /// [`AppError::Denied`], a value that cannot be read [`AppError::Malformed`] naming it.
    pub fn filter(
        &self,
        user: &SecurityUser,
        region: phonenumber::country::Id,
    ) -> Result<CallbackFilter, AppError> {
        let number = |field: &'static str, value: Option<&str>| {
            value
                .map(|v| {
                    PhoneNumber::parse_field(field, v, region)
                        .map(|n| n.as_str().to_owned())
                        .map_err(|e| AppError::Malformed(e.to_string()))
                })
                .transpose()
        };
        let skill_id = self
            .skill_id
            .map(str::parse::<SkillId>)
            .transpose()
            .map_err(|e| AppError::Malformed(e.to_string()))?;
        if let Some(skill) = skill_id {
            require_skill(user, skill)?;
        }
        Ok(CallbackFilter {
            state: self
                .state
                .map(str::parse)
                .transpose()
                .map_err(AppError::Malformed)?,
            skill_id,
            agent_id: self
                .agent_id
                .map(str::parse)
                .transpose()
                .map_err(|e: IdError| AppError::Malformed(e.to_string()))?,
            due_before: instant("dueBefore", self.due_before)?,
            due_after: instant("dueAfter", self.due_after)?,
            allowed_skills: user.skills.clone(),
            after: None,
            by_priority: false,
            after_priority: None,
            limit: 0,
            phone_number: number("phoneNumber", self.phone_number)?,
            last_name_prefix: None,
            caller_id: number("callerId", self.caller_id)?,
            orig_number: number("origNumber", self.orig_number)?,
        })
    }
}

/// An RFC 3339 instant named by its field.
pub fn instant(name: &str, value: Option<&str>) -> Result<Option<DateTime<Utc>>, AppError> {
    value
        .map(|v| {
            DateTime::parse_from_rfc3339(v)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|_| {
                    AppError::Malformed(format!(
                        "{name} `{v}` is not an RFC 3339 date-time such as 2026-11-25T14:30:00Z"
                    ))
                })
        })
        .transpose()
}
