//! The request and answer types of `/v1/callbacks`, as JSON sees them (and the OpenAPI
//! document describes them), and their conversion to and from domain types.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize};

use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::api::error::ResultCode;
use crate::domain::{CallbackId, ChangeInput, CreateInput, RawId};
pub use crate::wire::{CallbackView, EventView};

/// A callback to schedule. Unknown fields are refused.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CreateRequest {
    /// At most 100 characters.
    #[schema(max_length = 100, example = "Ada")]
    pub first_name: Option<String>,
    /// At most 100 characters.
    #[schema(max_length = 100, example = "Lovelace")]
    pub last_name: Option<String>,
    /// `+<country code>…` (`+44 (0)20…` as printed is accepted), or a national number
    /// read in the skill's `defaultRegion`, else `schedule.default_region`.
    #[schema(required = true, example = "+442079460958")]
    pub phone_number: Option<String>,
    /// An active outbound phone skill.
    #[schema(required = true, schema_with = crate::api::openapi::id_input_schema)]
    pub skill_id: Option<RawId>,
    /// An active agent's id; `""`, `null` or absent routes to the skill.
    #[schema(schema_with = crate::api::openapi::target_agent_schema)]
    pub target_agent_id: Option<RawId>,
    /// Preferred agents, in order (at most 5 active agents): while the ownership lasts,
    /// the callback goes to the first with room. `targetAgentId` is a list of one; send
    /// both only when it is the list's first.
    #[schema(value_type = Option<Vec<i64>>, max_items = 5)]
    pub target_agent_ids: Option<Vec<RawId>>,
    /// 1 to 604800 (a week): how long past its due time it waits for its agents before it
    /// goes to the skill (with an `ownership_ended` event). Default: the skill's
    /// `ownershipSeconds`, else until one of them takes it.
    #[schema(minimum = 1, maximum = 604800)]
    pub ownership_seconds: Option<i64>,
    /// ISO 8601: an instant (`2030-01-15T14:30:00Z`, `…+01:00`) or a wall-clock time
    /// (`2030-01-15T14:30:00`) in `timeZone`, else the skill's, else the default zone.
    #[schema(required = true, example = "2030-01-15T14:30:00")]
    pub schedule_date: Option<String>,
    /// Shown to the agent; at most 4000 characters.
    #[schema(max_length = 4000, example = "re: invoice 42")]
    pub notes: Option<String>,
    /// IANA time zone name for a `scheduleDate` without offset.
    #[schema(example = "Europe/Paris")]
    pub time_zone: Option<String>,
    /// ISO 8601; never published after it.
    pub expires_at: Option<String>,
    #[schema(inline)]
    pub window_policy: Option<WindowPolicy>,
    #[schema(inline)]
    pub slot_policy: Option<SlotPolicy>,
    /// The number the customer sees when called (read as `phoneNumber` is); default: the
    /// skill's `callerId`.
    #[schema(example = "+442071838750")]
    pub caller_id: Option<String>,
    /// The number the request came from (the caller's ANI), kept and published as is.
    pub orig_number: Option<String>,
    /// 0 (lowest) to 1000; default: the skill's `initialPriority`, else 0. Where callbacks
    /// compete for a paced skill's or agent's room, the highest effective priority goes
    /// first.
    #[schema(minimum = 0, maximum = 1000)]
    pub priority: Option<i64>,
}

/// What to do when the skill has bookable slots and the due time's slot is full.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SlotPolicy {
    /// Refuse it with `InvalidScheduleDate`, the nearest free slots in the message and in
    /// `suggestions`.
    #[default]
    Reject,
    /// Book it in the nearest free slot (the answer's `dueAt` says which).
    Nearest,
}

/// What to do with a `scheduleDate` outside the skill's calling hours.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum WindowPolicy {
    /// Move it to the next opening (the answer's `dueAt` says when).
    #[default]
    Defer,
    /// Refuse it with `InvalidScheduleDate`.
    Reject,
}

/// Deserialises a present field (even `null`) as `Some`, so "absent" and "null" differ.
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

