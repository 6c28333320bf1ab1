//! The one table (figures and their ratios to the raw limits and the peer), the targets of
//! issue 4, and `bench/results.json`.

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

struct Target {
    target: &'static str,
    measured: String,
    met: &'static str,
}

pub struct Report {
    json: Map<String, Value>,
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
        let peer_burst = self.get("peer_burst");
        let peer_steady = self.get("peer_steady");
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
        let peer_rate = num(&peer_burst, &["jobs_per_s"]);
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
                times(ratio(burst_rate, peer_rate)),
            ],
        );
        let burst_flow = num(&burst, &["callbacks_per_s_first_to_last"]);
        let peer_flow = num(&peer_burst, &["jobs_per_s_first_to_last"]);
        row(
            "3",
            "burst drain: first → last message".into(),
            fmt(burst_flow, 0),
            "cb/s",
            [
                pct(ratio(burst_flow, broker_rate)),
                pct(ratio(burst_flow, db_rate)),
                times(ratio(burst_flow, peer_flow)),
            ],
        );
        let (measure, value) = passes_row(&burst, "burst");
        row("3", measure, value, "rows; ms", none());
        let lateness = |v: &Value| {
            let p = |k: &str| num(v, &["lateness_ms", k]);
            (p("p50"), p("p90"), p("p99"), p("max"))
        };
        let (s50, s90, s99, smax) = lateness(&steady);
        let (q50, q90, q99, qmax) = lateness(&peer_steady);
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
                ratio(q99, s99).map_or(String::new(), |r| format!("peer p99 is {r:.1}× it")),
            ],
        );
        let (measure, value) = passes_row(&steady, "steady");
        row("4", measure, value, "rows; ms", none());
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
        let peer_rss = num(&peer_burst, &["peak_rss_mib"]);
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
                ratio(burst_rss, peer_rss).map_or(String::new(), |r| format!("{r:.2}× the peer's")),
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
        row(
            "8",
            format!(
                "peer burst: graphile-worker, {} jobs due at once, start → consumer has all",
                num(&peer_burst, &["jobs"]).unwrap_or(0.0)
            ),
            fmt(peer_rate, 0),
            "jobs/s",
            [
                pct(ratio(peer_rate, broker_rate)),
                pct(ratio(peer_rate, db_rate)),
                pct(ratio(peer_rate, peer_rate)),
            ],
        );
        row(
            "8",
            "peer steady lateness: p50 / p90 / p99 / max".into(),
            quad(q50, q90, q99, qmax),
            "ms",
            none(),
        );
        row(
            "8",
            "peer peak RSS (node) during its burst".into(),
            fmt(peer_rss, 1),
            "MiB",
            none(),
        );

        // Issue 4's targets.
        let of_broker = ratio(burst_rate, broker_rate);
        self.targets.push(Target {
            target: "burst drain ≥ 70% of the raw broker limit (1)",
            measured: pct(of_broker),
            met: met(of_broker.map(|r| r >= 0.7)),
        });
        let of_peer = ratio(burst_rate, peer_rate);
        self.targets.push(Target {
            target: "burst drain ≥ 3× the peer",
            measured: times(of_peer),
            met: met(of_peer.map(|r| r >= 3.0)),
        });
        self.targets.push(Target {
            target: "steady lateness p99 ≤ 50 ms at 1000/s",
            measured: format!(
                "{} ms at {}/s",
                fmt(s99, 1),
                num(&steady, &["rate_per_s"]).unwrap_or(0.0)
            ),
            met: met(s99.map(|p| p <= 50.0)),
        });
        let last = steps.last();
        let last_claim = last.and_then(|s| num(s, &["claim_ms", "p99"]));
        let last_pending = last.and_then(|s| num(s, &["pending"])).unwrap_or(0.0);
        let growth = ratio(last_claim, base_claim);
        self.targets.push(Target {
            target: "claim p99 within 2× from 10k to 5M pending",
            measured: format!(
                "{} from {} to {} pending{}",
                times(growth),
                human(
                    steps
                        .first()
                        .and_then(|s| num(s, &["pending"]))
                        .unwrap_or(0.0)
                ),
                human(last_pending),
                if last_pending < 5e6 {
                    " (5M not run: --big)"
                } else {
                    ""
                }
            ),
            met: if last_pending < 5e6 && growth.is_some() {
                if growth.is_some_and(|g| g <= 2.0) {
                    "met up to the size run"
                } else {
                    "NOT met"
                }
            } else {
                met(growth.map(|g| g <= 2.0))
            },
        });
        self.targets.push(Target {
            target: "ingest ≥ 5000 creates/s",
            measured: format!("{} creates/s", fmt(creates, 0)),
            met: met(creates.map(|c| c >= 5000.0)),
        });
        if availability.is_object() {
            self.targets.push(Target {
                target: "availability p99 ≤ 20 ms with 1M pending",
                measured: format!(
                    "{} ms with {} pending",
                    fmt(availability99, 2),
                    human(num(&scale, &["memory_with_pending", "pending"]).unwrap_or(0.0))
                ),
                met: met(availability99.map(|p| p <= 20.0)),
            });
        }
        let burst_n = num(&burst, &["callbacks"]).unwrap_or(0.0);
        self.targets.push(Target {
            target: "peak RSS ≤ 100 MiB during a 1M burst",
            measured: format!("{} MiB in a {} burst", fmt(burst_rss, 1), human(burst_n)),
            met: if burst_n >= 1e6 {
                met(burst_rss.map(|r| r <= 100.0))
            } else if burst_rss.is_some_and(|r| r <= 100.0) {
                "met at this size (1M: --big)"
            } else {
                met(burst_rss.map(|r| r <= 100.0))
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
        self.json.insert("table".into(), Value::Array(rows));
        self.json.insert("targets".into(), Value::Array(targets));
    }

    /// The table as Markdown (it reads as a table in a terminal too).
    pub fn print_table(&self) {
        println!();
        println!(
            "| # | measure | value | unit | vs (1) raw broker | vs (2) raw database | vs peer |"
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
