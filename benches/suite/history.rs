//! (8) History (`--history`): pending callbacks beside a growing history of ended ones with
//! their events (by default 1M, 10M and 50M ended; `--history-ended` chooses), and at each
//! step what an operator would notice if history weighed on the daemon: the claim, a create
//! through the API, the reads people make most (one state's list, a search by number, the
//! month's promise report), what each ended callback costs on disk (table, indexes, events)
//! and what the retention purge of one day of them costs (time, WAL; rolled back, so each
//! step keeps its rows): the drop of the day's partitions the purge does, beside the delete
//! by row it did before history was partitioned by day.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};
use sqlx::{Connection, PgPool};

use crate::Options;
use crate::infra::{Ctx, Daemon, SKILL};
use crate::report::percentiles;
use crate::statements::{DropDay, dispatcher_connection};

/// Ended callbacks per loading statement (three events each).
const CHUNK: u64 = 200_000;
/// Days of history the ended callbacks are spread over (the promise report's month).
const DAYS: i64 = 30;
/// Days a partition of history covers: the daemon's for its default retention (30 days).
const PARTITION_DAYS: i32 = 4;
/// Callbacks deleted by row for the comparison with the drop (deleting a 50M history's
/// partition by row would take most of an hour; the cost per callback is what compares).
const DELETE_BY_ROW: i64 = 200_000;
/// Timed creates and reads per step.
const CREATES: usize = 300;
const READS: usize = 20;
const REPORTS: usize = 5;

pub async fn run(ctx: &Ctx, options: &Options) -> anyhow::Result<Value> {
    let db = ctx.fresh_db("history").await?;
    let token = ctx
        .callbackd(&db.url, &["user", "add", "bench", "--permission", "all"])
        .await?;
    let loading = Instant::now();
    load_pending(&db.pool, options.history_pending).await?;
    eprintln!(
        "bench: history: {} pending loaded in {:.1} s",
        options.history_pending,
        loading.elapsed().as_secs_f64()
    );
    let mut steps = Vec::new();
    let mut ended = 0u64;
    for &target in &options.history_ended {
        let loading = Instant::now();
        load_ended(&db.pool, ended, target.saturating_sub(ended)).await?;
        ended = ended.max(target);
        // Rolled up from scratch at each step (the rows loaded went into quarters already
        // rolled up, which a running deployment never does): the roll-up's time is measured.
        sqlx::query("DELETE FROM promise_rollup")
            .execute(&db.pool)
            .await?;
        sqlx::query("UPDATE promise_rollup_state SET watermark = NULL")
            .execute(&db.pool)
            .await?;
        sqlx::query("VACUUM (ANALYZE) callbacks, callback_events")
            .execute(&db.pool)
            .await?;
        // The load's dirty pages written out now, not while creates wait for their commits.
        sqlx::query("CHECKPOINT").execute(&db.pool).await?;
        crate::scale::top_up_due(&db.pool).await?;
        let load_seconds = loading.elapsed().as_secs_f64();
        eprintln!("bench: history: {ended} ended loaded in {load_seconds:.1} s; timing");
        let mut step = measure(ctx, options, &db, &token).await?;
        step["ended"] = json!(ended);
        step["load_seconds"] = json!(load_seconds);
        step["bytes_per_ended_callback"] = sizes(&db.pool, options.history_pending, ended).await?;
        step["purge_one_day"] = purge_one_day(&db.pool).await?;
        eprintln!("bench: history: {ended} ended: {step}");
        steps.push(step);
    }
    db.pool.close().await;
    Ok(json!({
        "pending": options.history_pending,
        "days": DAYS,
        "steps": steps,
    }))
}

/// Pending callbacks over the next 7 days, each with its own number.
async fn load_pending(pool: &PgPool, n: u64) -> anyhow::Result<()> {
    let mut done = 0u64;
    while done < n {
        let count = CHUNK.min(n - done);
        sqlx::query(
            "INSERT INTO callbacks (id, first_name, last_name, phone_number, skill_id, notes,
                                    scheduled_for, due_at, created_by)
             SELECT gen_random_uuid(), 'First', 'Pending ' || (i % 5000),
                    '+1628' || (2000000 + i % 8000000), $3, '', d, d, 'bench'
             FROM (SELECT i, now() + interval '1 hour' + random() * interval '7 days' AS d
                   FROM generate_series($1::int8, $2::int8) AS i) s",
        )
        .bind(i64::try_from(done + 1)?)
        .bind(i64::try_from(done + count)?)
        .bind(SKILL)
        .execute(pool)
        .await
        .context("loading pending callbacks")?;
        done += count;
    }
    Ok(())
}

