//! callbackd's benchmark suite: the machine's raw limits, callbackd's burst drain, steady
//! lateness (at two rates), claim cost at scale, ingest and memory, and two peer schedulers
//! (graphile-worker, pg-boss) doing the same work, all in one run so that ratios survive a
//! noisy, shared machine. Every section reports the CPU it cost per item of work
//! (`cpu_us_per_item`: PostgreSQL, the scheduler, RabbitMQ, the bench, from `/proc`).
//!
//! Run it with `bash bench/run.sh [options]` (it installs the peers, then runs
//! `cargo bench --bench suite -- [options]`); `--help` lists the options. It prints its
//! tables and writes `bench/results.json`.
//!
//! Everything it creates — databases `<run>_*`, exchanges and quorum queues `<run>.*` — is
//! named after this run and removed at the end. The daemon under test is the real
//! `callbackd` binary, run as a child process, so its peak RSS can be read from `/proc`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

mod consumer;
mod history;
mod infra;
mod ingest;
mod pacing;
mod peer;
mod profile;
mod raw;
mod report;
mod runs;
mod scale;
mod statements;

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use clap::{Parser, ValueEnum};
use serde_json::json;

use crate::infra::Ctx;
use crate::peer::{Peer, PgBossSetting};
use crate::report::Report;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Section {
    Broker,
    Database,
    Burst,
    Steady,
    Scale,
    Ingest,
    /// graphile-worker's burst and steady.
    #[value(alias = "peer")]
    Graphile,
    /// pg-boss's burst and steady, at its default polling interval and at its best settings.
    Pgboss,
    /// Pending callbacks beside a growing history of ended ones (not in the default run:
    /// `--history`).
    History,
}

/// callbackd benchmark suite. Defaults finish in under 10 minutes on a 2-core machine.
#[derive(Debug, Clone, Parser)]
#[command(name = "suite")]
pub struct Options {
    /// Callbacks all due at once in the burst drain (also the raw broker's and raw
    /// database's message and row counts).
    #[arg(long, default_value_t = 100_000)]
    burst: u64,
    /// Jobs in the peers' burst drains (default: the same as --burst, at most 50000, so that
    /// the defaults finish in under 10 minutes; their rates are compared, not their times).
    #[arg(long)]
    peer_burst: Option<u64>,
    /// Steady lateness: callbacks maturing per second.
    #[arg(long, default_value_t = 1000)]
    rate: u64,
    /// Steady lateness at a higher rate too (callbacks maturing per second; 0 leaves it out).
    /// The peers run at --rate only.
    #[arg(long, default_value_t = 5000)]
    high_rate: u64,
    /// Steady lateness: for how many seconds (each rate).
    #[arg(long, default_value_t = 30)]
    seconds: u64,
    /// Scale: pending callbacks (spread over the next year) at each step, ascending.
    #[arg(long, value_delimiter = ',', default_values_t = [10_000u64, 1_000_000])]
    scale_pending: Vec<u64>,
    /// Scale: terminal (dispatched) rows in the table besides the pending ones.
    #[arg(long, default_value_t = 1_000_000)]
    scale_dispatched: u64,
    /// Scale: timed claims (and due-polls) per step.
    #[arg(long, default_value_t = 300)]
    scale_samples: usize,
    /// Scale, pacing on: timed pacing passes per step (a skill with maxInFlight 20 and 20
    /// in flight, 2,000 due callbacks held at its gate); 0 leaves them out.
    #[arg(long, default_value_t = 200)]
    pacing_samples: usize,
    /// Scale: GET /v1/skills/{id}/availability requests timed against the daemon with 1M
    /// pending (a day of 15-minute slots, half of them booked); 0 leaves them out.
    #[arg(long, default_value_t = 200)]
    availability_requests: usize,
    /// The full-size run: --burst 1000000 --scale-pending 10000,1000000,5000000
    /// --scale-dispatched 5000000 (about 30 minutes here).
    #[arg(long)]
    big: bool,
    /// Run the history section too: 1M pending beside 1M, 10M and 50M ended callbacks with
    /// their events (about 2 hours and 80 GB of disk at 50M; `--history-ended` for less).
    #[arg(long)]
    history: bool,
    /// History: ended callbacks at each step, ascending.
    #[arg(long, value_delimiter = ',', default_values_t = [1_000_000u64, 10_000_000, 50_000_000])]
    history_ended: Vec<u64>,
    /// History: pending callbacks beside them.
    #[arg(long, default_value_t = 1_000_000)]
    history_pending: u64,
    /// Ingest: concurrent HTTP clients.
    #[arg(long, default_value_t = 32)]
    ingest_clients: usize,
    /// Ingest: for how many seconds.
    #[arg(long, default_value_t = 10)]
    ingest_seconds: u64,
    /// Memory: how long the daemon runs against the table holding 1M pending callbacks.
    #[arg(long, default_value_t = 15)]
    memory_seconds: u64,
    /// Publications awaiting a confirm at once (callbackd's dispatch.publish_window; the
    /// daemon under test is given the same).
    #[arg(long, default_value_t = 256)]
    window: usize,
    /// Rows per claim (callbackd's dispatch.batch_size; the daemon is given the same).
    #[arg(long, default_value_t = 500)]
    batch: u32,
    /// graphile-worker's concurrency (jobs run at once; each holds a pool connection).
    #[arg(long, default_value_t = 32)]
    peer_concurrency: usize,
    /// graphile-worker's pollInterval in milliseconds (its default is 2000).
    #[arg(long, default_value_t = 100)]
    peer_poll_ms: u64,
    /// Run only these sections (comma-separated); ratios need their reference sections.
    #[arg(long, value_enum, value_delimiter = ',')]
    only: Vec<Section>,
    /// Leave out both peers (they need Node and bench/peer/node_modules).
    #[arg(long)]
    no_peer: bool,
    /// A seconds-long run with tiny sizes, to check that every section works.
    #[arg(long)]
    smoke: bool,
    /// Where to write the results as JSON.
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/bench/results.json"))]
    json: PathBuf,
    /// PostgreSQL server (without a database name).
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432")]
    database_server: String,
    /// RabbitMQ.
    #[arg(long, default_value = "amqp://guest:guest@127.0.0.1:5672/%2f")]
    amqp_url: String,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

impl Options {
    fn resolve(mut self) -> Self {
        if self.big {
            self.burst = 1_000_000;
            self.scale_pending = vec![10_000, 1_000_000, 5_000_000];
            self.scale_dispatched = 5_000_000;
        }
        if self.smoke {
            self.burst = 2_000;
            self.rate = 200;
            self.high_rate = self.high_rate.min(1000);
            self.seconds = 3;
            self.scale_pending = vec![1_000, 10_000];
            self.scale_dispatched = 10_000;
            self.scale_samples = 50;
            self.pacing_samples = 20;
            self.availability_requests = 20;
            self.ingest_seconds = 2;
            self.memory_seconds = 2;
            self.history_ended = vec![5_000, 20_000];
            self.history_pending = 10_000;
        }
        self.scale_pending.sort_unstable();
        self.history_ended.sort_unstable();
        self
    }

