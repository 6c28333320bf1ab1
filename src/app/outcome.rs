//! Dialer outcomes, from the outcomes queue or `POST /v1/callbacks/{id}/outcomes`: parse,
//! decide (domain), apply once (store).

use serde::Deserialize;

use super::{App, AppError, require};
pub use crate::amqp::{Incoming, Verdict};
use crate::config::Settings;
use crate::domain::{
    Callback, CallbackId, Current, Decision, OutcomeKind, Permission, ResultCode, SecurityUser,
    check_attempt, contact_zone, decide, resolve_schedule_date,
};
use crate::store::{CallbackChange, StoreError};

pub const SCHEMA: &str = "callbackd.outcome.v1";

/// One outcome report, as dialers send it.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OutcomeReport {
    /// `callbackd.outcome.v1`; required on the queue, optional over HTTP.
    #[serde(default)]
    pub schema: Option<String>,
    #[serde(default)]
    pub callback_id: Option<CallbackId>,
    pub attempt: i32,
    pub outcome: OutcomeKind,
    /// With `reschedule`: when to call again (ISO 8601, like `scheduleDate` on create).
    #[serde(default)]
    pub schedule_date: Option<String>,
    /// Fields this version does not know: ignored on the queue (a dialer may be newer),
    /// refused over HTTP, where the OpenAPI document lists the fields.
    #[serde(flatten)]
    pub unknown: std::collections::BTreeMap<String, serde_json::Value>,
}