/// A change to a pending callback: at least one of `scheduleDate`, `notes`,
/// `targetAgentId`. Unknown fields are refused.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct UpdateRequest {
    /// ISO 8601, read like `scheduleDate` on create.
    #[schema(example = "2030-01-16T09:00:00")]
    pub schedule_date: Option<String>,
    /// Only together with `scheduleDate`.
    pub time_zone: Option<String>,
    /// At most 4000 characters.
    #[schema(max_length = 4000)]
    pub notes: Option<String>,
    /// Absent: unchanged. `null` or `""`: route to the skill. Otherwise the new target agent.
    #[serde(default, deserialize_with = "present")]
    #[schema(schema_with = crate::api::openapi::target_agent_schema)]
    pub target_agent_id: Option<Option<RawId>>,
    /// Absent: unchanged. Otherwise the new preferred agents in order (`[]`: the skill).
    #[schema(value_type = Option<Vec<i64>>, max_items = 5)]
    pub target_agent_ids: Option<Vec<RawId>>,
    /// Absent: unchanged. `null`: no ownership (wait for the agents). Otherwise 1 to 604800.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<i64>, minimum = 1, maximum = 604800)]
    pub ownership_seconds: Option<Option<i64>>,
    /// ISO 8601, read like `scheduleDate`; must stay after the due time.
    pub expires_at: Option<String>,
    /// Absent: unchanged. `null` or `""`: none. Otherwise the number the customer sees, read
    /// like `phoneNumber`. (`origNumber` is where the request came from: it does not change.)
    #[serde(default, deserialize_with = "present")]
    pub caller_id: Option<Option<String>>,
    /// 0 to 1000: the new base priority.
    #[schema(minimum = 0, maximum = 1000)]
    pub priority: Option<i64>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only callbacks in this state.
    #[param(schema_with = crate::api::openapi::callback_state_schema)]
    pub state: Option<String>,
    /// Only callbacks of this skill.
    #[param(pattern = "^[0-9]+$", example = "101")]
    pub skill_id: Option<String>,
    /// Only callbacks targeting this agent.
    #[param(pattern = "^[0-9]+$", example = "7")]
    pub agent_id: Option<String>,
    /// Due before this instant (exclusive, RFC 3339).
    #[param(format = DateTime)]
    pub due_before: Option<String>,
    /// Due at or after this instant (inclusive, RFC 3339).
    #[param(format = DateTime)]
    pub due_after: Option<String>,
    /// Only callbacks to this number (as a create takes it; national numbers are read in
    /// `schedule.default_region`).
    #[param(example = "+442079460958")]
    pub phone_number: Option<String>,
    /// Only callbacks with this caller ID.
    pub caller_id: Option<String>,
    /// Only callbacks requested from this number.
    pub orig_number: Option<String>,
    /// `dueAt` (default): due order; `priority`: the highest base priority first, then due
    /// order. A cursor continues the order it was issued in.
    #[param(pattern = "^(dueAt|priority)$")]
    pub sort: Option<String>,
    /// The `nextCursor` of the previous page.
    pub cursor: Option<String>,
    /// Page size: 1 to `api.max_page_size` (default `api.default_page_size`).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
}

/// The answer to a successful create (stored, and replayed as is for a repeated
/// `Idempotency-Key`).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreatedAnswer {
    pub result: ResultCode,
    #[schema(value_type = String, format = Uuid)]
    pub callback_id: CallbackId,
    /// When it will be published: the schedule date, moved to the next opening of the
    /// skill's calling hours when outside them, or now when slightly in the past.
    pub due_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    /// The customer's own page for this callback (when `public.base_url` is set): when the
    /// call comes, cancel, choose another time. Give it to the customer (SMS, e-mail).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub manage_url: Option<String>,
    /// `true` when this is the number's pending callback in the skill, answered instead of
    /// a new one (the skill's `duplicatePolicy` is `existing`; status 200).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    #[schema(required = false)]
    pub existing: bool,
    /// With `existing`: what happened, in words.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// A page of callbacks, ordered by due time then id.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CallbackPage {
    pub items: Vec<CallbackView>,
    /// Pass as `cursor` for the next page; `null` on the last one.
    pub next_cursor: Option<String>,
}

/// A callback's history, oldest first.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventList {
    #[schema(value_type = String, format = Uuid)]
    pub callback_id: CallbackId,
    pub items: Vec<EventView>,
    /// Pass as `cursor` for the next page; `null` on the last one.
    pub next_cursor: Option<String>,
}

/// `DELETE /v1/callbacks/{id}?reason=…`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct CancelQuery {
    /// Why it is cancelled (recorded in the event); at most 500 characters.
    #[param(max_length = 500)]
    pub reason: Option<String>,
}

/// `POST /v1/callbacks/{id}/retry?scheduleDate=…&timeZone=…&reason=…`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct RetryQuery {
    /// When to try again, read like `scheduleDate` on create (a new promise); absent: now.
    pub schedule_date: Option<String>,
    /// The zone `scheduleDate` is read in; absent: the contact's.
    pub time_zone: Option<String>,
    /// Why (recorded in the event); at most 500 characters.
    #[param(max_length = 500)]
    pub reason: Option<String>,
}

/// Paging of `GET /v1/callbacks/{id}/events`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct EventsQuery {
    /// The `nextCursor` of the previous page.
    #[param(pattern = "^[0-9]+$")]
    pub cursor: Option<String>,
    /// Page size: 1 to `api.max_page_size` (default `api.default_page_size`).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
}

