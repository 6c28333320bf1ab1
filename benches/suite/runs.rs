//! callbackd itself: (3) burst drain and (4) steady lateness, with the real daemon as a child
//! process and the consumer on the run's exchange.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::Options;
use crate::consumer::Consumer;
use crate::infra::{Ctx, Daemon, SKILL, db_now, states};
use crate::profile::{Activity, CpuSampler, counters_delta, per_item, pg_counters};
use crate::report::percentiles;

/// Rows per INSERT statement when loading.
const CHUNK: u64 = 250_000;

/// Inserts `n` pending callbacks all due at `due`, as the API would store them.
pub async fn insert_due_at(pool: &PgPool, n: u64, due: DateTime<Utc>) -> anyhow::Result<()> {
    insert_spread(pool, n, due, 0.0).await
}

/// Inserts `n` pending callbacks, the i-th (from 0) due at `start + i × step_seconds`.
pub async fn insert_spread(
    pool: &PgPool,
    n: u64,
    start: DateTime<Utc>,
    step_seconds: f64,
) -> anyhow::Result<()> {
    let mut done = 0u64;
    while done < n {
        let count = CHUNK.min(n - done);
        sqlx::query(
            "INSERT INTO callbacks (id, first_name, last_name, phone_number, skill_id, notes,
                                    scheduled_for, due_at, created_by)
             SELECT gen_random_uuid(), 'First ' || i, 'Last', '+14155552671', $3, '', d, d, 'bench'
             FROM (SELECT i, $4::timestamptz + make_interval(secs => (i - 1) * $5::float8) AS d
                   FROM generate_series($1::int8, $2::int8) AS i) s",
        )
        .bind(i64::try_from(done + 1)?)
        .bind(i64::try_from(done + count)?)
        .bind(SKILL)
        .bind(start)
        .bind(step_seconds)
        .execute(pool)
        .await
        .context("loading callbacks")?;
        done += count;
    }
    Ok(())
}

/// (3) Burst drain: N callbacks due at the same instant, then the daemon starts; the time
/// until the consumer has every one of them.
pub async fn burst(ctx: &Ctx, options: &Options) -> anyhow::Result<Value> {
    let n = options.burst;
    let db = ctx.fresh_db("burst").await?;
    let exchange = ctx.declare_exchange("callbacks").await?;
    let loading = Instant::now();
    let due = db_now(&db.pool).await?;
    insert_due_at(&db.pool, n, due).await?;
    let load_seconds = loading.elapsed().as_secs_f64();
    let mut consumer = Consumer::start(ctx, &exchange, "burst").await?;
    let before = pg_counters(&ctx.admin, &db.name).await?;
    let activity = Activity::start(&ctx.db_url("postgres"), &db.name).await?;

    let daemon = Daemon::spawn(ctx, options, &db.url, &exchange, "burst")?;
    let cpu = CpuSampler::start(vec![("callbackd", daemon.pid), activity.watched()]);
    let waited = consumer
        .wait_for(n, Duration::from_secs(300 + n / 500))
        .await;
    let spawned = daemon.started;
    let total = spawned.elapsed();
    let rss = daemon.peak_rss_mib();
    let cpu = cpu.stop();
    let activity = activity.stop().await;
    let seen = waited?;
    let rss = rss?;
    daemon.stop()?;
    let after = pg_counters(&ctx.admin, &db.name).await?;
    let first = seen.first.map(|f| f.saturating_duration_since(spawned));
    let first_to_last = match (seen.first, seen.last) {
        (Some(f), Some(l)) => (l - f).as_secs_f64(),
        _ => f64::NAN,
    };
    let result = json!({
        "callbacks": n,
        "load_seconds": load_seconds,
        "seconds_start_to_all": total.as_secs_f64(),
        "callbacks_per_s": n as f64 / total.as_secs_f64(),
        "first_message_after_s": first.map(|d| d.as_secs_f64()),
        "callbacks_per_s_first_to_last": n as f64 / first_to_last,
        "peak_rss_mib": rss,
        "received_distinct": seen.distinct,
        "duplicates": seen.duplicates,
        "states_after": states(&db.pool).await?,
        "passes": dispatch_passes(&db.pool).await?,
        "cpu_us_per_item": per_item(&cpu, n, "callback", Some(("callbackd", "callbackd"))),
        "cpu": cpu,
        "pg_activity": activity,
        "pg_counters": counters_delta(&before, &after),
    });
    consumer.close().await?;
    db.pool.close().await;
    Ok(result)
}

/// Seconds between loading a steady run's rows and the first one maturing: enough to load
/// them (60,000 rows a second here in a quiet hour, 27,000 in a busy one) with room to spare.
pub fn head_start(rows: u64) -> chrono::Duration {
    chrono::Duration::milliseconds(3_000 + i64::try_from(rows / 20).unwrap_or(i64::MAX))
}

