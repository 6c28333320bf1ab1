//! The call itself: the one part of this worker a dialer team replaces.

use std::time::Duration;

use crate::CallbackMessage;

/// What [`dial`] may answer. `accepted` and `reschedule` exist too (docs/messages.md), but a
/// dialer that uses them reports more than one outcome per attempt, or a `scheduleDate`.
pub const OUTCOMES: [&str; 5] = ["completed", "no_answer", "busy", "failed", "invalid_number"];

/// REPLACE ME: dial here.
///
/// Place the call to `callback.phone_number` (E.164) for skill `callback.skill_id`, or offer
/// it to agent `callback.target_agent_id` when `callback.route == "agent"`, and return what
/// happened, one of [`OUTCOMES`]. This stub waits `DIALER_DIAL_MS` and answers
/// `DIALER_OUTCOME`, so tests decide what callbackd is told.
pub async fn dial(callback: &CallbackMessage, outcome: &str, dial_time: Duration) -> String {
    // The stub dials no one: a real dialer calls `callback.phone_number` here.
    let _ = callback;
    tokio::time::sleep(dial_time).await;
    outcome.to_owned()
}
