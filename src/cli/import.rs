//! `callbackd import skills|agents FILE`: read and validate the whole file, then upsert it in
//! one transaction, with a progress bar on a terminal.

use std::path::Path;

use serde::de::DeserializeOwned;

use super::output::Progress;
use super::{CliError, DirectoryKind, FileFormat, ImportArgs};
use crate::app::directory;
use crate::domain::{AgentInput, SkillInput};
use crate::store::Store;

fn format_of(path: &Path, format: Option<FileFormat>) -> Result<FileFormat, CliError> {
    if let Some(format) = format {
        return Ok(format);
    }
    match path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("json") => Ok(FileFormat::Json),
        Some("csv") => Ok(FileFormat::Csv),
        _ => Err(CliError::Invalid(format!(
            "{}: cannot tell the format from the extension; pass --format json|csv",
            path.display()
        ))),
    }
}

pub(super) fn read_records<T: DeserializeOwned>(
    path: &Path,
    format: Option<FileFormat>,
) -> Result<Vec<T>, CliError> {
    let read_err = |source| CliError::Read {
        path: path.to_owned(),
        source,
    };
    match format_of(path, format)? {
        FileFormat::Json => {
            let bytes = std::fs::read(path).map_err(read_err)?;
            serde_path_to_error::deserialize(&mut serde_json::Deserializer::from_slice(&bytes))
                .map_err(|e| {
                    CliError::Invalid(format!("{}: {} at {}", path.display(), e.inner(), e.path()))
                })
        }
        FileFormat::Csv => {
            let mut reader = csv::ReaderBuilder::new()
                .trim(csv::Trim::All)
                .from_path(path)
                .map_err(|e| CliError::Invalid(format!("{}: {e}", path.display())))?;
            reader
                .deserialize()
                .enumerate()
                .map(|(i, r)| {
                    r.map_err(|e| {
                        CliError::Invalid(format!("{}: record {}: {e}", path.display(), i + 1))
                    })
                })
                .collect()
        }
    }
}

/// Validates each record (the API's rules), naming the first bad one.
fn validate<I, T>(
    records: Vec<I>,
    path: &Path,
    progress: &Progress,
    check: impl Fn(I) -> Result<T, crate::domain::DirectoryInputError>,
) -> Result<Vec<T>, CliError> {
    progress.phase("validating", records.len());
    let valid = records
        .into_iter()
        .enumerate()
        .map(|(i, record)| {
            progress.advance(1);
            check(record).map_err(|e| {
                CliError::Invalid(format!("{}: record {}: {e}", path.display(), i + 1))
            })
        })
        .collect();
    progress.done();
    valid
}

/// Reads and validates the whole file before writing anything, then upserts in one
/// transaction. Returns how many records were applied.
pub async fn import(store: &Store, args: &ImportArgs) -> Result<usize, CliError> {
    let progress = Progress::on_stderr();
    progress.spinner(&format!("reading {}", args.file.display()));
    let path = args.file.as_path();
    let summary = match args.kind {
        DirectoryKind::Skills => {
            let records = read_records::<SkillInput>(path, args.format)?;
            let skills = validate(records, path, &progress, |s| s.into_skill(None))?;
            progress.phase("writing", skills.len());
            directory::import(store, &skills, &[], |n| progress.set(n)).await?
        }
        DirectoryKind::Agents => {
            let records = read_records::<AgentInput>(path, args.format)?;
            let agents = validate(records, path, &progress, |a| a.into_agent(None))?;
            progress.phase("writing", agents.len());
            directory::import(store, &[], &agents, |n| progress.set(n)).await?
        }
    };
    progress.done();
    Ok(summary.skills + summary.agents)
}
