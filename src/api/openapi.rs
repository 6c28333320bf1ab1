//! The OpenAPI 3 document of the HTTP API, generated from the handlers' `#[utoipa::path]`
//! annotations and the request and response types, served at `GET /openapi.json`.
//!
//! Error answers are documented once here rather than on every handler: [`ErrorAnswers`]
//! gives every 4xx and 5xx response the `{"result","message"}` body, and adds the answers any
//! `/v1` request can get (408 for a slow client or request, 503 for an unreachable database
//! or a busy daemon, 413 where there is a body).

use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::Value;
use utoipa::openapi::path::Operation;
use utoipa::openapi::schema::{
    AdditionalProperties, ObjectBuilder, OneOfBuilder, Schema, SchemaFormat, Type,
};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{
    ContentBuilder, KnownFormat, OpenApi as OpenApiDoc, Ref, RefOr, ResponseBuilder,
};
use utoipa::{Modify, OpenApi, ToSchema};

use super::error::{ErrorBody, ResultCode};
use super::{AppState, callbacks, directory, health};
use crate::domain::{Direction, MediaType, OutcomeKind};

/// The name of the bearer-token security scheme in the document.
pub const BEARER: &str = "bearer";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "callbackd",
        description = "Schedules callbacks (the platform's Schedule Callback action) and \
            publishes them to RabbitMQ when they mature. Every error answers \
            `{\"result\": \"<code>\", \"message\": \"<what was wrong>\"}`."
    ),
    paths(
        callbacks::create,
        callbacks::list,
        callbacks::get,
        callbacks::update,
        callbacks::cancel,
        callbacks::events,
        callbacks::outcome,
        callbacks::retry,
        callbacks::bulk,
        callbacks::bulk_change,
        callbacks::bulk_changes,
        super::availability::availability,
        directory::put_skill,
        directory::get_skill,
        directory::put_capacity,
        super::pause::pause,
        super::pause::resume,
        directory::put_agent,
        directory::get_agent,
        super::dnc::put_dnc,
        super::dnc::get_dnc,
        super::dnc::delete_dnc,
        super::calendars::put_calendar,
        super::calendars::get_calendar,
        super::calendars::delete_calendar,
        super::webhooks::put_webhook,
        super::webhooks::get_webhook,
        super::webhooks::list_webhooks,
        super::webhooks::delete_webhook,
        super::webhooks::webhook_attempts,
        super::privacy::export,
        super::privacy::erase,
        super::reports::promises,
        health::healthz,
        health::readyz,
        health::metrics,
        document,
    ),
    components(schemas(ErrorBody, ResultCode)),
    modifiers(&BearerScheme, &ErrorAnswers, &FreshExamples),
    tags(
        (name = "callbacks", description = "Schedule, read, change and cancel callbacks"),
        (name = "directory", description = "Skills and agents mirrored from the platform"),
        (name = "dnc", description = "The do-not-call list: numbers callbacks must not be made to"),
        (name = "webhooks", description = "Subscriptions that receive callback events as signed HTTP POSTs"),
        (name = "privacy", description = "Access and erasure of a phone number's personal data"),
        (name = "health", description = "Liveness, readiness, metrics and this document"),
    )
)]
pub struct ApiDoc;

/// `GET /openapi.json`: this document (no authentication).
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "health",
    responses((status = 200, description = "The OpenAPI 3 document of this API", content_type = "application/json"))
)]
pub async fn document(State(state): State<AppState>) -> Response {
    let cxone = &state.settings.cxone;
    let body = state.http.openapi.get_or_init(|| {
        document_json(cxone.enabled.then_some(cxone.prefix.as_str()))
            .unwrap_or_else(|e| format!("{{\"error\":\"cannot serialise the document: {e}\"}}"))
    });
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body.clone(),
    )
        .into_response()
}

