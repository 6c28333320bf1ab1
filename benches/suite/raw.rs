//! The machine's raw limits, the references for every ratio: (1) a bare lapin publisher with
//! confirms into a durable quorum queue behind a topic exchange, and (2) the bare claim
//! statement in a loop.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{BasicProperties, Channel, Confirmation, Connection, ConnectionProperties};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::Options;
use crate::consumer::Consumer;
use crate::infra::{Ctx, SKILL, db_now};
use crate::profile::{CpuSampler, per_item};
use crate::runs;

/// A message as callbackd would publish it for a skill-routed callback: the same JSON fields,
/// the same properties and headers.
struct Sample {
    id: String,
    body: Vec<u8>,
}

fn sample_messages(n: u64) -> anyhow::Result<Vec<Sample>> {
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true);
    (0..n)
        .map(|i| {
            let id = Uuid::now_v7().to_string();
            let body = serde_json::to_vec(&json!({
                "schema": "callbackd.callback.v1",
                "callbackId": id,
                "attempt": 1,
                "route": "skill",
                "routingKey": format!("skill.{SKILL}"),
                "skillId": SKILL,
                "targetAgentId": null,
                "firstName": format!("First {i}"),
                "lastName": "Last",
                "phoneNumber": "+14155552671",
                "notes": "",
                "timeZone": null,
                "scheduledFor": now,
                "dueAt": now,
                "createdBy": "bench",
                "createdAt": now,
            }))?;
            Ok(Sample { id, body })
        })
        .collect()
}

async fn publish_one(channel: &Channel, exchange: &str, m: &Sample) -> anyhow::Result<()> {
    let mut headers = FieldTable::default();
    headers.insert(
        "x-callbackd-schema".into(),
        AMQPValue::LongString(LongString::from("callbackd.callback.v1")),
    );
    headers.insert("route".into(), AMQPValue::LongString("skill".into()));
    headers.insert("skill_id".into(), AMQPValue::LongLongInt(SKILL));
    headers.insert("agent_id".into(), AMQPValue::Void);
    headers.insert("attempt".into(), AMQPValue::LongLongInt(1));
    let properties = BasicProperties::default()
        .with_content_type("application/json".into())
        .with_delivery_mode(2)
        .with_message_id(m.id.as_str().into())
        .with_timestamp(chrono::Utc::now().timestamp().unsigned_abs())
        .with_app_id("callbackd-bench".into())
        .with_headers(headers);
    let confirm = channel
        .basic_publish(
            exchange.into(),
            format!("skill.{SKILL}").as_str().into(),
            BasicPublishOptions {
                mandatory: true,
                ..Default::default()
            },
            &m.body,
            properties,
        )
        .await?;
    match confirm.await? {
        Confirmation::Ack(None) => Ok(()),
        other => bail!("publication not confirmed: {other:?}"),
    }
}

/// (1) Raw broker limit: all N messages through one confirm channel with `window`
/// publications awaiting a confirm at once, while the consumer drains the queue.
pub async fn broker(ctx: &Ctx, options: &Options) -> anyhow::Result<Value> {
    let n = options.burst;
    let exchange = ctx.declare_exchange("raw").await?;
    let label = format!("raw{}", uuid::Uuid::new_v4().simple());
    let mut consumer = Consumer::start(ctx, &exchange, &label[..11]).await?;
    let messages = sample_messages(n)?;
    let connection = Connection::connect(&ctx.amqp_url, ConnectionProperties::default())
        .await
        .context("publisher connecting")?;
    let channel = connection.create_channel().await?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await?;

    let cpu = CpuSampler::start(Vec::new());
    let started = Instant::now();
    let mut in_flight = FuturesUnordered::new();
    let mut queued = messages.iter();
    loop {
        while in_flight.len() < options.window {
            let Some(m) = queued.next() else { break };
            in_flight.push(publish_one(&channel, &exchange, m));
        }
        match in_flight.next().await {
            Some(result) => result?,
            None => break,
        }
    }
    let confirmed = started.elapsed();
    let seen = consumer
        .wait_for(n, Duration::from_secs(120 + n / 1000))
        .await?;
    let delivered = seen.last.map_or(started.elapsed(), |l| l - started);
    let cpu = cpu.stop();
    let _ = connection.close(200, "done".into()).await;
    consumer.close().await?;
    Ok(json!({
        "messages": n,
        "window": options.window,
        "queue": "durable quorum queue bound '#' to a durable topic exchange",
        "body_bytes": messages.first().map_or(0, |m| m.body.len()),
        "confirmed_per_s": n as f64 / confirmed.as_secs_f64(),
        "delivered_per_s": n as f64 / delivered.as_secs_f64(),
        "seconds_to_confirm_all": confirmed.as_secs_f64(),
        "seconds_to_deliver_all": delivered.as_secs_f64(),
        "duplicates": seen.duplicates,
        "cpu_us_per_item": per_item(&cpu, n, "message", None),
        "cpu": cpu,
    }))
}

