//! The command line: the daemon (`run`), `migrate`, and the operator commands — security
//! users, directory imports, callbacks, status — plus the hidden `generate` for packaging.
//!
//! Operator commands decide nothing themselves: they call the same domain rules and store
//! changes as the API, as a named security user whose permissions and skills apply.

mod calendar;
mod callbacks;
mod dnc;
mod generate;
mod import;
mod output;
mod skill;
mod status;
mod users;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::config::LogFormat;
use crate::domain::{CallbackState, RequestError};

pub use calendar::{CalendarArgs, CalendarCommand, run as calendar};
pub use callbacks::run as callbacks;
pub use dnc::{DncArgs, DncCommand, run as dnc};
pub use generate::run as generate;
pub use import::import;
pub use skill::{SkillArgs, SkillCommand, run as skill};
pub use status::run as status;
pub use users::{add_user, parse_permissions, run as user};

/// Exit codes, for scripts and monitoring.
pub mod exit {
    /// Done; `status`: nothing wrong.
    pub const OK: u8 = 0;
    /// The command failed or was refused; `status`: a problem was found.
    pub const PROBLEM: u8 = 1;
    /// The configuration (or the command line) is not valid.
    pub const CONFIG: u8 = 2;
}

#[derive(Debug, Parser)]
#[command(
    name = "callbackd",
    version,
    about = "Keeps callback commitments: stores them and publishes them to RabbitMQ when due",
    after_help = "Exit codes: 0 done (status: healthy), 1 failed or refused (status: a problem found), 2 invalid configuration or usage."
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
    /// List, show, cancel or reschedule callbacks, as a security user (`--as`).
    Callbacks(CallbacksArgs),
    /// The do-not-call list: import numbers from a file, as a security user (`--as`).
    Dnc(DncArgs),
    /// Calendars of closed dates and special hours: import one from an iCalendar file, as
    /// a security user (`--as`).
    Calendar(CalendarArgs),
    /// Pause or resume a skill's dispatch, as a security user (`--as`).
    Skill(SkillArgs),
    /// Backlog, upcoming load, database and broker reachability, and the daemons
    /// dispatching; exits 1 when something is wrong (for monitoring).
    Status(StatusArgs),
    /// Shell completions and man pages (for packaging).
    #[command(subcommand, hide = true)]
    Generate(GenerateCommand),
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a security user and print its token (shown this once only).
    Add {
        name: String,
        /// Permissions, comma-separated or repeated: callbacks:create, callbacks:read,
        /// callbacks:update, callbacks:cancel, directory:read, directory:write, dnc:read,
        /// dnc:write, or `all`.
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
        /// The token stops working after this long (`90d`, `12h`, `30m`; one minute to ten
        /// years); default: it does not expire. `user rotate-token` gives a new one.
        #[arg(long, value_name = "DURATION")]
        expires_in: Option<humantime::Duration>,
    },
    /// Disable a security user: its token stops working on every daemon within milliseconds.
    Disable { name: String },
    /// Enable a disabled security user again, with the token it had.
    Enable { name: String },
    /// Give a security user a new token (printed once); the old one stops working at once.
    RotateToken {
        name: String,
        /// The new token stops working after this long (`90d`, `12h`); default: it does not
        /// expire.
        #[arg(long, value_name = "DURATION")]
        expires_in: Option<humantime::Duration>,
    },
    /// List security users (never their tokens).
    List,
    /// Link a security user to a person at the console's identity provider (console.oidc,
    /// with permissions_from = "user"): signing in as that person gives this user's
    /// permissions and skills.
    Link {
        name: String,
        /// The person's `sub` claim at the issuer of console.oidc.issuer.
        #[arg(long)]
        subject: String,
    },
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

/// `--as USER`, shared by the operator commands.
#[derive(Debug, Args)]
pub struct OperatorArg {
    /// The security user to act as: its permissions and skills apply, and it is recorded
    /// as the actor of every change.
    #[arg(
        long = "as",
        global = true,
        env = "CALLBACKD_OPERATOR",
        value_name = "USER"
    )]
    pub name: Option<String>,
}

#[derive(Debug, Args)]
pub struct CallbacksArgs {
    #[command(flatten)]
    pub operator: OperatorArg,
    /// Print JSON (the API's shapes) instead of a table.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: CallbacksCommand,
}

fn state_names() -> [&'static str; CallbackState::ALL.len()] {
    CallbackState::ALL.map(CallbackState::as_str)
}

