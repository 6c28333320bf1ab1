//! `callbackd callbacks …`: list, show, cancel and reschedule callbacks as a named security
//! user, through the same permission checks, domain rules and store changes as the API.

use serde::Serialize;

use super::output::{Table, emit, emit_json, opt_time, time};
use super::{CallbacksArgs, CallbacksCommand, CliError};
use crate::app::{self, App, Why};
use crate::config::Settings;
use crate::domain::{
    AgentId, Callback, CallbackId, CallbackState, ChangeInput, Permission, RawId, ResultCode,
    SecurityUser, SkillId,
};
use crate::store::{CallbackFilter, Operator, Store};
use crate::wire::{CallbackView, EventView};

/// A list holds at most this many callbacks.
const LIST_MAX: u32 = 10_000;
/// Events read per query for `show`.
const EVENTS_PAGE: u32 = 1000;

pub async fn run(store: &Store, settings: &Settings, args: CallbacksArgs) -> Result<(), CliError> {
    let user = operator(store, args.operator.name.as_deref()).await?;
    match args.command {
        CallbacksCommand::List {
            state,
            skill,
            agent,
            due_before,
            due_after,
            phone,
            caller_id,
            orig_number,
            by_priority,
            limit,
        } => {
            user_may(&user, Permission::CallbacksRead)?;
            if !(1..=LIST_MAX).contains(&limit) {
                return Err(CliError::Invalid(format!(
                    "--limit {limit} is out of range 1..={LIST_MAX}"
                )));
            }
            let skill_id = skill.as_deref().map(parse_id::<SkillId>).transpose()?;
            if let Some(skill) = skill_id {
                app::require_skill(&user, skill)?;
            }
            let filter = CallbackFilter {
                state: state
                    .as_deref()
                    .map(str::parse::<CallbackState>)
                    .transpose()
                    .map_err(CliError::Invalid)?,
                skill_id,
                agent_id: agent.as_deref().map(parse_id::<AgentId>).transpose()?,
                due_before: due_before
                    .as_deref()
                    .map(|t| parse_instant("--due-before", t))
                    .transpose()?,
                due_after: due_after
                    .as_deref()
                    .map(|t| parse_instant("--due-after", t))
                    .transpose()?,
                allowed_skills: user.skills.clone(),
                phone_number: number("--phone", phone.as_deref(), settings)?,
                caller_id: number("--caller-id", caller_id.as_deref(), settings)?,
                orig_number: number("--orig-number", orig_number.as_deref(), settings)?,
                by_priority,
                // One extra row tells whether more match.
                limit: limit + 1,
                ..CallbackFilter::default()
            };
            let mut found = store.list_callbacks(&filter).await?;
            let more = found.len() > limit as usize;
            found.truncate(limit as usize);
            if args.json {
                emit_json(&ListAnswer {
                    items: found.into_iter().map(CallbackView::from).collect(),
                    more,
                })
            } else {
                emit(&callback_table(&found).render())?;
                if more {
                    eprintln!("(more callbacks match: narrow the filters or raise --limit)");
                }
                Ok(())
            }
        }
        CallbacksCommand::Show { id } => {
            user_may(&user, Permission::CallbacksRead)?;
            let id = parse_id::<CallbackId>(&id)?;
            let callback = store
                .callback(id)
                .await?
                .filter(|c| user.may_use_skill(c.skill_id))
                .ok_or_else(|| no_such_callback(id))?;
            let mut events = Vec::new();
            loop {
                let page = store
                    .events(
                        id,
                        events.last().map(|e: &crate::store::EventRecord| e.id),
                        EVENTS_PAGE,
                    )
                    .await?;
                let last_page = page.len() < EVENTS_PAGE as usize;
                events.extend(page);
                if last_page {
                    break;
                }
            }
            if args.json {
                return emit_json(&ShowAnswer {
                    callback: CallbackView::from(callback),
                    events: events.into_iter().map(EventView::from).collect(),
                });
            }
            let mut history = Table::new(&["AT", "ACTOR", "EVENT", "DETAILS"]);
            for e in events {
                history.row(vec![
                    time(e.at),
                    e.actor,
                    e.kind.to_string(),
                    e.details.to_string(),
                ]);
            }
            emit(&format!(
                "{}\n{}",
                detail_table(&callback).render(),
                history.render()
            ))
        }
        CallbacksCommand::Cancel { id, reason } => {
            let id = parse_id::<CallbackId>(&id)?;
            let app = App::for_command(store.clone(), settings);
            let cancelled = app::cancel(&app, &user, id, Why::required(Some(&reason))).await?;
            show_one(cancelled, args.json)
        }
        CallbacksCommand::Reschedule {
            id,
            at,
            time_zone,
            reason,
        } => {
            let id = parse_id::<CallbackId>(&id)?;
            let input = ChangeInput {
                schedule_date: Some(at),
                time_zone,
                ..ChangeInput::default()
            };
            let app = App::for_command(store.clone(), settings);
            let updated = app::change(&app, &user, id, input, Why::required(Some(&reason))).await?;
            show_one(updated, args.json)
        }
        CallbacksCommand::Reassign {
            id,
            agents,
            to_skill: _,
            ownership_seconds,
            reason,
        } => {
            let id = parse_id::<CallbackId>(&id)?;
            let input = ChangeInput {
                target_agent_ids: Some(agents.into_iter().map(RawId).collect()),
                ownership_seconds: ownership_seconds.map(Some),
                ..ChangeInput::default()
            };
            let app = App::for_command(store.clone(), settings);
            let updated = app::change(&app, &user, id, input, Why::required(Some(&reason))).await?;
            show_one(updated, args.json)
        }
        CallbacksCommand::Retry {
            id,
            at,
            time_zone,
            reason,
        } => {
            let id = parse_id::<CallbackId>(&id)?;
            let app = App::for_command(store.clone(), settings);
            let why = Why::required(Some(&reason));
            let retried =
                app::retry(&app, &user, id, at.as_deref(), time_zone.as_deref(), why).await?;
            show_one(retried, args.json)
        }
    }
}