/// The bare claim: due rows in due order, locked, skipping locked ones. It names what the
/// daemon's one due index (`callbacks_ready`: pending, not held by pacing) covers, so that it
/// walks that index as the daemon's claim does; without `paced_at IS NULL` no index matches
/// and every claim reads the whole table.
const CLAIM: &str = "SELECT c.* FROM callbacks c
     WHERE c.state = 'pending' AND c.paced_at IS NULL AND c.due_at <= now()
     ORDER BY c.due_at LIMIT $1 FOR UPDATE SKIP LOCKED";

/// The bare recording: one UPDATE from an array of ids.
const MARK_BARE: &str = "UPDATE callbacks c
     SET state = 'dispatched', attempt = c.attempt + 1, dispatch_failures = 0,
         last_error = NULL, dispatched_at = clock_timestamp(), updated_at = clock_timestamp()
     FROM unnest($1::uuid[]) AS d(id)
     WHERE c.id = d.id";

/// callbackd's recording (src/store/dispatch.rs, `mark_dispatched`): the same UPDATE plus
/// one `dispatched` event per row, returning each row's routing key and lateness.
const MARK_AS_CALLBACKD: &str = "WITH done AS (
        UPDATE callbacks c
        SET state = 'dispatched', attempt = c.attempt + 1, dispatch_failures = 0,
            last_error = NULL, dispatched_at = clock_timestamp(),
            updated_at = clock_timestamp()
        FROM unnest($1::uuid[]) AS d(id)
        WHERE c.id = d.id
        RETURNING c.id, c.attempt, c.due_at, c.dispatched_at,
            CASE WHEN c.target_agent_id IS NOT NULL THEN 'agent.' || c.target_agent_id
                 ELSE 'skill.' || c.skill_id END AS routing_key
     ), events AS (
        INSERT INTO callback_events (callback_id, at, actor, kind, details)
        SELECT id, dispatched_at, 'dispatcher', 'dispatched',
               jsonb_build_object('attempt', attempt, 'routingKey', routing_key,
                                  'instance', $2::text)
        FROM done
     )
     SELECT id, attempt, routing_key,
            (EXTRACT(EPOCH FROM (dispatched_at - due_at)) * 1000)::float8 AS lateness_ms
     FROM done";

/// (2) again, bare only: the reference is taken twice, around the burst, and the better
/// figure is the limit (the machine is shared; a neighbour's burst lowers one reading).
pub async fn database_again(ctx: &Ctx, options: &Options) -> anyhow::Result<Value> {
    let bare = claim_loop(ctx, options, "raw2", false).await?;
    Ok(json!({ "rows": options.burst, "batch": options.batch, "bare": bare }))
}

/// (2) Raw database limit: claim a batch of due rows, mark them dispatched, commit, until
/// none is left — once bare, once with callbackd's own recording statement.
pub async fn database(ctx: &Ctx, options: &Options) -> anyhow::Result<Value> {
    let bare = claim_loop(ctx, options, "raw", false).await?;
    let as_callbackd = claim_loop(ctx, options, "rawev", true).await?;
    let creates = single_row_creates(ctx, options).await?;
    Ok(json!({
        "rows": options.burst,
        "batch": options.batch,
        "bare": bare,
        "with_callbackd_events": as_callbackd,
        "single_row_creates": creates,
    }))
}

