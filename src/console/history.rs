//! A callback's history as sentences a supervisor reads: what happened, when in the
//! contact's time, who did it and why ("rescheduled from Sat 5 Dec 09:15 to Mon 7 Dec 10:00
//! (New York) by jane: asked for Monday"). The API serves the events' details as JSON; this
//! only words them.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde_json::Value;

use super::names::Names;
use crate::domain::EventKind;
use crate::store::EventRecord;

/// An instant in the contact's zone: `Sat 5 Dec 09:15`.
pub fn local(at: DateTime<Utc>, zone: Tz) -> String {
    at.with_timezone(&zone)
        .format("%a %-d %b %H:%M")
        .to_string()
}

/// A zone as people say it: `New York` for America/New_York.
pub fn place(zone: Tz) -> String {
    let name = zone.name();
    name.rsplit('/').next().unwrap_or(name).replace('_', " ")
}

/// One event as a sentence, its times in `zone` (the contact's).
pub fn sentence(event: &EventRecord, zone: Tz, names: &Names) -> String {
    let d = &event.details;
    let at = |key: &str| -> Option<String> {
        d.get(key)
            .and_then(Value::as_str)
            .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
            .map(|t| local(t.with_timezone(&Utc), zone))
    };
    let text = |key: &str| d.get(key).and_then(Value::as_str).filter(|s| !s.is_empty());
    let when = |key: &str| at(key).unwrap_or_else(|| "—".to_owned());
    let what = match event.kind {
        EventKind::Created => {
            let mut s = format!(
                "booked for {} ({}) on {}",
                when("scheduledFor"),
                place(zone),
                d.get("skillId")
                    .and_then(Value::as_i64)
                    .map_or_else(|| "its skill".to_owned(), |id| names.skill(id))
            );
            if let Some(agent) = d.get("targetAgentId").filter(|v| !v.is_null()) {
                s.push_str(&format!(", for {}", names.agents(agent)));
            }
            s
        }
        EventKind::Deferred => format!(
            "moved from {} to {} by calling hours",
            when("from"),
            when("to")
        ),
        EventKind::Updated => updated(d, zone, names),
        EventKind::Cancelled => format!("cancelled (it was {})", text("from").unwrap_or("pending")),
        EventKind::Dispatched => format!(
            "published to the dialers (attempt {}, routing key {})",
            d.get("attempt").and_then(Value::as_i64).unwrap_or(1),
            text("routingKey").unwrap_or("—")
        ),
        EventKind::Returned => format!(
            "returned by the broker (no queue took it); due again {}",
            when("retryAt")
        ),
        EventKind::Nacked => format!("refused by the broker; due again {}", when("retryAt")),
        EventKind::Expired => format!("expired at {}, never published", when("expiresAt")),
        EventKind::Failed => "failed".to_owned(),
        EventKind::Suppressed => "not called: the number is on the do-not-call list".to_owned(),
        EventKind::AgentFallback => format!(
            "not taken by {} in time: routed to {}",
            d.get("fromAgentId")
                .map_or_else(|| "its agent".to_owned(), |a| names.agents(a)),
            d.get("toSkillId")
                .and_then(Value::as_i64)
                .map_or_else(|| "the skill".to_owned(), |id| names.skill(id))
        ),
        EventKind::OutcomeDeadline => format!(
            "failed: no final outcome by {} for attempt {}",
            when("deadline"),
            d.get("attempt").and_then(Value::as_i64).unwrap_or(1)
        ),
        EventKind::Accepted => "accepted by the dialer".to_owned(),
        EventKind::Completed => "completed: the contact was reached".to_owned(),
        EventKind::RetryScheduled => format!(
            "unanswered ({} so far): due again {}",
            d.get("unansweredAttempts")
                .and_then(Value::as_i64)
                .unwrap_or(1),
            when("dueAt")
        ),
        EventKind::Rescheduled => format!("the dialer asked to call again {}", when("dueAt")),
        EventKind::OutcomeIgnored => format!(
            "outcome `{}` not applied",
            text("outcome").unwrap_or("unknown")
        ),
        EventKind::OwnershipEnded => format!(
            "{}'s ownership ended: routed to {}",
            d.get("agentIds")
                .map_or_else(|| "the agents".to_owned(), |a| names.agents(a)),
            d.get("toSkillId")
                .and_then(Value::as_i64)
                .map_or_else(|| "the skill".to_owned(), |id| names.skill(id))
        ),
        EventKind::Erased => "the contact's data was erased on request".to_owned(),
        EventKind::Reminder => "reminder sent to the contact".to_owned(),
        EventKind::Retried => format!(
            "retried (it had {}): due again {}",
            text("from").unwrap_or("ended"),
            when("dueAt")
        ),
    };
    let mut s = capitalised(&what);
    s.push_str(&format!(" — by {}", event.actor));
    if let Some(reason) = text("reason") {
        s.push_str(&format!(": {reason}"));
    }
    s
}

