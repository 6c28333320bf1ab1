//! Scale with pacing on, and the availability API at scale (both run inside the scale section).
//!
//! Pacing: at each scale step, a second skill with `max_in_flight` 20 gets 20 callbacks in
//! flight, 2,000 due callbacks held at its gate (`paced_at`/`paced_gate` set, as the
//! dispatcher leaves them; priorities spread over 0–1000, the skill ageing them 5 a minute
//! up to 900, so `held` ranks by effective priority) and 20 more that just matured
//! (unpaced). One pass's statements are
//! then timed in a transaction that is rolled back, on a connection with the dispatcher's
//! session settings: the claim (the bench skill's 100 due rows plus the paced skill's 20),
//! `held_gates`, `read_gates`' try-lock and in-flight count, `held` for the gate's limit (20:
//! the most a pass can take from it once room opens; at the reading its room is 0), and
//! `hold` of the 20 newly matured (a real write). Then the plans, with `EXPLAIN (ANALYZE)`.
//!
//! Availability: `GET /v1/skills/{id}/availability` against the daemon the scale section
//! already runs with 1M pending, the bench skill given 15-minute slots and some bookings.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};
use sqlx::{AssertSqlSafe, PgConnection, PgPool, Row};
use uuid::Uuid;

use crate::Options;
use crate::infra::SKILL;
use crate::report::percentiles;
use crate::scale::plan;
use crate::statements::{CLAIM, GATE_LOCKS, GATE_READINGS, HELD, HELD_GATES, HOLD};

/// The paced skill, and its limit.
pub const PACED_SKILL: i64 = 102;
const MAX_IN_FLIGHT: i64 = 20;
const HELD_ROWS: i64 = 2_000;
const NEWLY_DUE: i64 = 20;

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Loads 10,000 do-not-call entries (none matching the bench's number), so that the claim's
/// do-not-call probe reads a list of a realistic size through its index.
pub async fn load_dnc(pool: &PgPool) -> anyhow::Result<()> {
    sqlx::query(
        "INSERT INTO dnc_entries (phone_number, skill_id, reason, created_by)
         SELECT '+1555' || lpad(i::text, 7, '0'), NULL, 'bench', 'bench'
         FROM generate_series(1, 10000) AS i",
    )
    .execute(pool)
    .await
    .context("loading do-not-call entries")?;
    sqlx::query("ANALYZE dnc_entries").execute(pool).await?;
    Ok(())
}

/// The paced skill and its callbacks.
async fn set_up(pool: &PgPool) -> anyhow::Result<Vec<Uuid>> {
    sqlx::query(
        "INSERT INTO skills (id, name, media_type, direction, active, time_zone, max_in_flight,
                             routing)
         VALUES ($1, 'Bench paced', 'phone', 'outbound', true, 'Europe/London', $2,
                 '{\"priorityAcceleration\": 5, \"maxPriority\": 900}')
         ON CONFLICT (id) DO NOTHING",
    )
    .bind(PACED_SKILL)
    .bind(i32::try_from(MAX_IN_FLIGHT)?)
    .execute(pool)
    .await
    .context("inserting the paced skill")?;
    // (state, due_at, paced_at, paced_gate, dispatched_at, count)
    let kinds = [
        (
            "dispatched",
            "now() - interval '5 minutes'",
            "NULL",
            "NULL",
            "now() - interval '1 minute'",
            MAX_IN_FLIGHT,
        ),
        (
            "pending",
            "now() - interval '2 minutes' - random() * interval '10 minutes'",
            "now() - interval '1 minute'",
            "$2",
            "NULL",
            HELD_ROWS,
        ),
        (
            "pending",
            "now() - interval '10 seconds' - random() * interval '30 seconds'",
            "NULL",
            "NULL",
            "NULL",
            NEWLY_DUE,
        ),
    ];
    for (state, due, paced_at, gate, dispatched_at, n) in kinds {
        let attempt = if state == "dispatched" { 1 } else { 0 };
        let sql = format!(
            "INSERT INTO callbacks (id, state, first_name, last_name, phone_number, skill_id, notes,
                                    scheduled_for, due_at, attempt, dispatched_at, paced_at,
                                    paced_gate, created_by, created_at, updated_at, priority)
             SELECT gen_random_uuid(), '{state}', 'First ' || i, 'Last', '+14155552671', $2, '',
                    d, d, {attempt}, {dispatched_at}, {paced_at}, {gate}, 'bench',
                    d - interval '1 day', now(), (random() * 1000)::int
             FROM (SELECT i, {due} AS d FROM generate_series(1, $1::int8) AS i) s"
        );
        sqlx::query(AssertSqlSafe(sql))
            .bind(n)
            .bind(PACED_SKILL)
            .execute(pool)
            .await
            .with_context(|| format!("loading the paced skill's {state} callbacks"))?;
    }
    sqlx::query("ANALYZE callbacks").execute(pool).await?;
    let newly: Vec<Uuid> = sqlx::query_scalar(
        "SELECT id FROM callbacks
         WHERE skill_id = $1 AND state = 'pending' AND paced_at IS NULL",
    )
    .bind(PACED_SKILL)
    .fetch_all(pool)
    .await?;
    Ok(newly)
}

