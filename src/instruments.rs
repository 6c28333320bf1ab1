//! Prometheus metrics, rendered at `GET /metrics`. Counters and the lateness histogram are
//! recorded where things happen; backlog and up/down gauges are read at scrape time.

use std::sync::OnceLock;
use std::time::Duration;

use metrics::{counter, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use crate::amqp::Broker;
use crate::store::Store;

const LATENESS: &str = "callbackd_dispatch_lateness_seconds";
const PACING_DELAY: &str = "callbackd_pacing_delay_seconds";
/// How often recorded histogram samples are folded into their buckets. The exporter keeps
/// every sample until then, and otherwise until the next scrape, or for ever where nothing
/// scrapes (16 MB held in a burst of a million dispatches); a second's worth at 10,000
/// dispatches a second is about 160 KB.
const UPKEEP: Duration = Duration::from_secs(1);

/// The process-wide recorder: installed by the first application built in this process
/// (the tests build many).
pub fn handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        const BUCKETS: &[f64] = &[
            0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
            900.0, 3600.0,
        ];
        let builder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Full(LATENESS.into()), BUCKETS)
            .and_then(|b| b.set_buckets_for_metric(Matcher::Full(PACING_DELAY.into()), BUCKETS))
            .unwrap_or_else(|_| PrometheusBuilder::new());
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        // Fails only if another recorder is installed; this handle then renders nothing.
        let _ = metrics::set_global_recorder(recorder);
        handle
    })
}

/// Folds the histograms' samples into their buckets every [`UPKEEP`], until `shutdown`.
pub async fn keep_up(shutdown: CancellationToken) {
    let mut every = tokio::time::interval(UPKEEP);
    every.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = every.tick() => handle().run_upkeep(),
        }
    }
}

pub fn created(route: &'static str) {
    counter!("callbackd_callbacks_created_total", "route" => route).increment(1);
}

/// `lateness_ms` is the dispatcher's own lateness: time held by pacing is not in it.
pub fn dispatched(route: &'static str, lateness_ms: f64) {
    counter!("callbackd_callbacks_dispatched_total", "route" => route).increment(1);
    histogram!(LATENESS).record((lateness_ms / 1000.0).max(0.0));
}

/// How long pacing held a callback that has now gone out, by skill.
pub fn paced(skill: i64, held_seconds: f64) {
    histogram!(PACING_DELAY, "skill" => skill.to_string()).record(held_seconds.max(0.0));
}

/// A due callback pacing held back (counted once, when first held).
pub fn held(gate: &'static str) {
    counter!("callbackd_pacing_held_total", "gate" => gate).increment(1);
}

/// A publication the broker did not take: `returned`, `nacked` or `unconfirmed`.
pub fn not_dispatched(outcome: &'static str) {
    counter!("callbackd_publish_failures_total", "outcome" => outcome).increment(1);
}

pub fn ended_unsent(state: &'static str) {
    counter!("callbackd_callbacks_ended_unsent_total", "state" => state).increment(1);
}

pub fn outcome(outcome: &'static str, applied: bool) {
    let applied = if applied { "true" } else { "false" };
    counter!("callbackd_outcomes_total", "outcome" => outcome, "applied" => applied).increment(1);
}

/// One webhook delivery attempt: delivered, failed for good, or to be retried.
pub fn webhook_attempt(delivered: bool, gave_up: bool) {
    let outcome = match (delivered, gave_up) {
        (true, _) => "delivered",
        (false, true) => "failed",
        (false, false) => "retry",
    };
    counter!("callbackd_webhook_attempts_total", "outcome" => outcome).increment(1);
}

/// A webhook subscription paused after failing for too long.
pub fn webhook_paused() {
    counter!("callbackd_webhooks_paused_total").increment(1);
}

/// A callback's first publication, and whether it kept its promise (within a minute of
/// its due time): `callbackd_promises_total{kept}`, whose ratio is the on-time rate.
pub fn first_attempt(kept: bool) {
    counter!("callbackd_promises_total", "kept" => if kept { "true" } else { "false" })
        .increment(1);
}

/// Reminders written for notifiers.
pub fn reminders(n: u64) {
    counter!("callbackd_reminders_total").increment(n);
}

/// Events the relay published to the event stream.
pub fn events_relayed(n: usize) {
    counter!("callbackd_events_published_total").increment(u64::try_from(n).unwrap_or(u64::MAX));
}

pub fn timers(fell_back: u64, ownership_ended: u64, expired: u64, without_outcome: u64) {
    counter!("callbackd_agent_fallbacks_total").increment(fell_back);
    counter!("callbackd_ownership_ended_total").increment(ownership_ended);
    counter!("callbackd_callbacks_expired_total").increment(expired);
    counter!("callbackd_outcome_deadline_failures_total").increment(without_outcome);
}

/// What a scrape does about the backlog gauges.
pub enum Backlog {
    Count,
    Keep { database_up: bool },
}

/// Reads the gauges and renders everything in the Prometheus text format. With
/// `Backlog::Count` the backlog is counted (it scans the pending part of the due index:
/// ~0.6 s with 5M pending); with `Backlog::Keep` its gauges keep their last reading and the
/// database's health is the one given.
pub async fn render(store: &Store, broker: Option<&Broker>, backlog: Backlog) -> String {
    let handle = handle();
    let database_up = match backlog {
        Backlog::Keep { database_up } => database_up,
        Backlog::Count => match store.backlog().await {
            Ok(b) => {
                gauge!("callbackd_backlog_pending").set(b.pending as f64);
                gauge!("callbackd_backlog_due_now").set(b.due_now as f64);
                gauge!("callbackd_backlog_oldest_overdue_seconds").set(b.oldest_overdue_seconds);
                gauge!("callbackd_backlog_awaiting_outcome").set(b.awaiting_outcome as f64);
                gauge!("callbackd_backlog_paced").set(b.paced as f64);
                for p in &b.paced_by_skill {
                    let skill = p.skill_id.to_string();
                    gauge!("callbackd_backlog_paced_by_skill", "skill" => skill.clone())
                        .set(p.held as f64);
                    gauge!("callbackd_backlog_paced_oldest_seconds", "skill" => skill)
                        .set(p.oldest_held_seconds);
                }
                true
            }
            Err(_) => false,
        },
    };
    gauge!("callbackd_database_up").set(if database_up { 1.0 } else { 0.0 });
    if let Some(broker) = broker {
        gauge!("callbackd_broker_up").set(if broker.is_up() { 1.0 } else { 0.0 });
    }
    handle.run_upkeep();
    handle.render()
}