/// (4) Steady lateness: `rate` callbacks maturing per second for T seconds, inserted ahead of
/// time while the daemon runs; lateness = arrival at the consumer − `dueAt` from the body.
/// `label` names its database, queue and log.
pub async fn steady(ctx: &Ctx, options: &Options, rate: u64, label: &str) -> anyhow::Result<Value> {
    let total = rate * options.seconds;
    crate::infra::checkpoint(ctx).await?;
    let db = ctx.fresh_db(label).await?;
    let exchange = ctx.declare_exchange("callbacks").await?;
    let mut consumer = Consumer::start(ctx, &exchange, label).await?;
    let mut daemon = Daemon::spawn(ctx, options, &db.url, &exchange, label)?;
    daemon.wait_ready(Duration::from_secs(30)).await?;
    let start = db_now(&db.pool).await? + head_start(total);
    insert_spread(&db.pool, total, start, 1.0 / rate as f64).await?;
    if db_now(&db.pool).await? >= start {
        bail!(
            "loading {total} callbacks took longer than the {} ms head start",
            head_start(total).num_milliseconds()
        );
    }
    let before = pg_counters(&ctx.admin, &db.name).await?;
    let activity = Activity::start(&ctx.db_url("postgres"), &db.name).await?;
    let cpu = CpuSampler::start(vec![("callbackd", daemon.pid), activity.watched()]);
    let waited = consumer
        .wait_for(total, Duration::from_secs(options.seconds + 63))
        .await;
    let rss = daemon.peak_rss_mib();
    let cpu = cpu.stop();
    let activity = activity.stop().await;
    let seen = waited?;
    let rss = rss?;
    daemon.stop()?;
    let after = pg_counters(&ctx.admin, &db.name).await?;
    let result = json!({
        "rate_per_s": rate,
        "seconds": options.seconds,
        "callbacks": total,
        "lateness_ms": percentiles(seen.lateness_ms),
        "received_distinct": seen.distinct,
        "duplicates": seen.duplicates,
        "peak_rss_mib": rss,
        "passes": dispatch_passes(&db.pool).await?,
        "cpu_us_per_item": per_item(&cpu, total, "callback", Some(("callbackd", "callbackd"))),
        "cpu": cpu,
        "pg_activity": activity,
        "pg_counters": counters_delta(&before, &after),
    });
    consumer.close().await?;
    db.pool.close().await;
    Ok(result)
}

/// The daemon's passes, reconstructed from what it recorded: the rows of one pass are marked
/// by one statement, microseconds apart, and passes are at least a publish apart.
pub async fn dispatch_passes(pool: &PgPool) -> anyhow::Result<Value> {
    const SAME_PASS: f64 = 3.0;
    let rows: Vec<(DateTime<Utc>, DateTime<Utc>)> = sqlx::query_as(
        "SELECT dispatched_at, due_at FROM callbacks
         WHERE dispatched_at IS NOT NULL ORDER BY dispatched_at",
    )
    .fetch_all(pool)
    .await?;
    let ms = |a: DateTime<Utc>, b: DateTime<Utc>| (a - b).as_seconds_f64() * 1000.0;
    // (first recorded, last recorded, rows)
    let mut passes: Vec<(DateTime<Utc>, DateTime<Utc>, u64)> = Vec::new();
    for (at, _) in &rows {
        match passes.last_mut() {
            Some(p) if ms(*at, p.1) <= SAME_PASS => {
                p.1 = *at;
                p.2 += 1;
            }
            _ => passes.push((*at, *at, 1)),
        }
    }
    let sizes = passes.iter().map(|p| p.2 as f64).collect();
    let cycles = passes.windows(2).map(|w| ms(w[1].0, w[0].0)).collect();
    let gaps = passes.windows(2).map(|w| ms(w[1].0, w[0].1)).collect();
    let marking = passes.iter().map(|p| ms(p.1, p.0)).collect();
    let lateness = rows.iter().map(|(at, due)| ms(*at, *due)).collect();
    let hot: Option<(i64, i64)> = sqlx::query_as(
        "SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables WHERE relname = 'callbacks'",
    )
    .fetch_optional(pool)
    .await?;
    let indexes: i64 =
        sqlx::query_scalar("SELECT count(*) FROM pg_indexes WHERE tablename = 'callbacks'")
            .fetch_one(pool)
            .await?;
    Ok(json!({
        "passes": passes.len(),
        "rows_per_pass": percentiles(sizes),
        "pass_start_to_next_start_ms": percentiles(cycles),
        "last_record_to_next_pass_first_record_ms": percentiles(gaps),
        "first_to_last_record_in_pass_ms": percentiles(marking),
        "recorded_minus_due_ms": percentiles(lateness),
        "callbacks_updates": hot.map(|h| h.0),
        "callbacks_hot_updates": hot.map(|h| h.1),
        "callbacks_indexes": indexes,
    }))
}
