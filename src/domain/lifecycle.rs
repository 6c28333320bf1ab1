//! What a dialer's outcome does to a callback: the transitions after dispatch.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use super::CallbackState;

/// An outcome a dialer reports for one attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutcomeKind {
    /// An agent took the callback.
    Accepted,
    /// The call was made: the commitment is kept.
    Completed,
    NoAnswer,
    Busy,
    /// The dialer gave up on this callback for good.
    Failed,
    InvalidNumber,
    /// Call again at another time (`scheduleDate`).
    Reschedule,
}

impl OutcomeKind {
    pub const ALL: [OutcomeKind; 7] = [
        Self::Accepted,
        Self::Completed,
        Self::NoAnswer,
        Self::Busy,
        Self::Failed,
        Self::InvalidNumber,
        Self::Reschedule,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Accepted => "accepted",
            Self::Completed => "completed",
            Self::NoAnswer => "no_answer",
            Self::Busy => "busy",
            Self::Failed => "failed",
            Self::InvalidNumber => "invalid_number",
            Self::Reschedule => "reschedule",
        }
    }
}

impl FromStr for OutcomeKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL.into_iter().find(|o| o.as_str() == s).ok_or_else(|| {
            format!(
                "`{s}` is not an outcome; expected one of accepted, completed, no_answer, busy, failed, invalid_number, reschedule"
            )
        })
    }
}

impl fmt::Display for OutcomeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a skill retries and re-routes, after merging its own settings over the defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Wait before attempt n+1 after the n-th unanswered attempt; the last entry repeats.
    pub backoff: Vec<Duration>,
    /// Unanswered (no_answer, busy) attempts after which the callback fails.
    pub max_attempts: u32,
}

impl RetryPolicy {
    pub fn backoff_after(&self, failures: u32) -> Duration {
        let index = (failures.max(1) - 1) as usize;
        self.backoff
            .get(index)
            .or(self.backoff.last())
            .copied()
            .unwrap_or(Duration::minutes(10))
    }
}

/// An outcome for an attempt that was never published.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("attempt {attempt} was never published: this callback's attempts so far are {}", match current { 0 => "none".to_owned(), n => format!("1 to {n}") })]
pub struct AttemptError {
    pub attempt: i32,
    pub current: i32,
}

/// An outcome may name any attempt published so far (an older one is recorded and ignored);
/// one outside `1..=current` names nothing and is refused before anything is written.
pub fn check_attempt(current: i32, attempt: i32) -> Result<(), AttemptError> {
    if (1..=current).contains(&attempt) {
        Ok(())
    } else {
        Err(AttemptError { attempt, current })
    }
}

/// The configured lifecycle rules that a skill's own settings override.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LifecycleDefaults {
    pub retry_backoff_seconds: Vec<u32>,
    pub max_attempts: u32,
    /// 0: wait for the target agent forever.
    pub agent_fallback_seconds: u32,
    pub outcome_deadline_seconds: u32,
}

impl super::SkillPolicy {
    /// How the skill retries unanswered attempts: its own settings over the defaults.
    pub fn retry_policy(&self, defaults: &LifecycleDefaults) -> RetryPolicy {
        let seconds = self
            .retry_backoff_seconds
            .as_ref()
            .filter(|b| !b.is_empty())
            .unwrap_or(&defaults.retry_backoff_seconds);
        RetryPolicy {
            backoff: seconds
                .iter()
                .map(|s| Duration::seconds(i64::from(*s)))
                .collect(),
            max_attempts: self.max_attempts.unwrap_or(defaults.max_attempts),
        }
    }

    /// How long an agent-routed callback waits to be accepted; `None`: forever.
    pub fn agent_fallback(&self, defaults: &LifecycleDefaults) -> Option<std::time::Duration> {
        let seconds = self
            .agent_fallback_seconds
            .unwrap_or(defaults.agent_fallback_seconds);
        (seconds > 0).then(|| std::time::Duration::from_secs(u64::from(seconds)))
    }

    /// How long a published callback waits for its final outcome before it fails.
    pub fn outcome_deadline(&self, defaults: &LifecycleDefaults) -> std::time::Duration {
        let seconds = self
            .outcome_deadline_seconds
            .unwrap_or(defaults.outcome_deadline_seconds);
        std::time::Duration::from_secs(u64::from(seconds))
    }
}

/// What the callback is now, as far as deciding an outcome goes.
#[derive(Debug, Clone, Copy)]
pub struct Current {
    pub state: CallbackState,
    /// The attempt last published (0 before the first).
    pub attempt: i32,
    /// Unanswered attempts so far.
    pub dial_failures: i32,
}

/// The transition an outcome causes.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Not applied (recorded): the outcome is for an older attempt, or the callback is not
    /// waiting for one.
    Ignore(String),
    Accept,
    Complete,
    /// Pending again, due at this time, with one more unanswered attempt.
    Retry {
        due_at: DateTime<Utc>,
        dial_failures: i32,
    },
    /// Failed for good; with the count of unanswered attempts when the last one made it
    /// fail.
    Fail {
        reason: String,
        dial_failures: Option<i32>,
    },
    /// Pending again at the requested time.
    Reschedule {
        due_at: DateTime<Utc>,
    },
}