/// Removes the paced skill's callbacks (the next step's load and the daemon expect the
/// bench skill's rows only).
pub async fn tear_down(pool: &PgPool) -> anyhow::Result<()> {
    sqlx::query("DELETE FROM callbacks WHERE skill_id = $1")
        .bind(PACED_SKILL)
        .execute(pool)
        .await?;
    Ok(())
}

/// One pacing pass's statements, timed `samples` times, and their plans.
pub async fn measure(
    pool: &PgPool,
    conn: &mut PgConnection,
    options: &Options,
    ready_rows: i64,
) -> anyhow::Result<Value> {
    let newly = set_up(pool).await?;
    if newly.len() as i64 != NEWLY_DUE {
        bail!(
            "{} newly due paced callbacks, expected {NEWLY_DUE}",
            newly.len()
        );
    }
    let gates = vec![PACED_SKILL];
    let hold_gates = vec![PACED_SKILL; newly.len()];
    let takes = vec![MAX_IN_FLIGHT];
    let labels = [
        "claim",
        "held_gates",
        "gate_locks",
        "gate_count",
        "held",
        "hold",
        "rollback",
    ];
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); labels.len()];
    let mut pass = Vec::new();
    for _ in 0..options.pacing_samples {
        sqlx::query("BEGIN").execute(&mut *conn).await?;
        let start = Instant::now();
        let mut t = Instant::now();
        let mut lap = |i: usize, t: &mut Instant| {
            times[i].push(ms(t.elapsed()));
            *t = Instant::now();
        };
        let claimed = sqlx::query(CLAIM)
            .bind(i64::from(options.batch))
            .fetch_all(&mut *conn)
            .await?;
        lap(0, &mut t);
        let held_gates: Vec<i64> = sqlx::query_scalar(HELD_GATES).fetch_all(&mut *conn).await?;
        lap(1, &mut t);
        let locks: Vec<(i64, bool)> = sqlx::query_as(GATE_LOCKS)
            .bind(&gates)
            .fetch_all(&mut *conn)
            .await?;
        lap(2, &mut t);
        let readings = sqlx::query(GATE_READINGS)
            .bind(&gates)
            .fetch_all(&mut *conn)
            .await?;
        lap(3, &mut t);
        let held = sqlx::query(HELD)
            .bind(&gates)
            .bind(&takes)
            .fetch_all(&mut *conn)
            .await?;
        lap(4, &mut t);
        let marked = sqlx::query(HOLD)
            .bind(&newly)
            .bind(&hold_gates)
            .execute(&mut *conn)
            .await?
            .rows_affected();
        lap(5, &mut t);
        sqlx::query("ROLLBACK").execute(&mut *conn).await?;
        lap(6, &mut t);
        pass.push(ms(start.elapsed()));

        let expected_claim = ready_rows + NEWLY_DUE;
        if claimed.len() as i64 != expected_claim {
            bail!(
                "the claim found {} rows, expected {expected_claim}",
                claimed.len()
            );
        }
        if held_gates != gates {
            bail!("held_gates found {held_gates:?}, expected {gates:?}");
        }
        if locks != vec![(PACED_SKILL, true)] {
            bail!("the gate's try-lock: {locks:?}");
        }
        let in_flight: i64 = readings
            .first()
            .context("no gate reading")?
            .try_get("in_flight")?;
        if in_flight != MAX_IN_FLIGHT {
            bail!("{in_flight} in flight at the gate, expected {MAX_IN_FLIGHT}");
        }
        if held.len() as i64 != MAX_IN_FLIGHT || marked != newly.len() as u64 {
            bail!(
                "held took {}, hold marked {marked}; expected {MAX_IN_FLIGHT} and {}",
                held.len(),
                newly.len()
            );
        }
    }
    let mut statements = serde_json::Map::new();
    for (label, samples) in labels.iter().zip(times) {
        statements.insert((*label).to_owned(), percentiles(samples));
    }

    // The plans, each in a transaction rolled back (the claim and held lock, hold writes).
    let array = |v: &[i64]| {
        format!(
            "'{{{}}}'",
            v.iter().map(i64::to_string).collect::<Vec<_>>().join(",")
        )
    };
    let ids = format!(
        "'{{{}}}'",
        newly
            .iter()
            .map(Uuid::to_string)
            .collect::<Vec<_>>()
            .join(",")
    );
    let explain = |sql: &str| format!("EXPLAIN (ANALYZE, BUFFERS) {sql}");
    let literal = |sql: &str, args: &[String]| {
        args.iter()
            .enumerate()
            .rev()
            .fold(sql.to_owned(), |s, (i, a)| {
                s.replace(&format!("${}", i + 1), a)
            })
    };
    sqlx::query("BEGIN").execute(&mut *conn).await?;
    let claim_plan = plan(
        conn,
        &explain(&literal(CLAIM, &[options.batch.to_string()])),
    )
    .await?;
    let held_gates_plan = plan(conn, &explain(HELD_GATES)).await?;
    let count_plan = plan(conn, &explain(&literal(GATE_READINGS, &[array(&gates)]))).await?;
    let held_plan = plan(
        conn,
        &explain(&literal(HELD, &[array(&gates), array(&takes)])),
    )
    .await?;
    let hold_plan = plan(conn, &explain(&literal(HOLD, &[ids, array(&hold_gates)]))).await?;
    sqlx::query("ROLLBACK").execute(&mut *conn).await?;
    // The generic plans (a prepared statement switches to one after five executions).
    let count_generic = generic_plan(conn, GATE_READINGS, "int8[]", &array(&gates)).await?;
    let held_generic = generic_plan(
        conn,
        HELD,
        "int8[], int8[]",
        &format!("{}, {}", array(&gates), array(&takes)),
    )
    .await?;
    tear_down(pool).await?;

    let on = |p: &str, index: &str| p.contains(index) && !p.contains("Seq Scan on callbacks");
    let claim_ok = on(&claim_plan, "callbacks_ready");
    let held_gates_ok = on(&held_gates_plan, "callbacks_paced");
    let count_ok = on(&count_plan, "callbacks_in_flight_by_skill")
        && on(&count_generic, "callbacks_in_flight_by_skill");
    let held_ok = on(&held_plan, "callbacks_paced") && on(&held_generic, "callbacks_paced");
    Ok(json!({
        "paced_skill": PACED_SKILL,
        "max_in_flight": MAX_IN_FLIGHT,
        "in_flight": MAX_IN_FLIGHT,
        "held": HELD_ROWS,
        "newly_due_paced": NEWLY_DUE,
        "ready_rows_other_skill": ready_rows,
        "held_taken": MAX_IN_FLIGHT,
        "pass_ms": percentiles(pass),
        "statement_ms": statements,
        "claim_plan_uses_callbacks_ready": claim_ok,
        "held_gates_plan_uses_callbacks_paced": held_gates_ok,
        "count_plan_uses_callbacks_in_flight_by_skill": count_ok,
        "held_plan_uses_callbacks_paced": held_ok,
        "dnc_probe_uses_dnc_entries_by_phone": claim_plan.contains("dnc_entries_by_phone"),
        "explain_claim": claim_plan,
        "explain_held_gates": held_gates_plan,
        "explain_gate_count": count_plan,
        "explain_gate_count_generic": count_generic,
        "explain_held": held_plan,
        "explain_held_generic": held_generic,
        "explain_hold": hold_plan,
    }))
}

