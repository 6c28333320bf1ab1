//! `callbackd calendar import NAME FILE`: a calendar of closed dates and special hours from
//! an iCalendar file (a public-holiday feed, an export of the site's calendar), as a named
//! security user with `directory:write` — the same use case as the API's `PUT
//! /v1/calendars/{name}` with a `text/calendar` body.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::callbacks::operator;
use super::{CliError, OperatorArg};
use crate::app::App;
use crate::app::calendars::{self, CalendarInput};
use crate::config::Settings;
use crate::store::Store;

#[derive(Debug, Args)]
pub struct CalendarArgs {
    /// Needs directory:write, and no skill restriction.
    #[command(flatten)]
    pub operator: OperatorArg,
    #[command(subcommand)]
    pub command: CalendarCommand,
}

#[derive(Debug, Subcommand)]
pub enum CalendarCommand {
    /// Create or replace calendar NAME from an iCalendar file: all-day events close their
    /// dates, timed events are their date's special hours.
    Import {
        /// The calendar's name (the field is not `name`: that id is `--as`'s, which clap
        /// would then not pass down).
        #[arg(value_name = "NAME")]
        calendar: String,
        file: PathBuf,
        /// The zone the calendar's dates are read in (IANA name).
        #[arg(long, default_value = "UTC", value_name = "ZONE")]
        time_zone: String,
    },
}

pub async fn run(store: &Store, settings: &Settings, args: CalendarArgs) -> Result<(), CliError> {
    let user = operator(store, args.operator.name.as_deref()).await?;
    let CalendarCommand::Import {
        calendar: name,
        file,
        time_zone,
    } = args.command;
    let text = std::fs::read_to_string(&file)
        .map_err(|e| CliError::Invalid(format!("{}: {e}", file.display())))?;
    let app = App::for_command(store.clone(), settings);
    let calendar = calendars::put(
        &app,
        &user,
        &name,
        CalendarInput::ICalendar {
            text: &text,
            zone: Some(&time_zone),
        },
    )
    .await?;
    let (closed, special) = calendar.counts();
    let dates = closed + special;
    println!(
        "calendar `{}` stored: {dates} {} ({closed} closed, {special} with special hours) in {}",
        calendar.name,
        if dates == 1 { "date" } else { "dates" },
        calendar.zone.name()
    );
    Ok(())
}