/// Decides what `outcome` for `attempt` does. `reschedule_at` is the resolved
/// `scheduleDate` of a reschedule (validated by the caller).
pub fn decide(
    current: Current,
    attempt: i32,
    outcome: OutcomeKind,
    reschedule_at: Option<DateTime<Utc>>,
    policy: &RetryPolicy,
    now: DateTime<Utc>,
) -> Decision {
    if attempt != current.attempt {
        return Decision::Ignore(format!(
            "outcome for attempt {attempt}, but the current attempt is {}",
            current.attempt
        ));
    }
    let waiting = matches!(
        current.state,
        CallbackState::Dispatched | CallbackState::Accepted
    );
    if !waiting {
        return Decision::Ignore(format!(
            "the callback is {}, not waiting for an outcome",
            current.state
        ));
    }
    match outcome {
        OutcomeKind::Accepted if current.state == CallbackState::Accepted => {
            Decision::Ignore("already accepted".into())
        }
        OutcomeKind::Accepted => Decision::Accept,
        OutcomeKind::Completed => Decision::Complete,
        OutcomeKind::NoAnswer | OutcomeKind::Busy => {
            let failures = current.dial_failures + 1;
            if failures as u32 >= policy.max_attempts {
                Decision::Fail {
                    reason: format!(
                        "{outcome} on attempt {attempt}: {failures} unanswered attempts, the maximum"
                    ),
                    dial_failures: Some(failures),
                }
            } else {
                Decision::Retry {
                    due_at: now + policy.backoff_after(failures as u32),
                    dial_failures: failures,
                }
            }
        }
        OutcomeKind::Failed => Decision::Fail {
            reason: format!("the dialer reported failed on attempt {attempt}"),
            dial_failures: None,
        },
        OutcomeKind::InvalidNumber => Decision::Fail {
            reason: format!("the dialer reported the number invalid on attempt {attempt}"),
            dial_failures: None,
        },
        OutcomeKind::Reschedule => match reschedule_at {
            Some(due_at) => Decision::Reschedule { due_at },
            None => Decision::Ignore("reschedule without a scheduleDate".into()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            backoff: vec![Duration::minutes(10), Duration::minutes(30)],
            max_attempts: 3,
        }
    }

    fn dispatched(attempt: i32, failures: i32) -> Current {
        Current {
            state: CallbackState::Dispatched,
            attempt,
            dial_failures: failures,
        }
    }

    #[test]
    fn unanswered_attempts_back_off_then_fail() {
        let now = Utc::now();
        assert_eq!(
            decide(
                dispatched(1, 0),
                1,
                OutcomeKind::NoAnswer,
                None,
                &policy(),
                now
            ),
            Decision::Retry {
                due_at: now + Duration::minutes(10),
                dial_failures: 1
            }
        );
        assert_eq!(
            decide(dispatched(2, 1), 2, OutcomeKind::Busy, None, &policy(), now),
            Decision::Retry {
                due_at: now + Duration::minutes(30),
                dial_failures: 2
            }
        );
        assert!(matches!(
            decide(
                dispatched(3, 2),
                3,
                OutcomeKind::NoAnswer,
                None,
                &policy(),
                now
            ),
            Decision::Fail { .. }
        ));
        assert_eq!(
            policy().backoff_after(7),
            Duration::minutes(30),
            "the last backoff repeats"
        );
    }

    #[test]
    fn terminal_outcomes_and_stale_attempts() {
        let now = Utc::now();
        assert_eq!(
            decide(
                dispatched(1, 0),
                1,
                OutcomeKind::Completed,
                None,
                &policy(),
                now
            ),
            Decision::Complete
        );
        assert_eq!(
            decide(
                dispatched(1, 0),
                1,
                OutcomeKind::Accepted,
                None,
                &policy(),
                now
            ),
            Decision::Accept
        );
        assert!(matches!(
            decide(
                dispatched(1, 0),
                1,
                OutcomeKind::InvalidNumber,
                None,
                &policy(),
                now
            ),
            Decision::Fail { .. }
        ));
        assert!(matches!(
            decide(
                dispatched(2, 0),
                1,
                OutcomeKind::Completed,
                None,
                &policy(),
                now
            ),
            Decision::Ignore(_)
        ));
        let pending = Current {
            state: CallbackState::Pending,
            attempt: 1,
            dial_failures: 1,
        };
        assert!(matches!(
            decide(pending, 1, OutcomeKind::Completed, None, &policy(), now),
            Decision::Ignore(_)
        ));
        let accepted = Current {
            state: CallbackState::Accepted,
            attempt: 1,
            dial_failures: 0,
        };
        assert_eq!(
            decide(accepted, 1, OutcomeKind::Completed, None, &policy(), now),
            Decision::Complete
        );
        let later = now + Duration::hours(3);
        assert_eq!(
            decide(
                accepted,
                1,
                OutcomeKind::Reschedule,
                Some(later),
                &policy(),
                now
            ),
            Decision::Reschedule { due_at: later }
        );
    }
}
