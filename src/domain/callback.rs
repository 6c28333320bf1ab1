use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use super::{AgentId, CallbackId, PhoneNumber, SkillId};

/// Where a callback is in its life. Stored as text; the table's CHECK lists the same names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CallbackState {
    /// Waiting for `due_at`; the only state the dispatcher claims from. A claim is a row
    /// lock held while publishing, not a state: the row stays pending until confirmed.
    Pending,
    /// Published and confirmed by the broker; waiting for the dialer's outcome.
    Dispatched,
    /// A dialer reported that an agent took it.
    Accepted,
    /// A dialer reported the call made.
    Completed,
    /// Gave up (e.g. attempts exhausted); the reason is in the events.
    Failed,
    /// Not dispatched or completed before its expiry.
    Expired,
    /// Cancelled through the API before it was dispatched.
    Cancelled,
    /// Not published: its number was put on the do-not-call list after it was booked.
    Suppressed,
}

impl CallbackState {
    pub const ALL: [CallbackState; 8] = [
        Self::Pending,
        Self::Dispatched,
        Self::Accepted,
        Self::Completed,
        Self::Failed,
        Self::Expired,
        Self::Cancelled,
        Self::Suppressed,
    ];

    /// The states a callback never leaves: only these are purged after retention.
    pub const TERMINAL: [CallbackState; 5] = [
        Self::Completed,
        Self::Failed,
        Self::Expired,
        Self::Cancelled,
        Self::Suppressed,
    ];

    pub fn is_terminal(self) -> bool {
        Self::TERMINAL.contains(&self)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Dispatched => "dispatched",
            Self::Accepted => "accepted",
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Expired => "expired",
            Self::Cancelled => "cancelled",
            Self::Suppressed => "suppressed",
        }
    }
}

impl FromStr for CallbackState {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|state| state.as_str() == s)
            .ok_or_else(|| {
                let names: Vec<_> = Self::ALL.iter().map(|s| s.as_str()).collect();
                format!(
                    "`{s}` is not a callback state; expected one of {}",
                    names.join(", ")
                )
            })
    }
}

impl fmt::Display for CallbackState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a matured callback goes: the target agent has priority over the skill.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Agent(AgentId),
    Skill(SkillId),
}

impl Route {
    pub fn new(skill: SkillId, target_agent: Option<AgentId>) -> Self {
        match target_agent {
            Some(agent) => Self::Agent(agent),
            None => Self::Skill(skill),
        }
    }

