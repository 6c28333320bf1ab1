//! (5) Scale: the due-poll and claim cost as the table grows — pending callbacks spread over
//! the next year, terminal rows beside them, a few rows due now, 10,000 do-not-call entries —
//! with `EXPLAIN` proof of the plan; at each step the same with pacing on (see `pacing.rs`);
//! and (7) the daemon's peak RSS with 1M pending, then the availability API against it.
//!
//! The statements are the daemon's (`statements.rs`), run on a connection with the
//! dispatcher's session settings.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};
use sqlx::{AssertSqlSafe, Connection, PgConnection, PgPool, Row};

use crate::Options;
use crate::consumer::Consumer;
use crate::infra::{Ctx, Daemon, SKILL};
use crate::report::percentiles;
use crate::statements::{CLAIM, NEXT_DUE, dispatcher_connection};

/// The due poll's pause (the dispatcher's, when another claim holds due callbacks), seconds.
const POLL_PAUSE_S: f64 = 0.05;

/// Pending rows due now at every step: what each timed claim finds.
const DUE_ROWS: i64 = 100;
const CHUNK: i64 = 250_000;

/// The daemon's backlog query (`Store::backlog`): every minute and on every /metrics scrape.
const BACKLOG: &str = "SELECT count(*) AS pending,
            count(*) FILTER (WHERE due_at <= now()) AS due_now,
            COALESCE(EXTRACT(EPOCH FROM (now() - min(due_at)))::float8, 0) AS oldest,
            (SELECT count(*) FROM callbacks
             WHERE state IN ('dispatched', 'accepted')) AS awaiting_outcome
     FROM callbacks WHERE state = 'pending'";

pub async fn run(ctx: &Ctx, options: &Options) -> anyhow::Result<Value> {
    let db = ctx.fresh_db("scale").await?;
    let loading = Instant::now();
    load(&db.pool, options.scale_dispatched, Kind::Dispatched).await?;
    crate::pacing::load_dnc(&db.pool).await?;
    let dispatched_load = loading.elapsed().as_secs_f64();
    eprintln!(
        "bench: scale: {} dispatched rows loaded in {dispatched_load:.1} s",
        options.scale_dispatched
    );
    let mut steps = Vec::new();
    let mut memory = Value::Null;
    let mut pending = 0u64;
    for &target in &options.scale_pending {
        let loading = Instant::now();
        load(
            &db.pool,
            target.saturating_sub(pending),
            Kind::PendingNextYear,
        )
        .await?;
        pending = pending.max(target);
        top_up_due(&db.pool).await?;
        // Timed as the daemon lives most of the time: after autovacuum has been through
        // (the table is tuned for it), not while it is running on the fresh load.
        sqlx::query("VACUUM (ANALYZE) callbacks")
            .execute(&db.pool)
            .await?;
        let load_seconds = loading.elapsed().as_secs_f64();
        eprintln!("bench: scale: {target} pending loaded in {load_seconds:.1} s; timing");
        let mut conn = dispatcher_connection(&db.url).await?;
        let mut step = measure(&mut conn, options).await?;
        if options.pacing_samples > 0 {
            eprintln!("bench: scale: {target} pending; timing a pacing pass");
            step["pacing"] = crate::pacing::measure(&db.pool, &mut conn, options, DUE_ROWS).await?;
        }
        conn.close().await?;
        step["pending"] = json!(target);
        step["load_seconds"] = json!(load_seconds);
        steps.push(step);
        // With 1M pending, or at the largest size when the run is smaller.
        let largest = options.scale_pending.last() == Some(&target);
        if memory.is_null() && (target >= 1_000_000 || largest) {
            memory = idle_memory(ctx, options, &db, target).await?;
        }
    }
    db.pool.close().await;
    Ok(json!({
        "dispatched_rows": options.scale_dispatched,
        "dispatched_load_seconds": dispatched_load,
        "due_rows_per_claim": DUE_ROWS,
        "steps": steps,
        "memory_with_pending": memory,
    }))
}

#[derive(Clone, Copy)]
enum Kind {
    Dispatched,
    PendingNextYear,
    DueNow,
}