/// An `updated` event: each changed field in words.
fn updated(d: &Value, zone: Tz, names: &Names) -> String {
    let change = |key: &str| d.get(key).map(|c| (&c["from"], &c["to"]));
    let time = |v: &Value| {
        v.as_str()
            .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
            .map_or_else(|| "—".to_owned(), |t| local(t.with_timezone(&Utc), zone))
    };
    let plain = |v: &Value| match v {
        Value::Null => "none".to_owned(),
        Value::String(s) if s.is_empty() => "none".to_owned(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let mut parts = Vec::new();
    if let Some((from, to)) = change("dueAt").or_else(|| change("scheduledFor")) {
        parts.push(format!(
            "rescheduled from {} to {} ({})",
            time(from),
            time(to),
            place(zone)
        ));
    }
    if let Some((from, to)) = change("targetAgentIds").or_else(|| change("targetAgentId")) {
        parts.push(format!(
            "reassigned from {} to {}",
            names.agents(from),
            names.agents(to)
        ));
    }
    if let Some((from, to)) = change("priority") {
        parts.push(format!("priority {} → {}", plain(from), plain(to)));
    }
    if change("notes").is_some() {
        parts.push("notes changed".to_owned());
    }
    if let Some((_, to)) = change("expiresAt") {
        parts.push(format!("now expires {}", time(to)));
    }
    if let Some((from, to)) = change("timeZone") {
        parts.push(format!("time zone {} → {}", plain(from), plain(to)));
    }
    if let Some((from, to)) = change("callerId") {
        parts.push(format!("caller ID {} → {}", plain(from), plain(to)));
    }
    if let Some((from, to)) = change("ownershipSeconds") {
        parts.push(format!("ownership {} → {} s", plain(from), plain(to)));
    }
    if parts.is_empty() {
        "changed".to_owned()
    } else {
        parts.join("; ")
    }
}

fn capitalised(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::collections::HashMap;

    fn event(kind: EventKind, actor: &str, details: Value) -> EventRecord {
        EventRecord {
            id: 1,
            at: Utc::now(),
            actor: actor.to_owned(),
            kind,
            details,
        }
    }

    #[test]
    fn a_reschedule_reads_in_the_contacts_time_with_its_actor_and_reason() {
        let names = Names::default();
        let e = event(
            EventKind::Updated,
            "jane",
            json!({
                "dueAt": {"from": "2026-12-05T14:15:00Z", "to": "2026-12-07T15:00:00Z"},
                "reason": "asked for Monday"
            }),
        );
        assert_eq!(
            sentence(&e, chrono_tz::America::New_York, &names),
            "Rescheduled from Sat 5 Dec 09:15 to Mon 7 Dec 10:00 (New York) — by jane: asked for Monday"
        );
    }

    #[test]
    fn ids_read_as_names() {
        let jane = crate::domain::Agent {
            id: crate::domain::AgentId::new(7).expect("id"),
            username: "jane".to_owned(),
            active: true,
            name: String::new(),
            skills: Vec::new(),
        };
        let names = Names {
            skills: HashMap::from([(101, "Billing".to_owned())]),
            agents: HashMap::from([(7, jane)]),
        };
        let e = event(
            EventKind::Created,
            "ivr",
            json!({"skillId": 101, "targetAgentId": 7, "scheduledFor": "2026-12-05T14:00:00Z"}),
        );
        assert_eq!(
            sentence(&e, Tz::UTC, &names),
            "Booked for Sat 5 Dec 14:00 (UTC) on Billing (101), for jane (7) — by ivr"
        );
        let moved = event(
            EventKind::Updated,
            "sam",
            json!({"targetAgentIds": {"from": [7], "to": [8]}, "reason": "leave"}),
        );
        assert_eq!(
            sentence(&moved, Tz::UTC, &names),
            "Reassigned from jane (7) to agent 8 — by sam: leave"
        );
    }

    #[test]
    fn every_kind_has_words() {
        for kind in EventKind::ALL {
            let s = sentence(&event(kind, "x", json!({})), Tz::UTC, &Names::default());
            assert!(s.ends_with("— by x"), "{kind}: {s}");
            assert!(!s.contains('{'), "{kind}: {s}");
        }
    }
}
