//! Calendars of closed dates and special hours: written, read and deleted by the API (JSON
//! or an iCalendar file). A calendar may serve any skill, so, as for agents, only a user
//! free of skill restrictions may change one.

use chrono_tz::Tz;

use super::{App, AppError, require};
use crate::domain::{Calendar, CalendarJson, Permission, SecurityUser, check_calendar_name};

/// A calendar as a client sends it.
pub enum CalendarInput<'a> {
    Json(CalendarJson),
    /// An iCalendar file, its dates read in `zone`.
    ICalendar {
        text: &'a str,
        zone: Option<&'a str>,
    },
}

/// Creates or replaces the calendar `name`; the skills it is assigned to follow it from
/// their next decision on.
pub async fn put(
    app: &App,
    user: &SecurityUser,
    name: &str,
    input: CalendarInput<'_>,
) -> Result<Calendar, AppError> {
    require(user, Permission::DirectoryWrite)?;
    require_every_skill(user)?;
    let refused = |e: crate::domain::CalendarError| AppError::unacceptable(e.to_string());
    let calendar = match input {
        CalendarInput::Json(json) => Calendar::parse(name, &json).map_err(refused)?,
        CalendarInput::ICalendar { text, zone } => {
            let zone = zone.unwrap_or("UTC");
            let zone: Tz = zone.parse().map_err(|_| {
                AppError::unacceptable(format!("timeZone: `{zone}` is not an IANA time zone name"))
            })?;
            Calendar::from_ical(name, zone, text).map_err(refused)?
        }
    };
    app.store.put_calendar(&calendar).await?;
    let (closed, special) = calendar.counts();
    tracing::info!(calendar = %calendar.name, closed, special, security_user = %user.name, "calendar stored");
    Ok(calendar)
}

pub async fn get(app: &App, user: &SecurityUser, name: &str) -> Result<Calendar, AppError> {
    require(user, Permission::DirectoryRead)?;
    check_calendar_name(name).map_err(|e| AppError::Malformed(e.to_string()))?;
    app.store
        .calendar(name)
        .await?
        .ok_or_else(|| AppError::NotFound(format!("calendar `{name}` does not exist")))
}

/// Deletes a calendar no skill uses.
pub async fn delete(app: &App, user: &SecurityUser, name: &str) -> Result<(), AppError> {
    require(user, Permission::DirectoryWrite)?;
    require_every_skill(user)?;
    check_calendar_name(name).map_err(|e| AppError::Malformed(e.to_string()))?;
    if !app.store.delete_calendar(name).await? {
        return Err(AppError::NotFound(format!(
            "calendar `{name}` does not exist"
        )));
    }
    tracing::info!(calendar = %name, security_user = %user.name, "calendar deleted");
    Ok(())
}

/// The calendar a skill names must exist.
pub async fn check_assigned(app: &App, name: Option<&str>) -> Result<Option<Calendar>, AppError> {
    let Some(name) = name else {
        return Ok(None);
    };
    match app.store.calendar(name).await? {
        Some(calendar) => Ok(Some(calendar)),
        None => Err(AppError::unacceptable(format!(
            "calendar: `{name}` does not exist (PUT /v1/calendars/{name} first)"
        ))),
    }
}

fn require_every_skill(user: &SecurityUser) -> Result<(), AppError> {
    super::directory::require_every_skill(user, "calendars")
}
