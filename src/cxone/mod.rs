//! A CXone-compatible surface (`docs/cxone.md`): the scheduled-callback requests of NICE
//! CXone's Admin API and the Patron API's `POST /promise`, answered under `cxone.prefix`
//! for integrations written against CXone. A delivery like `api`: each handler translates
//! to the same application-layer call `/v1` makes and back — no rule of its own — with the
//! same bearer tokens, permissions and skill restrictions. Callbacks are named by their
//! number (`callbacks.number`), not their UUID.
//!
//! Off unless `cxone.enabled`; then `crate::http` mounts [`routes`] and the OpenAPI
//! document lists [`CxoneDoc`]'s operations under the prefix, tagged `cxone`.

mod callbacks;
mod error;
mod extract;
mod lists;
mod views;

use axum::Router;
use axum::middleware;
use axum::routing::{get, post, put};
use utoipa::openapi::OpenApi as OpenApiDoc;
use utoipa::{Modify, OpenApi};

pub use error::{CxError, CxErrorBody};

use crate::api::AppState;

/// The surface's routes, to be nested under `cxone.prefix`. They count against
/// `api.max_concurrent_requests` as `/v1` does.
pub fn routes(state: &AppState) -> Router<AppState> {
    Router::new()
        .route("/scheduled-callbacks", post(callbacks::schedule))
        .route(
            "/scheduled-callbacks/{callbackId}",
            put(callbacks::update).delete(callbacks::delete),
        )
        .route(
            "/agents/{agentId}/scheduled-callbacks",
            get(lists::of_agent),
        )
        .route(
            "/skills/{skillId}/scheduled-callbacks",
            get(lists::of_skill),
        )
        .route("/promise", post(callbacks::promise))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            crate::api::limit_concurrency,
        ))
}

/// The surface's operations, with paths relative to its prefix (`ApiDoc` nests them).
#[derive(OpenApi)]
#[openapi(
    paths(
        callbacks::schedule,
        callbacks::update,
        callbacks::delete,
        callbacks::promise,
        lists::of_agent,
        lists::of_skill,
    ),
    components(schemas(CxErrorBody)),
    modifiers(&CxoneErrors, &FreshExamples),
    tags((name = "cxone", description = "CXone-compatible scheduled callbacks and promises: callbacks named by their number, errors as {\"status\", \"message\", \"result\"}")),
)]
pub struct CxoneDoc;

/// Every error answer of the surface has CXone's body, and the answers any request can get.
struct CxoneErrors;

impl Modify for CxoneErrors {
    fn modify(&self, openapi: &mut OpenApiDoc) {
        crate::api::openapi::error_answers(openapi, "CxErrorBody", |_| true);
    }
}

/// Whole-body examples that succeed against the README's directory (skill 101, agent 7),
/// dated tomorrow when the document is built (a date must fall within the horizon).
struct FreshExamples;

impl Modify for FreshExamples {
    fn modify(&self, openapi: &mut OpenApiDoc) {
        use utoipa::openapi::RefOr;
        use utoipa::openapi::schema::Schema;
        let tomorrow = (chrono::Utc::now().date_naive() + chrono::Days::new(1))
            .format("%Y-%m-%d")
            .to_string();
        let Some(components) = openapi.components.as_mut() else {
            return;
        };
        for (name, example) in [
            (
                "CxScheduleRequest",
                serde_json::json!({
                    "firstName": "Ada", "lastName": "Lovelace", "phoneNumber": "+442079460958",
                    "skillId": 101, "targetAgentId": 7, "scheduleDate": format!("{tomorrow}T14:30:00Z"),
                    "notes": "re: invoice 42"
                }),
            ),
            (
                "CxPromiseRequest",
                serde_json::json!({
                    "firstName": "Grace", "lastName": "Hopper", "phoneNumber": "+12125550123",
                    "skill": 101, "targetAgent": "", "promiseDate": tomorrow, "promiseTime": "14:30",
                    "notes": "promised on the phone", "timeZone": "America/New_York"
                }),
            ),
        ] {
            if let Some(RefOr::T(Schema::Object(schema))) = components.schemas.get_mut(name) {
                schema.examples = vec![example];
            }
        }
    }
}
