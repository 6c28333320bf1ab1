//! What every section needs: fresh databases with callbackd's schema, the run's exchanges,
//! the real `callbackd` binary as a child process, and cleaning all of it up afterwards.
//! The broker set-up, the CLI runner and the child process are the test kit's
//! (`tests/kit`), shared with the integration tests.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use lapin::options::{ExchangeDeleteOptions, QueueDeleteOptions};
use lapin::{Connection, ConnectionProperties};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{AssertSqlSafe, ConnectOptions, Executor, PgPool};

use crate::Options;

pub const MANIFEST_DIR: &str = env!("CARGO_MANIFEST_DIR");
/// The outbound phone skill every bench callback uses.
pub const SKILL: i64 = 101;

/// The run: its unique name, its connections, and what it created (to remove at the end).
pub struct Ctx {
    /// `cbbench_<8 hex>`: prefixes every database, exchange and queue of this run.
    pub run: String,
    pub server: String,
    pub amqp_url: String,
    /// Logs of the child processes.
    pub out_dir: PathBuf,
    pub admin: PgPool,
    amqp: Connection,
    databases: Mutex<Vec<String>>,
    exchanges: Mutex<Vec<String>>,
    queues: Mutex<Vec<String>>,
}

/// A fresh database with callbackd's schema and the bench skill.
pub struct Db {
    pub name: String,
    pub url: String,
    pub pool: PgPool,
}

