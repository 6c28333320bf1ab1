//! PostgreSQL: every SQL statement callbackd runs lives in this module, next to the function
//! that runs it.
//!
//! **Architecture invariant:** only `store` knows sqlx types; callers get domain types and
//! [`StoreError`].

mod admission;
mod bulk;
mod cache;
mod calendars;
mod change;
mod create;
mod directory;
mod dispatch;
mod dnc;
mod history;
mod ingest;
mod links;
mod operator;
mod outbox;
mod pacing;
mod pause;
mod primary;
mod privacy;
mod probes;
mod read;
mod record;
mod reminders;
mod reports;
mod sessions;
mod slots;
mod timers;
mod users;
mod webhooks;

use std::str::FromStr;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, PgPool};

use crate::config::DatabaseSettings;

pub use admission::AdmittedCreate;
pub use bulk::{BulkBegun, BulkProgress, BulkRecord, BulkRefusal, NewBulk};
pub use change::CallbackChange;
pub use create::{IdempotencyKey, Inserted, NewCreate};
pub use directory::ImportSummary;
pub use dispatch::{
    Claim, Confirmed, Deferral, DispatchedRow, Due, DueBatch, DueListener, Ending, Failure,
    NextDue, RetryRow, Undeliverable,
};
pub use dnc::{DncEvent, Listed};
pub use ingest::CreateQueue;
pub use operator::{DispatchingDaemon, Operator, SchemaState};
pub use outbox::{OutboxEvent, RelayBatch};
pub use privacy::{Erasure, ErasureRecord};
pub use read::CallbackFilter;
pub use record::EventRecord;
pub use reminders::{ReminderCandidate, ReminderWrite};
pub use sessions::{PendingSignIn, Session};
pub use slots::Booked;
pub use timers::{Backlog, PacedSkill};
pub use users::UserSummary;
pub use webhooks::{AttemptRecord, AttemptView, DueDelivery, FanOut};

/// How long a daemon may serve a cached security user, skill or agent without reading it again.
pub use cache::MAX_AGE as CACHE_MAX_AGE;

/// The dispatcher's statements as it runs them, and its sessions' planner settings: for the
/// benchmark suite, which times and `EXPLAIN`s them.
pub mod statements {
    pub use super::dispatch::{CLAIM_DUE, DISPATCHER_PLANNER, NEXT_DUE};
    pub use super::history::DropDay;
    pub use super::pacing::{GATE_LOCKS, GATE_READINGS, HELD, HELD_GATES, HOLD};
}

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be reached right now; callers answer 503 and retry later.
    /// Shared, so that every request of a group that failed on it gets the same error. Its
    /// message already holds the cause, so it is not chained again (one readable line).
    #[error("database unavailable: {}", describe(.0))]
    Unavailable(std::sync::Arc<sqlx::Error>),
    /// Its message already holds the cause: not chained again, so a command's error is one
    /// readable line.
    #[error("database error: {0}")]
    Database(sqlx::Error),
    #[error("{0}")]
    Conflict(String),
    /// A change's new slot is full; nothing was written.
    #[error("the slot starting {} is full", .0.to_rfc3339())]
    SlotFull(chrono::DateTime<chrono::Utc>),
    #[error("stored value is not valid: {0}")]
    Corrupt(String),
    #[error("database url: {0}")]
    Url(#[source] sqlx::Error),
    #[error("migrations failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

impl From<sqlx::Error> for StoreError {
    fn from(err: sqlx::Error) -> Self {
        if is_unavailable(&err) {
            StoreError::Unavailable(std::sync::Arc::new(err))
        } else {
            StoreError::Database(err)
        }
    }
}

impl StoreError {
    /// The statement met a callback that ended (moved to its day's partition) after the
    /// statement began, and stopped without writing: run again, it sees where the callback
    /// went. (Within one partition PostgreSQL follows such a row by itself.)
    pub fn raced(&self) -> bool {
        matches!(self, StoreError::Database(err) if moved_away(err))
    }
}

/// See [`StoreError::raced`]: PostgreSQL's serialization failure, which a statement at read
/// committed meets only when a row it locks or changes moved to another partition.
fn moved_away(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(db) if db.code().as_deref() == Some("40001"))
}

/// How often a statement that [raced](StoreError::raced) with an ending is run again.
const RACE_RETRIES: u32 = 3;

/// A TLS failure names the settings that decide it: the operator's next step.
fn describe(err: &sqlx::Error) -> String {
    let text = err.to_string();
    let tls = matches!(err, sqlx::Error::Tls(_)) || text.contains("certificate");
    if tls {
        format!(
            "TLS with the database failed (check database.ca_file, and that the host in database.url is the one its certificate names): {text}"
        )
    } else {
        text
    }
}

fn is_unavailable(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::WorkerCrashed => true,
        // Class 08: connection exceptions; 57P01-03: the server is shutting down or starting;
        // class 53: out of connections, memory or disk; 57014 and 55P03: a statement or a lock
        // wait outlasted the session's limits (the database is too busy to answer in time).
        sqlx::Error::Database(db) => db.code().is_some_and(|c| {
            c.starts_with("08")
                || c.starts_with("53")
                || matches!(&*c, "57P01" | "57P02" | "57P03" | "57014" | "55P03")
        }),
        _ => false,
    }
}

