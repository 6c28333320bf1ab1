//! A callback as callbackd shows it in JSON — to API clients and to operators (`callbackd
//! callbacks … --json`) alike — and the entries of its history.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use crate::domain::{AgentId, Callback, CallbackId, CallbackState, EventKind, Route, SkillId};
use crate::store::EventRecord;

/// A callback as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CallbackView {
    #[schema(value_type = String, format = Uuid)]
    callback_id: CallbackId,
    /// Its second, numeric id: the one the CXone-compatible surface takes (`docs/cxone.md`).
    #[schema(minimum = 1, example = 1042)]
    number: i64,
    #[schema(schema_with = super::callback_state_schema)]
    state: CallbackState,
    first_name: String,
    last_name: String,
    /// E.164.
    phone_number: String,
    #[schema(value_type = i64, minimum = 1)]
    skill_id: SkillId,
    /// The agent it is routed to: the first preferred one, or the one it was last offered to.
    #[schema(value_type = Option<i64>, minimum = 1)]
    target_agent_id: Option<AgentId>,
    /// Its preferred agents, in order (empty: the skill).
    #[schema(value_type = Vec<i64>)]
    target_agent_ids: Vec<AgentId>,
    /// How long past its due time it waits for its agents before going to the skill.
    ownership_seconds: Option<u32>,
    /// Pending and still owned by its agents: when the ownership ends.
    ownership_ends_at: Option<DateTime<Utc>>,
    /// `agent` or `skill`.
    #[schema(example = "skill")]
    route: &'static str,
    /// `agent.<id>` or `skill.<id>`.
    routing_key: String,
    notes: String,
    time_zone: Option<&'static str>,
    scheduled_for: DateTime<Utc>,
    due_at: DateTime<Utc>,
    attempt: i32,
    dispatched_at: Option<DateTime<Utc>>,
    last_error: Option<String>,
    created_by: String,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    expires_at: Option<DateTime<Utc>>,
    /// Unanswered attempts so far (no_answer, busy).
    unanswered_attempts: i32,
    last_outcome: Option<String>,
    /// When the callback is next due to be published, if it still will be.
    next_due_at: Option<DateTime<Utc>>,
    /// While waiting for the target agent: when it falls back to the skill.
    agent_fallback_at: Option<DateTime<Utc>>,
    fell_back_at: Option<DateTime<Utc>>,
    /// The number the customer sees when called (E.164).
    caller_id: Option<String>,
    /// The number the request came from (E.164).
    orig_number: Option<String>,
    /// Its base priority (0–1000); it ages by its skill's rules once due.
    priority: u32,
}

impl From<Callback> for CallbackView {
    fn from(r: Callback) -> Self {
        let route = r.route();
        let ownership_ends_at = r
            .ownership_seconds
            .filter(|_| r.state == CallbackState::Pending && matches!(route, Route::Agent(_)))
            .map(|s| r.due_at + chrono::Duration::seconds(i64::from(s)));
        Self {
            target_agent_ids: r.target_agent_ids,
            ownership_seconds: r.ownership_seconds,
            ownership_ends_at,
            callback_id: r.id,
            number: r.number,
            state: r.state,
            first_name: r.first_name,
            last_name: r.last_name,
            phone_number: r.phone_number.as_str().to_owned(),
            skill_id: r.skill_id,
            target_agent_id: r.target_agent_id,
            route: route.kind(),
            routing_key: route.routing_key(),
            notes: r.notes,
            time_zone: r.time_zone.map(|tz| tz.name()),
            scheduled_for: r.scheduled_for,
            due_at: r.due_at,
            attempt: r.attempt,
            dispatched_at: r.dispatched_at,
            last_error: r.last_error,
            created_by: r.created_by,
            created_at: r.created_at,
            updated_at: r.updated_at,
            expires_at: r.expires_at,
            unanswered_attempts: r.dial_failures,
            last_outcome: r.last_outcome,
            next_due_at: (r.state == CallbackState::Pending).then_some(r.due_at),
            agent_fallback_at: r.fallback_due_at,
            fell_back_at: r.fell_back_at,
            caller_id: r.caller_id.map(|n| n.as_str().to_owned()),
            orig_number: r.orig_number.map(|n| n.as_str().to_owned()),
            priority: r.priority,
        }
    }
}

/// One change in a callback's history.
#[derive(Serialize, ToSchema)]
pub struct EventView {
    id: i64,
    at: DateTime<Utc>,
    /// The security user, or the daemon instance.
    actor: String,
    /// `created`, `updated`, `cancelled`, `dispatched`, `deferred`, …
    #[schema(value_type = String)]
    kind: EventKind,
    #[schema(value_type = Object)]
    details: Value,
}

impl From<EventRecord> for EventView {
    fn from(e: EventRecord) -> Self {
        Self {
            id: e.id,
            at: e.at,
            actor: e.actor,
            kind: e.kind,
            details: e.details,
        }
    }
}
