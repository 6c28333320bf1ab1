//! A callback's history: the kinds of event its changes write, and the event each change
//! writes — built here, once, so that the store only records what it is given.
//!
//! The kinds are stored and served as the snake_case strings the API documents; the
//! enum's names are those strings.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::{Callback, CallbackState, Changes, Decision, NewCallback, OutcomeKind};

/// What happened to a callback.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// Scheduled (by the create's security user).
    Created,
    /// Moved to the next opening of its calling hours (at create or when due).
    Deferred,
    /// Rescheduled, reassigned, or its notes or expiry changed: `from`/`to` per field.
    Updated,
    Cancelled,
    /// Published and confirmed by the broker.
    Dispatched,
    /// The broker had no queue for its routing key; due again after a backoff.
    Returned,
    /// The broker refused the publication; due again after a backoff.
    Nacked,
    Expired,
    Failed,
    /// Not published: its number is on the do-not-call list.
    Suppressed,
    /// Not accepted by its target agent in time: routed to the skill.
    AgentFallback,
    /// No final outcome came in time: failed.
    OutcomeDeadline,
    Accepted,
    Completed,
    /// Unanswered: pending again at the retry time.
    RetryScheduled,
    /// The dialer asked to call again at another time.
    Rescheduled,
    /// An outcome recorded but not applied, with the reason.
    OutcomeIgnored,
    /// Its preferred agents' ownership ended before one of them took it: routed to the
    /// skill.
    OwnershipEnded,
    /// The contact's data was erased on request (the event carries none).
    Erased,
    /// A reminder before the call, for a notifier to send.
    Reminder,
    /// A person asked for another attempt at a failed or expired callback: pending again.
    Retried,
}

impl EventKind {
    pub const ALL: [EventKind; 21] = [
        Self::Created,
        Self::Deferred,
        Self::Updated,
        Self::Cancelled,
        Self::Dispatched,
        Self::Returned,
        Self::Nacked,
        Self::Expired,
        Self::Failed,
        Self::Suppressed,
        Self::AgentFallback,
        Self::OutcomeDeadline,
        Self::Accepted,
        Self::Completed,
        Self::RetryScheduled,
        Self::Rescheduled,
        Self::OutcomeIgnored,
        Self::OwnershipEnded,
        Self::Erased,
        Self::Reminder,
        Self::Retried,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::Deferred => "deferred",
            Self::Updated => "updated",
            Self::Cancelled => "cancelled",
            Self::Dispatched => "dispatched",
            Self::Returned => "returned",
            Self::Nacked => "nacked",
            Self::Expired => "expired",
            Self::Failed => "failed",
            Self::Suppressed => "suppressed",
            Self::AgentFallback => "agent_fallback",
            Self::OutcomeDeadline => "outcome_deadline",
            Self::Accepted => "accepted",
            Self::Completed => "completed",
            Self::RetryScheduled => "retry_scheduled",
            Self::Rescheduled => "rescheduled",
            Self::OutcomeIgnored => "outcome_ignored",
            Self::OwnershipEnded => "ownership_ended",
            Self::Erased => "erased",
            Self::Reminder => "reminder",
            Self::Retried => "retried",
        }
    }

    /// The event that ends a callback in `state` without publishing it (the dispatcher's
    /// `expired`, `failed` or `suppressed`).
    pub fn ending_in(state: CallbackState) -> Option<Self> {
        match state {
            CallbackState::Expired => Some(Self::Expired),
            CallbackState::Failed => Some(Self::Failed),
            CallbackState::Suppressed => Some(Self::Suppressed),
            _ => None,
        }
    }
}

impl FromStr for EventKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| format!("`{s}` is not an event kind"))
    }
}

impl TryFrom<String> for EventKind {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One event to record: its kind and details (the JSON the API serves).
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub kind: EventKind,
    pub details: Value,
}

impl Event {
    fn new(kind: EventKind, details: Value) -> Self {
        Self { kind, details }
    }
}

/// A create's events: `created`, and `deferred` when calling hours moved its due time.
pub fn created_events(callback: &NewCallback) -> Vec<Event> {
    let mut events = vec![Event::new(
        EventKind::Created,
        json!({
            "skillId": callback.skill_id,
            "targetAgentId": callback.target_agent_id,
            "route": callback.route().kind(),
            "scheduledFor": callback.scheduled_for,
            "dueAt": callback.due_at,
            "expiresAt": callback.expires_at,
        }),
    )];
    if let Some(reason) = &callback.deferred_because {
        events.push(Event::new(
            EventKind::Deferred,
            json!({ "from": callback.scheduled_for, "to": callback.due_at, "reason": reason }),
        ));
    }
    events
}

/// The `updated` event of `changes` applied to `old`: `from`/`to` for each field that
/// changes, and the reason when one was given.
pub fn updated_event(old: &Callback, changes: &Changes) -> Event {
    let new = changes.applied_to(old);
    let mut diff = Map::new();
    let mut note = |field: &str, from: Value, to: Value| {
        if from != to {
            diff.insert(field.to_owned(), json!({ "from": from, "to": to }));
        }
    };
    note(
        "scheduledFor",
        json!(old.scheduled_for),
        json!(new.scheduled_for),
    );
    note("dueAt", json!(old.due_at), json!(new.due_at));
    note(
        "timeZone",
        json!(old.time_zone.map(|t| t.name())),
        json!(new.time_zone.map(|t| t.name())),
    );
    note("notes", json!(old.notes), json!(new.notes));
    note(
        "targetAgentId",
        json!(old.target_agent_id),
        json!(new.target_agent),
    );
    if old.target_agent_ids.len() > 1 || new.target_agents.len() > 1 {
        note(
            "targetAgentIds",
            json!(old.target_agent_ids),
            json!(new.target_agents),
        );
    }
    note(
        "ownershipSeconds",
        json!(old.ownership_seconds),
        json!(new.ownership_seconds),
    );
    note("expiresAt", json!(old.expires_at), json!(new.expires_at));
    note("priority", json!(old.priority), json!(new.priority));
    note(
        "callerId",
        json!(old.caller_id.as_ref().map(|n| n.as_str())),
        json!(new.caller_id.map(|n| n.as_str())),
    );
    if let Some(reason) = &changes.reason {
        diff.insert("reason".into(), json!(reason));
    }
    Event::new(EventKind::Updated, Value::Object(diff))
}

