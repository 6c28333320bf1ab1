//! The tables — CPU per item of work by section, the schedulers side by side, every figure
//! with its ratios to the raw limits and the peers — the targets, and `bench/results.json`.

use std::path::Path;
use std::process::Command;

use serde_json::{Map, Value, json};

use crate::Options;
use crate::infra::Ctx;

/// Nearest-rank percentiles of a sample, in its unit.
pub fn percentiles(mut v: Vec<f64>) -> Value {
    v.retain(|x| x.is_finite());
    if v.is_empty() {
        return json!({ "n": 0 });
    }
    v.sort_by(f64::total_cmp);
    let at = |p: f64| v[((p / 100.0 * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1];
    json!({
        "n": v.len(),
        "min": v[0],
        "p50": at(50.0),
        "p90": at(90.0),
        "p99": at(99.0),
        "max": v[v.len() - 1],
        "mean": v.iter().sum::<f64>() / v.len() as f64,
    })
}

/// Whether a section ran and did not fail.
fn ran(v: &Value) -> bool {
    v.is_object() && v.get("error").is_none()
}

fn num(v: &Value, path: &[&str]) -> Option<f64> {
    path.iter()
        .try_fold(v, |v, key| v.get(key))
        .and_then(Value::as_f64)
}

struct Row {
    section: &'static str,
    measure: String,
    value: String,
    unit: &'static str,
    vs_broker: String,
    vs_database: String,
    vs_peer: String,
}

/// One line of the per-item CPU table.
struct CpuRow {
    section: &'static str,
    work: String,
    items: Option<f64>,
    rate: Option<f64>,
    postgres: Option<f64>,
    scheduler: Option<(String, Option<f64>)>,
    rabbitmq: Option<f64>,
    bench: Option<f64>,
    busy: Option<f64>,
}

/// One line of the schedulers table.
struct SchedulerRow {
    scheduler: &'static str,
    settings: String,
    burst_items: Option<f64>,
    burst_rate: Option<f64>,
    callbackd_is: Option<f64>,
    steady_rate: Option<f64>,
    steady: [Option<f64>; 4],
    rss: Option<f64>,
    burst_cpu: [Option<f64>; 3],
    steady_cpu: [Option<f64>; 3],
}

struct Target {
    target: String,
    measured: String,
    met: &'static str,
}

pub struct Report {
    json: Map<String, Value>,
    cpu_rows: Vec<CpuRow>,
    schedulers: Vec<SchedulerRow>,
    rows: Vec<Row>,
    targets: Vec<Target>,
}

fn fmt(x: Option<f64>, decimals: usize) -> String {
    x.filter(|x| x.is_finite())
        .map_or("—".to_owned(), |x| format!("{x:.decimals$}"))
}

fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 && a.is_finite() => Some(a / b),
        _ => None,
    }
}

fn pct(x: Option<f64>) -> String {
    x.map_or(String::new(), |x| format!("{:.0}%", x * 100.0))
}

fn times(x: Option<f64>) -> String {
    x.map_or(String::new(), |x| format!("{x:.2}×"))
}

fn met(ok: Option<bool>) -> &'static str {
    match ok {
        Some(true) => "met",
        Some(false) => "NOT met",
        None => "not measured",
    }
}

