//! A `perf`-free profile of a phase: CPU seconds by process group from `/proc` (callbackd,
//! the peer, PostgreSQL, RabbitMQ, this bench, everything else — the other tenants), the same
//! as CPU microseconds per item of work ([`per_item`]), what the run's database sessions are
//! doing from `pg_stat_activity` sampled every 10 ms, and PostgreSQL's counters (commits,
//! tuples, WAL) before and after.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::{Value, json};
use sqlx::{Connection, PgConnection, PgPool, Row};
use tokio_util::sync::CancellationToken;

/// Clock ticks per second of `/proc/*/stat` (USER_HZ; 100 on Linux/x86-64).
const TICKS: f64 = 100.0;
const CPU_EVERY: Duration = Duration::from_millis(200);
const ACTIVITY_EVERY: Duration = Duration::from_millis(10);
/// The group of this bench process (the load generator and the consumer).
pub const BENCH_GROUP: &str = "bench (load generator, consumer)";
/// PostgreSQL backends (and autovacuum workers) of databases that are not this run's: other
/// tenants of the server, and the bench's admin connection. Kept out of the `postgres` group,
/// which holds the run's backends and the server's shared processes (WAL writer,
/// checkpointer, background writer).
pub const OTHER_DATABASES_GROUP: &str = "postgres (other databases)";
static RUN: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// Names the run, whose databases are `<run>_*`: their backends count as `postgres`.
pub fn set_run(run: &str) {
    let _ = RUN.set(run.to_owned());
}

/// The group of the PostgreSQL backend serving the activity sampler: the bench's cost, not
/// the workload's, so kept out of the `postgres` group.
pub const SAMPLER_BACKEND_GROUP: &str = "postgres backend of the bench's activity sampler";

pub struct CpuSampler {
    stop: Arc<AtomicBool>,
    handle: std::thread::JoinHandle<CpuTotals>,
}

#[derive(Default)]
struct CpuTotals {
    wall: Duration,
    by_group: BTreeMap<String, u64>,
    /// Processes in no group, by command name: who else was busy.
    others: BTreeMap<String, u64>,
    busy: u64,
    idle: u64,
}