    fn runs(&self, section: Section) -> bool {
        if section == Section::History {
            return self.history || self.only.contains(&section);
        }
        (self.only.is_empty() || self.only.contains(&section))
            && !(matches!(section, Section::Graphile | Section::Pgboss) && self.no_peer)
    }

    fn peer_burst(&self) -> u64 {
        self.peer_burst.unwrap_or(self.burst.min(50_000))
    }
}

fn main() -> anyhow::Result<()> {
    let options = Options::parse().resolve();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    runtime.block_on(run(options))
}

async fn run(options: Options) -> anyhow::Result<()> {
    let started = Instant::now();
    let ctx = Ctx::new(&options).await?;
    profile::set_run(&ctx.run);
    eprintln!("bench: run {} — logs in {}", ctx.run, ctx.out_dir.display());
    let mut report = Report::new(&options, &ctx).await;

    let outcome = sections(&ctx, &options, &mut report).await;
    if let Err(e) = ctx.cleanup().await {
        eprintln!("bench: cleanup incomplete: {e:#}");
    }
    report.set("total_seconds", json!(started.elapsed().as_secs_f64()));
    report.finish();
    report.print_table();
    report
        .write_json(&options.json)
        .with_context(|| format!("writing {}", options.json.display()))?;
    eprintln!(
        "bench: wrote {} in {:.0} s",
        options.json.display(),
        started.elapsed().as_secs_f64()
    );
    outcome
}

/// Runs the chosen sections in an order that puts the references (raw limits) right next to
/// what is compared with them — the raw limits on both sides of the burst, the better reading
/// counting. A failed section is recorded and the others still run.
async fn sections(ctx: &Ctx, options: &Options, report: &mut Report) -> anyhow::Result<()> {
    let mut failed = Vec::new();
    macro_rules! section {
        ($section:expr, $name:literal, $body:expr) => {
            if options.runs($section) {
                eprintln!("bench: — {} —", $name);
                let t = Instant::now();
                match $body.await {
                    Ok(value) => report.set($name, value),
                    Err(e) => {
                        eprintln!("bench: {} failed: {e:#}", $name);
                        report.set($name, json!({ "error": format!("{e:#}") }));
                        failed.push($name);
                    }
                }
                eprintln!("bench: {} took {:.1} s", $name, t.elapsed().as_secs_f64());
            }
        };
    }
    section!(Section::Broker, "raw_broker", raw::broker(ctx, options));
    section!(
        Section::Database,
        "raw_database",
        raw::database(ctx, options)
    );
    section!(Section::Burst, "burst", runs::burst(ctx, options));
    section!(
        Section::Broker,
        "raw_broker_again",
        raw::broker(ctx, options)
    );
    section!(
        Section::Database,
        "raw_database_again",
        raw::database_again(ctx, options)
    );
    section!(
        Section::Graphile,
        "graphile_burst",
        peer::burst(ctx, options, Peer::Graphile)
    );
    section!(
        Section::Pgboss,
        "pgboss_burst_tuned",
        peer::burst(ctx, options, Peer::PgBoss(PgBossSetting::Tuned))
    );
    section!(
        Section::Pgboss,
        "pgboss_burst_default",
        peer::burst(ctx, options, Peer::PgBoss(PgBossSetting::Default))
    );
    section!(
        Section::Steady,
        "steady",
        runs::steady(ctx, options, options.rate, "steady")
    );
    if options.high_rate > 0 {
        section!(
            Section::Steady,
            "steady_high",
            runs::steady(ctx, options, options.high_rate, "steady_high")
        );
    }
    section!(
        Section::Graphile,
        "graphile_steady",
        peer::steady(ctx, options, Peer::Graphile)
    );
    section!(
        Section::Pgboss,
        "pgboss_steady_tuned",
        peer::steady(ctx, options, Peer::PgBoss(PgBossSetting::Tuned))
    );
    section!(
        Section::Pgboss,
        "pgboss_steady_default",
        peer::steady(ctx, options, Peer::PgBoss(PgBossSetting::Default))
    );
    section!(Section::Ingest, "ingest", ingest::run(ctx, options));
    section!(Section::Scale, "scale", scale::run(ctx, options));
    section!(Section::History, "history", history::run(ctx, options));
    if failed.is_empty() {
        Ok(())
    } else {
        anyhow::bail!("sections failed: {}", failed.join(", "))
    }
}