async fn claim_loop(
    ctx: &Ctx,
    options: &Options,
    label: &str,
    with_events: bool,
) -> anyhow::Result<Value> {
    let db = ctx.fresh_db(label).await?;
    let due = db_now(&db.pool).await?;
    runs::insert_due_at(&db.pool, options.burst, due).await?;
    let mut conn = db.pool.acquire().await?;
    let (mut claim_t, mut mark_t, mut commit_t) = (Duration::ZERO, Duration::ZERO, Duration::ZERO);
    let (mut rows, mut batches) = (0u64, 0u64);
    let cpu = CpuSampler::start(Vec::new());
    let started = Instant::now();
    loop {
        let t0 = Instant::now();
        sqlx::query("BEGIN").execute(&mut *conn).await?;
        let claimed = sqlx::query(CLAIM)
            .bind(i64::from(options.batch))
            .fetch_all(&mut *conn)
            .await?;
        let ids: Vec<Uuid> = claimed
            .iter()
            .map(|r| sqlx::Row::try_get::<Uuid, _>(r, "id"))
            .collect::<Result<_, _>>()?;
        let t1 = Instant::now();
        if ids.is_empty() {
            sqlx::query("COMMIT").execute(&mut *conn).await?;
            break;
        }
        if with_events {
            sqlx::query(MARK_AS_CALLBACKD)
                .bind(&ids)
                .bind("bench")
                .fetch_all(&mut *conn)
                .await?;
        } else {
            sqlx::query(MARK_BARE)
                .bind(&ids)
                .execute(&mut *conn)
                .await?;
        }
        let t2 = Instant::now();
        sqlx::query("COMMIT").execute(&mut *conn).await?;
        let t3 = Instant::now();
        claim_t += t1 - t0;
        mark_t += t2 - t1;
        commit_t += t3 - t2;
        rows += ids.len() as u64;
        batches += 1;
    }
    let elapsed = started.elapsed();
    let cpu = cpu.stop();
    drop(conn);
    db.pool.close().await;
    if rows != options.burst {
        bail!("claimed {rows} rows, expected {}", options.burst);
    }
    let per_batch = |d: Duration| d.as_secs_f64() * 1000.0 / batches.max(1) as f64;
    Ok(json!({
        "rows_per_s": rows as f64 / elapsed.as_secs_f64(),
        "seconds": elapsed.as_secs_f64(),
        "batches": batches,
        "ms_per_batch": {
            "claim": per_batch(claim_t),
            "mark": per_batch(mark_t),
            "commit": per_batch(commit_t),
        },
        "cpu_us_per_item": per_item(&cpu, rows, "row", None),
        "cpu": cpu,
    }))
}

/// Connections the daemon's API pool holds (database.max_connections).
const API_POOL: u32 = 16;

/// The database's limit for ingest: `API_POOL` connections each looping BEGIN, one INSERT
/// into callbacks, one into callback_events, COMMIT — a create's writes and its durable
/// commit, without HTTP, validation or look-ups.
async fn single_row_creates(ctx: &Ctx, options: &Options) -> anyhow::Result<Value> {
    let db = ctx.fresh_db("rawingest").await?;
    let pool = crate::infra::connect(&db.url, API_POOL).await?;
    let seconds = (options.ingest_seconds / 2).max(1);
    let cpu = CpuSampler::start(Vec::new());
    let started = Instant::now();
    let deadline = started + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for _ in 0..API_POOL {
        let pool = pool.clone();
        tasks.push(tokio::spawn(async move {
            let mut created = 0u64;
            let mut latencies = Vec::new();
            while Instant::now() < deadline {
                let t = Instant::now();
                let mut tx = pool.begin().await?;
                let id = Uuid::now_v7();
                sqlx::query(
                    "INSERT INTO callbacks (id, first_name, last_name, phone_number, skill_id,
                                            notes, scheduled_for, due_at, created_by)
                     VALUES ($1, 'A', 'B', '+14155552671', $2, '', now() + interval '1 hour',
                             now() + interval '1 hour', 'bench')",
                )
                .bind(id)
                .bind(SKILL)
                .execute(&mut *tx)
                .await?;
                sqlx::query(
                    "INSERT INTO callback_events (callback_id, actor, kind, details)
                     VALUES ($1, 'bench', 'created', '{}')",
                )
                .bind(id)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                created += 1;
                latencies.push(t.elapsed().as_secs_f64() * 1000.0);
            }
            anyhow::Ok((created, latencies))
        }));
    }
    let mut created = 0;
    let mut latencies = Vec::new();
    for task in tasks {
        let (n, l) = task.await??;
        created += n;
        latencies.extend(l);
    }
    let elapsed = started.elapsed();
    let cpu = cpu.stop();
    pool.close().await;
    db.pool.close().await;
    Ok(json!({
        "connections": API_POOL,
        "seconds": elapsed.as_secs_f64(),
        "creates_per_s": created as f64 / elapsed.as_secs_f64(),
        "latency_ms": crate::report::percentiles(latencies),
        "cpu_us_per_item": per_item(&cpu, created, "create", None),
        "cpu": cpu,
    }))
}