async fn generic_plan(
    conn: &mut PgConnection,
    sql: &str,
    types: &str,
    args: &str,
) -> anyhow::Result<String> {
    sqlx::query("BEGIN").execute(&mut *conn).await?;
    sqlx::query(AssertSqlSafe(format!(
        "PREPARE bench_generic({types}) AS {sql}"
    )))
    .execute(&mut *conn)
    .await?;
    sqlx::query("SET LOCAL plan_cache_mode = force_generic_plan")
        .execute(&mut *conn)
        .await?;
    let p = plan(conn, &format!("EXPLAIN EXECUTE bench_generic({args})")).await?;
    sqlx::query("DEALLOCATE bench_generic")
        .execute(&mut *conn)
        .await?;
    sqlx::query("ROLLBACK").execute(&mut *conn).await?;
    Ok(p)
}

/// Gives the bench skill 15-minute slots of 4 places and books every other slot of the next
/// day (1 to 4 places), before the daemon starts. Returns a token for the API.
pub async fn set_up_slots(
    ctx: &crate::infra::Ctx,
    pool: &PgPool,
    url: &str,
) -> anyhow::Result<String> {
    sqlx::query("UPDATE skills SET slot_minutes = 15, slot_capacity = 4 WHERE id = $1")
        .bind(SKILL)
        .execute(pool)
        .await?;
    sqlx::query(
        "INSERT INTO slot_bookings (skill_id, slot_start, booked)
         SELECT $1, date_trunc('hour', now()) + k * interval '15 minutes', 1 + (k / 2) % 4
         FROM generate_series(0, 98, 2) AS k",
    )
    .bind(SKILL)
    .execute(pool)
    .await?;
    let token = ctx
        .callbackd(url, &["user", "add", "bench", "--permission", "all"])
        .await?;
    if token.is_empty() {
        bail!("`callbackd user add` printed no token");
    }
    Ok(token)
}