#[derive(Debug, Subcommand)]
pub enum CallbacksCommand {
    /// Callbacks in due order (needs callbacks:read).
    List {
        #[arg(long, value_parser = clap::builder::PossibleValuesParser::new(state_names()))]
        state: Option<String>,
        /// A skill id.
        #[arg(long)]
        skill: Option<String>,
        /// A target agent id.
        #[arg(long)]
        agent: Option<String>,
        /// Due before this instant (exclusive, RFC 3339).
        #[arg(long, value_name = "RFC3339")]
        due_before: Option<String>,
        /// Due at or after this instant (inclusive, RFC 3339).
        #[arg(long, value_name = "RFC3339")]
        due_after: Option<String>,
        /// Only callbacks to this number (national numbers in schedule.default_region).
        #[arg(long, value_name = "NUMBER")]
        phone: Option<String>,
        /// Only callbacks with this caller ID.
        #[arg(long, value_name = "NUMBER")]
        caller_id: Option<String>,
        /// Only callbacks requested from this number.
        #[arg(long, value_name = "NUMBER")]
        orig_number: Option<String>,
        /// The highest base priority first (then due order), instead of due order.
        #[arg(long)]
        by_priority: bool,
        /// At most this many (1 to 10000).
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
    /// One callback with its history (needs callbacks:read).
    Show { id: String },
    /// Cancel a pending callback (needs callbacks:cancel); the reason goes in its event.
    Cancel {
        id: String,
        #[arg(long)]
        reason: String,
    },
    /// Move a pending callback to another time (needs callbacks:update), through the same
    /// rules as the API's PATCH (horizon, calling hours, expiry).
    Reschedule {
        id: String,
        /// RFC 3339 (`2027-01-15T14:30:00Z`), or a local time (`2027-01-15T14:30`) in
        /// `--time-zone`, else the callback's zone, else its skill's.
        #[arg(long, value_name = "WHEN")]
        at: String,
        /// IANA time zone for a local `--at`.
        #[arg(long, value_name = "ZONE")]
        time_zone: Option<String>,
        /// Why (recorded in the event): a person changing a callback says why.
        #[arg(long)]
        reason: String,
    },
    /// Route a pending callback to other preferred agents, in order, or to its skill
    /// (needs callbacks:update), through the same rules as the API's PATCH.
    Reassign {
        id: String,
        /// Agent ids in order, comma-separated (at most 5): the first with room takes it.
        #[arg(
            long,
            value_delimiter = ',',
            value_name = "IDS",
            required_unless_present = "to_skill"
        )]
        agents: Vec<String>,
        /// Route it to its skill instead.
        #[arg(long, conflicts_with = "agents")]
        to_skill: bool,
        /// How long past its due time it waits for the agents (1 to 604800).
        #[arg(long, value_name = "SECONDS")]
        ownership_seconds: Option<i64>,
        /// Why (recorded in the event): a person changing a callback says why.
        #[arg(long)]
        reason: String,
    },
    /// Try a failed or expired callback again (needs callbacks:update): now, or at `--at`
    /// (a new promise).
    Retry {
        id: String,
        /// RFC 3339, or a local time in `--time-zone`, else the contact's zone; absent: now.
        #[arg(long, value_name = "WHEN")]
        at: Option<String>,
        /// IANA time zone for a local `--at`.
        #[arg(long, value_name = "ZONE")]
        time_zone: Option<String>,
        /// Why (recorded in the event).
        #[arg(long)]
        reason: String,
    },
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// Upcoming load: pending callbacks per skill for this many hours (0 to 48).
    #[arg(long, default_value_t = 6, value_parser = clap::value_parser!(u32).range(0..=48))]
    pub hours: u32,
    /// A callback overdue for longer than this many seconds is a problem.
    #[arg(long, default_value_t = 300)]
    pub max_overdue: u64,
    /// Fewer daemons dispatching than this is a problem (0: none needed).
    #[arg(long, default_value_t = 1)]
    pub min_dispatchers: usize,
    /// Give up on the database or the broker after this many milliseconds.
    #[arg(long, default_value_t = 3000)]
    pub timeout_ms: u64,
}

#[derive(Debug, Subcommand)]
pub enum GenerateCommand {
    /// Print the completion script for a shell.
    Completions { shell: clap_complete::Shell },
    /// Write man pages (callbackd.1 and one per subcommand) into a directory.
    Man { dir: PathBuf },
}

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("{0}")]
    Invalid(String),
    /// Something the command line must say and did not.
    #[error("{0}")]
    Usage(String),
    #[error("{path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Refused by a rule, with the API's result code.
    #[error("{code}: {message}")]
    Refused { code: &'static str, message: String },
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error("writing the output: {0}")]
    Output(#[source] std::io::Error),
}

impl From<RequestError> for CliError {
    fn from(e: RequestError) -> Self {
        Self::Refused {
            code: e.code().as_str(),
            message: e.to_string(),
        }
    }
}

/// A use case's refusal, with the API's result code and wording; the store's failures as
/// they are.
impl From<crate::app::AppError> for CliError {
    fn from(e: crate::app::AppError) -> Self {
        match e {
            crate::app::AppError::Store(e) => Self::Store(e),
            e => Self::Refused {
                code: e.code().as_str(),
                message: e.to_string(),
            },
        }
    }
}

impl CliError {
    pub fn exit_code(&self) -> ExitCode {
        match self {
            // An unusable database URL is the configuration's fault.
            Self::Store(crate::store::StoreError::Url(_)) | Self::Usage(_) => {
                ExitCode::from(exit::CONFIG)
            }
            _ => ExitCode::from(exit::PROBLEM),
        }
    }
}