/// `callbacks list --json`: the API's callback views; `more` when the limit cut the list.
#[derive(Serialize)]
struct ListAnswer {
    items: Vec<CallbackView>,
    more: bool,
}

/// `callbacks show --json`: the API's callback view and its whole history.
#[derive(Serialize)]
struct ShowAnswer {
    callback: CallbackView,
    events: Vec<EventView>,
}

/// The enabled security user the command acts as.
pub(super) async fn operator(store: &Store, name: Option<&str>) -> Result<SecurityUser, CliError> {
    let name = name
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .ok_or_else(|| {
            CliError::Usage(
                "name the security user to act as: --as USER (or CALLBACKD_OPERATOR=USER)".into(),
            )
        })?;
    match store.operator(name).await? {
        Operator::Enabled(user) => Ok(user),
        Operator::Disabled => Err(refused_user(format!("security user `{name}` is disabled"))),
        Operator::Unknown => Err(refused_user(format!("no security user named `{name}`"))),
    }
}

pub(super) fn refused_user(message: String) -> CliError {
    CliError::Refused {
        code: ResultCode::InvalidSecurityUser.as_str(),
        message,
    }
}

/// The API's permission check and its wording.
pub(super) fn user_may(user: &SecurityUser, permission: Permission) -> Result<(), CliError> {
    Ok(app::require(user, permission)?)
}

/// Absent, or of a skill the user may not use: the same answer, as in the API.
fn no_such_callback(id: CallbackId) -> CliError {
    app::AppError::NoSuchCallback(id).into()
}

pub(super) fn parse_id<T>(raw: &str) -> Result<T, CliError>
where
    T: std::str::FromStr<Err = crate::domain::IdError>,
{
    raw.trim()
        .parse()
        .map_err(|e: crate::domain::IdError| CliError::Invalid(e.to_string()))
}

