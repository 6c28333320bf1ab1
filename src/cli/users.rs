//! `callbackd user`: security users (API bearer tokens, or a link to a person at the
//! console's identity provider).

use super::{CliError, UserCommand};
use crate::app::App;
use crate::app::sessions::SignInError;
use std::time::Duration;

use crate::app::users::Issued;
use crate::app::{AppError, users};
use crate::config::Settings;
use crate::domain::{Permission, SkillId};
use crate::store::Store;

pub fn parse_permissions(names: &[String]) -> Result<Vec<Permission>, CliError> {
    let mut permissions = Vec::new();
    for name in names.iter().map(|n| n.trim()).filter(|n| !n.is_empty()) {
        if name == "all" {
            permissions.extend(Permission::ALL);
        } else {
            permissions.push(
                name.parse().map_err(|e: crate::domain::PermissionError| {
                    CliError::Invalid(e.to_string())
                })?,
            );
        }
    }
    permissions.sort();
    permissions.dedup();
    if permissions.is_empty() {
        return Err(CliError::Invalid("give at least one --permission".into()));
    }
    Ok(permissions)
}

/// Creates the user and returns its token, which is stored only as a hash and expires after
/// `lifetime` when given.
pub async fn add_user(
    store: &Store,
    name: &str,
    permissions: &[String],
    skills: &[String],
    lifetime: Option<Duration>,
) -> Result<Issued, CliError> {
    let permissions = parse_permissions(permissions)?;
    let skills: Vec<SkillId> = skills
        .iter()
        .map(|s| {
            s.parse()
                .map_err(|e: crate::domain::IdError| CliError::Invalid(e.to_string()))
        })
        .collect::<Result<_, _>>()?;
    let allowed = (!skills.is_empty()).then_some(skills.as_slice());
    Ok(users::add(store, name, &permissions, allowed, lifetime).await?)
}

/// Runs a `user` subcommand. `list` prints one tab-separated line per user (for scripts).
pub async fn run(store: &Store, settings: &Settings, command: UserCommand) -> Result<(), CliError> {
    match command {
        UserCommand::Link { name, subject } => {
            let app = App::for_command(store.clone(), settings);
            match crate::app::sessions::link_user(&app, &name, &subject).await {
                Ok(true) => println!("security user `{name}` linked to subject `{subject}`"),
                Ok(false) => {
                    return Err(CliError::Invalid(format!(
                        "no security user named `{name}`"
                    )));
                }
                Err(SignInError::Store(e)) => return Err(e.into()),
                Err(e) => return Err(CliError::Invalid(e.to_string())),
            }
        }
        UserCommand::Add {
            name,
            permissions,
            skills,
            expires_in,
        } => {
            let issued = add_user(
                store,
                &name,
                &permissions,
                &skills,
                expires_in.map(Into::into),
            )
            .await?;
            eprintln!(
                "security user `{}` created; its token (shown only now){}:",
                name.trim(),
                until(&issued)
            );
            println!("{}", issued.expose());
        }
        UserCommand::Disable { name } => {
            users::disable(store, &name).await.map_err(invalid)?;
            println!("security user `{name}` disabled");
        }
        UserCommand::Enable { name } => {
            users::enable(store, &name).await.map_err(invalid)?;
            println!("security user `{name}` enabled");
        }
        UserCommand::RotateToken { name, expires_in } => {
            let issued = users::rotate_token(store, &name, expires_in.map(Into::into))
                .await
                .map_err(invalid)?;
            eprintln!(
                "security user `{name}` has a new token (shown only now){}; the old one no longer works:",
                until(&issued)
            );
            println!("{}", issued.expose());
        }
        UserCommand::List => {
            for u in store.list_users().await? {
                let skills = u.skill_ids.map_or("all skills".to_owned(), |ids| {
                    format!(
                        "skills {}",
                        ids.iter().map(i64::to_string).collect::<Vec<_>>().join(",")
                    )
                });
                let status = if u.disabled_at.is_some() {
                    "disabled"
                } else {
                    "enabled"
                };
                let expiry = match u.token_expires_at {
                    Some(at) if at <= chrono::Utc::now() => {
                        format!("token expired {}", at.to_rfc3339())
                    }
                    Some(at) => format!("token expires {}", at.to_rfc3339()),
                    None => "token does not expire".to_owned(),
                };
                println!(
                    "{}\t{status}\t{}\t{skills}\t{expiry}",
                    u.name,
                    u.permissions.join(",")
                );
            }
        }
    }
    Ok(())
}

/// ", valid until …" for a token that expires.
fn until(issued: &Issued) -> String {
    issued
        .expires_at
        .map(|at| format!(", valid until {}", at.to_rfc3339()))
        .unwrap_or_default()
}

/// The operator named a user that is not there: the command line's fault.
fn invalid(e: AppError) -> CliError {
    match e {
        AppError::NotFound(message) => CliError::Invalid(message),
        e => e.into(),
    }
}
