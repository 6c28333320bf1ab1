//! Privacy requests by phone number: an export of everything held about it, and the
//! erasure of its personal data. Both need a permission of their own and a user free of
//! skill restrictions (a number's callbacks may be in any skill).

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

use super::{App, AppError, require};
use crate::domain::{Callback, DncEntry, Permission, PhoneNumber, SecurityUser, check_reason};
use crate::store::{DncEvent, Erasure, ErasureRecord, EventRecord};

/// The events exported per callback, at most.
const EVENTS_PER_CALLBACK: u32 = 1000;
/// The reason recorded in the `cancelled` event of a callback an erasure ends: no
/// personal data.
const ERASURE_CANCEL_REASON: &str = "erasure request";

/// Everything held about a number.
#[derive(Debug)]
pub struct Export {
    pub phone_number: PhoneNumber,
    pub callbacks: Vec<(Callback, Vec<EventRecord>)>,
    pub dnc_entries: Vec<DncEntry>,
    pub dnc_events: Vec<DncEvent>,
    /// Earlier erasures of this number.
    pub erasures: Vec<ErasureRecord>,
    pub at: DateTime<Utc>,
}

/// What an erasure did.
#[derive(Debug)]
pub struct ErasureReport {
    pub erasure: Erasure,
    /// Callbacks that were still waiting and were cancelled first.
    pub cancelled: i64,
}

pub async fn export(app: &App, user: &SecurityUser, raw: &str) -> Result<Export, AppError> {
    require(user, Permission::PrivacyExport)?;
    require_every_skill(user)?;
    let number = parse(app, raw)?;
    let mut callbacks = Vec::new();
    for callback in app.store.callbacks_of_number(&number).await? {
        let events = app
            .store
            .events(callback.id, None, EVENTS_PER_CALLBACK)
            .await?;
        callbacks.push((callback, events));
    }
    let (dnc_entries, dnc_events) = app.store.dnc_get(&number).await?;
    let erasures = app.store.erasures_of(&digest(&number)).await?;
    tracing::info!(security_user = %user.name, callbacks = callbacks.len(), "privacy export");
    Ok(Export {
        phone_number: number,
        callbacks,
        dnc_entries,
        dnc_events,
        erasures,
        at: Utc::now(),
    })
}

/// Cancels the number's callbacks still waiting (each with a `cancelled` event free of
/// personal data), then erases its personal data everywhere. Do-not-call entries stay
/// unless `include_dnc`: they record the person's wish not to be called, which an erasure
/// must not undo by accident.
pub async fn erase(
    app: &App,
    user: &SecurityUser,
    raw: &str,
    reason: Option<&str>,
    include_dnc: bool,
) -> Result<ErasureReport, AppError> {
    require(user, Permission::PrivacyErase)?;
    require_every_skill(user)?;
    let reason = check_reason(reason, true)?.unwrap_or_default();
    let number = parse(app, raw)?;
    let mut cancelled = 0;
    for id in app.store.waiting_of_number(&number).await? {
        let Some(locked) = app.store.begin_change(id).await? else {
            continue;
        };
        if locked.record.state.is_terminal() {
            continue;
        }
        locked
            .cancel(&user.name, Some(ERASURE_CANCEL_REASON))
            .await?;
        cancelled += 1;
    }
    let erasure = app
        .store
        .erase_number(
            &number,
            &digest(&number),
            &user.name,
            &reason,
            cancelled,
            include_dnc,
        )
        .await?;
    // The log names the erasure, never the number.
    tracing::info!(erasure_id = erasure.id, callbacks = erasure.callbacks, cancelled,
        dnc_entries_removed = erasure.dnc_entries_removed, security_user = %user.name,
        "personal data erased");
    Ok(ErasureReport { erasure, cancelled })
}

/// SHA-256 of the number in E.164: how an erasure is audited and found again.
pub fn digest(number: &PhoneNumber) -> Vec<u8> {
    Sha256::digest(number.as_str().as_bytes()).to_vec()
}

fn parse(app: &App, raw: &str) -> Result<PhoneNumber, AppError> {
    PhoneNumber::parse_field("phoneNumber", raw, app.rules.default_region)
        .map_err(|e| AppError::Refused(e.into()))
}

fn require_every_skill(user: &SecurityUser) -> Result<(), AppError> {
    super::directory::require_every_skill(user, "privacy requests")
}
