//! Changing a pending callback: what a change may carry, the rules it is judged by (those
//! of a create, plus keeping the due time before the expiry), and what it changes.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use super::request::optional_number;
use super::{
    Agent, AgentId, Callback, DateError, PhoneNumber, RawId, RequestError, ScheduleRules, Skill,
    TextField, check_ownership, check_priority, check_target_agents, contact_zone, parse_time_zone,
    resolve_schedule_date,
};

/// A change as the API reads it. `target_agent_id`: absent, `Some(None)` (route to the
/// skill) or an id; `target_agent_ids`: absent, or the new list (empty: the skill).
#[derive(Debug, Clone, Default)]
pub struct ChangeInput {
    pub schedule_date: Option<String>,
    pub time_zone: Option<String>,
    pub notes: Option<String>,
    pub target_agent_id: Option<Option<RawId>>,
    pub target_agent_ids: Option<Vec<RawId>>,
    /// Absent: unchanged; `Some(None)`: no ownership (wait for the agents).
    pub ownership_seconds: Option<Option<i64>>,
    pub expires_at: Option<String>,
    /// Absent: unchanged; `Some(None)` (or blank): none.
    pub caller_id: Option<Option<String>>,
    /// 0 to 1000.
    pub priority: Option<i64>,
}

/// Why a person changed or cancelled callbacks, recorded in each event: at most 500
/// characters; required for bulk changes.
pub fn check_reason(reason: Option<&str>, required: bool) -> Result<Option<String>, RequestError> {
    match reason.map(str::trim).filter(|r| !r.is_empty()) {
        None if required => Err(RequestError::MissingReason),
        None => Ok(None),
        Some(reason) => {
            TextField::check("reason", reason, TextField::REASON_MAX)?;
            Ok(Some(reason.to_owned()))
        }
    }
}

/// What a change does; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Changes {
    /// New `(scheduled_for, due_at, time_zone)`.
    pub schedule: Option<(DateTime<Utc>, DateTime<Utc>, Option<Tz>)>,
    pub notes: Option<String>,
    /// The new preferred agents, in order; empty: route to the skill.
    pub target_agents: Option<Vec<AgentId>>,
    /// `Some(None)` removes the ownership.
    pub ownership_seconds: Option<Option<u32>>,
    pub expires_at: Option<DateTime<Utc>>,
    /// `Some(None)` removes the caller ID.
    pub caller_id: Option<Option<PhoneNumber>>,
    pub priority: Option<u32>,
    /// Why, when a person said (recorded in the event).
    pub reason: Option<String>,
    /// The slot a new due time takes, when the skill has slots.
    pub slot: Option<super::Slot>,
}

/// A pending callback's changeable fields after a change: each changed one, or as it was.
#[derive(Debug, Clone, PartialEq)]
pub struct ChangedFields<'a> {
    pub scheduled_for: DateTime<Utc>,
    pub due_at: DateTime<Utc>,
    pub time_zone: Option<Tz>,
    pub notes: &'a str,
    /// The agent it is routed to: the first of a new list, else as it was.
    pub target_agent: Option<AgentId>,
    pub target_agents: &'a [AgentId],
    pub ownership_seconds: Option<u32>,
    pub expires_at: Option<DateTime<Utc>>,
    pub caller_id: Option<&'a PhoneNumber>,
    pub priority: u32,
}

impl Changes {
    /// `old`'s fields with these changes applied.
    pub fn applied_to<'a>(&'a self, old: &'a super::Callback) -> ChangedFields<'a> {
        let (scheduled_for, due_at, time_zone) =
            self.schedule
                .unwrap_or((old.scheduled_for, old.due_at, old.time_zone));
        ChangedFields {
            scheduled_for,
            due_at,
            time_zone,
            notes: self.notes.as_deref().unwrap_or(&old.notes),
            target_agent: match &self.target_agents {
                Some(list) => list.first().copied(),
                None => old.target_agent_id,
            },
            target_agents: self
                .target_agents
                .as_deref()
                .unwrap_or(&old.target_agent_ids),
            ownership_seconds: self.ownership_seconds.unwrap_or(old.ownership_seconds),
            expires_at: self.expires_at.or(old.expires_at),
            caller_id: match &self.caller_id {
                Some(new) => new.as_ref(),
                None => old.caller_id.as_ref(),
            },
            priority: self.priority.unwrap_or(old.priority),
        }
    }

    /// Whether applying these to `old` would change anything: a change to what a callback
    /// already has is not written (no update, no event).
    pub fn alters(&self, old: &super::Callback) -> bool {
        self.applied_to(old) != ChangedFields::of(old)
    }
}