fn is_unique_violation(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(db) if db.code().as_deref() == Some("23505"))
}

/// Server-side bounds on what one statement of a session may take, so that a request gives
/// up on the database (and is answered 503) before its own time limit answers 408.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionLimits {
    pub statement_timeout: std::time::Duration,
    pub lock_timeout: std::time::Duration,
}

impl SessionLimits {
    /// Below an HTTP request limit: a statement may use four fifths of it, waiting for a
    /// lock a quarter (a row a dispatcher is publishing is released within a batch).
    pub fn below(request_timeout: std::time::Duration) -> Self {
        let floor = std::time::Duration::from_millis(50);
        Self {
            statement_timeout: (request_timeout * 4 / 5).max(floor),
            lock_timeout: (request_timeout / 4).max(floor),
        }
    }
}

/// The handle to the database, cheap to clone.
#[derive(Debug, Clone)]
pub struct Store {
    pool: PgPool,
    /// Security users and the directory, while [`Store::keep_cache`] runs (the daemon).
    cache: std::sync::Arc<cache::Cache>,
    /// Creates' probes read in groups ([`Store::grouping_probes`]; the daemon's API).
    probes: Option<probes::ProbeQueue>,
}

impl Store {
    fn on(pool: PgPool) -> Self {
        Self {
            pool,
            cache: std::sync::Arc::new(cache::Cache::new()),
            probes: None,
        }
    }

    /// This handle, with concurrent creates' probes (the clock and the do-not-call look-up)
    /// read together, a few readers each taking what has gathered (`store::probes`).
    pub fn grouping_probes(mut self) -> Self {
        self.probes = Some(probes::ProbeQueue::start(self.clone()));
        self
    }
}

impl Store {
    /// Connects (creating the database first when asked to and it is missing) and applies
    /// pending migrations. Several daemons may start at once: sqlx serialises migrations with
    /// an advisory lock.
    pub async fn connect(settings: &DatabaseSettings) -> Result<Self, StoreError> {
        Self::connect_limited(settings, None).await
    }

    /// As [`Store::connect`], with every pooled session bounded by `limits` (migrations run
    /// on a connection of their own, without them: one may rewrite a large table).
    pub async fn connect_limited(
        settings: &DatabaseSettings,
        limits: Option<SessionLimits>,
    ) -> Result<Self, StoreError> {
        let candidates = settings.candidates()?;
        let primary = primary::first(&candidates).await;
        let options = candidates[primary].clone();
        let within = settings.acquire_timeout();
        if settings.create_if_missing {
            create_database_if_missing(&options, within).await?;
        }
        let mut migrations = connect_once(&options, within).await?;
        let before = schema_version(&mut migrations).await?;
        MIGRATOR.run(&mut migrations).await?;
        let after = schema_version(&mut migrations).await?;
        if after != before {
            tracing::info!(from = before, to = after, "migrations applied");
        }
        migrations.close().await?;
        let limited = |options: PgConnectOptions| match limits {
            None => options,
            Some(limits) => options.options([
                (
                    "statement_timeout",
                    format!("{}ms", limits.statement_timeout.as_millis()),
                ),
                (
                    "lock_timeout",
                    format!("{}ms", limits.lock_timeout.as_millis()),
                ),
            ]),
        };
        let pool = primary::open(
            candidates.into_iter().map(limited).collect(),
            primary,
            PgPoolOptions::new()
                .max_connections(settings.max_connections)
                .acquire_timeout(settings.acquire_timeout()),
            false,
        )
        .await?;
        Ok(Self::on(pool))
    }

