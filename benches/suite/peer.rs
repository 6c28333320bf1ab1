//! (8) The peers: two schedulers that keep jobs in PostgreSQL, doing the same burst drain and
//! steady lateness as callbackd — each job publishes the same JSON to the same kind of
//! exchange with amqplib on a confirm channel, with the same in-flight window. Both are
//! installed into bench/peer by bench/run.sh (npm):
//!
//! - graphile-worker (`bench/peer/peer.mjs`): one job a task, `--peer-concurrency` at once,
//!   `--peer-poll-ms`; its jobs are added with its SQL function `add_jobs`.
//! - pg-boss (`bench/peer/pgboss.mjs`): workers that fetch a batch with one UPDATE, publish
//!   it, and complete it with one UPDATE; its jobs are added with its bulk `insert`. Run at
//!   its default polling interval and at its best-throughput settings ([`pgboss`]).
//!
//! A peer process connects first and prints "ready"; its clock and CPU sampling start when
//! the bench writes "go" to it, so Node's start-up is not counted as work (callbackd's burst
//! is timed from the process start, start-up included).

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::Options;
use crate::consumer::Consumer;
use crate::infra::{Ctx, MANIFEST_DIR, SKILL, connect, db_now, peak_rss_mib};
use crate::profile::{Activity, CpuSampler, counters_delta, per_item, pg_counters};
use crate::report::percentiles;

const CHUNK: u64 = 50_000;

fn peer_dir() -> PathBuf {
    PathBuf::from(MANIFEST_DIR).join("bench/peer")
}

/// pg-boss's two settings: (a) its defaults but for the batch — the worker's polling interval
/// is pg-boss's default of 2 s; (b) its best throughput here — the same with the polling
/// interval at its minimum, 0.5 s. Both run 2 workers fetching up to 5,000 jobs at a time
/// (pg-boss's literal default, a batch of 1, moves one job per worker per polling interval:
/// 0.5 jobs/s, which cannot do this work at all).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PgBossSetting {
    Default,
    Tuned,
}

const PGBOSS_WORKERS: usize = 2;
const PGBOSS_BATCH: usize = 5_000;

/// Which peer, and how it is set up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Peer {
    Graphile,
    PgBoss(PgBossSetting),
}