/// The `cancelled` event of a callback that was in `from`.
pub fn cancelled_event(from: CallbackState, reason: Option<&str>) -> Event {
    let mut details = json!({ "from": from });
    if let (Some(reason), Value::Object(map)) = (reason, &mut details) {
        map.insert("reason".into(), json!(reason));
    }
    Event::new(EventKind::Cancelled, details)
}

/// What an outcome writes: for an ignored one, only its event; otherwise the new state,
/// what else changes, and the event.
#[derive(Debug, Clone, PartialEq)]
pub enum OutcomeWrite {
    Ignored(Event),
    Applied {
        state: CallbackState,
        /// A new due time (pending again).
        due_at: Option<DateTime<Utc>>,
        dial_failures: Option<i32>,
        /// The reason it failed.
        error: Option<String>,
        event: Event,
    },
}

impl Decision {
    /// The state change and event this decision on `outcome` for `attempt` writes.
    pub fn write(&self, attempt: i32, outcome: OutcomeKind) -> OutcomeWrite {
        let event = |kind: EventKind, mut details: Value| {
            if let Value::Object(map) = &mut details {
                map.insert("attempt".into(), json!(attempt));
                map.insert("outcome".into(), json!(outcome));
            }
            Event::new(kind, details)
        };
        let (state, due_at, dial_failures, error, event) = match self {
            Decision::Ignore(reason) => {
                return OutcomeWrite::Ignored(event(
                    EventKind::OutcomeIgnored,
                    json!({ "reason": reason }),
                ));
            }
            Decision::Accept => (
                CallbackState::Accepted,
                None,
                None,
                None,
                event(EventKind::Accepted, json!({})),
            ),
            Decision::Complete => (
                CallbackState::Completed,
                None,
                None,
                None,
                event(EventKind::Completed, json!({})),
            ),
            Decision::Retry {
                due_at,
                dial_failures,
            } => (
                CallbackState::Pending,
                Some(*due_at),
                Some(*dial_failures),
                None,
                event(
                    EventKind::RetryScheduled,
                    json!({ "dueAt": due_at, "unansweredAttempts": dial_failures }),
                ),
            ),
            Decision::Fail {
                reason,
                dial_failures,
            } => (
                CallbackState::Failed,
                None,
                *dial_failures,
                Some(reason.clone()),
                event(EventKind::Failed, json!({ "reason": reason })),
            ),
            Decision::Reschedule { due_at } => (
                CallbackState::Pending,
                Some(*due_at),
                None,
                None,
                event(EventKind::Rescheduled, json!({ "dueAt": due_at })),
            ),
        };
        OutcomeWrite::Applied {
            state,
            due_at,
            dial_failures,
            error,
            event,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_read_back_as_written() {
        for kind in EventKind::ALL {
            assert_eq!(kind.as_str().parse::<EventKind>(), Ok(kind));
            assert_eq!(
                serde_json::to_value(kind).ok(),
                Some(Value::from(kind.as_str()))
            );
        }
        assert!("dispatched ".parse::<EventKind>().is_err());
    }

    #[test]
    fn an_ignored_outcome_writes_only_its_event() {
        let write = Decision::Ignore("an old attempt".into()).write(1, OutcomeKind::Completed);
        assert_eq!(
            write,
            OutcomeWrite::Ignored(Event {
                kind: EventKind::OutcomeIgnored,
                details: json!({ "reason": "an old attempt", "attempt": 1, "outcome": "completed" }),
            })
        );
    }

    #[test]
    fn a_retry_is_pending_again_with_its_due_time_and_count() {
        let at = DateTime::<Utc>::UNIX_EPOCH;
        let write = Decision::Retry {
            due_at: at,
            dial_failures: 2,
        }
        .write(3, OutcomeKind::NoAnswer);
        let OutcomeWrite::Applied {
            state,
            due_at,
            dial_failures,
            error,
            event,
        } = write
        else {
            panic!("a retry is applied");
        };
        assert_eq!(state, CallbackState::Pending);
        assert_eq!(due_at, Some(at));
        assert_eq!(dial_failures, Some(2));
        assert_eq!(error, None);
        assert_eq!(event.kind, EventKind::RetryScheduled);
        assert_eq!(event.details["unansweredAttempts"], json!(2));
        assert_eq!(event.details["outcome"], json!("no_answer"));
    }

    #[test]
    fn only_the_ends_of_an_unsent_callback_have_an_ending_event() {
        for state in CallbackState::ALL {
            let ending = EventKind::ending_in(state);
            assert_eq!(
                ending.map(EventKind::as_str),
                matches!(
                    state,
                    CallbackState::Expired | CallbackState::Failed | CallbackState::Suppressed
                )
                .then(|| state.as_str())
            );
        }
    }
}