/// `GET /v1/skills/{id}/availability` (a day of slots from now), `requests` times in a row on
/// one keep-alive connection, after 5 warm-up requests.
pub async fn availability(base_url: &str, token: &str, requests: usize) -> anyhow::Result<Value> {
    let client = reqwest::Client::new();
    let url = format!("{base_url}/v1/skills/{SKILL}/availability");
    let mut latencies = Vec::with_capacity(requests);
    let mut slots = 0;
    let mut booked = 0;
    for i in 0..requests + 5 {
        let t = Instant::now();
        let response = client.get(&url).bearer_auth(token).send().await?;
        let status = response.status();
        let body: Value = response.json().await?;
        let elapsed = ms(t.elapsed());
        if !status.is_success() {
            bail!("availability answered {status}: {body}");
        }
        if i >= 5 {
            latencies.push(elapsed);
        }
        let list = body["slots"].as_array().cloned().unwrap_or_default();
        slots = list.len();
        booked = list
            .iter()
            .filter(|s| s["booked"].as_u64().unwrap_or(0) > 0)
            .count();
    }
    if slots == 0 {
        bail!("availability listed no slots");
    }
    Ok(json!({
        "requests": requests,
        "slots_per_answer": slots,
        "booked_slots_per_answer": booked,
        "latency_ms": percentiles(latencies),
    }))
}