impl Peer {
    fn script(self) -> &'static str {
        match self {
            Peer::Graphile => "peer.mjs",
            Peer::PgBoss(_) => "pgboss.mjs",
        }
    }

    fn package(self) -> &'static str {
        match self {
            Peer::Graphile => "graphile-worker",
            Peer::PgBoss(_) => "pg-boss",
        }
    }

    /// Its group label in the CPU sampler.
    pub fn process_label(self) -> &'static str {
        match self {
            Peer::Graphile => "graphile-worker (node)",
            Peer::PgBoss(_) => "pg-boss (node)",
        }
    }

    fn db_label(self) -> &'static str {
        match self {
            Peer::Graphile => "gw",
            Peer::PgBoss(PgBossSetting::Default) => "pgbd",
            Peer::PgBoss(PgBossSetting::Tuned) => "pgbt",
        }
    }

    fn settings(self, options: &Options) -> Value {
        match self {
            Peer::Graphile => json!({
                "scheduler": "graphile-worker 0.16.6 (Node.js), amqplib 2.3.1 confirm channel",
                "setting": format!(
                    "concurrency {}, poll interval {} ms",
                    options.peer_concurrency, options.peer_poll_ms
                ),
                "concurrency": options.peer_concurrency,
                "max_pool_size": options.peer_concurrency + 2,
                "window": options.window,
                "poll_interval_ms": options.peer_poll_ms,
            }),
            Peer::PgBoss(setting) => {
                let (name, poll) = match setting {
                    PgBossSetting::Default => ("default polling", 2.0),
                    PgBossSetting::Tuned => ("best throughput", 0.5),
                };
                json!({
                    "scheduler": "pg-boss 10.4.2 (Node.js), amqplib 2.3.1 confirm channel",
                    "setting": format!(
                        "{name}: {PGBOSS_WORKERS} workers × batch {PGBOSS_BATCH}, polling {poll} s"
                    ),
                    "workers": PGBOSS_WORKERS,
                    "batch_size": PGBOSS_BATCH,
                    "polling_interval_s": poll,
                    "polling_interval_is_pgboss_default": setting == PgBossSetting::Default,
                    "window": options.window,
                    "fetch": "one UPDATE … FOR UPDATE SKIP LOCKED per batch (work with batchSize)",
                    "complete": "one UPDATE per batch (complete with the ids array), once every publication of the batch is confirmed",
                })
            }
        }
    }

    fn node(
        self,
        ctx: &Ctx,
        options: &Options,
        db_url: &str,
        exchange: &str,
        mode: &str,
    ) -> Command {
        let mut command = Command::new("node");
        command
            .current_dir(peer_dir())
            .arg(self.script())
            .arg(mode)
            .env("PEER_DATABASE_URL", db_url)
            .env("PEER_AMQP_URL", &ctx.amqp_url)
            .env("PEER_EXCHANGE", exchange)
            .env("PEER_WINDOW", options.window.to_string());
        match self {
            Peer::Graphile => {
                command
                    .env("PEER_CONCURRENCY", options.peer_concurrency.to_string())
                    .env("PEER_POLL_MS", options.peer_poll_ms.to_string());
            }
            Peer::PgBoss(setting) => {
                command
                    .env("PEER_WORKERS", PGBOSS_WORKERS.to_string())
                    .env("PEER_BATCH", PGBOSS_BATCH.to_string());
                if setting == PgBossSetting::Tuned {
                    command.env("PEER_POLL_S", "0.5");
                }
            }
        }
        command
    }

    /// A fresh database with the peer's schema (and pg-boss's queue).
    async fn database(
        self,
        ctx: &Ctx,
        options: &Options,
        what: &str,
    ) -> anyhow::Result<(String, String, PgPool)> {
        if !peer_dir()
            .join("node_modules")
            .join(self.package())
            .is_dir()
        {
            bail!(
                "{} is not installed: run `bash bench/run.sh`, or `npm install` in {}",
                self.package(),
                peer_dir().display()
            );
        }
        let (name, url) = ctx
            .create_db(&format!("{}_{what}", self.db_label()))
            .await?;
        let command = self.node(ctx, options, &url, "", "migrate");
        run_node(command, &format!("{} migration", self.package())).await?;
        let pool = connect(&url, 2).await?;
        Ok((name, url, pool))
    }

    /// Adds the jobs of `due`; each payload is the message callbackd would publish.
    async fn add_jobs(
        self,
        ctx: &Ctx,
        options: &Options,
        (url, pool): (&str, &PgPool),
        due: Due,
    ) -> anyhow::Result<()> {
        match self {
            Peer::Graphile => add_graphile_jobs(pool, due).await,
            Peer::PgBoss(_) => {
                let mut command = self.node(ctx, options, url, "", "load");
                command
                    .env("PEER_JOBS", due.n.to_string())
                    .env("PEER_START_MS", due.start.timestamp_millis().to_string())
                    .env("PEER_STEP_MS", (due.step_seconds * 1000.0).to_string());
                run_node(command, "adding pg-boss jobs").await
            }
        }
    }
}

/// `n` jobs, the i-th (from 0) due at `start + i × step_seconds`.
#[derive(Debug, Clone, Copy)]
struct Due {
    n: u64,
    start: DateTime<Utc>,
    step_seconds: f64,
}

