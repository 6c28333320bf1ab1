//! `callbackd status`: is this deployment healthy? The backlog, the upcoming load per skill,
//! whether the database and every broker node answer, and which daemons are dispatching
//! (from the `application_name` of their dispatcher sessions). Exits 1 when it finds a
//! problem, so that monitoring can run it as a check.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::Duration;

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use serde::Serialize;

use super::output::{Table, age, emit, emit_json, time};
use super::{CliError, StatusArgs, exit};
use crate::config::Settings;
use crate::store::{Backlog, DispatchingDaemon, SchemaState, Store, StoreError};

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Report {
    database: Database,
    broker: Vec<BrokerNode>,
    backlog: Option<BacklogView>,
    /// Pending callbacks per skill for each hour from `loadFrom` (UTC).
    load_from: DateTime<Utc>,
    load: Vec<SkillLoad>,
    dispatchers: Vec<Dispatcher>,
    problems: Vec<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Database {
    reachable: bool,
    error: Option<String>,
    schema_applied: Option<i64>,
    schema_latest: i64,
    migrations_pending: usize,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct BrokerNode {
    url: String,
    reachable: bool,
    error: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct BacklogView {
    pending: i64,
    due_now: i64,
    due_next_hour: i64,
    oldest_overdue_seconds: f64,
    awaiting_outcome: i64,
    /// Due but held by pacing (waiting for room at their skill or agent).
    held_by_pacing: i64,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct SkillLoad {
    skill_id: i64,
    hours: Vec<i64>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Dispatcher {
    host: String,
    pid: i64,
    sessions: i64,
    since: DateTime<Utc>,
}

/// What the database says, each part within the time limit.
struct Figures {
    schema: SchemaState,
    backlog: Backlog,
    load: Vec<(DateTime<Utc>, crate::domain::SkillId, i64)>,
    dispatchers: Vec<DispatchingDaemon>,
}

pub async fn run(settings: &Settings, args: &StatusArgs) -> Result<ExitCode, CliError> {
    let limit = Duration::from_millis(args.timeout_ms);
    let store = Store::open_existing(&settings.database, limit).await?;
    let load_from = Utc::now()
        .duration_trunc(TimeDelta::hours(1))
        .unwrap_or_else(|_| Utc::now());
    let load_to = load_from + TimeDelta::hours(i64::from(args.hours));
    let mut amqp = settings.amqp.clone();
    amqp.connect_timeout_ms = amqp.connect_timeout_ms.min(args.timeout_ms);
    let probe_name = format!("{} status", settings.dispatch.instance());
    let (figures, broker) = tokio::join!(
        tokio::time::timeout(limit, figures(&store, load_from, load_to)),
        crate::amqp::probe(&amqp, &probe_name),
    );
    store.close().await;
    let figures =
        figures.unwrap_or_else(|_| Err(format!("no answer within {} ms", args.timeout_ms)));
    let report = report(figures, broker, load_from, args);
    let code = if report.problems.is_empty() {
        exit::OK
    } else {
        exit::PROBLEM
    };
    if args.json {
        emit_json(&report)?;
    } else {
        emit(&render(&report, args.hours))?;
    }
    Ok(ExitCode::from(code))
}

async fn figures(
    store: &Store,
    load_from: DateTime<Utc>,
    load_to: DateTime<Utc>,
) -> Result<Figures, String> {
    let read = async {
        Ok::<_, StoreError>(Figures {
            schema: store.schema_state().await?,
            backlog: store.backlog().await?,
            load: store.load_by_hour(load_from, load_to, None).await?,
            dispatchers: store.dispatching_daemons().await?,
        })
    };
    read.await.map_err(|e| e.to_string())
}

fn report(
    figures: Result<Figures, String>,
    broker: Vec<(String, Result<(), crate::amqp::AmqpError>)>,
    load_from: DateTime<Utc>,
    args: &StatusArgs,
) -> Report {
    let mut problems = Vec::new();
    let broker: Vec<BrokerNode> = broker
        .into_iter()
        .map(|(url, answer)| BrokerNode {
            url,
            reachable: answer.is_ok(),
            error: answer.err().map(|e| e.to_string()),
        })
        .collect();
    for node in &broker {
        if let Some(error) = &node.error {
            problems.push(format!("broker unreachable: {error}"));
        }
    }
    let figures = match figures {
        Ok(figures) => figures,
        Err(e) => {
            problems.insert(0, format!("database unreachable: {e}"));
            return Report {
                database: Database {
                    reachable: false,
                    error: Some(e),
                    schema_applied: None,
                    schema_latest: 0,
                    migrations_pending: 0,
                },
                broker,
                backlog: None,
                load_from,
                load: Vec::new(),
                dispatchers: Vec::new(),
                problems,
            };
        }
    };
    let Figures {
        schema,
        backlog,
        load,
        dispatchers,
    } = figures;
    if schema.pending > 0 {
        problems.push(format!(
            "{} database migration(s) not applied: run `callbackd migrate`",
            schema.pending
        ));
    }
    if backlog.oldest_overdue_seconds > args.max_overdue as f64 {
        problems.push(format!(
            "a callback is overdue by {} (more than --max-overdue {}s)",
            age(backlog.oldest_overdue_seconds),
            args.max_overdue
        ));
    }
    if dispatchers.len() < args.min_dispatchers {
        problems.push(format!(
            "{} daemon(s) dispatching, fewer than --min-dispatchers {}",
            dispatchers.len(),
            args.min_dispatchers
        ));
    }
    let mut per_skill: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
    for (hour, skill, n) in load {
        let index = (hour - load_from).num_hours();
        let hours = per_skill
            .entry(skill.get())
            .or_insert_with(|| vec![0; args.hours as usize]);
        if let Some(slot) = usize::try_from(index).ok().and_then(|i| hours.get_mut(i)) {
            *slot += n;
        }
    }
    Report {
        database: Database {
            reachable: true,
            error: None,
            schema_applied: schema.applied,
            schema_latest: schema.latest,
            migrations_pending: schema.pending,
        },
        broker,
        backlog: Some(BacklogView {
            pending: backlog.pending,
            due_now: backlog.due_now,
            due_next_hour: backlog.due_next_hour,
            oldest_overdue_seconds: backlog.oldest_overdue_seconds,
            awaiting_outcome: backlog.awaiting_outcome,
            held_by_pacing: backlog.paced,
        }),
        load_from,
        load: per_skill
            .into_iter()
            .map(|(skill_id, hours)| SkillLoad { skill_id, hours })
            .collect(),
        dispatchers: dispatchers
            .into_iter()
            .map(|d| Dispatcher {
                host: d.host,
                pid: d.pid,
                sessions: d.sessions,
                since: d.since,
            })
            .collect(),
        problems,
    }
}

fn render(report: &Report, hours: u32) -> String {
    let mut summary = Table::new(&["CHECK", "STATE"]);
    let db = &report.database;
    summary.row(vec![
        "database".into(),
        match &db.error {
            Some(e) => format!("UNREACHABLE: {e}"),
            None => format!(
                "reachable, schema {} of {}",
                db.schema_applied.map_or("none".into(), |v| v.to_string()),
                db.schema_latest
            ),
        },
    ]);
    for node in &report.broker {
        summary.row(vec![
            "broker".into(),
            match &node.error {
                Some(e) => format!("UNREACHABLE: {e}"),
                None => format!("reachable: {}", node.url),
            },
        ]);
    }
    if let Some(b) = &report.backlog {
        summary.row(vec!["pending".into(), b.pending.to_string()]);
        summary.row(vec!["due now".into(), b.due_now.to_string()]);
        summary.row(vec!["due next hour".into(), b.due_next_hour.to_string()]);
        summary.row(vec![
            "oldest overdue".into(),
            if b.due_now > 0 {
                age(b.oldest_overdue_seconds)
            } else {
                "-".into()
            },
        ]);
        summary.row(vec![
            "awaiting outcome".into(),
            b.awaiting_outcome.to_string(),
        ]);
        summary.row(vec!["held by pacing".into(), b.held_by_pacing.to_string()]);
    }
    if db.reachable && report.dispatchers.is_empty() {
        summary.row(vec!["dispatching".into(), "no daemon".into()]);
    }
    for d in &report.dispatchers {
        summary.row(vec![
            "dispatching".into(),
            format!(
                "{} pid {} ({} sessions, since {})",
                d.host,
                d.pid,
                d.sessions,
                time(d.since)
            ),
        ]);
    }
    let mut out = summary.render();
    if db.reachable && hours > 0 {
        let labels: Vec<String> = (0..hours)
            .map(|h| {
                (report.load_from + TimeDelta::hours(i64::from(h)))
                    .format("%H:00")
                    .to_string()
            })
            .collect();
        let mut headers = vec!["SKILL"];
        headers.extend(labels.iter().map(String::as_str));
        headers.push("TOTAL");
        let mut load = Table::new(&headers);
        for skill in &report.load {
            let mut row = vec![skill.skill_id.to_string()];
            row.extend(skill.hours.iter().map(i64::to_string));
            row.push(skill.hours.iter().sum::<i64>().to_string());
            load.row(row);
        }
        out.push_str(&format!(
            "\nupcoming load: pending callbacks per skill and hour (UTC)\n{}",
            load.render()
        ));
    }
    if report.problems.is_empty() {
        out.push_str("\nstatus: ok\n");
    } else {
        out.push_str(&format!("\nstatus: {} problem(s)\n", report.problems.len()));
        for p in &report.problems {
            out.push_str(&format!("  - {p}\n"));
        }
    }
    out
}