/// Ended callbacks over the last [`DAYS`] days (completed, and one in twenty each failed,
/// expired, cancelled) with their three events: created, dispatched, and how it ended, each
/// in the partition of the day it ended on (as ending them one by one leaves them).
///
/// Loaded a partition at a time, as a bulk load would be: each partition of history is
/// rebuilt as a plain table (its earlier rows copied, the new ones added), then attached, so
/// that PostgreSQL builds its indexes once rather than row by row; inserting 50M callbacks
/// and 150M events through the indexes would take hours. No trigger fires (these events are
/// history, not news, and are written where their callback ended). The indexes come out
/// denser than ones grown row by row, so the sizes measured are a little under a running
/// deployment's.
async fn load_ended(pool: &PgPool, from: u64, n: u64) -> anyhow::Result<()> {
    let mut conn = pool.acquire().await?;
    sqlx::query(
        "SELECT callbackd_make_history_days((now() AT TIME ZONE 'UTC')::date - $1,
                                            (now() AT TIME ZONE 'UTC')::date + 3, $2)",
    )
    .bind(i32::try_from(DAYS + 1)?)
    .bind(PARTITION_DAYS)
    .execute(&mut *conn)
    .await?;
    // The window the callbacks ended in, and each partition's share of it.
    let now = chrono::Utc::now();
    let window = (now - chrono::Duration::days(DAYS), now);
    let ranges: Vec<(String, chrono::NaiveDate, chrono::NaiveDate)> = sqlx::query_as(
        "SELECT substr(name, length('callbacks_ended_') + 1), first, stop
         FROM callbackd_history_ranges() ORDER BY first",
    )
    .fetch_all(&mut *conn)
    .await?;
    let span = (window.1 - window.0).num_milliseconds() as f64;
    let mut shares = Vec::new();
    for (suffix, first, stop) in ranges {
        let lo = first.and_hms_opt(0, 0, 0).context("midnight")?.and_utc();
        let hi = stop.and_hms_opt(0, 0, 0).context("midnight")?.and_utc();
        let (a, b) = (lo.max(window.0), hi.min(window.1));
        if a < b {
            shares.push((
                suffix,
                first,
                stop,
                a,
                b,
                (b - a).num_milliseconds() as f64 / span,
            ));
        }
    }
    let mut given = 0u64;
    let last = shares.len().saturating_sub(1);
    for (k, (suffix, first, stop, a, b, share)) in shares.into_iter().enumerate() {
        let count = if k == last {
            n - given
        } else {
            ((n as f64 * share).round() as u64).min(n - given)
        };
        let t = Instant::now();
        rebuild_partition(
            &mut conn,
            &suffix,
            (first, stop),
            (a, b),
            from + given,
            count,
        )
        .await?;
        eprintln!(
            "bench: history: partition {suffix}: {count} more in {:.1} s",
            t.elapsed().as_secs_f64()
        );
        given += count;
    }
    Ok(())
}

