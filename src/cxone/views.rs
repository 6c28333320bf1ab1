//! CXone's request and answer shapes, and their translation to and from the application
//! layer's types. Field names are CXone's; what they mean is callbackd's (`docs/cxone.md`).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::domain::{Callback, ChangeInput, CreateInput, RawId, Route};

/// `POST /scheduled-callbacks` (Admin API), and `PUT /scheduled-callbacks/{callbackId}`:
/// query parameters or a JSON object.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CxScheduleRequest {
    /// At most 100 characters.
    #[schema(max_length = 100, example = "Ada")]
    pub first_name: Option<String>,
    /// At most 100 characters.
    #[schema(max_length = 100, example = "Lovelace")]
    pub last_name: Option<String>,
    /// E.164 (`+442079460958`), or a national number read in the skill's region.
    #[schema(example = "+442079460958")]
    pub phone_number: Option<String>,
    /// An active outbound phone skill.
    #[schema(schema_with = crate::api::openapi::id_input_schema)]
    pub skill_id: Option<RawId>,
    /// An active agent's id; absent or empty: the skill's agents.
    #[schema(schema_with = crate::api::openapi::target_agent_schema)]
    pub target_agent_id: Option<RawId>,
    /// ISO 8601: an instant (`2030-01-15T14:30:00Z`) or a wall-clock time in the skill's
    /// time zone (`2030-01-15T14:30:00`).
    #[schema(example = "2030-01-15T14:30:00Z")]
    pub schedule_date: Option<String>,
    /// Shown to the agent; at most 4000 characters.
    #[schema(max_length = 4000)]
    pub notes: Option<String>,
}

impl From<CxScheduleRequest> for CreateInput {
    fn from(r: CxScheduleRequest) -> Self {
        Self {
            first_name: r.first_name,
            last_name: r.last_name,
            phone_number: r.phone_number,
            skill_id: r.skill_id,
            target_agent_id: r.target_agent_id,
            schedule_date: r.schedule_date,
            notes: r.notes,
            ..Self::default()
        }
    }
}

impl CxScheduleRequest {
    /// As `PUT /scheduled-callbacks/{callbackId}` reads the create's fields: the change
    /// `scheduleDate`, `notes` and `targetAgentId` ask for (`None` when none is sent).
    /// `firstName`, `lastName`, `phoneNumber` and `skillId` may be sent only as they are:
    /// another contact or skill is another callback.
    pub fn change(&self) -> Option<ChangeInput> {
        let input = ChangeInput {
            schedule_date: self.schedule_date.clone(),
            notes: self.notes.clone(),
            // Empty routes to the skill, as on create.
            target_agent_id: self.target_agent_id.clone().map(Some),
            ..ChangeInput::default()
        };
        let asks = input.schedule_date.is_some()
            || input.notes.is_some()
            || input.target_agent_id.is_some();
        asks.then_some(input)
    }
}

/// `DELETE /scheduled-callbacks/{callbackId}`.
#[derive(Debug, Deserialize, ToSchema, IntoParams)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct CxCancelRequest {
    /// Why: recorded in the callback's `cancelled` event. At most 500 characters.
    #[schema(max_length = 500, example = "customer called in")]
    #[param(max_length = 500)]
    pub description: Option<String>,
}

/// `POST /promise` (Patron API): a local date and time in a named zone.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CxPromiseRequest {
    #[schema(max_length = 100, example = "Ada")]
    pub first_name: Option<String>,
    #[schema(max_length = 100, example = "Lovelace")]
    pub last_name: Option<String>,
    #[schema(example = "+12125550123")]
    pub phone_number: Option<String>,
    /// The skill's id.
    #[schema(schema_with = crate::api::openapi::id_input_schema)]
    pub skill: Option<RawId>,
    /// An active agent's id; absent or empty: the skill's agents.
    #[schema(schema_with = crate::api::openapi::target_agent_schema)]
    pub target_agent: Option<RawId>,
    /// `YYYY-MM-DD`, in `timeZone`.
    #[schema(example = "2030-01-15")]
    pub promise_date: Option<String>,
    /// `HH:MM` or `HH:MM:SS` (24-hour), in `timeZone`.
    #[schema(example = "14:30")]
    pub promise_time: Option<String>,
    #[schema(max_length = 4000)]
    pub notes: Option<String>,
    /// IANA time zone name (`America/New_York`); absent: the skill's, else the default.
    #[schema(example = "America/New_York")]
    pub time_zone: Option<String>,
}

impl From<CxPromiseRequest> for CreateInput {
    /// The date and time become the wall-clock `scheduleDate` the native API reads, in
    /// `timeZone`: one reading of local times, daylight saving included.
    fn from(r: CxPromiseRequest) -> Self {
        let schedule_date = match (r.promise_date, r.promise_time) {
            (Some(date), Some(time)) => Some(format!("{}T{}", date.trim(), time.trim())),
            (date, time) => date.or(time),
        };
        Self {
            first_name: r.first_name,
            last_name: r.last_name,
            phone_number: r.phone_number,
            skill_id: r.skill,
            target_agent_id: r.target_agent,
            schedule_date,
            notes: r.notes,
            time_zone: r.time_zone,
            ..Self::default()
        }
    }
}

/// A callback created: its number.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CxCreated {
    /// The callback's number: the id this surface takes. (`/v1` shows it as `number`.)
    #[schema(minimum = 1, example = 1042)]
    pub callback_id: i64,
}

/// A list of pending callbacks.
#[derive(Debug, Serialize, ToSchema)]
pub struct CxCallbackList {
    pub callbacks: Vec<CxScheduledCallback>,
}

/// A pending callback as CXone lists it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CxScheduledCallback {
    #[schema(minimum = 1, example = 1042)]
    pub callback_id: i64,
    /// Where it goes when due: `Agent` (its target agent) or `Skill` (the skill's agents).
    #[schema(example = "Agent")]
    pub target: &'static str,
    /// Its target agent, if it has one (even once it has fallen back to the skill).
    #[schema(minimum = 1, example = 7)]
    pub agent_id: Option<i64>,
    #[schema(minimum = 1, example = 101)]
    pub skill_id: i64,
    /// The number to call (E.164).
    #[schema(example = "+442079460958")]
    pub dial_number: String,
    /// The number the request came from (E.164), if one was given.
    pub orig_number: Option<String>,
    pub first_name: String,
    pub last_name: String,
    pub notes: String,
    /// When it is due (UTC).
    pub callback_time: DateTime<Utc>,
}

impl From<Callback> for CxScheduledCallback {
    fn from(c: Callback) -> Self {
        let target = match c.route() {
            Route::Agent(_) => "Agent",
            Route::Skill(_) => "Skill",
        };
        Self {
            callback_id: c.number,
            target,
            agent_id: c.target_agent_id.map(i64::from),
            skill_id: c.skill_id.get(),
            dial_number: c.phone_number.as_str().to_owned(),
            orig_number: c.orig_number.map(|n| n.as_str().to_owned()),
            first_name: c.first_name,
            last_name: c.last_name,
            notes: c.notes,
            callback_time: c.due_at,
        }
    }
}