/// The answer to an outcome report: the callback after it, or `duplicate` for a repeat.
#[derive(Serialize, ToSchema)]
pub struct OutcomeAnswer {
    pub result: ResultCode,
    pub applied: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duplicate: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub callback: Option<CallbackView>,
}

impl From<WindowPolicy> for crate::domain::WindowPolicy {
    fn from(policy: WindowPolicy) -> Self {
        match policy {
            WindowPolicy::Defer => Self::Defer,
            WindowPolicy::Reject => Self::Reject,
        }
    }
}

impl From<CreateRequest> for CreateInput {
    fn from(r: CreateRequest) -> Self {
        Self {
            first_name: r.first_name,
            last_name: r.last_name,
            phone_number: r.phone_number,
            skill_id: r.skill_id,
            target_agent_id: r.target_agent_id,
            target_agent_ids: r.target_agent_ids,
            ownership_seconds: r.ownership_seconds,
            schedule_date: r.schedule_date,
            notes: r.notes,
            time_zone: r.time_zone,
            expires_at: r.expires_at,
            window_policy: r.window_policy.unwrap_or_default().into(),
            nearest_slot: r.slot_policy == Some(SlotPolicy::Nearest),
            caller_id: r.caller_id,
            orig_number: r.orig_number,
            priority: r.priority,
        }
    }
}

impl From<UpdateRequest> for ChangeInput {
    fn from(r: UpdateRequest) -> Self {
        Self {
            schedule_date: r.schedule_date,
            time_zone: r.time_zone,
            notes: r.notes,
            target_agent_id: r.target_agent_id,
            target_agent_ids: r.target_agent_ids,
            ownership_seconds: r.ownership_seconds,
            expires_at: r.expires_at,
            caller_id: r.caller_id,
            priority: r.priority,
        }
    }
}

/// Position in a listing ordered by `(due_at, id)`: the `nextCursor` clients pass back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListCursor {
    pub due_at: DateTime<Utc>,
    pub id: Uuid,
    /// In priority order: the position's base priority.
    pub priority: Option<u32>,
}

impl ListCursor {
    /// Opaque to clients: hex of `<due_at micros>.<uuid>`, and `.<priority>` in priority
    /// order.
    pub fn encode(&self) -> String {
        let mut raw = format!("{}.{}", self.due_at.timestamp_micros(), self.id);
        if let Some(p) = self.priority {
            raw.push_str(&format!(".{p}"));
        }
        hex::encode(raw)
    }

    pub fn decode(s: &str) -> Option<Self> {
        let raw = String::from_utf8(hex::decode(s).ok()?).ok()?;
        let mut parts = raw.split('.');
        let micros = parts.next()?;
        let id = parts.next()?;
        let priority = parts.next().map(str::parse).transpose().ok()?;
        if parts.next().is_some() {
            return None;
        }
        Some(Self {
            due_at: DateTime::from_timestamp_micros(micros.parse().ok()?)?,
            id: Uuid::parse_str(id).ok()?,
            priority,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trips_and_rejects_garbage() {
        let cursor = ListCursor {
            due_at: DateTime::from_timestamp_micros(1_790_000_000_123_456).expect("valid"),
            id: Uuid::now_v7(),
            priority: None,
        };
        assert_eq!(ListCursor::decode(&cursor.encode()), Some(cursor));
        let by_priority = ListCursor {
            priority: Some(750),
            ..cursor
        };
        assert_eq!(ListCursor::decode(&by_priority.encode()), Some(by_priority));
        assert_eq!(ListCursor::decode("zz"), None);
        assert_eq!(ListCursor::decode(&hex::encode("12.not-a-uuid")), None);
    }
}

/// What a bulk change does to each callback it selects (pending ones; failed or expired
/// ones for `retry`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum BulkAction {
    /// Cancel it (permission `callbacks:cancel`).
    Cancel,
    /// Move it to `scheduleDate` (read in `timeZone`, else the contact's zone).
    Reschedule,
    /// Route it to `targetAgentId` (`""`/`null`: back to the skill).
    Reassign,
    /// Give it base priority `priority` (0–1000).
    Reprioritize,
    /// Failed or expired callbacks only (the others selected are skipped): try again now,
    /// or at `scheduleDate` (a new promise).
    Retry,
}

impl From<BulkAction> for crate::app::BulkAction {
    fn from(action: BulkAction) -> Self {
        match action {
            BulkAction::Cancel => Self::Cancel,
            BulkAction::Reschedule => Self::Reschedule,
            BulkAction::Reassign => Self::Reassign,
            BulkAction::Reprioritize => Self::Reprioritize,
            BulkAction::Retry => Self::Retry,
        }
    }
}

impl From<crate::app::BulkAction> for BulkAction {
    fn from(action: crate::app::BulkAction) -> Self {
        use crate::app::BulkAction as A;
        match action {
            A::Cancel => Self::Cancel,
            A::Reschedule => Self::Reschedule,
            A::Reassign => Self::Reassign,
            A::Reprioritize => Self::Reprioritize,
            A::Retry => Self::Retry,
        }
    }
}

/// The callbacks a bulk change selects: the list's filters.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct BulkFilter {
    #[schema(schema_with = crate::api::openapi::callback_state_schema)]
    pub state: Option<String>,
    #[schema(pattern = "^[0-9]+$", example = "101")]
    pub skill_id: Option<String>,
    #[schema(pattern = "^[0-9]+$")]
    pub agent_id: Option<String>,
    /// Exclusive, RFC 3339.
    pub due_before: Option<String>,
    /// Inclusive, RFC 3339.
    pub due_after: Option<String>,
}

/// `POST /v1/callbacks/bulk`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct BulkRequest {
    #[serde(default)]
    pub filter: BulkFilter,
    pub action: BulkAction,
    /// Why (required; recorded in each callback's event); at most 500 characters.
    #[schema(required = true, max_length = 500)]
    pub reason: Option<String>,
    /// With `reschedule`.
    pub schedule_date: Option<String>,
    /// With `reschedule`: the zone of a `scheduleDate` without offset.
    pub time_zone: Option<String>,
    /// With `reassign`.
    #[serde(default, deserialize_with = "present")]
    #[schema(schema_with = crate::api::openapi::target_agent_schema)]
    pub target_agent_id: Option<Option<RawId>>,
    /// With `reassign`, instead of `targetAgentId`: the preferred agents in order (`[]`: the
    /// skill).
    #[schema(value_type = Option<Vec<i64>>, max_items = 5)]
    pub target_agent_ids: Option<Vec<RawId>>,
    /// With `reprioritize`: 0 to 1000.
    #[schema(minimum = 0, maximum = 1000)]
    pub priority: Option<i64>,
    /// Count only: answer how many would change, change nothing.
    #[serde(default)]
    pub dry_run: bool,
}

