//! The do-not-call list: listing a number, removing an entry, importing a file. A user
//! restricted to some skills lists numbers for those skills only.

use chrono::Utc;

use super::{App, AppError, require};
use crate::domain::{
    DncEntry, NewDncEntry, Permission, PhoneNumber, ResultCode, SecurityUser, SkillId,
    check_dnc_scope,
};
use crate::store::Listed;

/// The number as sent: E.164, or national in the default region.
pub fn read_number(app: &App, raw: &str) -> Result<PhoneNumber, AppError> {
    PhoneNumber::parse(raw, app.rules.default_region)
        .map_err(|e| AppError::invalid(ResultCode::InvalidPhoneNumber, e.to_string()))
}

/// Lists the number `raw` (or replaces its entry for the same scope).
pub async fn list_number(
    app: &App,
    user: &SecurityUser,
    raw: &str,
    skill_id: Option<SkillId>,
    reason: Option<String>,
    expires_at: Option<chrono::DateTime<Utc>>,
) -> Result<(DncEntry, Listed), AppError> {
    require(user, Permission::DncWrite)?;
    let number = read_number(app, raw)?;
    check_dnc_scope(user, skill_id).map_err(AppError::Denied)?;
    let entry = NewDncEntry::new(number, skill_id, reason, expires_at, Utc::now())
        .map_err(|e| AppError::unacceptable(e.to_string()))?;
    let (stored, listed) = app.store.dnc_put(&entry, &user.name).await?;
    tracing::info!(phone_number = %entry.phone_number.masked(), skill_id = entry.skill_id.map(SkillId::get),
        security_user = %user.name, "number listed as do-not-call");
    Ok((stored, listed))
}

/// Removes the entry of the number `raw` for one scope (`None`: the entry for every skill).
pub async fn remove_number(
    app: &App,
    user: &SecurityUser,
    raw: &str,
    skill_id: Option<SkillId>,
    reason: Option<&str>,
) -> Result<(), AppError> {
    require(user, Permission::DncWrite)?;
    let number = &read_number(app, raw)?;
    check_dnc_scope(user, skill_id).map_err(AppError::Denied)?;
    let reason = crate::domain::check_reason(reason, false)?;
    if !app
        .store
        .dnc_remove(number, skill_id, &user.name, reason.as_deref())
        .await?
    {
        return Err(AppError::NotFound(format!(
            "{number} has no do-not-call entry for {}",
            skill_id
                .map(|s| format!("skill {s}"))
                .unwrap_or_else(|| "every skill".into())
        )));
    }
    tracing::info!(phone_number = %number.masked(), skill_id = skill_id.map(SkillId::get),
        security_user = %user.name, "number removed from the do-not-call list");
    Ok(())
}

/// Lists every entry of a validated file in one transaction; `written` hears the progress.
/// Returns how many numbers the file lists (an entry it repeats unchanged writes nothing).
pub async fn import(
    app: &App,
    user: &SecurityUser,
    entries: &[NewDncEntry],
    written: impl FnMut(usize),
) -> Result<usize, AppError> {
    require(user, Permission::DncWrite)?;
    for entry in entries {
        check_dnc_scope(user, entry.skill_id).map_err(AppError::Denied)?;
    }
    // The operator's command reports what it stored; the audit trail is in the events.
    Ok(app.store.dnc_import(entries, &user.name, written).await?)
}
