//! The directory mirrored from the contact-center platform: skills and agents.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use super::{AgentId, SkillId};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MediaType {
    Phone,
    Chat,
    Email,
    Sms,
    Voicemail,
    WorkItem,
    Digital,
}

impl MediaType {
    pub const ALL: [MediaType; 7] = [
        Self::Phone,
        Self::Chat,
        Self::Email,
        Self::Sms,
        Self::Voicemail,
        Self::WorkItem,
        Self::Digital,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Phone => "phone",
            Self::Chat => "chat",
            Self::Email => "email",
            Self::Sms => "sms",
            Self::Voicemail => "voicemail",
            Self::WorkItem => "work_item",
            Self::Digital => "digital",
        }
    }
}

impl FromStr for MediaType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL.into_iter().find(|m| m.as_str() == s).ok_or_else(|| {
            format!(
                "`{s}` is not a media type; expected one of phone, chat, email, sms, voicemail, work_item, digital"
            )
        })
    }
}

impl fmt::Display for MediaType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Inbound,
    Outbound,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Inbound => "inbound",
            Self::Outbound => "outbound",
        }
    }
}

impl FromStr for Direction {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "inbound" => Ok(Self::Inbound),
            "outbound" => Ok(Self::Outbound),
            _ => Err(format!(
                "`{s}` is not a direction; expected inbound or outbound"
            )),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SkillError {
    #[error("skill {0} does not exist")]
    Unknown(SkillId),
    #[error("skill {0} is not active")]
    Inactive(SkillId),
    #[error("skill {id} is a {media_type} {direction} skill, not an outbound phone skill")]
    NotOutboundPhone {
        id: SkillId,
        media_type: MediaType,
        direction: &'static str,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Skill {
    pub id: SkillId,
    pub name: String,
    pub media_type: MediaType,
    pub direction: Direction,
    pub active: bool,
    pub time_zone: Option<Tz>,
    pub policy: SkillPolicy,
}

/// A skill's own rules for its callbacks; `None` takes the configured default.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SkillPolicy {
    /// When its contacts may be called, in the contact's time zone (else the skill's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calling_hours: Option<super::CallingHours>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_backoff_seconds: Option<Vec<u32>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_attempts: Option<u32>,
    /// 0: wait for the target agent forever.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_fallback_seconds: Option<u32>,
    /// A callback without `expiresAt` expires this long after it is due.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_ttl_seconds: Option<u32>,
    /// A published callback with no final outcome this long after publication fails.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome_deadline_seconds: Option<u32>,
    /// At most this many of its callbacks published and not finished at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_in_flight: Option<u32>,
    /// At most this many publications a minute, spread evenly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_per_minute: Option<u32>,
    /// Bookable slots, when the skill has them.
    #[serde(skip)]
    pub slots: Option<super::SlotPolicy>,
    /// Numbers, caller ID and per-number admission.
    #[serde(skip)]
    pub routing: SkillRouting,
    /// The calendar named by `routing.calendar`, as it is now.
    #[serde(skip)]
    pub calendar: Option<super::Calendar>,
}

impl SkillPolicy {
    /// The one reading of when this skill's callbacks may be called, at `at`, in the
    /// contact's `zone`: the weekly calling hours and the calendar's dates.
    pub fn opening(&self, at: DateTime<Utc>, zone: Tz) -> super::Opening {
        super::opening_with(
            self.calling_hours.as_ref(),
            self.calendar.as_ref(),
            at,
            zone,
        )
    }
}

/// A skill's rules for the numbers of its callbacks; `None` takes the configured default.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SkillRouting {
    /// The country a national number (no `+`) is read in.
    pub default_region: Option<phonenumber::country::Id>,
    /// The number its customers see when called, for a callback that names none.
    pub caller_id: Option<super::PhoneNumber>,
    pub duplicate_policy: Option<super::DuplicatePolicy>,
    pub max_pending_per_number: Option<u32>,
    pub max_creates_per_number_per_day: Option<u32>,
    /// The name of its calendar of closed dates and special hours.
    pub calendar: Option<String>,
    pub priority: super::PriorityRules,
    /// How long past its due time a callback with target agents waits for them, when it
    /// names no ownership of its own (none: until one of them takes it).
    pub ownership_seconds: Option<u32>,
    /// Reminders before its callbacks, in seconds before the due time, earliest first.
    pub reminders: Vec<u32>,
    /// Its dispatch is paused: due callbacks stay pending, held at the skill's gate.
    pub paused: Option<SkillPause>,
}

/// Who paused a skill's dispatch, when and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkillPause {
    pub at: DateTime<Utc>,
    pub by: String,
    pub reason: String,
}