impl CpuSampler {
    /// Samples until [`stop`](Self::stop); `watched` names processes of interest by pid.
    pub fn start(watched: Vec<(&'static str, u32)>) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let handle = std::thread::spawn(move || sample_until(&watched, &flag));
        Self { stop, handle }
    }

    pub fn stop(self) -> Value {
        self.stop.store(true, Ordering::Relaxed);
        let totals = self.handle.join().unwrap_or_default();
        let wall = totals.wall.as_secs_f64().max(1e-9);
        let seconds = |ticks: u64| ticks as f64 / TICKS;
        let grouped: u64 = totals.by_group.values().sum();
        let mut groups: serde_json::Map<String, Value> = totals
            .by_group
            .iter()
            .map(|(g, t)| (g.clone(), json!(round2(seconds(*t)))))
            .collect();
        groups.insert(
            "other processes".into(),
            json!(round2(seconds(totals.busy.saturating_sub(grouped)))),
        );
        groups.insert("idle".into(), json!(round2(seconds(totals.idle))));
        let mut others: Vec<(&String, &u64)> =
            totals.others.iter().filter(|(_, t)| **t >= 10).collect();
        others.sort_by_key(|(_, t)| std::cmp::Reverse(**t));
        let others: serde_json::Map<String, Value> = others
            .into_iter()
            .take(5)
            .map(|(comm, t)| (comm.clone(), json!(round2(seconds(*t)))))
            .collect();
        json!({
            "wall_seconds": round2(wall),
            "cpu_seconds": groups,
            "other_processes_busiest": others,
            "busy_seconds": round2(seconds(totals.busy)),
            "cores_busy": round2(seconds(totals.busy) / wall),
        })
    }
}

/// CPU microseconds per item of work (a message, row, create, callback or job) over a phase,
/// from a [`CpuSampler::stop`] result: `postgres` (the backends and autovacuum workers of
/// the run's databases, and the server's shared processes: WAL writer, checkpointer,
/// background writer), the scheduler under test if any (`scheduler` =
/// its group label in the sampler and its key here: `callbackd` or `node`), `rabbitmq`,
/// `bench` (this process, plus the backend of its activity sampler), `other_processes`
/// (other tenants of the machine, including PostgreSQL backends of other databases), and
/// `machine_busy` (all busy CPU time, from /proc/stat).
/// The figures are as fine as the kernel's 10 ms ticks over the phase.
pub fn per_item(cpu: &Value, items: u64, item: &str, scheduler: Option<(&str, &str)>) -> Value {
    let seconds = |group: &str| cpu["cpu_seconds"][group].as_f64();
    let per = |s: Option<f64>| {
        s.filter(|_| items > 0)
            .map(|s| (s * 1e6 / items as f64 * 10.0).round() / 10.0)
    };
    let mut out = serde_json::Map::new();
    out.insert("item".into(), json!(item));
    out.insert("items".into(), json!(items));
    out.insert(
        "postgres".into(),
        json!(per(seconds("postgres").or(Some(0.0)))),
    );
    if let Some((group, key)) = scheduler {
        out.insert(key.into(), json!(per(seconds(group).or(Some(0.0)))));
    }
    out.insert(
        "rabbitmq".into(),
        json!(per(seconds("rabbitmq").or(Some(0.0)))),
    );
    let bench = seconds(BENCH_GROUP).unwrap_or(0.0) + seconds(SAMPLER_BACKEND_GROUP).unwrap_or(0.0);
    out.insert("bench".into(), json!(per(Some(bench))));
    let other =
        seconds("other processes").unwrap_or(0.0) + seconds(OTHER_DATABASES_GROUP).unwrap_or(0.0);
    out.insert("other_processes".into(), json!(per(Some(other))));
    out.insert(
        "machine_busy".into(),
        json!(per(cpu["busy_seconds"].as_f64())),
    );
    Value::Object(out)
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

fn sample_until(watched: &[(&'static str, u32)], stop: &AtomicBool) -> CpuTotals {
    let me = std::process::id();
    let started = Instant::now();
    let (busy0, idle0) = machine_ticks();
    // pid → (group, ticks when first seen (0 if born during the phase), latest ticks)
    let mut seen: HashMap<u32, (String, u64, u64)> = HashMap::new();
    let mut first = true;
    loop {
        let last_round = stop.load(Ordering::Relaxed);
        for (pid, group, ticks) in processes(watched, me) {
            let entry = seen
                .entry(pid)
                .or_insert_with(|| (group, if first { ticks } else { 0 }, ticks));
            entry.2 = ticks;
        }
        first = false;
        if last_round {
            break;
        }
        std::thread::sleep(CPU_EVERY);
    }
    let (busy1, idle1) = machine_ticks();
    let mut by_group = BTreeMap::new();
    let mut others = BTreeMap::new();
    for (group, base, latest) in seen.into_values() {
        let ticks = latest.saturating_sub(base);
        match group.strip_prefix(OTHER_PREFIX) {
            Some(comm) => *others.entry(comm.to_owned()).or_insert(0) += ticks,
            None => *by_group.entry(group).or_insert(0) += ticks,
        }
    }
    CpuTotals {
        wall: started.elapsed(),
        by_group,
        others,
        busy: busy1.saturating_sub(busy0),
        idle: idle1.saturating_sub(idle0),
    }
}

/// (busy, idle) ticks of the whole machine, from `/proc/stat`.
fn machine_ticks() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let fields: Vec<u64> = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    let get = |i: usize| fields.get(i).copied().unwrap_or(0);
    // user nice system idle iowait irq softirq steal
    let busy = get(0) + get(1) + get(2) + get(5) + get(6) + get(7);
    let idle = get(3) + get(4);
    (busy, idle)
}

/// Marks a process in no group (its command name follows), kept to name the busiest of them.
const OTHER_PREFIX: &str = "\u{0}other:";

/// Processes with their group (or [`OTHER_PREFIX`] and their command name) and CPU ticks
/// (user + system, all threads).
fn processes(watched: &[(&'static str, u32)], me: u32) -> Vec<(u32, String, u64)> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let group = if let Some((label, _)) = watched.iter().find(|(_, p)| *p == pid) {
            (*label).to_owned()
        } else if pid == me {
            BENCH_GROUP.to_owned()
        } else {
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            match comm.trim() {
                "postgres" => postgres_group(pid).to_owned(),
                "beam.smp" | "erl_child_setup" | "epmd" | "inet_gethost" => "rabbitmq".to_owned(),
                other => format!("{OTHER_PREFIX}{other}"),
            }
        };
        if let Some(ticks) = cpu_ticks(pid) {
            out.push((pid, group, ticks));
        }
    }
    out
}

/// `postgres`, or [`OTHER_DATABASES_GROUP`] for a backend or autovacuum worker of a database
/// that is not the run's, read from the process title ("postgres: 15/main: USER DATABASE
/// HOST(PORT) STATE", "… autovacuum worker DATABASE").
fn postgres_group(pid: u32) -> &'static str {
    let Some(run) = RUN.get() else {
        return "postgres";
    };
    let title = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let title = String::from_utf8_lossy(&title).replace('\0', " ");
    let words: Vec<&str> = title.split_whitespace().collect();
    let client = words
        .iter()
        .position(|w| *w == "[local]" || (w.contains('(') && w.ends_with(')')))
        .filter(|&i| i >= 1)
        .map(|i| words[i - 1]);
    let autovacuum = words
        .windows(3)
        .find(|w| w[0] == "autovacuum" && w[1] == "worker")
        .map(|w| w[2]);
    match client.or(autovacuum) {
        Some(database) if !database.starts_with(run.as_str()) => OTHER_DATABASES_GROUP,
        _ => "postgres",
    }
}

fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may hold spaces: fields start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after the name.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// Samples what the sessions of one database are doing.
pub struct Activity {
    /// The PostgreSQL backend serving the sampler (give it to the [`CpuSampler`] as
    /// [`SAMPLER_BACKEND_GROUP`], so that its queries are not counted as the workload's).
    pub backend_pid: u32,
    cancel: CancellationToken,
    handle: tokio::task::JoinHandle<anyhow::Result<Value>>,
}

impl Activity {
    pub async fn start(server_db_url: &str, database: &str) -> anyhow::Result<Self> {
        let mut conn = PgConnection::connect(server_db_url)
            .await
            .context("connecting the activity sampler")?;
        let backend_pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
            .fetch_one(&mut conn)
            .await?;
        let cancel = CancellationToken::new();
        let token = cancel.clone();
        let database = database.to_owned();
        let handle = tokio::spawn(async move {
            let mut ticks = 0u64;
            let mut idle_ticks = 0u64;
            let mut counts: BTreeMap<String, u64> = BTreeMap::new();
            let mut interval = tokio::time::interval(ACTIVITY_EVERY);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            loop {
                tokio::select! {
                    _ = token.cancelled() => break,
                    _ = interval.tick() => {}
                }
                let rows = sqlx::query(
                    "SELECT state, coalesce(wait_event_type, '') AS wtype,
                            coalesce(wait_event, '') AS wevent, left(query, 1024) AS query
                     FROM pg_stat_activity
                     WHERE datname = $1 AND backend_type = 'client backend'
                       AND pid <> pg_backend_pid()",
                )
                .bind(&database)
                .fetch_all(&mut conn)
                .await?;
                ticks += 1;
                let mut busy = false;
                for row in rows {
                    let state: Option<String> = row.try_get("state")?;
                    let category = match state.as_deref() {
                        Some("active") => {
                            let wtype: String = row.try_get("wtype")?;
                            let wevent: String = row.try_get("wevent")?;
                            let query: String = row.try_get("query")?;
                            let wait = if wtype.is_empty() {
                                "on CPU".to_owned()
                            } else {
                                format!("waiting {wtype}:{wevent}")
                            };
                            format!("active: {} ({wait})", statement_kind(&query))
                        }
                        Some("idle in transaction") => {
                            "idle in transaction (waiting for the client)".to_owned()
                        }
                        _ => continue,
                    };
                    busy = true;
                    *counts.entry(category).or_insert(0) += 1;
                }
                if !busy {
                    idle_ticks += 1;
                }
            }
            let share = |n: u64| (n as f64 / ticks.max(1) as f64 * 1000.0).round() / 1000.0;
            let mut shares: Vec<(String, u64)> = counts.into_iter().collect();
            shares.sort_by_key(|s| std::cmp::Reverse(s.1));
            let shares: serde_json::Map<String, Value> = shares
                .into_iter()
                .map(|(k, n)| (k, json!(share(n))))
                .collect();
            Ok(json!({
                "samples": ticks,
                "every_ms": ACTIVITY_EVERY.as_millis() as u64,
                "no_session_busy": share(idle_ticks),
                "sessions_per_sample": shares,
            }))
        });
        Ok(Self {
            backend_pid: backend_pid.unsigned_abs(),
            cancel,
            handle,
        })
    }

    /// The sampler's backend, labelled for a [`CpuSampler`].
    pub fn watched(&self) -> (&'static str, u32) {
        (SAMPLER_BACKEND_GROUP, self.backend_pid)
    }

    pub async fn stop(self) -> Value {
        self.cancel.cancel();
        match self.handle.await {
            Ok(Ok(v)) => v,
            Ok(Err(e)) => json!({ "error": format!("{e:#}") }),
            Err(e) => json!({ "error": e.to_string() }),
        }
    }
}

/// A short name for a statement, so that samples group by what the session runs.
fn statement_kind(query: &str) -> String {
    let q = query.split_whitespace().collect::<Vec<_>>().join(" ");
    let upper = q.to_uppercase();
    // The daemon's claim is longer than the 1,024 characters sampled: it is known by its
    // opening (`SELECT now() AS now, claimed.* …`).
    let kind = if upper.contains("SKIP LOCKED") || upper.contains("CLAIMED.*") {
        "claim (SELECT … FOR UPDATE SKIP LOCKED)"
    } else if upper.starts_with("WITH RECURSIVE GATES") {
        "held gates (pacing's scan of callbacks_paced)"
    } else if upper.starts_with("WITH DONE") {
        "mark dispatched (UPDATE … FROM unnest + events)"
    } else if upper.starts_with("WITH RETRY") {
        "mark undeliverable"
    } else if upper.starts_with("COMMIT") {
        "COMMIT"
    } else if upper.starts_with("BEGIN") {
        "BEGIN"
    } else if upper.contains("COUNT(*) FILTER") {
        "backlog report"
    } else if upper.contains("MIN(DUE_AT)") {
        "due poll (min(due_at))"
    } else if upper.starts_with("INSERT INTO CALLBACKS") {
        "INSERT INTO callbacks"
    } else {
        return q.chars().take(60).collect();
    };
    kind.to_owned()
}

/// PostgreSQL's counters for one database, and the server's WAL counters.
pub async fn pg_counters(admin: &PgPool, database: &str) -> anyhow::Result<BTreeMap<String, f64>> {
    let db = sqlx::query(
        "SELECT xact_commit::float8 AS commits, xact_rollback::float8 AS rollbacks,
                tup_inserted::float8 AS inserted, tup_updated::float8 AS updated,
                tup_deleted::float8 AS deleted, blks_read::float8 AS blocks_read,
                blks_hit::float8 AS blocks_hit
         FROM pg_stat_database WHERE datname = $1",
    )
    .bind(database)
    .fetch_one(admin)
    .await
    .context("reading pg_stat_database")?;
    let wal = sqlx::query(
        "SELECT wal_records::float8 AS wal_records, wal_bytes::float8 AS wal_bytes,
                wal_write::float8 AS wal_writes, wal_sync::float8 AS wal_syncs
         FROM pg_stat_wal",
    )
    .fetch_one(admin)
    .await
    .context("reading pg_stat_wal")?;
    let mut out = BTreeMap::new();
    for name in [
        "commits",
        "rollbacks",
        "inserted",
        "updated",
        "deleted",
        "blocks_read",
        "blocks_hit",
    ] {
        out.insert(name.to_owned(), db.try_get::<f64, _>(name)?);
    }
    for name in ["wal_records", "wal_bytes", "wal_writes", "wal_syncs"] {
        out.insert(
            format!("{name} (server-wide)"),
            wal.try_get::<f64, _>(name)?,
        );
    }
    Ok(out)
}

pub fn counters_delta(before: &BTreeMap<String, f64>, after: &BTreeMap<String, f64>) -> Value {
    Value::Object(
        after
            .iter()
            .map(|(k, v)| (k.clone(), json!(v - before.get(k).copied().unwrap_or(0.0))))
            .collect(),
    )
}