    pub fn kind(self) -> &'static str {
        match self {
            Self::Agent(_) => "agent",
            Self::Skill(_) => "skill",
        }
    }

    /// The AMQP routing key: `agent.<id>` or `skill.<id>`.
    pub fn routing_key(self) -> String {
        match self {
            Self::Agent(id) => format!("agent.{id}"),
            Self::Skill(id) => format!("skill.{id}"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TextFieldError {
    #[error("{field} is {len} characters long; at most {max} are allowed")]
    TooLong {
        field: &'static str,
        len: usize,
        max: usize,
    },
    #[error("{field} contains a NUL character, which cannot be stored")]
    Nul { field: &'static str },
}

/// Free text the platform shows to people: any Unicode except NUL, bounded in length.
pub struct TextField;

impl TextField {
    pub const NAME_MAX: usize = 100;
    pub const NOTES_MAX: usize = 4000;
    pub const REASON_MAX: usize = 500;

    pub fn check(field: &'static str, value: &str, max: usize) -> Result<(), TextFieldError> {
        let len = value.chars().count();
        if len > max {
            return Err(TextFieldError::TooLong { field, len, max });
        }
        if value.contains('\0') {
            return Err(TextFieldError::Nul { field });
        }
        Ok(())
    }
}

/// A validated request to create a callback, ready to store.
#[derive(Debug, Clone)]
pub struct NewCallback {
    pub id: CallbackId,
    pub first_name: String,
    pub last_name: String,
    pub phone_number: PhoneNumber,
    pub skill_id: SkillId,
    /// The first of `target_agent_ids`.
    pub target_agent_id: Option<AgentId>,
    /// Its preferred agents, in order; empty: its skill.
    pub target_agent_ids: Vec<AgentId>,
    /// How long past its due time it waits for its agents before going to its skill.
    pub ownership_seconds: Option<u32>,
    /// The instant the requester asked for.
    pub scheduled_for: DateTime<Utc>,
    /// When it becomes due: `scheduled_for`, or now when that is (slightly) in the past.
    pub due_at: DateTime<Utc>,
    /// The zone a local `scheduleDate` was read in, when the request named one.
    pub time_zone: Option<Tz>,
    pub notes: String,
    pub expires_at: Option<DateTime<Utc>>,
    /// Why `due_at` is later than asked (outside calling hours), if it is.
    pub deferred_because: Option<String>,
    /// The slot it takes, when its skill has slots.
    pub slot: Option<super::Slot>,
    /// The number the customer sees when called (the request's, else the skill's).
    pub caller_id: Option<PhoneNumber>,
    /// The number the request came from.
    pub orig_number: Option<PhoneNumber>,
    /// Its base priority (0–1000): its own, else its skill's initial priority.
    pub priority: u32,
}

impl NewCallback {
    pub fn route(&self) -> Route {
        Route::new(self.skill_id, self.target_agent_id)
    }
}

/// A callback as it stands: what was asked, where it is in its life, and its clocks.
#[derive(Debug, Clone)]
pub struct Callback {
    pub id: CallbackId,
    /// Its second, numeric id (assigned by the store): for clients that only know integer
    /// callback ids.
    pub number: i64,
    pub state: CallbackState,
    pub first_name: String,
    pub last_name: String,
    pub phone_number: PhoneNumber,
    pub skill_id: SkillId,
    /// The agent it is routed to: the first preferred one, or the one it was last offered
    /// to.
    pub target_agent_id: Option<AgentId>,
    /// Its preferred agents, in order (a list of one for a single `targetAgentId`).
    pub target_agent_ids: Vec<AgentId>,
    /// How long past its due time it waits for its agents before going to its skill.
    pub ownership_seconds: Option<u32>,
    pub notes: String,
    /// The zone the requester named for a local `scheduleDate`, if any.
    pub time_zone: Option<Tz>,
    pub scheduled_for: DateTime<Utc>,
    pub due_at: DateTime<Utc>,
    /// Publications confirmed so far; the next one is `attempt + 1`.
    pub attempt: i32,
    pub dispatched_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    /// Unanswered attempts (no_answer, busy) so far.
    pub dial_failures: i32,
    pub last_outcome: Option<String>,
    /// While waiting for the target agent to accept: when it falls back to the skill.
    pub fallback_due_at: Option<DateTime<Utc>>,
    /// When it fell back from its target agent to the skill.
    pub fell_back_at: Option<DateTime<Utc>>,
    /// The number the customer sees when called.
    pub caller_id: Option<PhoneNumber>,
    /// The number the request came from.
    pub orig_number: Option<PhoneNumber>,
    /// Its base priority (0–1000); it ages by its skill's rules once due.
    pub priority: u32,
}

impl Callback {
    /// The target agent has priority, until the callback fell back to its skill.
    pub fn route(&self) -> Route {
        let agent = self.target_agent_id.filter(|_| self.fell_back_at.is_none());
        Route::new(self.skill_id, agent)
    }

    /// Whether a pass chooses among several preferred agents (rather than following
    /// `route`): it names more than one and has not fallen back to its skill.
    pub fn chooses_agent(&self) -> bool {
        self.target_agent_ids.len() > 1 && self.fell_back_at.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_agent_has_priority() {
        let skill = SkillId::new(7).expect("id");
        let agent = AgentId::new(9).expect("id");
        assert_eq!(Route::new(skill, Some(agent)).routing_key(), "agent.9");
        assert_eq!(Route::new(skill, None).routing_key(), "skill.7");
    }

    #[test]
    fn states_round_trip() {
        for state in CallbackState::ALL {
            assert_eq!(state.as_str().parse::<CallbackState>(), Ok(state));
        }
        assert!("nope".parse::<CallbackState>().is_err());
    }

    #[test]
    fn text_fields() {
        assert!(TextField::check("notes", "Ça va? 日本語 'x'; DROP TABLE", 100).is_ok());
        assert!(TextField::check("notes", &"é".repeat(100), 100).is_ok());
        assert!(TextField::check("notes", &"é".repeat(101), 100).is_err());
        assert!(TextField::check("notes", "a\0b", 100).is_err());
    }
}
