//! `/v1/callbacks`: schedule, read, list, change and cancel callbacks. Each handler is a
//! short sequence — authenticate, look up, decide (in `domain`), store, answer — and
//! errors become HTTP answers in one place (`api::error`).

mod bulk;
mod change;
mod create;
mod read;
pub mod views;

pub use bulk::*;
pub use change::*;
pub use create::*;
pub use read::*;

use super::AppState;
use super::error::ApiError;
use super::extract::Caller;
use crate::app::AppError;
use crate::domain::{Callback, CallbackId};

/// Reads a callback the caller may see; 404 otherwise (a 403 would confirm that it exists).
pub(crate) async fn visible_callback(
    state: &AppState,
    caller: &Caller,
    id: CallbackId,
) -> Result<Callback, ApiError> {
    let record = state
        .store
        .callback(id)
        .await?
        .filter(|r| caller.0.may_use_skill(r.skill_id))
        .ok_or(AppError::NoSuchCallback(id))?;
    Ok(record)
}

/// `limit`, or the default page size; out of range is 400.
fn page_size(state: &AppState, limit: Option<u32>) -> Result<u32, ApiError> {
    let limit = limit.unwrap_or(state.http.default_page_size);
    if limit == 0 || limit > state.http.max_page_size {
        return Err(ApiError::bad_request(format!(
            "limit {limit} is out of range 1..={}",
            state.http.max_page_size
        )));
    }
    Ok(limit)
}

#[cfg(test)]
mod props {
    //! Request bodies as the handlers read them (`JsonBody::parse`): whatever arrives, the
    //! answer is a result code, never a panic.

    use proptest::prelude::*;
    use serde_json::{Map, Value};

    use super::views::{CreateRequest, UpdateRequest};
    use crate::api::ResultCode;
    use crate::api::extract::JsonBody;

    const FIELDS: [&str; 13] = [
        "firstName",
        "lastName",
        "phoneNumber",
        "skillId",
        "targetAgentId",
        "scheduleDate",
        "notes",
        "timeZone",
        "expiresAt",
        "windowPolicy",
        "slotPolicy",
        "scheduledDate",
        "",
    ];

    fn config(cases: u32) -> ProptestConfig {
        let mut config = ProptestConfig::default();
        if std::env::var_os("PROPTEST_CASES").is_none() {
            config.cases = cases;
        }
        config
    }

    fn key() -> impl Strategy<Value = String> {
        prop_oneof![
            3 => proptest::sample::select(&FIELDS[..]).prop_map(str::to_owned),
            1 => ".{0,12}",
        ]
    }

    fn json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            ".{0,40}".prop_map(Value::from),
            "[0-9]{1,25}".prop_map(Value::from),
        ];
        leaf.prop_recursive(4, 48, 8, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
                proptest::collection::btree_map(key(), inner, 0..10)
                    .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>())),
            ]
        })
    }

    fn is_clean_refusal<T>(parsed: &Result<JsonBody<T>, crate::api::ApiError>) -> bool {
        match parsed {
            Ok(_) => true,
            Err(e) => {
                e.code == ResultCode::Default
                    && matches!(e.status.as_u16(), 400 | 422)
                    && !e.message.is_empty()
            }
        }
    }

    proptest! {
        #![proptest_config(config(512))]

        #[test]
        fn any_json_is_read_or_refused_cleanly(body in json()) {
            let bytes = body.to_string();
            let create = JsonBody::<CreateRequest>::parse(bytes.as_bytes());
            prop_assert!(is_clean_refusal(&create), "{:?}", create.err());
            let update = JsonBody::<UpdateRequest>::parse(bytes.as_bytes());
            prop_assert!(is_clean_refusal(&update), "{:?}", update.err());
            // Only an object can be a request.
            if !body.is_object() {
                prop_assert!(create.is_err());
            }
        }

        #[test]
        fn any_bytes_are_read_or_refused_cleanly(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let create = JsonBody::<CreateRequest>::parse(&bytes);
            prop_assert!(is_clean_refusal(&create), "{:?}", create.err());
        }

        /// A well-shaped body is read as sent: ids given as numbers or digit strings alike,
        /// `""` and `null` as "no target agent".
        #[test]
        fn a_well_shaped_create_body_round_trips(
            first_name in ".{0,30}",
            skill in 1u64..=i64::MAX as u64,
            skill_as_text in any::<bool>(),
            target in prop_oneof![Just(Value::Null), Just(Value::from("")), (1u64..1_000_000).prop_map(Value::from)],
            date in "[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}",
        ) {
            let skill_id = if skill_as_text { Value::from(skill.to_string()) } else { Value::from(skill) };
            let body = serde_json::json!({
                "firstName": first_name, "skillId": skill_id, "targetAgentId": target,
                "scheduleDate": date, "phoneNumber": "+442079460958",
            });
            let parsed = JsonBody::<CreateRequest>::parse(body.to_string().as_bytes());
            let req = parsed.map_err(|e| TestCaseError::fail(e.message))?.value;
            prop_assert_eq!(req.first_name.as_deref(), Some(first_name.as_str()));
            prop_assert_eq!(req.skill_id.map(|id| id.0), Some(skill.to_string()));
            prop_assert_eq!(req.schedule_date.as_deref(), Some(date.as_str()));
            let agent = req.target_agent_id.map(|id| id.target_agent().map(|a| a.map(|a| a.get())));
            match target.as_u64() {
                Some(n) => prop_assert_eq!(agent.map(|a| a.ok()), Some(Some(Some(n as i64)))),
                None if target.is_null() => prop_assert!(agent.is_none()),
                None => prop_assert_eq!(agent.map(|a| a.ok()), Some(Some(None))),
            }
        }

        /// `Idempotency-Key` compares the body's canonical form: key order and whitespace
        /// do not make a repeat look different.
        #[test]
        fn the_digest_ignores_key_order_and_whitespace(
            fields in proptest::collection::btree_map(proptest::sample::select(&FIELDS[..10]), ".{0,20}", 1..8)
        ) {
            let forward: Vec<String> = fields
                .iter()
                .map(|(k, v)| format!("{}:{}", Value::from(*k), Value::from(v.as_str())))
                .collect();
            let mut backward = forward.clone();
            backward.reverse();
            let a = format!("{{{}}}", forward.join(","));
            let b = format!(" {{ {} }}\n", backward.join(" ,\n\t"));
            let a = JsonBody::<Value>::parse(a.as_bytes()).map_err(|e| TestCaseError::fail(e.message))?;
            let b = JsonBody::<Value>::parse(b.as_bytes()).map_err(|e| TestCaseError::fail(e.message))?;
            prop_assert_eq!(a.digest, b.digest);
        }
    }
}
