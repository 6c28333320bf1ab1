//! `callbackd generate …` (hidden): shell completions and man pages, generated from the
//! command-line definition itself so they never drift from it. The package build runs it.

use std::path::Path;

use clap::CommandFactory;

use super::{Cli, CliError, GenerateCommand};

pub fn run(command: &GenerateCommand) -> Result<(), CliError> {
    let mut cli = Cli::command();
    match command {
        GenerateCommand::Completions { shell } => {
            let mut script = Vec::new();
            clap_complete::generate(*shell, &mut cli, "callbackd", &mut script);
            super::output::emit(&String::from_utf8_lossy(&script))
        }
        GenerateCommand::Man { dir } => write_man_pages(cli, dir),
    }
}

/// `callbackd.1` and one page per visible subcommand (`callbackd-callbacks-list.1`, …).
fn write_man_pages(cli: clap::Command, dir: &Path) -> Result<(), CliError> {
    let failed = |source| CliError::Read {
        path: dir.to_owned(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(failed)?;
    clap_mangen::generate_to(cli, dir).map_err(failed)
}
