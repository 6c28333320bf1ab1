//! `callbackd skill pause|resume ID`: stop calling a skill now, and start again, as a named
//! security user with `directory:write` — the same use cases as the API's
//! `POST /v1/skills/{id}/pause|resume`.

use clap::{Args, Subcommand};

use super::callbacks::{operator, parse_id};
use super::{CliError, OperatorArg};
use crate::app::App;
use crate::config::Settings;
use crate::domain::SkillId;
use crate::store::Store;

#[derive(Debug, Args)]
pub struct SkillArgs {
    /// Needs directory:write (and the skill, for a user restricted to some).
    #[command(flatten)]
    pub operator: OperatorArg,
    #[command(subcommand)]
    pub command: SkillCommand,
}

#[derive(Debug, Subcommand)]
pub enum SkillCommand {
    /// Pause a skill's dispatch: its due callbacks stay pending until it is resumed.
    Pause {
        #[arg(value_name = "SKILL_ID")]
        skill: String,
        /// Why (required; recorded).
        #[arg(long)]
        reason: String,
    },
    /// Resume a paused skill's dispatch: its held callbacks go out, highest priority first.
    Resume {
        #[arg(value_name = "SKILL_ID")]
        skill: String,
        /// Why (recorded).
        #[arg(long)]
        reason: Option<String>,
    },
}

pub async fn run(store: &Store, settings: &Settings, args: SkillArgs) -> Result<(), CliError> {
    let user = operator(store, args.operator.name.as_deref()).await?;
    let app = App::for_command(store.clone(), settings);
    let (verb, skill, due) = match args.command {
        SkillCommand::Pause { skill, reason } => {
            let id = parse_id::<SkillId>(&skill)?;
            let (skill, due) =
                crate::app::directory::pause_skill(&app, &user, id, Some(&reason)).await?;
            ("paused", skill, due)
        }
        SkillCommand::Resume { skill, reason } => {
            let id = parse_id::<SkillId>(&skill)?;
            let (skill, due) =
                crate::app::directory::resume_skill(&app, &user, id, reason.as_deref()).await?;
            ("resumed", skill, due)
        }
    };
    println!(
        "skill {} ({}) {verb}: {due} of its callbacks are due within the hour",
        skill.id, skill.name
    );
    Ok(())
}