    /// Is the database answering? For `/readyz`.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query_scalar!(r#"SELECT 1 AS "one!""#)
            .fetch_one(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

impl DatabaseSettings {
    /// The servers to connect to, in order: `urls`, or `url` alone.
    pub(crate) fn candidates(&self) -> Result<Vec<PgConnectOptions>, StoreError> {
        if self.urls.is_empty() {
            Ok(vec![self.options_for(&self.url)?])
        } else {
            self.urls.iter().map(|url| self.options_for(url)).collect()
        }
    }

    /// The URL (with its `sslmode`), then the CA and client certificate files. Without an
    /// `sslmode`, a server on this host is reached without TLS (it would only cost: on the
    /// bench machine a third of the dispatch rate) and any other with `verify-full`: libpq's
    /// own default, `prefer`, accepts any certificate and falls back to plain text, so a
    /// remote URL written without thought would be neither private nor authenticated.
    fn options_for(&self, url: &crate::config::SecretUrl) -> Result<PgConnectOptions, StoreError> {
        let mut options = PgConnectOptions::from_str(url.expose())
            .map_err(StoreError::Url)?
            .application_name(&application_name(None));
        let local = matches!(
            options.get_host(),
            "127.0.0.1" | "::1" | "[::1]" | "localhost"
        ) || options.get_host().starts_with('/');
        if !url.expose().contains("sslmode=") && !url.expose().contains("ssl-mode=") {
            options = options.ssl_mode(if local {
                sqlx::postgres::PgSslMode::Disable
            } else {
                sqlx::postgres::PgSslMode::VerifyFull
            });
        }
        if let Some(ca) = &self.ca_file {
            options = options.ssl_root_cert(ca);
        }
        if let (Some(cert), Some(key)) = (&self.client_cert_file, &self.client_key_file) {
            options = options.ssl_client_cert(cert).ssl_client_key(key);
        }
        Ok(options)
    }
}

/// The role of the dispatcher's sessions in their `application_name`.
pub(crate) const DISPATCH_ROLE: &str = "dispatch";

/// `callbackd/<host>/<pid>[/<role>]`, the `application_name` of this process's sessions:
/// `pg_stat_activity` then tells which daemons are connected, and `callbackd status` which
/// of them dispatch (role `dispatch`). PostgreSQL keeps the first 63 bytes.
pub(crate) fn application_name(role: Option<&str>) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown".to_owned());
    let base = format!("callbackd/{host}/{}", std::process::id());
    match role {
        Some(role) => format!("{base}/{role}"),
        None => base,
    }
}

/// One connection of start-up's own, bounded like the pool's (`database.acquire_timeout_ms`):
/// a server that accepts and never answers, or a network that drops the packets, fails
/// start-up with an error that says so (systemd then restarts the daemon) instead of holding
/// it. The work done on the connection is not bounded: a migration may take long.
async fn connect_once(
    options: &PgConnectOptions,
    within: std::time::Duration,
) -> Result<sqlx::PgConnection, StoreError> {
    match tokio::time::timeout(within, options.connect()).await {
        Ok(connected) => Ok(connected?),
        Err(_) => Err(sqlx::Error::Io(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!(
                "{}:{} did not answer within {} ms (database.acquire_timeout_ms)",
                options.get_host(),
                options.get_port(),
                within.as_millis()
            ),
        ))
        .into()),
    }
}

/// The latest migration applied to the database (0 for a new one).
async fn schema_version(connection: &mut sqlx::PgConnection) -> Result<i64, StoreError> {
    // Two statements: one naming a table that does not exist would not even be planned.
    let migrated =
        sqlx::query_scalar!(r#"SELECT to_regclass('_sqlx_migrations') IS NOT NULL AS "migrated!""#)
            .fetch_one(&mut *connection)
            .await?;
    if !migrated {
        return Ok(0);
    }
    Ok(sqlx::query_scalar!(
        r#"SELECT coalesce(max(version), 0)::bigint AS "version!" FROM _sqlx_migrations WHERE success"#
    )
    .fetch_one(connection)
    .await?)
}

async fn create_database_if_missing(
    options: &PgConnectOptions,
    within: std::time::Duration,
) -> Result<(), StoreError> {
    let Some(name) = options.get_database().map(str::to_owned) else {
        return Ok(());
    };
    let mut admin = connect_once(&options.clone().database("postgres"), within).await?;
    let exists = sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1) AS "exists!""#,
        &name
    )
    .fetch_one(&mut admin)
    .await?;
    if !exists {
        let quoted = format!("\"{}\"", name.replace('"', "\"\""));
        let created = sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {quoted}")))
            .execute(&mut admin)
            .await;
        // Another daemon starting at the same moment may have won the race.
        match created {
            Err(e) if !is_unique_violation(&e) && !is_duplicate_database(&e) => {
                return Err(e.into());
            }
            Err(_) => {}
            Ok(_) => {
                tracing::info!(database = %name, "database created (database.create_if_missing)")
            }
        }
    }
    admin.close().await?;
    Ok(())
}

fn is_duplicate_database(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(db) if db.code().as_deref() == Some("42P04"))
}

#[cfg(test)]
mod tls_tests {
    use sqlx::postgres::PgSslMode;

    use crate::config::Settings;

    fn mode(url: &str) -> PgSslMode {
        let mut settings = Settings::default().database;
        settings.url = url.to_owned().into();
        let candidates = settings.candidates().expect("a valid URL");
        candidates[0].get_ssl_mode()
    }

    #[test]
    fn a_remote_server_is_verified_unless_the_url_says_otherwise() {
        assert!(matches!(
            mode("postgres://callbackd@db.example:5432/callbackd"),
            PgSslMode::VerifyFull
        ));
        assert!(matches!(
            mode("postgres://callbackd@db.example/callbackd?sslmode=prefer"),
            PgSslMode::Prefer
        ));
        assert!(matches!(
            mode("postgres://callbackd@db.example/callbackd?sslmode=disable"),
            PgSslMode::Disable
        ));
    }

    #[test]
    fn a_server_on_this_host_is_reached_without_tls_unless_asked() {
        for url in [
            "postgres://postgres@127.0.0.1:5432/callbackd",
            "postgres://postgres@localhost/callbackd",
            "postgres://postgres@[::1]/callbackd",
        ] {
            assert!(matches!(mode(url), PgSslMode::Disable), "{url}");
        }
        assert!(matches!(
            mode("postgres://postgres@localhost/callbackd?sslmode=verify-full"),
            PgSslMode::VerifyFull
        ));
    }
}