async fn run_node(mut command: Command, what: &str) -> anyhow::Result<()> {
    let output = tokio::task::spawn_blocking(move || command.output())
        .await?
        .context("running node (is Node.js installed?)")?;
    if !output.status.success() {
        bail!(
            "{what} failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(())
}

/// Adds the jobs with graphile-worker's own bulk function.
async fn add_graphile_jobs(pool: &PgPool, due: Due) -> anyhow::Result<()> {
    let Due {
        n,
        start,
        step_seconds,
    } = due;
    let mut done = 0u64;
    while done < n {
        let count = CHUNK.min(n - done);
        sqlx::query(
            "SELECT count(*) FROM graphile_worker.add_jobs(ARRAY(
                SELECT ROW('publish', json_build_object(
                    'schema', 'callbackd.callback.v1', 'callbackId', gen_random_uuid(),
                    'attempt', 1, 'route', 'skill', 'routingKey', 'skill.' || $3::int8,
                    'skillId', $3::int8, 'targetAgentId', NULL, 'firstName', 'First ' || i,
                    'lastName', 'Last', 'phoneNumber', '+14155552671', 'notes', '',
                    'timeZone', NULL, 'scheduledFor', d, 'dueAt', d, 'createdBy', 'bench',
                    'createdAt', now()),
                    NULL, d, NULL, NULL, NULL, NULL)::graphile_worker.job_spec
                FROM (SELECT i, $4::timestamptz + make_interval(secs => (i - 1) * $5::float8) AS d
                      FROM generate_series($1::int8, $2::int8) AS i) s))",
        )
        .bind(i64::try_from(done + 1)?)
        .bind(i64::try_from(done + count)?)
        .bind(SKILL)
        .bind(start)
        .bind(step_seconds)
        .execute(pool)
        .await
        .context("adding graphile-worker jobs")?;
        done += count;
    }
    Ok(())
}

/// The worker process; its stdout says "ready" once it has connected, and it starts working
/// at [`go`](Self::go).
struct Worker {
    child: Child,
    stdin: Option<ChildStdin>,
    pid: u32,
    started: Instant,
    lines: mpsc::Receiver<String>,
}

impl Worker {
    fn spawn(
        ctx: &Ctx,
        options: &Options,
        peer: Peer,
        db_url: &str,
        exchange: &str,
        label: &str,
    ) -> anyhow::Result<Self> {
        let log = ctx.log_file(&format!("peer-{}-{label}", peer.db_label()))?;
        let started = Instant::now();
        let mut child = peer
            .node(ctx, options, db_url, exchange, "run")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting the {} peer", peer.package()))?;
        let stdout = child.stdout.take().context("peer stdout")?;
        let stdin = child.stdin.take();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Ok(Self {
            pid: child.id(),
            child,
            stdin,
            started,
            lines,
        })
    }

