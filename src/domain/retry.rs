//! Another attempt at a callback that failed or expired, asked for by a person: now, or at
//! a time they give (a new promise). The only way back from an end state; audited as a
//! `retried` event.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde_json::json;

use super::{
    Callback, CallbackState, DateError, Event, EventKind, RequestError, ScheduleRules,
    resolve_schedule_date,
};

/// What a retry writes.
#[derive(Debug, Clone, PartialEq)]
pub struct Retry {
    pub due_at: DateTime<Utc>,
    /// A new promised time, when the retry names one (else the promise stands).
    pub scheduled_for: Option<DateTime<Utc>>,
    /// The expiry kept: none once it would come before the new due time (an expired
    /// callback's expiry has passed; it would expire again at once).
    pub expires_at: Option<DateTime<Utc>>,
    pub event: Event,
}

impl CallbackState {
    /// Whether a person may retry a callback in this state: it failed or expired. Not a
    /// cancelled one (a person ended it), nor a suppressed one (its number may not be
    /// called), nor one still pending or in flight.
    pub fn may_retry(self) -> bool {
        matches!(self, Self::Failed | Self::Expired)
    }
}

/// Plans a retry of `current` (which must be failed or expired — the caller checks): due
/// `now`, or at `at` read in `zone` (the contact's) through the create's date rules.
pub fn plan_retry(
    current: &Callback,
    at: Option<&str>,
    zone: Tz,
    now: DateTime<Utc>,
    rules: &ScheduleRules,
    reason: Option<&str>,
) -> Result<Retry, RequestError> {
    let (scheduled_for, due_at) = match at {
        None => (None, now),
        Some(raw) => {
            let (instant, due) = resolve_schedule_date(raw, zone, now, rules)
                .map_err(|e| RequestError::Date(DateError::new("scheduleDate", e)))?;
            (Some(instant), due)
        }
    };
    let expires_at = current.expires_at.filter(|e| *e > due_at);
    let mut details = json!({ "from": current.state, "dueAt": due_at });
    if let Some(reason) = reason {
        details["reason"] = json!(reason);
    }
    Ok(Retry {
        due_at,
        scheduled_for,
        expires_at,
        event: Event {
            kind: EventKind::Retried,
            details,
        },
    })
}