/// The document as JSON, with the CXone surface's operations under `cxone` (its prefix)
/// when it is on. utoipa 5 writes the fields of a response link in snake case
/// (`operation_id`); OpenAPI spells them in camel case, so they are renamed here.
pub fn document_json(cxone: Option<&str>) -> Result<String, serde_json::Error> {
    let mut doc = ApiDoc::openapi();
    if let Some(prefix) = cxone {
        doc = doc.nest(prefix, crate::cxone::CxoneDoc::openapi());
    }
    let mut doc = serde_json::to_value(doc)?;
    let operations = doc
        .get_mut("paths")
        .and_then(Value::as_object_mut)
        .into_iter()
        .flat_map(|paths| paths.values_mut())
        .filter_map(Value::as_object_mut)
        .flat_map(|item| item.values_mut());
    for operation in operations {
        let links = operation
            .get_mut("responses")
            .and_then(Value::as_object_mut)
            .into_iter()
            .flat_map(|responses| responses.values_mut())
            .filter_map(|response| response.get_mut("links"))
            .filter_map(Value::as_object_mut)
            .flat_map(|links| links.values_mut())
            .filter_map(Value::as_object_mut);
        for link in links {
            for (snake, camel) in [
                ("operation_id", "operationId"),
                ("operation_ref", "operationRef"),
                ("request_body", "requestBody"),
            ] {
                if let Some(value) = link.remove(snake) {
                    link.insert(camel.to_owned(), value);
                }
            }
        }
    }
    serde_json::to_string(&doc)
}

struct BearerScheme;

impl Modify for BearerScheme {
    fn modify(&self, openapi: &mut OpenApiDoc) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            BEARER,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "The token `callbackd user add` printed; only its hash is stored.",
                    ))
                    .build(),
            ),
        );
    }
}

/// Whole-body examples that succeed against the README's directory (skill 101, agent 7):
/// a schedule date must fall within the horizon, so it is tomorrow's, set when the
/// document is built.
struct FreshExamples;

impl Modify for FreshExamples {
    fn modify(&self, openapi: &mut OpenApiDoc) {
        let tomorrow = chrono::Utc::now().date_naive() + chrono::Days::new(1);
        let at = |time: &str| format!("{}T{time}:00Z", tomorrow.format("%Y-%m-%d"));
        let Some(components) = openapi.components.as_mut() else {
            return;
        };
        for (name, example) in [
            (
                "CreateRequest",
                serde_json::json!({
                    "firstName": "Ada", "lastName": "Lovelace", "phoneNumber": "+442079460958",
                    "skillId": 101, "targetAgentId": 7, "scheduleDate": at("14:30"),
                    "notes": "re: invoice 42"
                }),
            ),
            (
                "UpdateRequest",
                serde_json::json!({"scheduleDate": at("16:00"), "notes": "moved", "targetAgentId": ""}),
            ),
        ] {
            if let Some(RefOr::T(Schema::Object(schema))) = components.schemas.get_mut(name) {
                schema.examples = vec![example];
            }
        }
    }
}

struct ErrorAnswers;

impl Modify for ErrorAnswers {
    fn modify(&self, openapi: &mut OpenApiDoc) {
        error_answers(openapi, "ErrorBody", |path| path.starts_with("/v1/"));
    }
}

/// Gives every 4xx and 5xx answer of `openapi` the body `schema`, and the operations of the
/// paths `api` picks the answers any API request can get.
pub(crate) fn error_answers(openapi: &mut OpenApiDoc, schema: &str, api: impl Fn(&str) -> bool) {
    for (path, item) in openapi.paths.paths.iter_mut() {
        let api = api(path);
        for (has_body, operation) in [
            (false, item.get.as_mut()),
            (true, item.put.as_mut()),
            (true, item.post.as_mut()),
            (true, item.patch.as_mut()),
            (false, item.delete.as_mut()),
        ] {
            if let Some(operation) = operation {
                add_error_answers(operation, api, has_body, schema);
            }
        }
    }
}

fn add_error_answers(operation: &mut Operation, api: bool, has_body: bool, schema: &str) {
    let responses = &mut operation.responses.responses;
    if api {
        let mut common = vec![
            (
                "408",
                "Default: the client sent its request body too slowly, or the request took \
                 longer than api.request_timeout_ms",
            ),
            (
                "503",
                "Default: the database is unreachable, or the daemon is busy \
                 (api.max_concurrent_requests; Retry-After: 1); retry later",
            ),
        ];
        if has_body {
            common.push((
                "413",
                "Default: the request body is larger than api.max_body_bytes",
            ));
        }
        for (status, description) in common {
            responses
                .entry(status.to_owned())
                .or_insert_with(|| ResponseBuilder::new().description(description).into());
        }
    }
    for (status, response) in responses.iter_mut() {
        let is_error = status.starts_with('4') || status.starts_with('5');
        if let (true, RefOr::T(response)) = (is_error, response) {
            response
                .content
                .entry("application/json".to_owned())
                .or_insert_with(|| {
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name(schema)))
                        .build()
                });
        }
    }
}