/// One callback a bulk change could not change, and why.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BulkRefusal {
    #[schema(value_type = String, format = Uuid)]
    pub callback_id: CallbackId,
    pub result: ResultCode,
    pub message: String,
}

/// Where a bulk change stands.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum BulkStateView {
    /// Still going through its selection (progress so far).
    Running,
    /// Gone through all of it.
    Done,
    /// Its daemon stopped before the end: what it changed is changed, the rest is not
    /// (repeat the change, with a new Idempotency-Key, to go on).
    Interrupted,
}

/// What a bulk change did (or, with `dryRun`, would do), or has done so far.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BulkAnswer {
    pub result: ResultCode,
    /// The change's id, to read where it stands (`GET /v1/callbacks/bulk/{bulkId}`); absent
    /// for a dry run, which is not recorded.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = Uuid)]
    pub bulk_id: Option<uuid::Uuid>,
    pub state: BulkStateView,
    pub action: BulkAction,
    pub dry_run: bool,
    /// Callbacks the filter selects.
    pub matched: usize,
    /// Changed (with `dryRun`: pending, so would be changed).
    pub changed: usize,
    /// Not changed: not pending (or no longer), or refused by a rule (see `refused`).
    pub skipped: usize,
    /// Selected callbacks not yet gone through (0 once done).
    pub remaining: usize,
    /// How many a rule refused (counted in `skipped`).
    pub refused_count: usize,
    /// The first refusals by a rule (at most 20), with the result code each would get.
    pub refused: Vec<BulkRefusal>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<DateTime<Utc>>,
}

impl From<crate::app::BulkReport> for BulkAnswer {
    fn from(report: crate::app::BulkReport) -> Self {
        use crate::app::BulkState;
        BulkAnswer {
            result: ResultCode::Success,
            bulk_id: report.id,
            state: match report.state {
                BulkState::Running => BulkStateView::Running,
                BulkState::Done => BulkStateView::Done,
                BulkState::Interrupted => BulkStateView::Interrupted,
            },
            action: report.action.into(),
            dry_run: report.dry_run,
            matched: report.matched,
            changed: report.changed,
            skipped: report.skipped,
            remaining: report.remaining(),
            refused_count: report.refused_count,
            refused: report
                .refused
                .into_iter()
                .map(|r| BulkRefusal {
                    callback_id: r.callback_id,
                    result: r.result,
                    message: r.message,
                })
                .collect(),
            started_at: report.started_at,
            finished_at: report.finished_at,
        }
    }
}

/// The caller's latest bulk changes, newest first.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BulkListAnswer {
    pub result: ResultCode,
    pub bulk_changes: Vec<BulkAnswer>,
}