impl<'a> ChangedFields<'a> {
    /// A callback's changeable fields as they are.
    pub fn of(c: &'a super::Callback) -> Self {
        Self {
            scheduled_for: c.scheduled_for,
            due_at: c.due_at,
            time_zone: c.time_zone,
            notes: &c.notes,
            target_agent: c.target_agent_id,
            target_agents: &c.target_agent_ids,
            ownership_seconds: c.ownership_seconds,
            expires_at: c.expires_at,
            caller_id: c.caller_id.as_ref(),
            priority: c.priority,
        }
    }
}

impl ChangeInput {
    /// The first rules: something to change, a time zone only with a date, text, and the
    /// target agents (to look up). `Some(vec![])`: route to the skill.
    pub fn requested(&self) -> Result<Option<Vec<AgentId>>, RequestError> {
        if self.schedule_date.is_none()
            && self.notes.is_none()
            && self.target_agent_id.is_none()
            && self.target_agent_ids.is_none()
            && self.ownership_seconds.is_none()
            && self.expires_at.is_none()
            && self.caller_id.is_none()
            && self.priority.is_none()
        {
            return Err(RequestError::NothingToChange);
        }
        if self.time_zone.is_some() && self.schedule_date.is_none() {
            return Err(RequestError::TimeZoneWithoutDate);
        }
        if let Some(notes) = &self.notes {
            TextField::check("notes", notes, TextField::NOTES_MAX)?;
        }
        let single = match &self.target_agent_id {
            Some(None) => Some(RawId(String::new())),
            Some(Some(raw)) => Some(raw.clone()),
            None => None,
        };
        super::target_agents(single.as_ref(), self.target_agent_ids.as_deref())
    }
}

/// Plans a change of a pending callback. `agents` are the looked-up target agents the
/// change names (those that exist). A new time is read in the zone the change names, else
/// the callback's own, else the skill's; the callback must still be due before it expires.
pub fn plan_change(
    input: ChangeInput,
    target_agents: Option<Vec<AgentId>>,
    agents: &[Agent],
    current: &Callback,
    skill: &Skill,
    now: DateTime<Utc>,
    rules: &ScheduleRules,
) -> Result<Changes, RequestError> {
    if let Some(ids) = &target_agents {
        check_target_agents(ids, agents)?;
    }
    let ownership_seconds = input
        .ownership_seconds
        .map(|s| {
            s.map(|s| check_ownership("ownershipSeconds", s).map_err(RequestError::Ownership))
                .transpose()
        })
        .transpose()?;
    let keeps_agents = target_agents
        .as_ref()
        .map_or(!current.target_agent_ids.is_empty(), |a| !a.is_empty());
    if matches!(ownership_seconds, Some(Some(_))) && !keeps_agents {
        return Err(RequestError::OwnershipWithoutAgent);
    }
    // Routed to the skill: no ownership is left to keep.
    let ownership_seconds = if keeps_agents {
        ownership_seconds
    } else {
        Some(None)
    };
    let schedule_date = |e| RequestError::Date(DateError::new("scheduleDate", e));
    let time_zone = input
        .time_zone
        .as_deref()
        .map(parse_time_zone)
        .transpose()
        .map_err(schedule_date)?;
    let kept_zone = time_zone.or(current.time_zone);
    let zone = contact_zone(kept_zone, skill.time_zone, rules.default_time_zone);
    let schedule = input
        .schedule_date
        .as_deref()
        .map(|raw| {
            resolve_schedule_date(raw, zone, now, rules)
                .map(|(scheduled_for, due_at)| (scheduled_for, due_at, kept_zone))
                .map_err(schedule_date)
        })
        .transpose()?;
    let expires_at = input
        .expires_at
        .as_deref()
        .map(|raw| {
            resolve_schedule_date(raw, zone, now, rules)
                .map(|(instant, _)| instant)
                .map_err(|e| RequestError::Date(DateError::new("expiresAt", e)))
        })
        .transpose()?;
    let due_at = schedule.map_or(current.due_at, |(_, due, _)| due);
    match (expires_at, current.expires_at) {
        (Some(expires_at), _) if expires_at <= due_at => {
            return Err(RequestError::ExpiryNotAfterDue { expires_at, due_at });
        }
        (None, Some(expires_at)) if expires_at <= due_at => {
            return Err(RequestError::DueNotBeforeKeptExpiry { due_at, expires_at });
        }
        _ => {}
    }
    let caller_id = input
        .caller_id
        .map(|new| {
            optional_number(
                "callerId",
                new.as_deref(),
                skill.policy.routing.region(rules),
            )
        })
        .transpose()?;
    let priority = input
        .priority
        .map(|p| check_priority("priority", p).map_err(RequestError::Priority))
        .transpose()?;
    Ok(Changes {
        priority,
        slot: schedule.and_then(|(_, due, _)| skill.slot_at(due, rules.default_time_zone)),
        schedule,
        notes: input.notes,
        target_agents,
        ownership_seconds,
        expires_at,
        caller_id,
        reason: None,
    })
}