/// The spec's result codes (a domain type) as the document shows them: a string enum.
impl utoipa::PartialSchema for ResultCode {
    fn schema() -> utoipa::openapi::RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some(ResultCode::ALL.iter().map(|c| c.as_str())))
            .description(Some("Which branch the calling script takes."))
            .build()
            .into()
    }
}

impl ToSchema for ResultCode {}

/// An id as scripts send it: a positive integer, or a string of digits.
pub fn id_input_schema() -> Schema {
    OneOfBuilder::new()
        .item(
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
                .minimum(Some(1)),
        )
        .item(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .pattern(Some("^[0-9]+$")),
        )
        .examples([serde_json::json!(101)])
        .build()
        .into()
}

/// The target agent: an agent's id, or `""`/`null` for "route to the skill".
pub fn target_agent_schema() -> Schema {
    OneOfBuilder::new()
        .item(
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
                .minimum(Some(1)),
        )
        .item(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .pattern(Some("^[0-9]*$")),
        )
        .item(ObjectBuilder::new().schema_type(Type::Null))
        .examples([serde_json::json!(7)])
        .build()
        .into()
}

fn string_enum(values: impl IntoIterator<Item = &'static str>) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(values))
}

pub use crate::wire::callback_state_schema;

pub fn media_type_schema() -> Schema {
    string_enum(MediaType::ALL.map(MediaType::as_str)).into()
}

pub fn direction_schema() -> Schema {
    string_enum([Direction::Inbound, Direction::Outbound].map(Direction::as_str)).into()
}

pub fn outcome_kind_schema() -> Schema {
    string_enum(OutcomeKind::ALL.map(OutcomeKind::as_str)).into()
}

/// `callingHours`: ranges per weekday (`mon` … `sun`), local time, `HH:MM-HH:MM`.
pub fn calling_hours_schema() -> Schema {
    let ranges = || {
        utoipa::openapi::schema::ArrayBuilder::new().items(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .pattern(Some("^[0-9]{2}:[0-9]{2}-[0-9]{2}:[0-9]{2}$")),
        )
    };
    let mut hours = ObjectBuilder::new()
        .schema_type(Type::Object)
        .additional_properties(Some(AdditionalProperties::FreeForm(false)))
        .examples([serde_json::json!({"mon": ["08:00-21:00"], "sat": ["09:00-17:00"]})]);
    for day in ["mon", "tue", "wed", "thu", "fri", "sat", "sun"] {
        hours = hours.property(day, ranges());
    }
    hours.into()
}

/// `retryBackoffSeconds`: positive numbers of seconds that fit the store's `integer`.
pub fn backoff_schema() -> Schema {
    utoipa::openapi::schema::ArrayBuilder::new()
        .items(
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int32)))
                .minimum(Some(1))
                .maximum(Some(i32::MAX)),
        )
        .min_items(Some(1))
        .examples([serde_json::json!([600, 1800, 7200])])
        .into()
}

