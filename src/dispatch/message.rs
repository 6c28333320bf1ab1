//! The message dialers consume: `callbackd.callback.v1`, documented in `docs/messages.md`.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;

use crate::amqp::{HeaderValue, OutgoingMessage};
use crate::domain::{AgentId, CallbackId, Route, SkillId};
use crate::domain::{Callback, Skill, amqp_priority, effective_priority};

pub const SCHEMA: &str = "callbackd.callback.v1";

/// Body of a matured callback. Fields are only ever added within v1; a change of meaning
/// gets a new schema name.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CallbackMessage<'a> {
    pub schema: &'static str,
    pub callback_id: CallbackId,
    pub attempt: i32,
    pub route: &'static str,
    pub routing_key: &'a str,
    pub skill_id: SkillId,
    pub target_agent_id: Option<AgentId>,
    /// Its preferred agents in order, when it names more than one.
    #[serde(skip_serializing_if = "<[AgentId]>::is_empty")]
    pub target_agent_ids: &'a [AgentId],
    pub first_name: &'a str,
    pub last_name: &'a str,
    pub phone_number: &'a str,
    pub notes: &'a str,
    pub time_zone: Option<&'static str>,
    pub scheduled_for: String,
    pub due_at: String,
    pub created_by: &'a str,
    pub created_at: String,
    /// The number the customer sees when called, when one is set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub caller_id: Option<&'a str>,
    /// The number the request came from, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub orig_number: Option<&'a str>,
    /// Its effective priority when published (0–1000; the AMQP `priority` property is this
    /// in tenths, 0–9).
    pub priority: u32,
}

/// The identity of one publication: `<callbackId>:<attempt>`. A re-publication of the same
/// attempt (after a crash between the broker's confirm and recording it) carries the same
/// id, so a dialer drops it; a new attempt (retry, agent fallback, reschedule) carries a new
/// one, so it is not mistaken for a repeat.
pub fn publication_id(callback: CallbackId, attempt: i32) -> String {
    format!("{callback}:{attempt}")
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// The publication of `record` as its next attempt, on `route` (its own, or the preferred
/// agent a pass chose).
pub fn outgoing(
    record: &Callback,
    route: Route,
    skill: &Skill,
    now: DateTime<Utc>,
) -> Result<OutgoingMessage, serde_json::Error> {
    let priority = effective_priority(record, skill, now);
    // The agent it goes to; on the skill's route, the agent it was meant for, if any.
    let target_agent_id = match route {
        Route::Agent(agent) => Some(agent),
        Route::Skill(_) => record.target_agent_id,
    };
    let routing_key = route.routing_key();
    let attempt = record.attempt + 1;
    let body = serde_json::to_vec(&CallbackMessage {
        schema: SCHEMA,
        callback_id: record.id,
        attempt,
        route: route.kind(),
        routing_key: &routing_key,
        skill_id: record.skill_id,
        target_agent_id,
        target_agent_ids: if record.target_agent_ids.len() > 1 {
            &record.target_agent_ids
        } else {
            &[]
        },
        first_name: &record.first_name,
        last_name: &record.last_name,
        phone_number: record.phone_number.as_str(),
        notes: &record.notes,
        time_zone: record.time_zone.map(|tz| tz.name()),
        scheduled_for: rfc3339(record.scheduled_for),
        due_at: rfc3339(record.due_at),
        created_by: &record.created_by,
        created_at: rfc3339(record.created_at),
        caller_id: record.caller_id.as_ref().map(|n| n.as_str()),
        orig_number: record.orig_number.as_ref().map(|n| n.as_str()),
        priority,
    })?;
    Ok(OutgoingMessage {
        message_id: publication_id(record.id, attempt),
        headers: vec![
            ("x-callbackd-schema", HeaderValue::Text(SCHEMA.into())),
            ("callback_id", HeaderValue::Text(record.id.to_string())),
            ("route", HeaderValue::Text(route.kind().into())),
            ("skill_id", HeaderValue::Int(record.skill_id.get())),
            (
                "agent_id",
                target_agent_id.map_or(HeaderValue::Null, |a| HeaderValue::Int(a.get())),
            ),
            ("attempt", HeaderValue::Int(i64::from(attempt))),
        ],
        routing_key,
        body,
        timestamp: u64::try_from(now.timestamp()).unwrap_or_default(),
        priority: Some(amqp_priority(priority)),
    })
}