impl SkillRouting {
    /// The country national numbers are read in for this skill.
    pub fn region(&self, rules: &super::ScheduleRules) -> phonenumber::country::Id {
        self.default_region.unwrap_or(rules.default_region)
    }

    /// The per-number admission rules a create in this skill is judged by.
    pub fn admission(&self, rules: &super::ScheduleRules) -> super::NumberAdmission {
        let d = rules.admission;
        super::NumberAdmission {
            duplicates: self.duplicate_policy.unwrap_or(d.duplicates),
            max_pending: self.max_pending_per_number.or(d.max_pending),
            max_per_day: self.max_creates_per_number_per_day.or(d.max_per_day),
        }
    }
}

impl Skill {
    /// Callbacks are dialled, so only an active outbound phone skill can carry them.
    pub fn check_can_carry_callbacks(&self) -> Result<(), SkillError> {
        if !self.active {
            return Err(SkillError::Inactive(self.id));
        }
        if self.media_type != MediaType::Phone || self.direction != Direction::Outbound {
            return Err(SkillError::NotOutboundPhone {
                id: self.id,
                media_type: self.media_type,
                direction: self.direction.as_str(),
            });
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Agent {
    pub id: AgentId,
    pub username: String,
    pub active: bool,
    /// How people call the agent ("Jane Doe"); empty: the username.
    pub name: String,
    /// The skills the agent takes, for pickers to list first (not a routing rule: a
    /// callback may name any active agent).
    pub skills: Vec<SkillId>,
}

impl Agent {
    /// The name to show: the display name, else the username.
    pub fn shown_name(&self) -> &str {
        if self.name.is_empty() {
            &self.username
        } else {
            &self.name
        }
    }
}

/// The most skills an agent lists.
const AGENT_SKILLS_MAX: usize = 1000;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DirectoryInputError {
    #[error("id {body} in the body does not match id {path} in the path")]
    IdMismatch { path: i64, body: i64 },
    #[error("id is missing")]
    MissingId,
    #[error("timeZone `{0}` is not an IANA time zone name such as Europe/London")]
    TimeZone(String),
    #[error(transparent)]
    Text(#[from] super::TextFieldError),
    #[error("{0}")]
    Policy(String),
    #[error("skillIds: at most {0} skills")]
    TooManySkills(usize),
}

const DIRECTORY_NAME_MAX: usize = 200;

/// A skill as the API's `PUT` and the import file give it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SkillInput {
    #[serde(default)]
    pub id: Option<SkillId>,
    pub name: String,
    pub media_type: MediaType,
    pub direction: Direction,
    pub active: bool,
    #[serde(default)]
    pub time_zone: Option<String>,
    #[serde(default)]
    pub calling_hours: Option<super::CallingHours>,
    #[serde(default)]
    pub retry_backoff_seconds: Option<Vec<u32>>,
    #[serde(default)]
    pub max_attempts: Option<u32>,
    #[serde(default)]
    pub agent_fallback_seconds: Option<u32>,
    #[serde(default)]
    pub default_ttl_seconds: Option<u32>,
    #[serde(default)]
    pub outcome_deadline_seconds: Option<u32>,
    #[serde(default)]
    pub max_in_flight: Option<u32>,
    #[serde(default)]
    pub max_per_minute: Option<u32>,
    #[serde(default)]
    pub slot_minutes: Option<u32>,
    #[serde(default)]
    pub slot_capacity: Option<u32>,
    #[serde(default)]
    pub slot_capacity_by_hour: Option<std::collections::BTreeMap<String, u32>>,
    /// ISO 3166 country code (`GB`) national numbers are read in.
    #[serde(default)]
    pub default_region: Option<String>,
    /// E.164, or a number of `defaultRegion`.
    #[serde(default)]
    pub caller_id: Option<String>,
    #[serde(default)]
    pub duplicate_policy: Option<super::DuplicatePolicy>,
    #[serde(default)]
    pub max_pending_per_number: Option<u32>,
    #[serde(default)]
    pub max_creates_per_number_per_day: Option<u32>,
    /// The name of a calendar (`PUT /v1/calendars/{name}`).
    #[serde(default)]
    pub calendar: Option<String>,
    #[serde(default)]
    pub initial_priority: Option<i64>,
    #[serde(default)]
    pub priority_acceleration: Option<i64>,
    #[serde(default)]
    pub max_priority: Option<i64>,
    /// Default ownership of its callbacks with target agents, 1 s to a week.
    #[serde(default)]
    pub ownership_seconds: Option<i64>,
    /// Reminders before its callbacks: seconds before the due time (at most 3).
    #[serde(default)]
    pub reminders: Option<Vec<i64>>,
}

impl SkillInput {
    /// `path_id` is the id named by the URL, when there is one; the body's must agree.
    pub fn into_skill(self, path_id: Option<SkillId>) -> Result<Skill, DirectoryInputError> {
        let id = reconcile_id(path_id, self.id)?;
        super::TextField::check("name", &self.name, DIRECTORY_NAME_MAX)?;
        let time_zone = match self.time_zone.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(name) => Some(
                name.parse::<Tz>()
                    .map_err(|_| DirectoryInputError::TimeZone(name.to_owned()))?,
            ),
        };
        if self
            .retry_backoff_seconds
            .as_ref()
            .is_some_and(|b| b.is_empty() || b.contains(&0))
        {
            return Err(DirectoryInputError::Policy(
                "retryBackoffSeconds needs positive numbers of seconds".into(),
            ));
        }
        if self.max_attempts == Some(0) {
            return Err(DirectoryInputError::Policy(
                "maxAttempts must be at least 1".into(),
            ));
        }
        if self.default_ttl_seconds == Some(0) {
            return Err(DirectoryInputError::Policy(
                "defaultTtlSeconds must be at least 1".into(),
            ));
        }
        if self.outcome_deadline_seconds == Some(0) {
            return Err(DirectoryInputError::Policy(
                "outcomeDeadlineSeconds must be at least 1".into(),
            ));
        }
        if self.max_in_flight == Some(0) || self.max_per_minute == Some(0) {
            return Err(DirectoryInputError::Policy(
                "maxInFlight and maxPerMinute must be at least 1 (leave them out for no limit)"
                    .into(),
            ));
        }
        self.check_storable_numbers()?;
        if self.max_pending_per_number == Some(0) || self.max_creates_per_number_per_day == Some(0)
        {
            return Err(DirectoryInputError::Policy(
                "maxPendingPerNumber and maxCreatesPerNumberPerDay must be at least 1 (leave them out for no limit)"
                    .into(),
            ));
        }
        let default_region = match self.default_region.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(code) => Some(super::phone::region(code).ok_or_else(|| {
                DirectoryInputError::Policy(format!(
                    "defaultRegion: `{code}` is not an ISO 3166 country code (GB, US, DE…)"
                ))
            })?),
        };
        let caller_id = match self.caller_id.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(number) => Some(
                super::PhoneNumber::parse(
                    number,
                    default_region.unwrap_or(phonenumber::country::Id::US),
                )
                .map_err(|e| DirectoryInputError::Policy(format!("callerId: {e}")))?,
            ),
        };
        let routing = SkillRouting {
            default_region,
            caller_id,
            duplicate_policy: self.duplicate_policy,
            max_pending_per_number: self.max_pending_per_number,
            max_creates_per_number_per_day: self.max_creates_per_number_per_day,
            priority: super::PriorityRules {
                initial: checked_priority("initialPriority", self.initial_priority)?,
                acceleration: checked_priority("priorityAcceleration", self.priority_acceleration)?,
                max: checked_priority("maxPriority", self.max_priority)?,
            },
            ownership_seconds: self
                .ownership_seconds
                .map(|s| super::check_ownership("ownershipSeconds", s))
                .transpose()
                .map_err(DirectoryInputError::Policy)?,
            reminders: super::check_reminders(self.reminders.as_deref().unwrap_or_default())
                .map_err(DirectoryInputError::Policy)?,
            // A pause is not part of a skill's description: the store keeps it across a PUT.
            paused: None,
            calendar: match self.calendar.as_deref().map(str::trim) {
                None | Some("") => None,
                Some(name) => Some(
                    super::check_calendar_name(name)
                        .map_err(|e| DirectoryInputError::Policy(format!("calendar: {e}")))?
                        .to_owned(),
                ),
            },
        };
        let policy = SkillPolicy {
            routing,
            // The store reads the named calendar with the skill.
            calendar: None,
            calling_hours: self.calling_hours,
            retry_backoff_seconds: self.retry_backoff_seconds,
            max_attempts: self.max_attempts,
            agent_fallback_seconds: self.agent_fallback_seconds,
            default_ttl_seconds: self.default_ttl_seconds,
            outcome_deadline_seconds: self.outcome_deadline_seconds,
            max_in_flight: self.max_in_flight,
            max_per_minute: self.max_per_minute,
            slots: super::SlotPolicy::new(
                self.slot_minutes,
                self.slot_capacity,
                self.slot_capacity_by_hour.as_ref(),
            )
            .map_err(|e| DirectoryInputError::Policy(e.to_string()))?,
        };
        Ok(Skill {
            id,
            name: self.name,
            media_type: self.media_type,
            direction: self.direction,
            active: self.active,
            time_zone,
            policy,
        })
    }
}