/// Distinct phone numbers within each chunk: a claim's do-not-call probe reads the index once
/// per row, as with real callbacks (one shared number would be probed once per claim).
async fn load(pool: &PgPool, n: u64, kind: Kind) -> anyhow::Result<()> {
    let (state, due, attempt, dispatched_at) = match kind {
        Kind::Dispatched => (
            "dispatched",
            "now() - random() * interval '30 days'",
            1,
            "d",
        ),
        Kind::PendingNextYear => (
            "pending",
            "now() + interval '1 hour' + random() * interval '365 days'",
            0,
            "NULL",
        ),
        Kind::DueNow => (
            "pending",
            "now() - interval '1 minute' - random() * interval '1 minute'",
            0,
            "NULL",
        ),
    };
    let sql = format!(
        "INSERT INTO callbacks (id, state, first_name, last_name, phone_number, skill_id, notes,
                                scheduled_for, due_at, attempt, dispatched_at, created_by,
                                created_at, updated_at)
         SELECT gen_random_uuid(), '{state}', 'First ' || i, 'Last', '+1415' || lpad(i::text, 7, '0'), $2, '',
                d, d, {attempt}, {dispatched_at}, 'bench', LEAST(d, now()) - interval '1 day',
                LEAST(d, now())
         FROM (SELECT i, {due} AS d FROM generate_series(1, $1::int8) AS i) s"
    );
    let mut left = i64::try_from(n)?;
    while left > 0 {
        let count = left.min(CHUNK);
        sqlx::query(AssertSqlSafe(sql.clone()))
            .bind(count)
            .bind(SKILL)
            .execute(pool)
            .await
            .with_context(|| format!("loading {state} callbacks"))?;
        left -= count;
    }
    Ok(())
}

/// Brings the rows due now back to [`DUE_ROWS`] (the daemon of the memory run dispatches them).
pub async fn top_up_due(pool: &PgPool) -> anyhow::Result<()> {
    let due: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM callbacks WHERE state = 'pending' AND due_at <= now()",
    )
    .fetch_one(pool)
    .await?;
    load(pool, u64::try_from((DUE_ROWS - due).max(0))?, Kind::DueNow).await
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

pub async fn measure(conn: &mut PgConnection, options: &Options) -> anyhow::Result<Value> {
    let samples = options.scale_samples;
    let mut claim = Vec::with_capacity(samples);
    let mut poll = Vec::with_capacity(samples);
    for _ in 0..samples {
        sqlx::query("BEGIN").execute(&mut *conn).await?;
        let t = Instant::now();
        let rows = sqlx::query(CLAIM)
            .bind(i64::from(options.batch))
            .fetch_all(&mut *conn)
            .await?;
        claim.push(ms(t.elapsed()));
        sqlx::query("ROLLBACK").execute(&mut *conn).await?;
        if rows.len() as i64 != DUE_ROWS {
            bail!("a claim found {} due rows, expected {DUE_ROWS}", rows.len());
        }
        let claimed_at: chrono::DateTime<chrono::Utc> = rows[0].try_get("now")?;
        let t = Instant::now();
        sqlx::query(NEXT_DUE)
            .bind(claimed_at)
            .bind(POLL_PAUSE_S)
            .fetch_one(&mut *conn)
            .await?;
        poll.push(ms(t.elapsed()));
    }
    // The poll as it usually runs: the claim took everything due by its clock, so nothing
    // due by then is left (here: a clock just before the earliest due row).
    let before_due: chrono::DateTime<chrono::Utc> = sqlx::query_scalar(
        "SELECT min(due_at) - interval '1 second' FROM callbacks
         WHERE state = 'pending' AND paced_at IS NULL",
    )
    .fetch_one(&mut *conn)
    .await?;
    let mut poll_clear = Vec::new();
    for _ in 0..samples.min(50) {
        let t = Instant::now();
        sqlx::query(NEXT_DUE)
            .bind(before_due)
            .bind(POLL_PAUSE_S)
            .fetch_one(&mut *conn)
            .await?;
        poll_clear.push(ms(t.elapsed()));
    }
    let mut backlog = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        sqlx::query(BACKLOG).fetch_one(&mut *conn).await?;
        backlog.push(ms(t.elapsed()));
    }

    let literal_claim = CLAIM.replace("$1", &options.batch.to_string());
    sqlx::query("BEGIN").execute(&mut *conn).await?;
    let claim_plan = plan(conn, &format!("EXPLAIN (ANALYZE, BUFFERS) {literal_claim}")).await?;
    sqlx::query(AssertSqlSafe(format!(
        "PREPARE bench_claim(int8) AS {CLAIM}"
    )))
    .execute(&mut *conn)
    .await?;
    sqlx::query("SET LOCAL plan_cache_mode = force_generic_plan")
        .execute(&mut *conn)
        .await?;
    let generic_plan = plan(
        conn,
        &format!("EXPLAIN EXECUTE bench_claim({})", options.batch),
    )
    .await?;
    sqlx::query("DEALLOCATE bench_claim")
        .execute(&mut *conn)
        .await?;
    sqlx::query("ROLLBACK").execute(&mut *conn).await?;
    let poll_plan = plan(
        conn,
        &format!(
            "EXPLAIN (ANALYZE, BUFFERS) {}",
            NEXT_DUE
                .replace("$1", "now()")
                .replace("$2", &POLL_PAUSE_S.to_string())
        ),
    )
    .await?;
    let poll_clear_plan = plan(
        conn,
        &format!(
            "EXPLAIN (ANALYZE, BUFFERS) {}",
            NEXT_DUE
                .replace("$1", &format!("'{}'::timestamptz", before_due.to_rfc3339()))
                .replace("$2", &POLL_PAUSE_S.to_string())
        ),
    )
    .await?;
    let backlog_plan = plan(conn, &format!("EXPLAIN (ANALYZE, BUFFERS) {BACKLOG}")).await?;

    let uses_ready_index =
        |p: &str| p.contains("callbacks_ready") && !p.contains("Seq Scan on callbacks");
    let sizes = sqlx::query(
        "SELECT pg_total_relation_size('callbacks')::float8 / 1048576 AS table_mib,
                pg_relation_size('callbacks_ready')::float8 / 1048576 AS ready_index_mib",
    )
    .fetch_one(&mut *conn)
    .await?;
    Ok(json!({
        "claim_ms": percentiles(claim),
        "due_poll_ms": percentiles(poll),
        "backlog_report_ms": percentiles(backlog),
        "claim_plan_uses_callbacks_ready": uses_ready_index(&claim_plan) && uses_ready_index(&generic_plan),
        "poll_plan_uses_callbacks_ready": uses_ready_index(&poll_plan),
        "due_poll_nothing_due_ms": percentiles(poll_clear),
        "poll_nothing_due_plan_uses_callbacks_ready": uses_ready_index(&poll_clear_plan),
        "explain_due_poll_nothing_due": poll_clear_plan,
        "dnc_probe_uses_dnc_entries_by_phone": claim_plan.contains("dnc_entries_by_phone"),
        "explain_claim": claim_plan,
        "explain_claim_generic": generic_plan,
        "explain_due_poll": poll_plan,
        "explain_backlog_report": backlog_plan,
        "table_with_indexes_mib": sizes.try_get::<f64, _>("table_mib")?,
        "ready_index_mib": sizes.try_get::<f64, _>("ready_index_mib")?,
    }))
}