/// The body of `PUT /v1/skills/{id}` (read into [`crate::domain::SkillInput`]).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[allow(dead_code)]
pub struct SkillBody {
    /// When given, must equal the id in the path.
    #[schema(minimum = 1)]
    id: Option<i64>,
    #[schema(max_length = 200, example = "Outbound Sales")]
    name: String,
    #[schema(schema_with = media_type_schema)]
    media_type: String,
    #[schema(schema_with = direction_schema)]
    direction: String,
    active: bool,
    /// IANA time zone name.
    #[schema(example = "Europe/London")]
    time_zone: Option<String>,
    #[schema(schema_with = calling_hours_schema)]
    calling_hours: Option<std::collections::BTreeMap<String, Vec<String>>>,
    /// Delay before retrying after the n-th unanswered attempt (the last one repeats).
    #[schema(schema_with = backoff_schema)]
    retry_backoff_seconds: Option<Vec<u32>>,
    #[schema(minimum = 1, maximum = 2147483647)]
    max_attempts: Option<u32>,
    /// 0: wait for the target agent forever.
    #[schema(maximum = 2147483647)]
    agent_fallback_seconds: Option<u32>,
    #[schema(minimum = 1, maximum = 2147483647)]
    default_ttl_seconds: Option<u32>,
    /// A published callback with no final outcome this long after publication fails
    /// (default `lifecycle.outcome_deadline_seconds`).
    #[schema(minimum = 1, maximum = 2147483647)]
    outcome_deadline_seconds: Option<u32>,
    /// At most this many of the skill's callbacks published and without a final outcome at
    /// once (default `pacing.skill_max_in_flight`; absent: no limit).
    #[schema(minimum = 1, maximum = 2147483647)]
    max_in_flight: Option<u32>,
    /// At most this many publications a minute, spread evenly (default
    /// `pacing.skill_max_per_minute`; absent: no limit).
    #[schema(minimum = 1, maximum = 2147483647)]
    max_per_minute: Option<u32>,
    /// Bookable slots: their length in minutes, aligned on local midnight in the skill's
    /// time zone (must divide a day: 5, 10, 15, 20, 30, 60, …). Goes with `slotCapacity`.
    #[schema(minimum = 1, maximum = 1440, example = 15)]
    slot_minutes: Option<u32>,
    /// Callbacks a slot takes.
    #[schema(minimum = 0, maximum = 2147483647, example = 5)]
    slot_capacity: Option<u32>,
    /// Capacity by hour of the week (local), over `slotCapacity`: `{"mon 09": 12, "sat 10": 2}`.
    #[schema(value_type = Option<Object>, example = json!({"mon 09": 12, "sat 10": 2}))]
    slot_capacity_by_hour: Option<std::collections::BTreeMap<String, u32>>,
    /// ISO 3166 country code (`GB`) a national number of this skill's callbacks is read in;
    /// default `schedule.default_region`.
    #[schema(example = "GB", min_length = 2, max_length = 2)]
    default_region: Option<String>,
    /// The number customers see when called, for callbacks that name no `callerId`.
    #[schema(example = "+442071838750")]
    caller_id: Option<String>,
    /// What a create for a number that already has a pending callback in this skill gets:
    /// `allow` another, `existing` the pending one (200, nothing written), `refuse`
    /// (InvalidPhoneNumber); default `schedule.duplicate_policy`.
    #[schema(value_type = Option<String>, pattern = "^(allow|existing|refuse)$")]
    duplicate_policy: Option<String>,
    /// Pending callbacks one number may have in this skill at once.
    #[schema(minimum = 1, maximum = 2147483647)]
    max_pending_per_number: Option<u32>,
    /// Creates one number may have in this skill per calendar day of its time zone.
    #[schema(minimum = 1, maximum = 2147483647)]
    max_creates_per_number_per_day: Option<u32>,
    /// The name of a calendar of closed dates and special hours (`PUT /v1/calendars/{name}`
    /// first).
    #[schema(example = "uk-holidays")]
    calendar: Option<String>,
    /// The base priority of its callbacks that name none (0–1000; default 0).
    #[schema(minimum = 0, maximum = 1000)]
    initial_priority: Option<i64>,
    /// Points a callback gains per minute past due (default 0: no ageing).
    #[schema(minimum = 0, maximum = 1000)]
    priority_acceleration: Option<i64>,
    /// The most a callback's priority ages to (default 1000).
    #[schema(minimum = 0, maximum = 1000)]
    max_priority: Option<i64>,
    /// How long past its due time a callback with target agents waits for them before it
    /// goes to the skill, when the callback names no `ownershipSeconds` (default: until
    /// one of them takes it).
    #[schema(minimum = 1, maximum = 604800)]
    ownership_seconds: Option<i64>,
    /// Reminders before its callbacks, in seconds before the due time (at most 3, each 60
    /// to 604800): each is a `reminder` event on the event stream for a notifier.
    #[schema(example = json!([86400, 3600]))]
    reminders: Option<Vec<i64>>,
}

/// The body of `PUT /v1/agents/{id}` (read into [`crate::domain::AgentInput`]).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[allow(dead_code)]
pub struct AgentBody {
    /// When given, must equal the id in the path.
    #[schema(minimum = 1)]
    id: Option<i64>,
    #[schema(max_length = 200, example = "jdoe")]
    username: String,
    active: bool,
    /// How people call the agent (shown in the console); default none.
    #[schema(max_length = 200, example = "Jane Doe")]
    name: Option<String>,
    /// The skills the agent takes (the console lists these agents first when reassigning
    /// one of their callbacks); default none. Not a routing rule.
    #[schema(max_items = 1000)]
    skill_ids: Option<Vec<i64>>,
}