#[derive(Debug, thiserror::Error)]
pub enum OutcomeError {
    #[error("callback {0} does not exist")]
    UnknownCallback(CallbackId),
    #[error("reschedule needs a scheduleDate")]
    MissingScheduleDate,
    #[error("scheduleDate: {0}")]
    ScheduleDate(crate::domain::ScheduleDateError),
    #[error(transparent)]
    Attempt(#[from] crate::domain::AttemptError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What became of a report.
#[derive(Debug)]
pub enum Applied {
    /// It changed the callback (or was recorded as ignored, with the reason).
    Done {
        record: Box<Callback>,
        decision: Decision,
    },
    /// The same (callback, attempt, outcome) was reported before: nothing changed.
    Duplicate,
}

/// An outcome reported over HTTP by `user`, for callback `id` (which the body, when it names
/// one, must agree with). Recorded but not applied — an old attempt, a state it does not
/// apply to — is [`AppError::Conflict`]; a repeat is [`Applied::Duplicate`].
pub async fn report_outcome(
    app: &App,
    user: &SecurityUser,
    id: CallbackId,
    report: &OutcomeReport,
) -> Result<Applied, AppError> {
    require(user, Permission::CallbacksUpdate)?;
    if let Some(field) = report.unknown.keys().next() {
        return Err(AppError::unacceptable(format!(
            "unknown field `{field}`; expected one of schema, callbackId, attempt, outcome, scheduleDate"
        )));
    }
    if report.callback_id.is_some_and(|body_id| body_id != id) {
        return Err(AppError::unacceptable(format!(
            "callbackId in the body is not {id}"
        )));
    }
    if report.schema.as_deref().is_some_and(|s| s != SCHEMA) {
        return Err(AppError::unacceptable(format!(
            "schema must be \"{SCHEMA}\""
        )));
    }
    let change = super::change::locked(app, user, id).await?;
    let applied = apply(change, report, &app.settings, "http", &user.name)
        .await
        .map_err(|e| match e {
            OutcomeError::Store(e) => e.into(),
            OutcomeError::ScheduleDate(e) => {
                AppError::invalid(ResultCode::InvalidScheduleDate, e.to_string())
            }
            OutcomeError::MissingScheduleDate => AppError::invalid(
                ResultCode::InvalidScheduleDate,
                "reschedule needs a scheduleDate",
            ),
            OutcomeError::Attempt(e) => AppError::unacceptable(format!("attempt: {e}")),
            other => AppError::unacceptable(other.to_string()),
        })?;
    if let Applied::Done {
        decision: Decision::Ignore(reason),
        ..
    } = &applied
    {
        return Err(AppError::Conflict(format!(
            "outcome {} for attempt {} not applied: {reason}",
            report.outcome, report.attempt
        )));
    }
    Ok(applied)
}

/// Applies `report` to the locked callback in `change`, once.
async fn apply(
    mut change: CallbackChange,
    report: &OutcomeReport,
    settings: &Settings,
    source: &str,
    actor: &str,
) -> Result<Applied, OutcomeError> {
    let record = &change.record;
    // Refused before anything is written: an attempt that was never published.
    check_attempt(record.attempt, report.attempt)?;
    let rules = settings.schedule_rules();
    let reschedule_at = match (report.outcome, report.schedule_date.as_deref()) {
        (OutcomeKind::Reschedule, None) => return Err(OutcomeError::MissingScheduleDate),
        (OutcomeKind::Reschedule, Some(input)) => {
            let zone = contact_zone(
                record.time_zone,
                change.skill.time_zone,
                rules.default_time_zone,
            );
            let (_, due) = resolve_schedule_date(input, zone, change.now, &rules)
                .map_err(OutcomeError::ScheduleDate)?;
            Some(due)
        }
        _ => None,
    };
    let current = Current {
        state: record.state,
        attempt: record.attempt,
        dial_failures: record.dial_failures,
    };
    let policy = change
        .skill
        .policy
        .retry_policy(&settings.lifecycle.defaults());
    let decision = decide(
        current,
        report.attempt,
        report.outcome,
        reschedule_at,
        &policy,
        change.now,
    );
    let applied = !matches!(decision, Decision::Ignore(_));
    let id = record.id;
    if !change
        .record_outcome(report.attempt, report.outcome, source, applied)
        .await?
    {
        return Ok(Applied::Duplicate);
    }
    let record = change
        .apply_outcome(
            report.outcome,
            &decision.write(report.attempt, report.outcome),
            actor,
        )
        .await?;
    crate::instruments::outcome(report.outcome.as_str(), applied);
    match &decision {
        Decision::Ignore(reason) => tracing::info!(callback_id = %id, attempt = report.attempt,
            outcome = %report.outcome, reason = %reason, source, "outcome ignored"),
        _ => tracing::info!(callback_id = %id, attempt = report.attempt, outcome = %report.outcome,
            state = %record.state, source, "outcome applied"),
    }
    Ok(Applied::Done {
        record: Box::new(record),
        decision,
    })
}

/// Whether this daemon consumes the outcomes queue. Only trusted publishers may end a
/// callback: the users named in `amqp.outcome_publishers`, or — when the operator set
/// `amqp.outcome_publishers_open` — any broker user that may publish to the queue. With
/// neither, the queue is left alone (its outcomes wait there) and a warning says why.
pub fn consumes_outcomes(settings: &crate::config::AmqpSettings) -> bool {
    if settings.outcomes_queue.is_empty() {
        return false;
    }
    if !settings.outcome_publishers.is_empty() {
        return true;
    }
    if settings.outcome_publishers_open {
        tracing::warn!(
            queue = %settings.outcomes_queue,
            "amqp.outcome_publishers_open: any broker user that may publish to the outcomes queue can complete or fail any callback; name the dialers' users in amqp.outcome_publishers instead"
        );
        true
    } else {
        tracing::warn!(
            queue = %settings.outcomes_queue,
            "outcomes are not consumed: amqp.outcome_publishers names no dialer user (set it, or amqp.outcome_publishers_open = true to trust any publisher)"
        );
        false
    }
}

/// Handles one message from the outcomes queue.
pub async fn handle_message(
    message: &Incoming,
    store: &crate::store::Store,
    settings: &Settings,
) -> Verdict {
    let publishers = &settings.amqp.outcome_publishers;
    if !publishers.is_empty() {
        match &message.user_id {
            Some(user) if publishers.contains(user) => {}
            Some(user) => {
                return Verdict::DeadLetter(format!(
                    "user_id `{user}` is not one of amqp.outcome_publishers"
                ));
            }
            None => {
                return Verdict::DeadLetter(
                    "no user_id property: amqp.outcome_publishers accepts only outcomes that name their publisher".into(),
                );
            }
        }
    }
    let report: OutcomeReport = match crate::wire::object(&message.body) {
        Ok(object) => match serde_json::from_value(serde_json::Value::Object(object)) {
            Ok(report) => report,
            Err(e) => {
                let e = crate::wire::plain_words(&e.to_string());
                return Verdict::DeadLetter(format!("not a {SCHEMA} message: {e}"));
            }
        },
        Err(e) => return Verdict::DeadLetter(format!("not a {SCHEMA} message: {e}")),
    };
    if report.schema.as_deref() != Some(SCHEMA) {
        return Verdict::DeadLetter(format!(
            "schema is {:?}, expected \"{SCHEMA}\"",
            report.schema.as_deref().unwrap_or("missing")
        ));
    }
    let Some(id) = report.callback_id else {
        return Verdict::DeadLetter("callbackId is missing".into());
    };
    let change = match store.begin_change(id).await {
        Ok(Some(change)) => change,
        Ok(None) => return Verdict::DeadLetter(OutcomeError::UnknownCallback(id).to_string()),
        Err(e) => return store_trouble(e, id),
    };
    // The broker checks that `user_id` is the publishing connection's user, so the events
    // can name it; without one, the generic "dialer".
    let actor = message.user_id.as_deref().unwrap_or("dialer");
    match apply(change, &report, settings, "amqp", actor).await {
        Ok(_) => Verdict::Ack,
        Err(OutcomeError::Store(e)) => store_trouble(e, id),
        Err(e) => Verdict::DeadLetter(e.to_string()),
    }
}

/// A database that is away is waited for; a row that cannot be read never will be; other
/// errors may pass, and the queue's delivery limit bounds them.
fn store_trouble(error: StoreError, id: CallbackId) -> Verdict {
    match error {
        StoreError::Unavailable(_) => {
            tracing::warn!(error = %error, callback_id = %id, "cannot store outcome; will retry");
            Verdict::Retry
        }
        StoreError::Corrupt(_) => Verdict::DeadLetter(format!("callback {id}: {error}")),
        _ => {
            tracing::warn!(error = %error, callback_id = %id, "cannot store outcome; requeueing");
            Verdict::Requeue
        }
    }
}
