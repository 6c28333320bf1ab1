//! (8) The peer: graphile-worker (npm, installed into bench/peer by bench/run.sh) doing the
//! same burst drain and steady lateness — its task publishes the same JSON to the same kind
//! of exchange with amqplib on a confirm channel, with the same in-flight window.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::Options;
use crate::consumer::Consumer;
use crate::infra::{Ctx, MANIFEST_DIR, SKILL, connect, db_now, peak_rss_mib, terminate};
use crate::profile::{Activity, CpuSampler, counters_delta, pg_counters};
use crate::report::percentiles;

const CHUNK: u64 = 50_000;

fn peer_dir() -> PathBuf {
    PathBuf::from(MANIFEST_DIR).join("bench/peer")
}

fn node(ctx: &Ctx, options: &Options, db_url: &str, exchange: &str, mode: &str) -> Command {
    let mut command = Command::new("node");
    command
        .current_dir(peer_dir())
        .arg("peer.mjs")
        .arg(mode)
        .env("PEER_DATABASE_URL", db_url)
        .env("PEER_AMQP_URL", &ctx.amqp_url)
        .env("PEER_EXCHANGE", exchange)
        .env("PEER_CONCURRENCY", options.peer_concurrency.to_string())
        .env("PEER_WINDOW", options.window.to_string())
        .env("PEER_POLL_MS", options.peer_poll_ms.to_string());
    command
}

/// A fresh database with graphile-worker's schema.
async fn peer_db(
    ctx: &Ctx,
    options: &Options,
    label: &str,
) -> anyhow::Result<(String, String, PgPool)> {
    if !peer_dir().join("node_modules/graphile-worker").is_dir() {
        bail!(
            "graphile-worker is not installed: run `bash bench/run.sh`, or `npm install` in {}",
            peer_dir().display()
        );
    }
    let (name, url) = ctx.create_db(label).await?;
    let mut command = node(ctx, options, &url, "", "migrate");
    let output = tokio::task::spawn_blocking(move || command.output())
        .await?
        .context("running node (is Node.js installed?)")?;
    if !output.status.success() {
        bail!(
            "graphile-worker migration failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    let pool = connect(&url, 2).await?;
    Ok((name, url, pool))
}

/// Adds `n` jobs with graphile-worker's own bulk function, the i-th (from 0) due at
/// `start + i × step_seconds`; each payload is the message callbackd would publish.
async fn add_jobs(
    pool: &PgPool,
    n: u64,
    start: DateTime<Utc>,
    step_seconds: f64,
) -> anyhow::Result<()> {
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

/// The worker process; its stdout says "ready" once it runs.
struct Worker {
    child: Child,
    pid: u32,
    started: Instant,
    lines: mpsc::Receiver<String>,
}

impl Worker {
    fn spawn(
        ctx: &Ctx,
        options: &Options,
        db_url: &str,
        exchange: &str,
        label: &str,
    ) -> anyhow::Result<Self> {
        let log = ctx.log_file(&format!("peer-{label}"))?;
        let started = Instant::now();
        let mut child = node(ctx, options, db_url, exchange, "run")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .context("starting the graphile-worker peer")?;
        let stdout = child.stdout.take().context("peer stdout")?;
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

    fn stop(mut self) -> anyhow::Result<()> {
        terminate(&mut self.child, Duration::from_secs(10))
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn settings(options: &Options) -> Value {
    json!({
        "scheduler": "graphile-worker 0.16.6 (Node.js), amqplib 2.3.1 confirm channel",
        "concurrency": options.peer_concurrency,
        "max_pool_size": options.peer_concurrency + 2,
        "window": options.window,
        "poll_interval_ms": options.peer_poll_ms,
    })
}

pub async fn burst(ctx: &Ctx, options: &Options) -> anyhow::Result<Value> {
    let n = options.peer_burst();
    let (name, url, pool) = peer_db(ctx, options, "peer_burst").await?;
    let exchange = ctx.declare_exchange("peer").await?;
    let loading = Instant::now();
    let now = db_now(&pool).await?;
    add_jobs(&pool, n, now, 0.0).await?;
    let load_seconds = loading.elapsed().as_secs_f64();
    let mut consumer = Consumer::start(ctx, &exchange, "peer_burst").await?;
    let before = pg_counters(&ctx.admin, &name).await?;
    let activity = Activity::start(&ctx.db_url("postgres"), &name).await?;

    let worker = Worker::spawn(ctx, options, &url, &exchange, "burst")?;
    let cpu = CpuSampler::start(vec![("graphile-worker (node)", worker.pid)]);
    let waited = consumer
        .wait_for(n, Duration::from_secs(300 + n / 200))
        .await;
    let spawned = worker.started;
    let total = spawned.elapsed();
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
        "settings": settings(options),
        "jobs": n,
        "load_seconds": load_seconds,
        "seconds_start_to_all": total.as_secs_f64(),
        "jobs_per_s": n as f64 / total.as_secs_f64(),
        "first_message_after_s": seen.first.map(|f| f.saturating_duration_since(spawned).as_secs_f64()),
        "jobs_per_s_first_to_last": n as f64 / first_to_last,
        "peak_rss_mib": rss,
        "received_distinct": seen.distinct,
        "duplicates": seen.duplicates,
        "cpu": cpu,
        "pg_activity": activity,
        "pg_counters": counters_delta(&before, &after),
    });
    consumer.close().await?;
    pool.close().await;
    Ok(result)
}

pub async fn steady(ctx: &Ctx, options: &Options) -> anyhow::Result<Value> {
    let total = options.rate * options.seconds;
    crate::infra::checkpoint(ctx).await?;
    let (name, url, pool) = peer_db(ctx, options, "peer_steady").await?;
    let exchange = ctx.declare_exchange("peer").await?;
    let mut consumer = Consumer::start(ctx, &exchange, "peer_steady").await?;
    let mut worker = Worker::spawn(ctx, options, &url, &exchange, "steady")?;
    worker.wait_ready(Duration::from_secs(60)).await?;
    let start = db_now(&pool).await? + chrono::Duration::seconds(3);
    add_jobs(&pool, total, start, 1.0 / options.rate as f64).await?;
    if db_now(&pool).await? >= start {
        bail!("adding {total} jobs took longer than the 3 s head start");
    }
    let before = pg_counters(&ctx.admin, &name).await?;
    let cpu = CpuSampler::start(vec![("graphile-worker (node)", worker.pid)]);
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
        "settings": settings(options),
        "rate_per_s": options.rate,
        "seconds": options.seconds,
        "jobs": total,
        "lateness_ms": percentiles(seen.lateness_ms),
        "received_distinct": seen.distinct,
        "duplicates": seen.duplicates,
        "peak_rss_mib": rss,
        "cpu": cpu,
        "pg_counters": counters_delta(&before, &after),
    });
    consumer.close().await?;
    pool.close().await;
    Ok(result)
}