/// The body of `POST /v1/callbacks/{id}/outcomes` (read into
/// [`crate::app::OutcomeReport`]): what a dialer reports for one attempt.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[allow(dead_code)]
pub struct OutcomeBody {
    /// `callbackd.outcome.v1` when given.
    #[schema(
        example = "callbackd.outcome.v1",
        pattern = r"^callbackd\.outcome\.v1$"
    )]
    schema: Option<String>,
    /// When given, must equal the id in the path.
    #[schema(format = Uuid)]
    callback_id: Option<String>,
    /// The attempt this outcome is for (the callback's `attempt`).
    #[schema(example = 1, minimum = 1)]
    attempt: i32,
    #[schema(schema_with = outcome_kind_schema)]
    outcome: String,
    /// With `reschedule`: when to call again (ISO 8601, like `scheduleDate` on create).
    schedule_date: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_answer_carries_a_result_code() {
        let doc = serde_json::to_value(ApiDoc::openapi()).expect("serialises");
        let paths = doc["paths"].as_object().expect("paths");
        for (path, item) in paths {
            for (method, operation) in item.as_object().expect("path item") {
                for (status, response) in operation["responses"].as_object().expect("responses") {
                    if !(status.starts_with('4') || status.starts_with('5')) {
                        continue;
                    }
                    let schema = &response["content"]["application/json"]["schema"]["$ref"];
                    let name = schema
                        .as_str()
                        .and_then(|r| r.strip_prefix("#/components/schemas/"))
                        .unwrap_or_else(|| panic!("{method} {path} {status}: no JSON body"));
                    let properties = &doc["components"]["schemas"][name]["properties"];
                    assert!(
                        properties.get("result").is_some(),
                        "{method} {path} {status}: {name} has no result"
                    );
                }
            }
        }
    }

    /// The documented bodies and the types the handlers read must accept the same fields.
    #[test]
    fn documented_bodies_match_what_the_handlers_read() {
        use serde_json::json;
        let skill = json!({
            "id": 101, "name": "Outbound Sales", "mediaType": "phone", "direction": "outbound",
            "active": true, "timeZone": "Europe/London", "callingHours": {"mon": ["08:00-21:00"]},
            "retryBackoffSeconds": [600], "maxAttempts": 3, "agentFallbackSeconds": 900,
            "defaultTtlSeconds": 86400, "outcomeDeadlineSeconds": 86400,
            "maxInFlight": 20, "maxPerMinute": 60,
            "slotMinutes": 15, "slotCapacity": 5, "slotCapacityByHour": {"mon 09": 8},
            "defaultRegion": "GB", "callerId": "+442071838750", "duplicatePolicy": "existing",
            "maxPendingPerNumber": 2, "maxCreatesPerNumberPerDay": 5, "calendar": "uk",
            "initialPriority": 10, "priorityAcceleration": 2, "maxPriority": 900
        });
        serde_json::from_value::<SkillBody>(skill.clone()).expect("documented skill");
        serde_json::from_value::<crate::domain::SkillInput>(skill).expect("real skill");
        let agent = json!({"id": 7, "username": "jdoe", "active": true});
        serde_json::from_value::<AgentBody>(agent.clone()).expect("documented agent");
        serde_json::from_value::<crate::domain::AgentInput>(agent).expect("real agent");
        let outcome = json!({
            "schema": "callbackd.outcome.v1", "callbackId": "01a21291-eee3-771c-b85e-1be0283a8457",
            "attempt": 1, "outcome": "reschedule", "scheduleDate": "2030-01-15T14:30:00"
        });
        serde_json::from_value::<OutcomeBody>(outcome.clone()).expect("documented outcome");
        serde_json::from_value::<crate::app::OutcomeReport>(outcome).expect("real outcome");
        let doc = serde_json::to_value(ApiDoc::openapi()).expect("serialises");
        for (name, fields) in [("SkillBody", 28), ("AgentBody", 5), ("OutcomeBody", 5)] {
            let properties = doc["components"]["schemas"][name]["properties"]
                .as_object()
                .map(|p| p.len());
            assert_eq!(
                properties,
                Some(fields),
                "{name}: a field was added or removed"
            );
        }
    }

    #[test]
    fn links_name_operations_that_exist() {
        let doc: Value =
            serde_json::from_str(&document_json(Some("/cxone")).expect("JSON")).expect("parses");
        let ids: Vec<&Value> = doc["paths"]
            .as_object()
            .into_iter()
            .flat_map(|p| p.values())
            .filter_map(Value::as_object)
            .flat_map(|item| item.values())
            .filter_map(|operation| operation.get("operationId"))
            .collect();
        let links = doc["paths"]["/v1/callbacks"]["post"]["responses"]["201"]["links"]
            .as_object()
            .expect("links from a created callback");
        assert_eq!(links.len(), 5);
        for (name, link) in links {
            assert!(link.get("operation_id").is_none(), "{name}: {link}");
            assert!(ids.contains(&&link["operationId"]), "{name}: {link}");
        }
    }
}