/// An agent as the API's `PUT` and the import file give it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AgentInput {
    #[serde(default)]
    pub id: Option<AgentId>,
    pub username: String,
    pub active: bool,
    #[serde(default)]
    pub name: Option<String>,
    /// A list in JSON; in a CSV file, ids separated by spaces or semicolons.
    #[serde(default, deserialize_with = "skill_list")]
    pub skill_ids: Vec<SkillId>,
}

/// `[101, 102]`, or `"101;102"` / `"101 102"` (a CSV cell).
fn skill_list<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<SkillId>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum List {
        Ids(Vec<SkillId>),
        // A CSV cell holding one number reads as a number.
        One(SkillId),
        Text(String),
    }
    match List::deserialize(d)? {
        List::Ids(ids) => Ok(ids),
        List::One(id) => Ok(vec![id]),
        List::Text(text) => text
            .split([';', ' ', ','])
            .filter(|s| !s.is_empty())
            .map(|s| s.parse::<SkillId>().map_err(serde::de::Error::custom))
            .collect(),
    }
}

impl AgentInput {
    pub fn into_agent(self, path_id: Option<AgentId>) -> Result<Agent, DirectoryInputError> {
        let id = reconcile_id(path_id, self.id)?;
        super::TextField::check("username", &self.username, DIRECTORY_NAME_MAX)?;
        let name = self.name.unwrap_or_default();
        super::TextField::check("name", &name, DIRECTORY_NAME_MAX)?;
        let mut skills = self.skill_ids;
        skills.sort();
        skills.dedup();
        if skills.len() > AGENT_SKILLS_MAX {
            return Err(DirectoryInputError::TooManySkills(AGENT_SKILLS_MAX));
        }
        Ok(Agent {
            id,
            username: self.username,
            active: self.active,
            name,
            skills,
        })
    }
}

