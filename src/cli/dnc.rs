//! `callbackd dnc import FILE`: put many numbers on the do-not-call list at once, as a named
//! security user with `dnc:write`, all or nothing, with a progress bar on a terminal.

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use clap::{Args, Subcommand};
use serde::Deserialize;

use super::callbacks::{operator, refused_user, user_may};
use super::import::read_records;
use super::output::Progress;
use super::{CliError, FileFormat, OperatorArg};
use crate::app::{self, App};
use crate::config::Settings;
use crate::domain::{NewDncEntry, Permission, PhoneNumber, SkillId, check_dnc_scope};
use crate::store::Store;

#[derive(Debug, Args)]
pub struct DncArgs {
    /// Needs dnc:write; recorded in the audit events.
    #[command(flatten)]
    pub operator: OperatorArg,
    #[command(subcommand)]
    pub command: DncCommand,
}

#[derive(Debug, Subcommand)]
pub enum DncCommand {
    /// List numbers from a CSV (header: phoneNumber,skillId,reason,expiresAt; only
    /// phoneNumber is required) or a JSON array of such objects. A number already listed
    /// for the same scope is updated.
    Import {
        file: PathBuf,
        /// File format; default: from the file's extension.
        #[arg(long, value_enum)]
        format: Option<FileFormat>,
    },
}

/// One line of the file, as the API's `PUT /v1/dnc/{phone}` reads it, plus the number.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct DncRecord {
    phone_number: String,
    #[serde(default, deserialize_with = "empty_is_none")]
    skill_id: Option<SkillId>,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default, deserialize_with = "empty_is_none")]
    expires_at: Option<DateTime<Utc>>,
}

/// A CSV cell left empty means "absent".
fn empty_is_none<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: std::str::FromStr,
    T::Err: std::fmt::Display,
{
    let raw: Option<String> = Option::deserialize(d)?;
    match raw.as_deref().map(str::trim) {
        None | Some("") => Ok(None),
        Some(s) => s.parse().map(Some).map_err(serde::de::Error::custom),
    }
}

pub async fn run(store: &Store, settings: &Settings, args: DncArgs) -> Result<(), CliError> {
    let user = operator(store, args.operator.name.as_deref()).await?;
    user_may(&user, Permission::DncWrite)?;
    let DncCommand::Import { file, format } = args.command;
    let progress = Progress::on_stderr();
    progress.spinner(&format!("reading {}", file.display()));
    let records = read_records::<DncRecord>(&file, format)?;
    progress.phase("validating", records.len());
    let now = Utc::now();
    let region = settings.schedule.default_region.0;
    let mut entries = Vec::with_capacity(records.len());
    for (i, record) in records.into_iter().enumerate() {
        progress.advance(1);
        let at = |e: &dyn std::fmt::Display| {
            CliError::Invalid(format!("{}: record {}: {e}", file.display(), i + 1))
        };
        let phone = PhoneNumber::parse(&record.phone_number, region).map_err(|e| at(&e))?;
        check_dnc_scope(&user, record.skill_id)
            .map_err(|e| refused_user(format!("record {}: {e}", i + 1)))?;
        entries.push(
            NewDncEntry::new(
                phone,
                record.skill_id,
                record.reason,
                record.expires_at,
                now,
            )
            .map_err(|e| at(&e))?,
        );
    }
    progress.done();
    progress.phase("writing", entries.len());
    let app = App::for_command(store.clone(), settings);
    let written = app::dnc::import(&app, &user, &entries, |n| progress.set(n)).await?;
    progress.done();
    let noun = if written == 1 { "number" } else { "numbers" };
    println!("listed {written} {noun} as do-not-call");
    Ok(())
}
