//! The event message stream consumers read: `callbackd.event.v1`, documented in
//! `docs/messages.md`.

use chrono::SecondsFormat;
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use crate::amqp::{HeaderValue, OutgoingMessage};
use crate::store::OutboxEvent;

pub const SCHEMA: &str = "callbackd.event.v1";

/// Body of one callback event. Fields are only ever added within v1.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct EventMessage<'a> {
    schema: &'static str,
    /// Increasing with each event; a callback's events carry increasing ids in the order
    /// they happened.
    event_id: i64,
    callback_id: Uuid,
    kind: &'a str,
    at: String,
    actor: &'a str,
    /// `null` when the callback is gone (purged).
    skill_id: Option<i64>,
    details: &'a Value,
}

/// The publication of an outbox entry.
pub fn outgoing(event: &OutboxEvent) -> Result<OutgoingMessage, serde_json::Error> {
    let body = serde_json::to_vec(&EventMessage {
        schema: SCHEMA,
        event_id: event.event_id,
        callback_id: event.callback_id,
        kind: &event.kind,
        at: event.at.to_rfc3339_opts(SecondsFormat::AutoSi, true),
        actor: &event.actor,
        skill_id: event.skill_id,
        details: &event.details,
    })?;
    let kind = event.kind.as_str();
    let skill = event
        .skill_id
        .map_or_else(|| "none".to_owned(), |s| s.to_string());
    Ok(OutgoingMessage {
        message_id: format!("event:{}", event.event_id),
        routing_key: format!("{kind}.{skill}"),
        body,
        timestamp: u64::try_from(event.at.timestamp()).unwrap_or_default(),
        headers: vec![
            ("x-callbackd-schema", HeaderValue::Text(SCHEMA.into())),
            ("kind", HeaderValue::Text(kind.to_owned())),
            (
                "callback_id",
                HeaderValue::Text(event.callback_id.to_string()),
            ),
        ],
        priority: None,
    })
}