impl Report {
    pub async fn new(options: &Options, ctx: &Ctx) -> Self {
        let mut json = Map::new();
        let postgres: Option<String> = sqlx::query_scalar("SELECT version()")
            .fetch_one(&ctx.admin)
            .await
            .ok();
        let rabbitmq = Command::new("rabbitmqctl")
            .args(["-q", "version"])
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned());
        let git = |args: &[&str]| {
            Command::new("git")
                .args(args)
                .current_dir(crate::infra::MANIFEST_DIR)
                .output()
                .ok()
                .filter(|o| o.status.success())
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        };
        let commit = git(&["rev-parse", "--short", "HEAD"]);
        let uncommitted = git(&["status", "--porcelain", "--", "src", "migrations", "config"])
            .map(|s| s.lines().count());
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let mem_gib = meminfo
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .map(|kib| kib / 1024.0 / 1024.0);
        json.insert(
            "run".into(),
            json!({
                "id": ctx.run,
                "date": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                "command": std::env::args().skip(1).filter(|a| a != "--bench").collect::<Vec<_>>().join(" "),
                "options": format!("{options:?}"),
                "cores": std::thread::available_parallelism().map(|n| n.get()).ok(),
                "memory_gib": mem_gib,
                "load_average_at_start": std::fs::read_to_string("/proc/loadavg").unwrap_or_default().trim(),
                "postgresql": postgres,
                "rabbitmq": rabbitmq,
                "logs": ctx.out_dir,
                "commit": commit,
                "uncommitted_files_in_src_migrations_config": uncommitted,
            }),
        );
        Self {
            json,
            cpu_rows: Vec::new(),
            schedulers: Vec::new(),
            rows: Vec::new(),
            targets: Vec::new(),
        }
    }

    pub fn set(&mut self, key: &str, value: Value) {
        self.json.insert(key.to_owned(), value);
    }

    fn get(&self, key: &str) -> Value {
        self.json.get(key).cloned().unwrap_or(Value::Null)
    }

    /// Builds the table and the verdicts from the sections' figures.
    pub fn finish(&mut self) {
        if let Some(run) = self.json.get_mut("run") {
            run["load_average_at_end"] = json!(
                std::fs::read_to_string("/proc/loadavg")
                    .unwrap_or_default()
                    .trim()
            );
        }
        let broker = self.get("raw_broker");
        let database = self.get("raw_database");
        let burst = self.get("burst");
        let steady = self.get("steady");
        let steady_high = self.get("steady_high");
        let gw_burst = self.get("graphile_burst");
        let gw_steady = self.get("graphile_steady");
        let pgb_burst_tuned = self.get("pgboss_burst_tuned");
        let pgb_burst_default = self.get("pgboss_burst_default");
        let pgb_steady_tuned = self.get("pgboss_steady_tuned");
        let pgb_steady_default = self.get("pgboss_steady_default");
        let ingest = self.get("ingest");
        let scale = self.get("scale");

        let broker_again = self.get("raw_broker_again");
        let database_again = self.get("raw_database_again");
        let best = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        let broker_before = num(&broker, &["delivered_per_s"]);
        let broker_after = num(&broker_again, &["delivered_per_s"]);
        let broker_rate = best(broker_before, broker_after);
        let db_before = num(&database, &["bare", "rows_per_s"]);
        let db_after = num(&database_again, &["bare", "rows_per_s"]);
        let db_rate = best(db_before, db_after);
        if let Some(run) = self.json.get_mut("run") {
            run["reference_raw_broker_per_s"] = json!(broker_rate);
            run["reference_raw_database_rows_per_s"] = json!(db_rate);
        }
        let burst_rate = num(&burst, &["callbacks_per_s"]);
        let gw_rate = num(&gw_burst, &["jobs_per_s"]);
        let pgb_tuned_rate = num(&pgb_burst_tuned, &["jobs_per_s"]);
        let pgb_default_rate = num(&pgb_burst_default, &["jobs_per_s"]);
        let pgb_best = best(pgb_tuned_rate, pgb_default_rate);
        if let Some(run) = self.json.get_mut("run") {
            run["reference_pgboss_best_jobs_per_s"] = json!(pgb_best);
            run["reference_graphile_worker_jobs_per_s"] = json!(gw_rate);
        }
        self.cpu_table(
            [&broker, &broker_again],
            [&database, &database_again],
            [&burst, &steady, &steady_high, &ingest],
            [
                ("graphile-worker", &gw_burst, &gw_steady),
                ("pg-boss", &pgb_burst_tuned, &pgb_steady_tuned),
                ("pg-boss", &pgb_burst_default, &pgb_steady_default),
            ],
        );
        self.schedulers_table(
            &burst,
            &steady,
            [
                ("graphile-worker", &gw_burst, &gw_steady),
                ("pg-boss", &pgb_burst_tuned, &pgb_steady_tuned),
                ("pg-boss", &pgb_burst_default, &pgb_steady_default),
            ],
        );
        let vs_peers = |rate: Option<f64>, gw: Option<f64>, pgb: Option<f64>| {
            [
                ratio(rate, gw).map(|r| format!("{r:.1}× graphile-worker")),
                ratio(rate, pgb).map(|r| format!("{r:.2}× pg-boss (best)")),
            ]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(", ")
        };
        let mut row = |section, measure: String, value: String, unit, vs: [String; 3]| {
            let [vs_broker, vs_database, vs_peer] = vs;
            self.rows.push(Row {
                section,
                measure,
                value,
                unit,
                vs_broker,
                vs_database,
                vs_peer,
            });
        };
        let none = || [String::new(), String::new(), String::new()];

        row(
            "1",
            format!(
                "raw broker: {} msgs published & confirmed (window {}), consumer has all; before / after the burst",
                num(&broker, &["messages"]).unwrap_or(0.0),
                num(&broker, &["window"]).unwrap_or(0.0)
            ),
            format!("{} / {}", fmt(broker_before, 0), fmt(broker_after, 0)),
            "msg/s",
            [
                format!("reference: {}", fmt(broker_rate, 0)),
                String::new(),
                String::new(),
            ],
        );
        row(
            "1",
            "raw broker: confirms only".into(),
            fmt(num(&broker, &["confirmed_per_s"]), 0),
            "msg/s",
            none(),
        );
        row(
            "2",
            format!(
                "raw database: claim {} FOR UPDATE SKIP LOCKED + UPDATE … unnest + COMMIT; before / after the burst",
                num(&database, &["batch"]).unwrap_or(0.0)
            ),
            format!("{} / {}", fmt(db_before, 0), fmt(db_after, 0)),
            "rows/s",
            [
                String::new(),
                format!("reference: {}", fmt(db_rate, 0)),
                String::new(),
            ],
        );
        let db_events = num(&database, &["with_callbackd_events", "rows_per_s"]);
        row(
            "2",
            "raw database: same with callbackd's recording (+ events, RETURNING), before the burst"
                .into(),
            fmt(db_events, 0),
            "rows/s",
            [
                String::new(),
                pct(ratio(db_events, db_before)),
                String::new(),
            ],
        );
        let raw_creates = num(&database, &["single_row_creates", "creates_per_s"]);
        row(
            "2",
            format!(
                "raw database: one create's writes (INSERT callback + event, COMMIT), {} connections",
                num(&database, &["single_row_creates", "connections"]).unwrap_or(0.0)
            ),
            fmt(raw_creates, 0),
            "creates/s",
            none(),
        );
        row(
            "3",
            format!(
                "burst drain: {} due at once, daemon start → consumer has all",
                num(&burst, &["callbacks"]).unwrap_or(0.0)
            ),
            fmt(burst_rate, 0),
            "cb/s",
            [
                pct(ratio(burst_rate, broker_rate)),
                pct(ratio(burst_rate, db_rate)),
                vs_peers(burst_rate, gw_rate, pgb_best),
            ],
        );
        let burst_flow = num(&burst, &["callbacks_per_s_first_to_last"]);
        let gw_flow = num(&gw_burst, &["jobs_per_s_first_to_last"]);
        let pgb_flow = best(
            num(&pgb_burst_tuned, &["jobs_per_s_first_to_last"]),
            num(&pgb_burst_default, &["jobs_per_s_first_to_last"]),
        );
        row(
            "3",
            "burst drain: first → last message".into(),
            fmt(burst_flow, 0),
            "cb/s",
            [
                pct(ratio(burst_flow, broker_rate)),
                pct(ratio(burst_flow, db_rate)),
                vs_peers(burst_flow, gw_flow, pgb_flow),
            ],
        );
        let (measure, value) = passes_row(&burst, "burst");
        row("3", measure, value, "rows; ms", none());
        let lateness = |v: &Value| {
            let p = |k: &str| num(v, &["lateness_ms", k]);
            (p("p50"), p("p90"), p("p99"), p("max"))
        };
        let (s50, s90, s99, smax) = lateness(&steady);
        let (h50, h90, h99, hmax) = lateness(&steady_high);
        let (_, _, q99, _) = lateness(&gw_steady);
        let (_, _, b99, _) = lateness(&pgb_steady_tuned);
        let quad = |a, b, c, d| {
            format!(
                "{} / {} / {} / {}",
                fmt(a, 1),
                fmt(b, 1),
                fmt(c, 1),
                fmt(d, 1)
            )
        };
        row(
            "4",
            format!(
                "steady lateness at {}/s for {} s: p50 / p90 / p99 / max",
                num(&steady, &["rate_per_s"]).unwrap_or(0.0),
                num(&steady, &["seconds"]).unwrap_or(0.0)
            ),
            quad(s50, s90, s99, smax),
            "ms",
            [
                String::new(),
                String::new(),
                [
                    ratio(q99, s99).map(|r| format!("graphile-worker's p99 is {r:.1}× it")),
                    ratio(b99, s99).map(|r| format!("pg-boss's (best) {r:.0}×")),
                ]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(", "),
            ],
        );
        let (measure, value) = passes_row(&steady, "steady");
        row("4", measure, value, "rows; ms", none());
        if ran(&steady_high) {
            row(
                "4",
                format!(
                    "steady lateness at {}/s for {} s: p50 / p90 / p99 / max",
                    num(&steady_high, &["rate_per_s"]).unwrap_or(0.0),
                    num(&steady_high, &["seconds"]).unwrap_or(0.0)
                ),
                quad(h50, h90, h99, hmax),
                "ms",
                none(),
            );
            let (measure, value) = passes_row(&steady_high, "steady (high rate)");
            row("4", measure, value, "rows; ms", none());
        }
        let steps = scale["steps"].as_array().cloned().unwrap_or_default();
        let base_claim = steps.first().and_then(|s| num(s, &["claim_ms", "p99"]));
        let dispatched = num(&scale, &["dispatched_rows"]).unwrap_or(0.0);
        for step in &steps {
            let pending = num(step, &["pending"]).unwrap_or(0.0);
            let claim99 = num(step, &["claim_ms", "p99"]);
            row(
                "5",
                format!(
                    "claim ({} due) p50 / p99 at {} pending + {} dispatched; plan on callbacks_ready: {}",
                    num(&scale, &["due_rows_per_claim"]).unwrap_or(0.0),
                    human(pending),
                    human(dispatched),
                    yes(&step["claim_plan_uses_callbacks_ready"])
                ),
                format!(
                    "{} / {}",
                    fmt(num(step, &["claim_ms", "p50"]), 2),
                    fmt(claim99, 2)
                ),
                "ms",
                [
                    String::new(),
                    ratio(claim99, base_claim)
                        .map_or(String::new(), |r| format!("{r:.2}× the first step")),
                    String::new(),
                ],
            );
            row(
                "5",
                format!(
                    "due poll (next_due) p50 / p99, with due rows left / with none left (its usual case; plan on callbacks_ready: {} / {}); backlog report p50 at {} pending",
                    yes(&step["poll_plan_uses_callbacks_ready"]),
                    yes(&step["poll_nothing_due_plan_uses_callbacks_ready"]),
                    human(pending)
                ),
                format!(
                    "{} / {}, {} / {}; {}",
                    fmt(num(step, &["due_poll_ms", "p50"]), 2),
                    fmt(num(step, &["due_poll_ms", "p99"]), 2),
                    fmt(num(step, &["due_poll_nothing_due_ms", "p50"]), 2),
                    fmt(num(step, &["due_poll_nothing_due_ms", "p99"]), 2),
                    fmt(num(step, &["backlog_report_ms", "p50"]), 0)
                ),
                "ms",
                none(),
            );
        }
        let base_pass = steps
            .first()
            .and_then(|s| num(s, &["pacing", "pass_ms", "p99"]));
        for step in steps.iter().filter(|s| s["pacing"].is_object()) {
            let pacing = &step["pacing"];
            let pass99 = num(pacing, &["pass_ms", "p99"]);
            let plans = [
                ("claim", "claim_plan_uses_callbacks_ready"),
                ("held_gates", "held_gates_plan_uses_callbacks_paced"),
                ("count", "count_plan_uses_callbacks_in_flight_by_skill"),
                ("held", "held_plan_uses_callbacks_paced"),
            ]
            .map(|(what, key)| format!("{what} {}", yes(&pacing[key])))
            .join(", ");
            row(
                "5",
                format!(
                    "pacing on, one pass (claim {} due, held_gates, gate lock + count, held {}, hold {}; rolled back) p50 / p99 at {} pending, {} held at a full gate; index plans: {plans}",
                    num(pacing, &["ready_rows_other_skill"]).unwrap_or(0.0)
                        + num(pacing, &["newly_due_paced"]).unwrap_or(0.0),
                    num(pacing, &["held_taken"]).unwrap_or(0.0),
                    num(pacing, &["newly_due_paced"]).unwrap_or(0.0),
                    human(num(step, &["pending"]).unwrap_or(0.0)),
                    human(num(pacing, &["held"]).unwrap_or(0.0)),
                ),
                format!(
                    "{} / {}",
                    fmt(num(pacing, &["pass_ms", "p50"]), 2),
                    fmt(pass99, 2)
                ),
                "ms",
                [
                    String::new(),
                    ratio(pass99, base_pass)
                        .map_or(String::new(), |r| format!("{r:.2}× the first step")),
                    String::new(),
                ],
            );
            let stmt = |k: &str| fmt(num(pacing, &["statement_ms", k, "p50"]), 2);
            row(
                "5",
                format!(
                    "pacing pass p50 by statement: claim / held_gates / lock / count / held / hold / rollback at {} pending",
                    human(num(step, &["pending"]).unwrap_or(0.0))
                ),
                [
                    "claim",
                    "held_gates",
                    "gate_locks",
                    "gate_count",
                    "held",
                    "hold",
                    "rollback",
                ]
                .map(stmt)
                .join(" / "),
                "ms",
                none(),
            );
        }
        let availability = &scale["memory_with_pending"]["availability"];
        let availability99 = num(availability, &["latency_ms", "p99"]);
        if availability.is_object() {
            row(
                "5",
                format!(
                    "GET /v1/skills/{{id}}/availability ({} slots of 15 min, {} booked) p50 / p99 at {} pending",
                    num(availability, &["slots_per_answer"]).unwrap_or(0.0),
                    num(availability, &["booked_slots_per_answer"]).unwrap_or(0.0),
                    human(num(&scale, &["memory_with_pending", "pending"]).unwrap_or(0.0)),
                ),
                format!(
                    "{} / {}",
                    fmt(num(availability, &["latency_ms", "p50"]), 2),
                    fmt(availability99, 2)
                ),
                "ms",
                none(),
            );
        }
        let creates = num(&ingest, &["creates_per_s"]);
        row(
            "6",
            format!(
                "ingest: POST /v1/callbacks, {} clients, {} non-201",
                num(&ingest, &["clients"]).unwrap_or(0.0),
                num(&ingest, &["non_201_answers"]).unwrap_or(0.0)
            ),
            fmt(creates, 0),
            "creates/s",
            [
                String::new(),
                pct(ratio(creates, raw_creates)),
                String::new(),
            ],
        );
        row(
            "6",
            "ingest latency p50 / p99".into(),
            format!(
                "{} / {}",
                fmt(num(&ingest, &["latency_ms", "p50"]), 1),
                fmt(num(&ingest, &["latency_ms", "p99"]), 1)
            ),
            "ms",
            none(),
        );
        let burst_rss = num(&burst, &["peak_rss_mib"]);
        let gw_rss = num(&gw_burst, &["peak_rss_mib"]);
        let pgb_rss = num(&pgb_burst_tuned, &["peak_rss_mib"]);
        row(
            "7",
            format!(
                "peak RSS (VmHWM) of callbackd during the {} burst",
                human(num(&burst, &["callbacks"]).unwrap_or(0.0))
            ),
            fmt(burst_rss, 1),
            "MiB",
            [
                String::new(),
                String::new(),
                [
                    ratio(burst_rss, gw_rss).map(|r| format!("{r:.2}× graphile-worker's")),
                    ratio(burst_rss, pgb_rss).map(|r| format!("{r:.2}× pg-boss's")),
                ]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(", "),
            ],
        );
        let idle = &scale["memory_with_pending"];
        row(
            "7",
            format!(
                "peak RSS of callbackd running {} s with {} pending",
                num(idle, &["seconds"]).unwrap_or(0.0),
                human(num(idle, &["pending"]).unwrap_or(0.0))
            ),
            fmt(num(idle, &["peak_rss_mib"]), 1),
            "MiB",
            none(),
        );
        for (name, b) in [
            ("graphile-worker", &gw_burst),
            ("pg-boss", &pgb_burst_tuned),
            ("pg-boss", &pgb_burst_default),
        ] {
            if !ran(b) {
                continue;
            }
            let rate = num(b, &["jobs_per_s"]);
            row(
                "8",
                format!(
                    "peer burst: {name} ({}), {} jobs due at once, go → consumer has all",
                    b["settings"]["setting"].as_str().unwrap_or("?"),
                    num(b, &["jobs"]).unwrap_or(0.0)
                ),
                fmt(rate, 0),
                "jobs/s",
                [
                    pct(ratio(rate, broker_rate)),
                    pct(ratio(rate, db_rate)),
                    ratio(burst_rate, rate)
                        .map_or(String::new(), |r| format!("callbackd is {r:.2}× it")),
                ],
            );
        }

        // The targets.
        let cpu = |v: &Value, key: &str| num(v, &["cpu_us_per_item", key]);
        let burst_n = num(&burst, &["callbacks"]).unwrap_or(0.0);
        let burst_pg = cpu(&burst, "postgres");
        self.targets.push(Target {
            target: "dispatch (burst): PostgreSQL ≤ 20 µs CPU per dispatched callback".into(),
            measured: format!("{} µs over a {} burst", fmt(burst_pg, 1), human(burst_n)),
            met: met(burst_pg.map(|x| x <= 20.0)),
        });
        let burst_cb = cpu(&burst, "callbackd");
        self.targets.push(Target {
            target: "dispatch (burst): callbackd ≤ 10 µs CPU per dispatched callback".into(),
            measured: format!("{} µs over a {} burst", fmt(burst_cb, 1), human(burst_n)),
            met: met(burst_cb.map(|x| x <= 10.0)),
        });
        let of_broker = ratio(burst_rate, broker_rate);
        self.targets.push(Target {
            target: "burst drain ≥ 0.80 of the raw broker rate (same run)".into(),
            measured: format!(
                "{} ({} of {} msg/s)",
                fmt(of_broker, 2),
                fmt(burst_rate, 0),
                fmt(broker_rate, 0)
            ),
            met: met(of_broker.map(|r| r >= 0.8)),
        });
        let of_pgb = ratio(burst_rate, pgb_best);
        self.targets.push(Target {
            target: "burst drain ≥ 1.3× pg-boss at its best setting (same run)".into(),
            measured: format!("{} ({} jobs/s)", times(of_pgb), fmt(pgb_best, 0)),
            met: met(of_pgb.map(|r| r >= 1.3)),
        });
        let of_gw = ratio(burst_rate, gw_rate);
        self.targets.push(Target {
            target: "burst drain ≥ 9× graphile-worker (same run)".into(),
            measured: format!("{} ({} jobs/s)", times(of_gw), fmt(gw_rate, 0)),
            met: met(of_gw.map(|r| r >= 9.0)),
        });
        let ingest_cpu = match (cpu(&ingest, "postgres"), cpu(&ingest, "callbackd")) {
            (Some(a), Some(b)) => Some(a + b),
            _ => None,
        };
        self.targets.push(Target {
            target: "ingest: PostgreSQL + callbackd ≤ 300 µs CPU per create".into(),
            measured: format!(
                "{} µs ({} + {})",
                fmt(ingest_cpu, 0),
                fmt(cpu(&ingest, "postgres"), 0),
                fmt(cpu(&ingest, "callbackd"), 0)
            ),
            met: met(ingest_cpu.map(|x| x <= 300.0)),
        });
        let clients = num(&ingest, &["clients"]);
        self.targets.push(Target {
            target: "ingest ≥ 5,000 creates/s with 32 clients".into(),
            measured: format!(
                "{} creates/s with {} clients",
                fmt(creates, 0),
                fmt(clients, 0)
            ),
            met: if clients.is_some_and(|c| c != 32.0) {
                "not measured (other client count)"
            } else {
                met(creates.map(|c| c >= 5000.0))
            },
        });
        let ingest99 = num(&ingest, &["latency_ms", "p99"]);
        self.targets.push(Target {
            target: "ingest p99 ≤ 20 ms".into(),
            measured: format!("{} ms", fmt(ingest99, 1)),
            met: met(ingest99.map(|p| p <= 20.0)),
        });
        for (v, at, bound) in [(&steady, 1000.0, 15.0), (&steady_high, 5000.0, 50.0)] {
            let rate = num(v, &["rate_per_s"]);
            let p99 = num(v, &["lateness_ms", "p99"]);
            self.targets.push(Target {
                target: format!("steady lateness p99 ≤ {bound} ms at {at}/s"),
                measured: format!(
                    "{} ms at {}/s; callbackd {} µs CPU per callback",
                    fmt(p99, 1),
                    fmt(rate, 0),
                    fmt(cpu(v, "callbackd"), 1)
                ),
                met: if rate.is_some_and(|r| r != at) {
                    "not measured (other rate)"
                } else {
                    met(p99.map(|p| p <= bound))
                },
            });
        }
        let last = steps.last();
        let last_claim = last.and_then(|s| num(s, &["claim_ms", "p99"]));
        let last_pending = last.and_then(|s| num(s, &["pending"])).unwrap_or(0.0);
        let growth = ratio(last_claim, base_claim);
        self.targets.push(Target {
            target: "claim p99 flat to 5M pending (within 2× of the first step)".into(),
            measured: format!(
                "{} from {} to {} pending",
                times(growth),
                human(
                    steps
                        .first()
                        .and_then(|s| num(s, &["pending"]))
                        .unwrap_or(0.0)
                ),
                human(last_pending),
            ),
            met: if last_pending < 5e6 {
                "not measured (5M pending: --big)"
            } else {
                met(growth.map(|g| g <= 2.0))
            },
        });
        self.targets.push(Target {
            target: "peak RSS ≤ 64 MiB in a 1M burst".into(),
            measured: format!("{} MiB in a {} burst", fmt(burst_rss, 1), human(burst_n)),
            met: if burst_n >= 1e6 {
                met(burst_rss.map(|r| r <= 64.0))
            } else {
                "not measured (1M burst: --big)"
            },
        });

        let rows: Vec<Value> = self
            .rows
            .iter()
            .map(|r| {
                json!({
                    "section": r.section, "measure": r.measure, "value": r.value, "unit": r.unit,
                    "vs_raw_broker": r.vs_broker, "vs_raw_database": r.vs_database, "vs_peer": r.vs_peer,
                })
            })
            .collect();
        let targets: Vec<Value> = self
            .targets
            .iter()
            .map(|t| json!({ "target": t.target, "measured": t.measured, "verdict": t.met }))
            .collect();
        let cpu_rows: Vec<Value> = self
            .cpu_rows
            .iter()
            .map(|r| {
                json!({
                    "section": r.section, "work": r.work, "items": r.items, "per_s": r.rate,
                    "postgres": r.postgres,
                    "scheduler": r.scheduler.as_ref().map(|s| &s.0),
                    "scheduler_us": r.scheduler.as_ref().and_then(|s| s.1),
                    "rabbitmq": r.rabbitmq, "bench": r.bench, "machine_busy": r.busy,
                })
            })
            .collect();
        let schedulers: Vec<Value> = self
            .schedulers
            .iter()
            .map(|r| {
                json!({
                    "scheduler": r.scheduler, "settings": r.settings,
                    "burst_items": r.burst_items, "burst_per_s": r.burst_rate,
                    "callbackd_burst_is_x_times": r.callbackd_is,
                    "steady_rate_per_s": r.steady_rate,
                    "steady_lateness_ms_p50_p90_p99_max": r.steady,
                    "burst_peak_rss_mib": r.rss,
                    "burst_cpu_us_per_item_postgres_scheduler_rabbitmq": r.burst_cpu,
                    "steady_cpu_us_per_item_postgres_scheduler_rabbitmq": r.steady_cpu,
                })
            })
            .collect();
        self.json.insert(
            "cpu_us_per_item_table".into(),
            json!({
                "unit": "CPU microseconds per item (message, row, create, callback, job), from /proc over the phase",
                "rows": cpu_rows,
            }),
        );
        self.json
            .insert("schedulers".into(), Value::Array(schedulers));
        self.json.insert("table".into(), Value::Array(rows));
        self.json.insert("targets".into(), Value::Array(targets));
    }

    /// The per-item CPU of every section that ran, the raw references first.
    fn cpu_table(
        &mut self,
        broker: [&Value; 2],
        database: [&Value; 2],
        own: [&Value; 4],
        peers: [(&'static str, &Value, &Value); 3],
    ) {
        let mut add = |section, work: String, v: &Value, rate: Option<f64>, sched: Option<&str>| {
            let c = &v["cpu_us_per_item"];
            if !c.is_object() {
                return;
            }
            let get = |k: &str| c[k].as_f64();
            self.cpu_rows.push(CpuRow {
                section,
                work,
                items: get("items"),
                rate,
                postgres: get("postgres"),
                scheduler: sched.map(|name| {
                    let key = if name == "callbackd" {
                        "callbackd"
                    } else {
                        "node"
                    };
                    (name.to_owned(), get(key))
                }),
                rabbitmq: get("rabbitmq"),
                bench: get("bench"),
                busy: get("machine_busy"),
            });
        };
        for (v, when) in broker.into_iter().zip(["before", "after"]) {
            add(
                "1",
                format!(
                    "raw broker, {when} the burst: message published, confirmed, delivered (bench = publisher + consumer)"
                ),
                v,
                num(v, &["delivered_per_s"]),
                None,
            );
        }
        for (v, when) in database.into_iter().zip(["before", "after"]) {
            add(
                "2",
                format!("raw database, {when} the burst: row claimed + marked (bare), committed"),
                &v["bare"],
                num(v, &["bare", "rows_per_s"]),
                None,
            );
        }
        let [raw_db, _] = database;
        add(
            "2",
            "raw database: row claimed + marked with callbackd's recording (+ event)".into(),
            &raw_db["with_callbackd_events"],
            num(raw_db, &["with_callbackd_events", "rows_per_s"]),
            None,
        );
        add(
            "2",
            "raw database: one create's writes (callback + event), committed".into(),
            &raw_db["single_row_creates"],
            num(raw_db, &["single_row_creates", "creates_per_s"]),
            None,
        );
        let [burst, steady, steady_high, ingest] = own;
        add(
            "3",
            "callbackd burst: callback dispatched".into(),
            burst,
            num(burst, &["callbacks_per_s"]),
            Some("callbackd"),
        );
        for v in [steady, steady_high] {
            add(
                "4",
                format!(
                    "callbackd steady at {}/s: callback dispatched (idle polling included)",
                    fmt(num(v, &["rate_per_s"]), 0)
                ),
                v,
                num(v, &["rate_per_s"]),
                Some("callbackd"),
            );
        }
        add(
            "6",
            "callbackd ingest: callback created (POST /v1/callbacks; bench = 32 HTTP clients)"
                .into(),
            ingest,
            num(ingest, &["creates_per_s"]),
            Some("callbackd"),
        );
        for (name, b, st) in peers {
            let setting = |v: &Value| v["settings"]["setting"].as_str().unwrap_or("?").to_owned();
            add(
                "8",
                format!("{name} burst ({}): job published", setting(b)),
                b,
                num(b, &["jobs_per_s"]),
                Some(name),
            );
            add(
                "8",
                format!(
                    "{name} steady at {}/s ({}): job published",
                    fmt(num(st, &["rate_per_s"]), 0),
                    setting(st)
                ),
                st,
                num(st, &["rate_per_s"]),
                Some(name),
            );
        }
    }

    /// callbackd and the peers side by side.
    fn schedulers_table(
        &mut self,
        burst: &Value,
        steady: &Value,
        peers: [(&'static str, &Value, &Value); 3],
    ) {
        let callbackd_rate = num(burst, &["callbacks_per_s"]);
        let lateness =
            |v: &Value| ["p50", "p90", "p99", "max"].map(|k| num(v, &["lateness_ms", k]));
        let cpu = |v: &Value, sched: &str| {
            ["postgres", sched, "rabbitmq"].map(|k| num(v, &["cpu_us_per_item", k]))
        };
        if ran(burst) || ran(steady) {
            self.schedulers.push(SchedulerRow {
                scheduler: "callbackd",
                settings: "its defaults; dispatch batch and publish window as the peers' (see the options)".into(),
                burst_items: num(burst, &["callbacks"]),
                burst_rate: callbackd_rate,
                callbackd_is: callbackd_rate.map(|_| 1.0),
                steady_rate: num(steady, &["rate_per_s"]),
                steady: lateness(steady),
                rss: num(burst, &["peak_rss_mib"]),
                burst_cpu: cpu(burst, "callbackd"),
                steady_cpu: cpu(steady, "callbackd"),
            });
        }
        for (name, b, st) in peers {
            if !ran(b) && !ran(st) {
                continue;
            }
            let setting = b["settings"]["setting"]
                .as_str()
                .or(st["settings"]["setting"].as_str())
                .unwrap_or("?");
            let rate = num(b, &["jobs_per_s"]);
            self.schedulers.push(SchedulerRow {
                scheduler: name,
                settings: setting.to_owned(),
                burst_items: num(b, &["jobs"]),
                burst_rate: rate,
                callbackd_is: ratio(callbackd_rate, rate),
                steady_rate: num(st, &["rate_per_s"]),
                steady: lateness(st),
                rss: num(b, &["peak_rss_mib"]),
                burst_cpu: cpu(b, "node"),
                steady_cpu: cpu(st, "node"),
            });
        }
    }

    /// The tables as Markdown (they read as tables in a terminal too).
    pub fn print_table(&self) {
        println!();
        println!(
            "CPU per item of work, microseconds (from /proc over each phase; scheduler = callbackd or the peer's node process):"
        );
        println!();
        println!(
            "| # | work | items | per s | PostgreSQL | scheduler | RabbitMQ | bench | machine busy |"
        );
        println!("|---|---|---:|---:|---:|---:|---:|---:|---:|");
        for r in &self.cpu_rows {
            println!(
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                r.section,
                r.work,
                fmt(r.items, 0),
                fmt(r.rate, 0),
                fmt(r.postgres, 1),
                r.scheduler
                    .as_ref()
                    .map_or("—".to_owned(), |(name, us)| format!(
                        "{} ({name})",
                        fmt(*us, 1)
                    )),
                fmt(r.rabbitmq, 1),
                fmt(r.bench, 1),
                fmt(r.busy, 1),
            );
        }
        println!();
        println!("The schedulers side by side (same run, same publish, same consumer):");
        println!();
        println!(
            "| scheduler | settings | burst | callbackd is | steady lateness p50 / p90 / p99 / max | peak RSS in burst | CPU µs per item in burst: PG / scheduler / RabbitMQ | CPU µs per item in steady: PG / scheduler / RabbitMQ |"
        );
        println!("|---|---|---:|---:|---:|---:|---:|---:|");
        let three =
            |c: &[Option<f64>; 3]| c.iter().map(|x| fmt(*x, 1)).collect::<Vec<_>>().join(" / ");
        for r in &self.schedulers {
            println!(
                "| {} | {} | {}/s ({}) | {} | {} ms at {}/s | {} MiB | {} | {} |",
                r.scheduler,
                r.settings,
                fmt(r.burst_rate, 0),
                r.burst_items.map_or("—".to_owned(), human),
                times(r.callbackd_is),
                r.steady
                    .iter()
                    .map(|x| fmt(*x, 1))
                    .collect::<Vec<_>>()
                    .join(" / "),
                fmt(r.steady_rate, 0),
                fmt(r.rss, 1),
                three(&r.burst_cpu),
                three(&r.steady_cpu),
            );
        }
        println!();
        println!(
            "| # | measure | value | unit | vs (1) raw broker | vs (2) raw database | vs peers |"
        );
        println!("|---|---|---:|---|---:|---:|---:|");
        for r in &self.rows {
            println!(
                "| {} | {} | {} | {} | {} | {} | {} |",
                r.section, r.measure, r.value, r.unit, r.vs_broker, r.vs_database, r.vs_peer
            );
        }
        println!();
        println!("| target | measured | verdict |");
        println!("|---|---|---|");
        for t in &self.targets {
            println!("| {} | {} | {} |", t.target, t.measured, t.met);
        }
        println!();
    }

    pub fn write_json(&self, path: &Path) -> anyhow::Result<()> {
        let text = serde_json::to_string_pretty(&Value::Object(self.json.clone()))?;
        std::fs::write(path, text + "\n")?;
        Ok(())
    }
}

fn passes_row(v: &Value, what: &str) -> (String, String) {
    let p = |k: &str, q: &str| num(v, &["passes", k, q]);
    (
        format!(
            "{what}: daemon passes (from its records): rows per pass p50; pass start → next p50 / p90"
        ),
        format!(
            "{}; {} / {}",
            fmt(p("rows_per_pass", "p50"), 0),
            fmt(p("pass_start_to_next_start_ms", "p50"), 1),
            fmt(p("pass_start_to_next_start_ms", "p90"), 1)
        ),
    )
}

fn yes(v: &Value) -> &'static str {
    if v == &json!(true) { "yes" } else { "NO" }
}

/// 10000 → "10k", 1000000 → "1M".
fn human(n: f64) -> String {
    if n >= 1e6 {
        format!("{}M", n / 1e6)
    } else if n >= 1e3 {
        format!("{}k", n / 1e3)
    } else {
        format!("{n}")
    }
}