    async fn wait_ready(&mut self, timeout: Duration) -> anyhow::Result<()> {
        loop {
            if self.lines.try_iter().any(|l| l.trim() == "ready") {
                return Ok(());
            }
            if let Some(status) = self.child.try_wait()? {
                bail!("the peer exited during start-up: {status}");
            }
            if self.started.elapsed() > timeout {
                bail!("the peer was not ready after {timeout:?}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Tells the peer to start working; the instant it was told.
    fn go(&mut self) -> anyhow::Result<Instant> {
        let stdin = self.stdin.as_mut().context("the peer's stdin is closed")?;
        stdin.write_all(b"go\n")?;
        stdin.flush()?;
        Ok(Instant::now())
    }

    fn stop(mut self) -> anyhow::Result<()> {
        Ok(testkit::daemon::stop(
            &mut self.child,
            Duration::from_secs(10),
        )?)
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The peer's burst drain: `--peer-burst` jobs due at once, then the peer is told to go; the
/// time until the consumer has every one of them.
pub async fn burst(ctx: &Ctx, options: &Options, peer: Peer) -> anyhow::Result<Value> {
    let n = options.peer_burst();
    let (name, url, pool) = peer.database(ctx, options, "burst").await?;
    let exchange = ctx
        .declare_exchange(&format!("peer{}", peer.db_label()))
        .await?;
    let loading = Instant::now();
    let now = db_now(&pool).await?;
    let due = Due {
        n,
        start: now,
        step_seconds: 0.0,
    };
    peer.add_jobs(ctx, options, (&url, &pool), due).await?;
    let load_seconds = loading.elapsed().as_secs_f64();
    let mut consumer =
        Consumer::start(ctx, &exchange, &format!("{}_burst", peer.db_label())).await?;
    let mut worker = Worker::spawn(ctx, options, peer, &url, &exchange, "burst")?;
    worker.wait_ready(Duration::from_secs(60)).await?;
    let ready_after = worker.started.elapsed().as_secs_f64();
    let before = pg_counters(&ctx.admin, &name).await?;
    let activity = Activity::start(&ctx.db_url("postgres"), &name).await?;

    let cpu = CpuSampler::start(vec![(peer.process_label(), worker.pid), activity.watched()]);
    let went = worker.go()?;
    let waited = consumer
        .wait_for(n, Duration::from_secs(300 + n / 200))
        .await;
    let total = went.elapsed();
    let rss = peak_rss_mib(worker.pid);
    let cpu = cpu.stop();
    let activity = activity.stop().await;
    let seen = waited?;
    let rss = rss?;
    worker.stop()?;
    let after = pg_counters(&ctx.admin, &name).await?;
    let first_to_last = match (seen.first, seen.last) {
        (Some(f), Some(l)) => (l - f).as_secs_f64(),
        _ => f64::NAN,
    };
    let result = json!({
        "settings": peer.settings(options),
        "jobs": n,
        "load_seconds": load_seconds,
        "process_start_to_ready_s": ready_after,
        "seconds_go_to_all": total.as_secs_f64(),
        "jobs_per_s": n as f64 / total.as_secs_f64(),
        "first_message_after_s": seen.first.map(|f| f.saturating_duration_since(went).as_secs_f64()),
        "jobs_per_s_first_to_last": n as f64 / first_to_last,
        "peak_rss_mib": rss,
        "received_distinct": seen.distinct,
        "duplicates": seen.duplicates,
        "cpu_us_per_item": per_item(&cpu, n, "job", Some((peer.process_label(), "node"))),
        "cpu": cpu,
        "pg_activity": activity,
        "pg_counters": counters_delta(&before, &after),
    });
    consumer.close().await?;
    pool.close().await;
    Ok(result)
}

/// The peer's steady lateness: `--rate` jobs maturing per second for `--seconds`, added
/// while it runs.
pub async fn steady(ctx: &Ctx, options: &Options, peer: Peer) -> anyhow::Result<Value> {
    let rate = options.rate;
    let total = rate * options.seconds;
    crate::infra::checkpoint(ctx).await?;
    let (name, url, pool) = peer.database(ctx, options, "steady").await?;
    let exchange = ctx
        .declare_exchange(&format!("peer{}", peer.db_label()))
        .await?;
    let mut consumer =
        Consumer::start(ctx, &exchange, &format!("{}_steady", peer.db_label())).await?;
    let mut worker = Worker::spawn(ctx, options, peer, &url, &exchange, "steady")?;
    worker.wait_ready(Duration::from_secs(60)).await?;
    worker.go()?;
    // Node's start-up for pg-boss's `insert` comes on top of the loading itself.
    let head_start = crate::runs::head_start(total) + chrono::Duration::seconds(2);
    let start = db_now(&pool).await? + head_start;
    let due = Due {
        n: total,
        start,
        step_seconds: 1.0 / rate as f64,
    };
    peer.add_jobs(ctx, options, (&url, &pool), due).await?;
    if db_now(&pool).await? >= start {
        bail!(
            "adding {total} jobs took longer than the {} ms head start",
            head_start.num_milliseconds()
        );
    }
    let before = pg_counters(&ctx.admin, &name).await?;
    let cpu = CpuSampler::start(vec![(peer.process_label(), worker.pid)]);
    let waited = consumer
        .wait_for(total, Duration::from_secs(options.seconds + 63))
        .await;
    let rss = peak_rss_mib(worker.pid);
    let cpu = cpu.stop();
    let seen = waited?;
    let rss = rss?;
    worker.stop()?;
    let after = pg_counters(&ctx.admin, &name).await?;
    let result = json!({
        "settings": peer.settings(options),
        "rate_per_s": rate,
        "seconds": options.seconds,
        "jobs": total,
        "lateness_ms": percentiles(seen.lateness_ms),
        "received_distinct": seen.distinct,
        "duplicates": seen.duplicates,
        "peak_rss_mib": rss,
        "cpu_us_per_item": per_item(&cpu, total, "job", Some((peer.process_label(), "node"))),
        "cpu": cpu,
        "pg_counters": counters_delta(&before, &after),
    });
    consumer.close().await?;
    pool.close().await;
    Ok(result)
}