fn parse_instant(option: &str, raw: &str) -> Result<chrono::DateTime<chrono::Utc>, CliError> {
    chrono::DateTime::parse_from_rfc3339(raw)
        .map(|t| t.to_utc())
        .map_err(|_| {
            CliError::Invalid(format!(
                "{option} `{raw}` is not an RFC 3339 date-time such as 2026-11-25T14:30:00Z"
            ))
        })
}

fn callback_table(callbacks: &[Callback]) -> Table {
    let mut table = Table::new(&[
        "ID",
        "STATE",
        "DUE (UTC)",
        "ROUTE",
        "ATTEMPT",
        "PHONE",
        "NAME",
    ]);
    for c in callbacks {
        table.row(vec![
            c.id.to_string(),
            c.state.to_string(),
            time(c.due_at),
            c.route().routing_key(),
            c.attempt.to_string(),
            c.phone_number.as_str().to_owned(),
            format!("{} {}", c.first_name, c.last_name)
                .trim()
                .to_owned(),
        ]);
    }
    table
}

/// Agent ids, comma-separated (`-`: none).
fn agent_ids(ids: &[AgentId]) -> String {
    if ids.is_empty() {
        return "-".into();
    }
    let ids: Vec<String> = ids.iter().map(ToString::to_string).collect();
    ids.join(",")
}

fn detail_table(c: &Callback) -> Table {
    let mut table = Table::new(&["FIELD", "VALUE"]);
    let route = c.route();
    let fields = [
        ("callbackId", c.id.to_string()),
        ("state", c.state.to_string()),
        (
            "name",
            format!("{} {}", c.first_name, c.last_name)
                .trim()
                .to_owned(),
        ),
        ("phoneNumber", c.phone_number.as_str().to_owned()),
        ("skillId", c.skill_id.to_string()),
        (
            "targetAgentId",
            c.target_agent_id.map_or("-".into(), |a| a.to_string()),
        ),
        ("agents", agent_ids(&c.target_agent_ids)),
        (
            "ownership",
            c.ownership_seconds.map_or("-".into(), |s| format!("{s}s")),
        ),
        ("routingKey", route.routing_key()),
        (
            "timeZone",
            c.time_zone.map_or("-", |tz| tz.name()).to_owned(),
        ),
        ("scheduledFor", time(c.scheduled_for)),
        ("dueAt", time(c.due_at)),
        ("expiresAt", opt_time(c.expires_at)),
        ("attempt", c.attempt.to_string()),
        ("dispatchedAt", opt_time(c.dispatched_at)),
        (
            "lastOutcome",
            c.last_outcome.clone().unwrap_or_else(|| "-".into()),
        ),
        (
            "lastError",
            c.last_error.clone().unwrap_or_else(|| "-".into()),
        ),
        ("notes", c.notes.clone()),
        ("createdBy", c.created_by.clone()),
        ("createdAt", time(c.created_at)),
        ("updatedAt", time(c.updated_at)),
    ];
    for (field, value) in fields {
        table.row(vec![field.to_owned(), value]);
    }
    table
}

/// A number option, as a create takes it, in E.164.
fn number(
    flag: &'static str,
    value: Option<&str>,
    settings: &Settings,
) -> Result<Option<String>, CliError> {
    value
        .map(|v| {
            crate::domain::PhoneNumber::parse_field(flag, v, settings.schedule.default_region.0)
                .map(|n| n.as_str().to_owned())
                .map_err(|e| CliError::Invalid(e.to_string()))
        })
        .transpose()
}

fn show_one(callback: Callback, json: bool) -> Result<(), CliError> {
    if json {
        emit_json(&CallbackView::from(callback))
    } else {
        emit(&callback_table(std::slice::from_ref(&callback)).render())
    }
}