pub async fn plan(conn: &mut sqlx::PgConnection, sql: &str) -> anyhow::Result<String> {
    let rows = sqlx::query(AssertSqlSafe(sql.to_owned()))
        .fetch_all(&mut *conn)
        .await
        .with_context(|| format!("running {sql}"))?;
    let lines: Vec<String> = rows
        .iter()
        .map(|r| r.try_get::<String, _>(0))
        .collect::<Result<_, _>>()?;
    Ok(lines.join("\n"))
}

/// (7) The daemon's peak RSS while it runs against the table with `pending` callbacks; then
/// (after the RSS is read) the availability API's latency against it.
async fn idle_memory(
    ctx: &Ctx,
    options: &Options,
    db: &crate::infra::Db,
    pending: u64,
) -> anyhow::Result<Value> {
    let token = if options.availability_requests > 0 {
        Some(crate::pacing::set_up_slots(ctx, &db.pool, &db.url).await?)
    } else {
        None
    };
    let exchange = ctx.declare_exchange("scale").await?;
    let mut consumer = Consumer::start(ctx, &exchange, "scale").await?;
    let mut daemon = Daemon::spawn(ctx, options, &db.url, &exchange, "pending")?;
    daemon.wait_ready(Duration::from_secs(60)).await?;
    // It dispatches the rows due now, then waits, polling the due index.
    let seen = consumer
        .wait_for(DUE_ROWS as u64, Duration::from_secs(30))
        .await;
    tokio::time::sleep(Duration::from_secs(options.memory_seconds)).await;
    let rss = daemon.peak_rss_mib()?;
    let current = current_rss_mib(daemon.pid)?;
    let availability = match &token {
        Some(token) => {
            eprintln!("bench: scale: timing GET /v1/skills/{SKILL}/availability");
            crate::pacing::availability(&daemon.base_url(), token, options.availability_requests)
                .await?
        }
        None => Value::Null,
    };
    daemon.stop()?;
    consumer.close().await?;
    seen?;
    Ok(json!({
        "pending": pending,
        "seconds": options.memory_seconds,
        "peak_rss_mib": rss,
        "rss_at_end_mib": current,
        "availability": availability,
    }))
}

fn current_rss_mib(pid: u32) -> anyhow::Result<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("no VmRSS")?;
    Ok(kib / 1024.0)
}