impl Ctx {
    pub async fn new(options: &Options) -> anyhow::Result<Self> {
        let run = format!(
            "cbbench_{}",
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        let server = options.database_server.trim_end_matches('/').to_owned();
        let admin = PgPoolOptions::new()
            .max_connections(2)
            .connect(&format!("{server}/postgres"))
            .await
            .with_context(|| format!("connecting to PostgreSQL at {server}"))?;
        let amqp = Connection::connect(&options.amqp_url, ConnectionProperties::default())
            .await
            .with_context(|| format!("connecting to RabbitMQ at {}", options.amqp_url))?;
        let out_dir = Path::new(MANIFEST_DIR)
            .join("target/callbackd-bench")
            .join(&run);
        std::fs::create_dir_all(&out_dir)
            .with_context(|| format!("creating {}", out_dir.display()))?;
        Ok(Self {
            run,
            server,
            amqp_url: options.amqp_url.clone(),
            out_dir,
            admin,
            amqp,
            databases: Mutex::new(Vec::new()),
            exchanges: Mutex::new(Vec::new()),
            queues: Mutex::new(Vec::new()),
        })
    }

    pub fn db_url(&self, name: &str) -> String {
        format!("{}/{name}", self.server)
    }

    /// Creates `<run>_<label>`, remembered for the cleanup.
    pub async fn create_db(&self, label: &str) -> anyhow::Result<(String, String)> {
        let name = format!("{}_{label}", self.run);
        self.admin
            .execute(AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
            .await
            .with_context(|| format!("creating database {name}"))?;
        lock(&self.databases).push(name.clone());
        let url = self.db_url(&name);
        Ok((name, url))
    }

    /// A new database with callbackd's migrations applied (`callbackd migrate`) and the bench
    /// skill (101, outbound phone) inserted.
    pub async fn fresh_db(&self, label: &str) -> anyhow::Result<Db> {
        let (name, url) = self.create_db(label).await?;
        self.callbackd(&url, &["migrate"]).await?;
        let pool = connect(&url, 4).await?;
        sqlx::query(
            "INSERT INTO skills (id, name, media_type, direction, active, time_zone)
             VALUES ($1, 'Bench outbound', 'phone', 'outbound', true, 'Europe/London')",
        )
        .bind(SKILL)
        .execute(&pool)
        .await
        .context("inserting the bench skill")?;
        Ok(Db { name, url, pool })
    }

    /// Runs a `callbackd` command (migrate, user add, import) against `db_url`; its stdout.
    pub async fn callbackd(&self, db_url: &str, args: &[&str]) -> anyhow::Result<String> {
        let mut command = testkit::cli::command();
        command.args(args).env("CALLBACKD_DATABASE__URL", db_url);
        let what = format!("callbackd {}", args.join(" "));
        let output = tokio::task::spawn_blocking(move || command.output())
            .await?
            .with_context(|| format!("running {what}"))?;
        if !output.status.success() {
            bail!(
                "{what} failed ({}): {}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
    }

    /// Declares a durable topic exchange exactly as callbackd does, remembered for cleanup.
    pub async fn declare_exchange(&self, suffix: &str) -> anyhow::Result<String> {
        let name = format!("{}.{suffix}", self.run);
        let channel = self.amqp.create_channel().await?;
        testkit::broker::declare_exchange_on(&channel, &name)
            .await
            .with_context(|| format!("declaring exchange {name}"))?;
        let _ = channel.close(200, "done".into()).await;
        let mut exchanges = lock(&self.exchanges);
        if !exchanges.contains(&name) {
            exchanges.push(name.clone());
        }
        Ok(name)
    }

    /// Remembers a queue for the cleanup (consumers delete theirs; this catches the rest).
    pub fn remember_queue(&self, name: &str) {
        lock(&self.queues).push(name.to_owned());
    }

    /// Drops the run's databases and deletes its queues and exchanges.
    pub async fn cleanup(&self) -> anyhow::Result<()> {
        let mut problems = Vec::new();
        let databases = std::mem::take(&mut *lock(&self.databases));
        for name in databases {
            if let Err(e) = self
                .admin
                .execute(AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
                )))
                .await
            {
                problems.push(format!("dropping database {name}: {e}"));
            }
        }
        let queues = std::mem::take(&mut *lock(&self.queues));
        let exchanges = std::mem::take(&mut *lock(&self.exchanges));
        if !exchanges.is_empty() || !queues.is_empty() {
            let channel = self.amqp.create_channel().await?;
            for name in queues {
                if let Err(e) = channel
                    .queue_delete(name.as_str().into(), QueueDeleteOptions::default())
                    .await
                {
                    problems.push(format!("deleting queue {name}: {e}"));
                }
            }
            for name in exchanges {
                if let Err(e) = channel
                    .exchange_delete(name.as_str().into(), ExchangeDeleteOptions::default())
                    .await
                {
                    problems.push(format!("deleting exchange {name}: {e}"));
                }
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            bail!("{}", problems.join("; "))
        }
    }

    pub fn log_file(&self, label: &str) -> anyhow::Result<File> {
        let path = self.out_dir.join(format!("{label}.log"));
        File::create(&path).with_context(|| format!("creating {}", path.display()))
    }
}

pub fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

pub async fn connect(url: &str, max: u32) -> anyhow::Result<PgPool> {
    let options: PgConnectOptions = url
        .parse::<PgConnectOptions>()
        .with_context(|| format!("database URL {url}"))?
        .disable_statement_logging();
    PgPoolOptions::new()
        .max_connections(max)
        .connect_with(options)
        .await
        .with_context(|| format!("connecting to {url}"))
}

/// The real `callbackd` daemon as a child process, with its own database, the run's exchange
/// and no queues of its own; its log (JSON) goes to the run's log directory. It runs on its
/// built-in defaults (those `config/callbackd.toml` documents) plus these variables, so that
/// a config file edited ahead of the binary cannot stop it.
pub struct Daemon {
    process: testkit::daemon::Daemon,
    pub pid: u32,
    pub port: u16,
    pub started: Instant,
}

impl Daemon {
    pub fn spawn(
        ctx: &Ctx,
        options: &Options,
        db_url: &str,
        exchange: &str,
        label: &str,
    ) -> anyhow::Result<Self> {
        Self::spawn_with(ctx, options, db_url, exchange, label, &[])
    }

    /// [`Daemon::spawn`] with more settings (`CALLBACKD_…` variables).
    pub fn spawn_with(
        ctx: &Ctx,
        options: &Options,
        db_url: &str,
        exchange: &str,
        label: &str,
        settings: &[(&str, &str)],
    ) -> anyhow::Result<Self> {
        // A port nobody listens on now: the daemon binds it a moment later.
        let port = testkit::free_port().context("finding a free port")?;
        let log = ctx.log_file(&format!("callbackd-{label}"))?;
        let started = Instant::now();
        let mut command = Command::new(testkit::cli::callbackd_bin());
        command
            .env("CALLBACKD_DATABASE__URL", db_url)
            .env("CALLBACKD_AMQP__EXCHANGE", exchange)
            .env("CALLBACKD_AMQP__QUEUES", "[]")
            // No outcome consumer: nothing reports outcomes here, and the default queue name
            // would be shared with anything else on this broker.
            .env("CALLBACKD_AMQP__OUTCOMES_QUEUE", "")
            .env("CALLBACKD_API__LISTEN", format!("127.0.0.1:{port}"))
            .env(
                "CALLBACKD_DISPATCH__INSTANCE_NAME",
                format!("bench-{label}"),
            )
            .env("CALLBACKD_DISPATCH__BATCH_SIZE", options.batch.to_string())
            .env(
                "CALLBACKD_DISPATCH__PUBLISH_WINDOW",
                options.window.to_string(),
            )
            .envs(settings.iter().copied())
            .stdin(Stdio::null());
        let process = testkit::daemon::Daemon::spawn_with_log(command, log)
            .with_context(|| format!("starting {}", testkit::cli::callbackd_bin().display()))?;
        Ok(Self {
            pid: process.pid(),
            process,
            port,
            started,
        })
    }

    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Waits until `/readyz` answers 200: database reachable and broker connected.
    pub async fn wait_ready(&mut self, timeout: Duration) -> anyhow::Result<Duration> {
        let client = reqwest::Client::new();
        let url = format!("{}/readyz", self.base_url());
        loop {
            if let Some(status) = self.process.try_wait()? {
                bail!("callbackd exited during start-up: {status}");
            }
            if let Ok(r) = client.get(&url).send().await
                && r.status().is_success()
            {
                return Ok(self.started.elapsed());
            }
            if self.started.elapsed() > timeout {
                bail!("callbackd not ready after {timeout:?}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Peak resident set size so far, in MiB (VmHWM).
    pub fn peak_rss_mib(&self) -> anyhow::Result<f64> {
        peak_rss_mib(self.pid)
    }

    /// SIGTERM, then up to 15 s for the soft stop; SIGKILL after that.
    pub fn stop(mut self) -> anyhow::Result<()> {
        Ok(self.process.stop(Duration::from_secs(15))?)
    }
}

/// VmHWM of a live process, in MiB.
pub fn peak_rss_mib(pid: u32) -> anyhow::Result<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .with_context(|| format!("no VmHWM in /proc/{pid}/status"))?;
    Ok(kib / 1024.0)
}

/// Flushes what earlier sections left dirty, so that their checkpoint does not stall the
/// timed part of the next one (lateness sections are sensitive to one I/O stall).
pub async fn checkpoint(ctx: &Ctx) -> anyhow::Result<()> {
    sqlx::query("CHECKPOINT")
        .execute(&ctx.admin)
        .await
        .context("CHECKPOINT")?;
    Ok(())
}

/// The database clock, as the daemon sees it.
pub async fn db_now(pool: &PgPool) -> anyhow::Result<chrono::DateTime<chrono::Utc>> {
    Ok(sqlx::query_scalar("SELECT now()").fetch_one(pool).await?)
}

/// Callbacks per state.
pub async fn states(pool: &PgPool) -> anyhow::Result<serde_json::Value> {
    let rows: Vec<(String, i64)> =
        sqlx::query_as("SELECT state, count(*) FROM callbacks GROUP BY state ORDER BY state")
            .fetch_all(pool)
            .await?;
    Ok(serde_json::Value::Object(
        rows.into_iter().map(|(s, n)| (s, n.into())).collect(),
    ))
}