impl SkillInput {
    /// The store keeps a skill's rules as PostgreSQL `integer`s: a larger number is refused
    /// rather than wrapped into a negative one.
    fn check_storable_numbers(&self) -> Result<(), DirectoryInputError> {
        const MAX: u32 = i32::MAX as u32;
        let backoff = self.retry_backoff_seconds.iter().flatten().copied();
        let numbers = [
            ("maxAttempts", self.max_attempts),
            ("agentFallbackSeconds", self.agent_fallback_seconds),
            ("defaultTtlSeconds", self.default_ttl_seconds),
            ("outcomeDeadlineSeconds", self.outcome_deadline_seconds),
            ("maxInFlight", self.max_in_flight),
            ("maxPerMinute", self.max_per_minute),
            ("maxPendingPerNumber", self.max_pending_per_number),
            (
                "maxCreatesPerNumberPerDay",
                self.max_creates_per_number_per_day,
            ),
        ]
        .into_iter()
        .filter_map(|(name, value)| value.map(|v| (name, v)))
        .chain(backoff.map(|v| ("retryBackoffSeconds", v)));
        for (name, value) in numbers {
            if value > MAX {
                return Err(DirectoryInputError::Policy(format!(
                    "{name}: {value} is larger than the largest allowed, {MAX}"
                )));
            }
        }
        Ok(())
    }
}

fn checked_priority(field: &str, value: Option<i64>) -> Result<Option<u32>, DirectoryInputError> {
    value
        .map(|v| super::check_priority(field, v).map_err(DirectoryInputError::Policy))
        .transpose()
}

fn reconcile_id<T: Copy + PartialEq + Into<i64>>(
    path: Option<T>,
    body: Option<T>,
) -> Result<T, DirectoryInputError> {
    match (path, body) {
        (Some(p), Some(b)) if p != b => Err(DirectoryInputError::IdMismatch {
            path: p.into(),
            body: b.into(),
        }),
        (Some(id), _) | (None, Some(id)) => Ok(id),
        (None, None) => Err(DirectoryInputError::MissingId),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input() -> SkillInput {
        serde_json::from_value(serde_json::json!({
            "name": "s", "mediaType": "phone", "direction": "outbound", "active": true
        }))
        .expect("valid input")
    }

    #[test]
    fn rules_too_large_to_store_are_refused_not_wrapped() {
        let id = SkillId::new(1).ok();
        let mut big = input();
        big.max_attempts = Some(u32::MAX);
        let err = big.into_skill(id).expect_err("too large").to_string();
        assert!(
            err.contains("maxAttempts") && err.contains("4294967295"),
            "{err}"
        );
        let mut big = input();
        big.retry_backoff_seconds = Some(vec![60, 3_000_000_000]);
        assert!(big.into_skill(id).is_err());
        let mut fine = input();
        fine.agent_fallback_seconds = Some(i32::MAX as u32);
        assert!(fine.into_skill(id).is_ok());
    }
}