/// One partition of history (`callbacks_ended_<suffix>` and its events) rebuilt with
/// `count` more ended callbacks, ended between `ended.0` and `ended.1`, numbered from
/// `from + 1`.
async fn rebuild_partition(
    conn: &mut sqlx::PgConnection,
    suffix: &str,
    (first, stop): (chrono::NaiveDate, chrono::NaiveDate),
    ended: (chrono::DateTime<chrono::Utc>, chrono::DateTime<chrono::Utc>),
    from: u64,
    count: u64,
) -> anyhow::Result<()> {
    let callbacks = format!("callbacks_ended_{suffix}");
    let events = format!("callback_events_ended_{suffix}");
    let mut tx = conn.begin().await?;
    // The partition's own indexes (those not inherited from the parent), as the migration
    // made them, to build again once the rows are in.
    let own_indexes: Vec<String> = sqlx::query_scalar(
        "SELECT pg_get_indexdef(i.indexrelid) FROM pg_index i
         WHERE i.indrelid = $1::regclass
           AND NOT EXISTS (SELECT FROM pg_inherits h WHERE h.inhrelid = i.indexrelid)",
    )
    .bind(&callbacks)
    .fetch_all(&mut *tx)
    .await?;
    for statement in [
        "SET LOCAL maintenance_work_mem = '1GB'".to_owned(),
        // Like the partition: its columns, defaults and checks (its own on `state` too).
        format!(
            "CREATE TABLE history_load_callbacks
                 (LIKE {callbacks} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)"
        ),
        format!(
            "CREATE TABLE history_load_events
                 (LIKE {events} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)"
        ),
        format!("INSERT INTO history_load_callbacks SELECT * FROM {callbacks}"),
        format!("INSERT INTO history_load_events SELECT * FROM {events}"),
    ] {
        sqlx::query(sqlx::AssertSqlSafe(statement))
            .execute(&mut *tx)
            .await?;
    }
    let mut done = 0u64;
    while done < count {
        let chunk = CHUNK.min(count - done);
        let first_i = from + done + 1;
        sqlx::query(
            "WITH ended AS (
                INSERT INTO history_load_callbacks (id, state, first_name, last_name,
                                       phone_number, skill_id, notes, scheduled_for, due_at,
                                       attempt, dispatched_at, created_by, created_at,
                                       updated_at, first_lateness_ms, last_outcome, ended_on)
                SELECT gen_random_uuid(), s.state, 'First', 'Ended ' || (i % 5000),
                       '+1415' || (2000000 + i % 8000000), $3, '', e - interval '5 minutes' - lat,
                       e - interval '5 minutes' - lat, 1, e - interval '5 minutes',
                       'bench', e - interval '1 day', e,
                       EXTRACT(EPOCH FROM lat) * 1000,
                       CASE WHEN s.state = 'completed' THEN 'completed' END,
                       (e AT TIME ZONE 'UTC')::date
                FROM (SELECT i, $4::timestamptz + random() * ($5::timestamptz - $4::timestamptz) AS e,
                             random() * interval '2 minutes' AS lat,
                             CASE i % 20 WHEN 0 THEN 'failed' WHEN 1 THEN 'expired'
                                         WHEN 2 THEN 'cancelled' ELSE 'completed' END AS state
                      FROM generate_series($1::int8, $2::int8) AS i) s
                RETURNING id, state, created_at, dispatched_at, updated_at, ended_on
             )
             INSERT INTO history_load_events (callback_id, at, actor, kind, details, ended_on)
             SELECT e.id, x.at, x.actor, x.kind, x.details, e.ended_on
             FROM ended e CROSS JOIN LATERAL (VALUES
                 (e.created_at, 'bench', 'created', '{}'::jsonb),
                 (e.dispatched_at, 'dispatcher', 'dispatched',
                  '{\"attempt\": 1, \"routingKey\": \"skill.101\", \"instance\": \"bench\"}'::jsonb),
                 (e.updated_at, 'dialer', e.state, '{}'::jsonb)) AS x(at, actor, kind, details)",
        )
        .bind(i64::try_from(first_i)?)
        .bind(i64::try_from(first_i + chunk - 1)?)
        .bind(SKILL)
        .bind(ended.0)
        .bind(ended.1)
        .execute(&mut *tx)
        .await
        .context("loading ended callbacks")?;
        done += chunk;
    }
    // Attaching builds the parent's indexes on each table; then the partition's own.
    let swap = [
        format!("DROP TABLE {callbacks}, {events}"),
        format!("ALTER TABLE history_load_callbacks RENAME TO {callbacks}"),
        format!("ALTER TABLE history_load_events RENAME TO {events}"),
        format!(
            "ALTER TABLE callbacks ATTACH PARTITION {callbacks} FOR VALUES FROM ('{first}') TO ('{stop}')"
        ),
        format!(
            "ALTER TABLE callback_events ATTACH PARTITION {events} FOR VALUES FROM ('{first}') TO ('{stop}')"
        ),
    ];
    for statement in swap.into_iter().chain(own_indexes) {
        sqlx::query(sqlx::AssertSqlSafe(statement))
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The claim (as the scale section times it), then the daemon (dispatch off, so the due rows
/// stay due) for creates and reads once its promise roll-up has caught up (each read once
/// untimed first).
async fn measure(
    ctx: &Ctx,
    options: &Options,
    db: &crate::infra::Db,
    token: &str,
) -> anyhow::Result<Value> {
    let mut conn = dispatcher_connection(&db.url).await?;
    let claim = crate::scale::measure(&mut conn, options).await?;
    conn.close().await?;

    let exchange = ctx.declare_exchange("history").await?;
    let mut daemon = Daemon::spawn_with(
        ctx,
        options,
        &db.url,
        &exchange,
        "history",
        &[("CALLBACKD_DISPATCH__ENABLED", "false")],
    )?;
    daemon.wait_ready(Duration::from_secs(60)).await?;
    let rolled_up = roll_up(&db.pool).await?;

    let client = reqwest::Client::new();
    let base = daemon.base_url();
    let schedule = (chrono::Utc::now() + chrono::Duration::hours(2))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let mut creates = Vec::with_capacity(CREATES);
    for i in 0..CREATES {
        let body = json!({
            "firstName": "A", "lastName": "B", "skillId": SKILL, "scheduleDate": schedule,
            "phoneNumber": format!("+1212{}", 2_000_000 + i),
        });
        let t = Instant::now();
        let answer = client
            .post(format!("{base}/v1/callbacks"))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await?;
        creates.push(ms(t.elapsed()));
        if answer.status().as_u16() != 201 {
            bail!(
                "a create answered {}: {}",
                answer.status(),
                answer.text().await.unwrap_or_default()
            );
        }
    }
    let from = (chrono::Utc::now() - chrono::Duration::days(DAYS))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let reads = [
        (
            "list_completed",
            "/v1/callbacks?state=completed&limit=50".to_owned(),
            READS,
        ),
        (
            "list_pending_of_skill",
            format!("/v1/callbacks?state=pending&skillId={SKILL}&limit=50"),
            READS,
        ),
        (
            "search_by_number",
            "/v1/callbacks?phoneNumber=%2B14152004242&limit=50".to_owned(),
            READS,
        ),
        (
            "promise_report_30_days",
            format!("/v1/reports/promises?from={from}&groupBy=day"),
            REPORTS,
        ),
    ];
    let mut timed = serde_json::Map::new();
    for (name, path, n) in reads {
        let mut samples = Vec::with_capacity(n);
        // One read untimed first: it brings the pages it needs into memory, as the reads a
        // running deployment makes keep them there (a loaded history is all cold).
        for k in 0..=n {
            let t = Instant::now();
            let answer = client
                .get(format!("{base}{path}"))
                .bearer_auth(token)
                .send()
                .await?;
            let status = answer.status();
            answer.bytes().await?;
            if k > 0 {
                samples.push(ms(t.elapsed()));
            }
            if !status.is_success() {
                bail!("GET {path} answered {status}");
            }
        }
        timed.insert(name.into(), percentiles(samples));
    }
    daemon.stop()?;
    Ok(json!({
        "claim_ms": claim["claim_ms"],
        "due_poll_ms": claim["due_poll_ms"],
        "claim_plan_uses_callbacks_ready": claim["claim_plan_uses_callbacks_ready"],
        "create_ms": percentiles(creates),
        "reads_ms": timed,
        "promise_roll_up_seconds": rolled_up,
    }))
}

/// Waits for the daemon's promise roll-up, started from scratch, to catch up (within the
/// last hour: it stops at the quarter of the first callback still open, and at the schedule's
/// grace before now), as a running daemon's keeps up; how long it took. The report then
/// reads the roll-up for all but the last hour.
async fn roll_up(pool: &PgPool) -> anyhow::Result<f64> {
    let started = Instant::now();
    loop {
        // No row, or no watermark yet: the roll-up has not started.
        let caught_up: Option<Option<bool>> = sqlx::query_scalar(
            "SELECT watermark > now() - interval '1 hour' FROM promise_rollup_state",
        )
        .fetch_optional(pool)
        .await?;
        if caught_up.flatten() == Some(true) {
            return Ok(started.elapsed().as_secs_f64());
        }
        if started.elapsed() > Duration::from_secs(3600) {
            bail!("the promise roll-up did not catch up in an hour");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Disk per ended callback: the table with its indexes and the events with theirs (every
/// partition), less what the pending ones take (estimated as their share of the rows).
async fn sizes(pool: &PgPool, pending: u64, ended: u64) -> anyhow::Result<Value> {
    let (table, indexes, events): (i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT sum(pg_table_size(relid))::int8 FROM pg_partition_tree('callbacks')),
                (SELECT sum(pg_indexes_size(relid))::int8 FROM pg_partition_tree('callbacks')),
                (SELECT sum(pg_total_relation_size(relid))::int8
                 FROM pg_partition_tree('callback_events'))",
    )
    .fetch_one(pool)
    .await?;
    let rows = (pending + ended) as f64;
    let ended_f = ended as f64;
    Ok(json!({
        "callback_row": table as f64 / rows,
        "callback_indexes": indexes as f64 / rows,
        "events": events as f64 / ended_f,
        "total": (table + indexes) as f64 / rows + events as f64 / ended_f,
        "table_bytes": table,
        "index_bytes": indexes,
        "event_bytes": events,
    }))
}

/// The partition of history holding the day ended 15 days ago removed as the retention
/// purge does, timed and rolled back (so each step keeps its rows): its partitions dropped,
/// with the rows that refer to its callbacks (`Store::purge_terminal`); and, for
/// comparison, up to [`DELETE_BY_ROW`] of the same callbacks with their events deleted by
/// row (the purge before history was partitioned).
async fn purge_one_day(pool: &PgPool) -> anyhow::Result<Value> {
    let (day, days): (String, i32) = sqlx::query_as(
        "SELECT substr(name, length('callbacks_ended_') + 1), stop - first
         FROM callbackd_history_ranges()
         WHERE first <= (now() AT TIME ZONE 'UTC')::date - 15
           AND (now() AT TIME ZONE 'UTC')::date - 15 < stop",
    )
    .fetch_one(pool)
    .await?;
    let dropping = DropDay::new(&day)?;
    let (callbacks, events) = (dropping.callbacks(), dropping.events());

    let mut tx = pool.begin().await?;
    let before = wal_position(&mut tx).await?;
    let t = Instant::now();
    let dropped: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(dropping.count()))
        .fetch_one(&mut *tx)
        .await?;
    for statement in dropping.statements() {
        sqlx::query(sqlx::AssertSqlSafe(statement))
            .execute(&mut *tx)
            .await?;
    }
    let drop_seconds = t.elapsed().as_secs_f64();
    let drop_wal = wal_position(&mut tx).await? - before;
    tx.rollback().await?;

    let mut tx = pool.begin().await?;
    let before = wal_position(&mut tx).await?;
    let t = Instant::now();
    let deleted: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "WITH gone AS (
            DELETE FROM {callbacks} WHERE id IN (SELECT id FROM {callbacks} LIMIT $1) RETURNING id
         ), events AS (
            DELETE FROM {events} WHERE callback_id IN (SELECT id FROM gone)
         )
         SELECT count(*) FROM gone"
    )))
    .bind(DELETE_BY_ROW)
    .fetch_one(&mut *tx)
    .await?;
    let delete_seconds = t.elapsed().as_secs_f64();
    let delete_wal = wal_position(&mut tx).await? - before;
    tx.rollback().await?;
    Ok(json!({
        "first_day": day,
        "days": days,
        "callbacks": dropped,
        "drop": { "seconds": drop_seconds, "wal_bytes": drop_wal },
        "delete_by_row": {
            "deleted": deleted,
            "seconds": delete_seconds,
            "wal_bytes": delete_wal,
            "us_per_callback": delete_seconds * 1e6 / deleted.max(1) as f64,
            "wal_bytes_per_callback": delete_wal as f64 / deleted.max(1) as f64,
        },
    }))
}

/// The server's WAL insert position, in bytes.
async fn wal_position(conn: &mut sqlx::PgConnection) -> anyhow::Result<i64> {
    Ok(
        sqlx::query_scalar("SELECT (pg_current_wal_insert_lsn() - '0/0'::pg_lsn)::int8")
            .fetch_one(conn)
            .await?,
    )
}
