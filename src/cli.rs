//! Operator commands: security users and directory imports.

use std::path::{Path, PathBuf};

use clap::{Args, Parser, Subcommand, ValueEnum};
use serde::de::DeserializeOwned;

use crate::config::LogFormat;
use crate::domain::{AgentInput, Permission, SkillId, SkillInput, Token};
use crate::store::Store;

#[derive(Debug, Parser)]
#[command(
    name = "callbackd",
    version,
    about = "Keeps callback commitments: stores them and publishes them to RabbitMQ when due"
)]
pub struct Cli {
    /// Configuration file (TOML). Without it, built-in defaults; `CALLBACKD_SECTION__KEY`
    /// environment variables override either.
    #[arg(long, global = true, env = "CALLBACKD_CONFIG", value_name = "PATH")]
    pub config: Option<PathBuf>,

    /// Log format; `auto` is JSON unless stderr is a terminal.
    #[arg(long, global = true, value_enum)]
    pub log_format: Option<LogFormatArg>,

    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormatArg {
    Auto,
    Json,
    Pretty,
}

impl From<LogFormatArg> for LogFormat {
    fn from(arg: LogFormatArg) -> Self {
        match arg {
            LogFormatArg::Auto => LogFormat::Auto,
            LogFormatArg::Json => LogFormat::Json,
            LogFormatArg::Pretty => LogFormat::Pretty,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon (the default).
    Run,
    /// Apply database migrations and exit.
    Migrate,
    /// Manage security users (API bearer tokens).
    #[command(subcommand)]
    User(UserCommand),
    /// Import skills or agents from a JSON array or a CSV file (upsert, all or nothing).
    Import(ImportArgs),
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a security user and print its token (shown this once only).
    Add {
        name: String,
        /// Permissions, comma-separated or repeated: callbacks:create, callbacks:read,
        /// callbacks:update, callbacks:cancel, directory:read, directory:write, or `all`.
        #[arg(
            long = "permission",
            short = 'p',
            value_delimiter = ',',
            required = true
        )]
        permissions: Vec<String>,
        /// Restrict the user to these skill ids (comma-separated or repeated); default: all.
        #[arg(long = "skill", value_delimiter = ',')]
        skills: Vec<String>,
    },
    /// Disable a security user: its token stops working at once.
    Disable { name: String },
    /// List security users (never their tokens).
    List,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum DirectoryKind {
    Skills,
    Agents,
}

impl DirectoryKind {
    pub fn noun(self) -> &'static str {
        match self {
            Self::Skills => "skills",
            Self::Agents => "agents",
        }
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum FileFormat {
    Json,
    Csv,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    pub kind: DirectoryKind,
    pub file: PathBuf,
    /// File format; default: from the file's extension.
    #[arg(long, value_enum)]
    pub format: Option<FileFormat>,
}

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("{0}")]
    Invalid(String),
    #[error("{path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

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

/// Creates the user and returns its token, which is stored only as a hash.
pub async fn add_user(
    store: &Store,
    name: &str,
    permissions: &[String],
    skills: &[String],
) -> Result<Token, CliError> {
    let name = name.trim();
    if name.is_empty() || name.len() > 100 || name.chars().any(char::is_control) {
        return Err(CliError::Invalid(format!(
            "`{name}` is not a usable user name (1-100 printable characters)"
        )));
    }
    let permissions = parse_permissions(permissions)?;
    let skills: Vec<SkillId> = skills
        .iter()
        .map(|s| {
            s.parse()
                .map_err(|e: crate::domain::IdError| CliError::Invalid(e.to_string()))
        })
        .collect::<Result<_, _>>()?;
    let token = Token::generate();
    let allowed = (!skills.is_empty()).then_some(skills.as_slice());
    store
        .add_user(name, &token.hash(), &permissions, allowed)
        .await?;
    Ok(token)
}

fn read_records<T: DeserializeOwned>(
    path: &Path,
    format: Option<FileFormat>,
) -> Result<Vec<T>, CliError> {
    let format = match format {
        Some(f) => f,
        None => match path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            Some("json") => FileFormat::Json,
            Some("csv") => FileFormat::Csv,
            _ => {
                return Err(CliError::Invalid(format!(
                    "{}: cannot tell the format from the extension; pass --format json|csv",
                    path.display()
                )));
            }
        },
    };
    let read_err = |source| CliError::Read {
        path: path.to_owned(),
        source,
    };
    match format {
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

/// Reads and validates the whole file before writing anything, then upserts in one
/// transaction. Returns how many records were applied.
pub async fn import(store: &Store, args: &ImportArgs) -> Result<usize, CliError> {
    let invalid = |i: usize, e: &dyn std::fmt::Display| {
        CliError::Invalid(format!("{}: record {}: {e}", args.file.display(), i + 1))
    };
    let summary = match args.kind {
        DirectoryKind::Skills => {
            let skills = read_records::<SkillInput>(&args.file, args.format)?
                .into_iter()
                .enumerate()
                .map(|(i, s)| s.into_skill(None).map_err(|e| invalid(i, &e)))
                .collect::<Result<Vec<_>, _>>()?;
            store.import_directory(&skills, &[]).await?
        }
        DirectoryKind::Agents => {
            let agents = read_records::<AgentInput>(&args.file, args.format)?
                .into_iter()
                .enumerate()
                .map(|(i, a)| a.into_agent(None).map_err(|e| invalid(i, &e)))
                .collect::<Result<Vec<_>, _>>()?;
            store.import_directory(&[], &agents).await?
        }
    };
    Ok(summary.skills + summary.agents)
}
