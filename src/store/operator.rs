//! What the operator commands ask of the database beyond the API's queries: who the operator
//! is, whether the schema is current, and which daemons are dispatching.

use chrono::{DateTime, Utc};
use sqlx::postgres::PgPoolOptions;

use super::users::UserRow;
use super::{DISPATCH_ROLE, MIGRATOR, Store, StoreError};
use crate::config::DatabaseSettings;
use crate::domain::SecurityUser;

/// How far the database's schema is from this build's migrations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaState {
    /// The newest migration applied, if any.
    pub applied: Option<i64>,
    /// The newest migration this build carries.
    pub latest: i64,
    /// Migrations this build carries that the database has not applied.
    pub pending: usize,
}

/// A daemon process whose dispatcher holds sessions on this database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DispatchingDaemon {
    pub host: String,
    pub pid: i64,
    pub sessions: i64,
    /// When its oldest dispatcher session started.
    pub since: DateTime<Utc>,
}

/// A security user looked up by name for an operator command.
#[derive(Debug, Clone)]
pub enum Operator {
    Enabled(SecurityUser),
    Disabled,
    Unknown,
}

impl Store {
    /// Opens a pool on the database as it is: unlike [`Store::connect`], it neither creates
    /// the database nor migrates it (an operator command must not change the schema, and
    /// `status` must report an unreachable database rather than fail to start). Sessions
    /// connect on first use, each within `acquire_timeout`.
    pub async fn open_existing(
        settings: &DatabaseSettings,
        acquire_timeout: std::time::Duration,
    ) -> Result<Self, StoreError> {
        let name = super::application_name(Some("cli"));
        let candidates: Vec<_> = settings
            .candidates()?
            .into_iter()
            .map(|options| options.application_name(&name))
            .collect();
        let current = super::primary::first(&candidates).await;
        let pool = super::primary::open(
            candidates,
            current,
            PgPoolOptions::new()
                .max_connections(2)
                .acquire_timeout(acquire_timeout),
            true,
        )
        .await?;
        Ok(Self::on(pool))
    }

    /// The security user named `name`, telling a disabled one from an unknown one.
    pub async fn operator(&self, name: &str) -> Result<Operator, StoreError> {
        let row = sqlx::query!(
            r#"SELECT id, name, permissions, skill_ids, disabled_at IS NOT NULL AS "disabled!"
             FROM security_users WHERE name = $1"#,
            name
        )
        .fetch_optional(&self.pool)
        .await?;
        Ok(match row {
            None => Operator::Unknown,
            Some(row) if row.disabled => Operator::Disabled,
            Some(row) => Operator::Enabled(SecurityUser::from(UserRow {
                id: row.id,
                name: row.name,
                permissions: row.permissions,
                skill_ids: row.skill_ids,
            })),
        })
    }

    pub async fn schema_state(&self) -> Result<SchemaState, StoreError> {
        let applied: Vec<i64> = match sqlx::query_scalar!(
            "SELECT version FROM _sqlx_migrations WHERE success ORDER BY version"
        )
        .fetch_all(&self.pool)
        .await
        {
            Ok(versions) => versions,
            // No migration table: nothing applied yet.
            Err(sqlx::Error::Database(db)) if db.code().as_deref() == Some("42P01") => Vec::new(),
            Err(e) => return Err(e.into()),
        };
        let ours: Vec<i64> = MIGRATOR
            .iter()
            .filter(|m| m.migration_type.is_up_migration())
            .map(|m| m.version)
            .collect();
        Ok(SchemaState {
            applied: applied.last().copied(),
            latest: ours.iter().copied().max().unwrap_or(0),
            pending: ours.iter().filter(|v| !applied.contains(v)).count(),
        })
    }

    /// The daemons whose dispatcher has sessions on this database, from the
    /// `application_name` they set (seeing other sessions' names needs the same database
    /// user as the daemons, or `pg_read_all_stats`).
    pub async fn dispatching_daemons(&self) -> Result<Vec<DispatchingDaemon>, StoreError> {
        let rows = sqlx::query!(
            r#"SELECT split_part(application_name, '/', 2) AS "host!",
                    split_part(application_name, '/', 3) AS "pid!",
                    count(*) AS "sessions!", min(backend_start) AS "since!"
             FROM pg_stat_activity
             WHERE datname = current_database() AND application_name LIKE 'callbackd/%/' || $1
             GROUP BY 1, 2 ORDER BY 1, 2"#,
            DISPATCH_ROLE
        )
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|row| {
                let pid = row.pid;
                Ok(DispatchingDaemon {
                    host: row.host,
                    pid: pid.parse().map_err(|_| {
                        StoreError::Corrupt(format!("application_name pid `{pid}`"))
                    })?,
                    sessions: row.sessions,
                    since: row.since,
                })
            })
            .collect()
    }
}
