//! The dispatch loop: wait until something is due, claim a batch, plan it (`plan`: what to
//! publish, hold, defer or end), publish with confirms, record what the broker took, commit.
//! See `ARCHITECTURE.md` for why claims are
//! transaction-held row locks rather than leases.

pub mod message;
mod plan;

use std::collections::BTreeSet;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use chrono::{DateTime, Utc};

use crate::amqp::{Broker, OutgoingMessage, PublishOutcome, Publisher};
use crate::config::Settings;
use crate::domain::{Callback, Gate, LifecycleDefaults, Pacer, Route, Skill, SkillId, compete};
use crate::liveness::Progress;
use crate::store::{
    Claim, Confirmed, DispatchedRow, Due, DueBatch, DueListener, Failure, RetryRow, Store,
    StoreError, Undeliverable,
};
use plan::{Plan, Planner};

/// After a failed pass (database down), wait this long before the next.
const ERROR_PAUSE: Duration = Duration::from_secs(1);
/// When due rows exist but others hold them, look again after this long.
const CONTENDED_PAUSE: Duration = Duration::from_millis(50);

/// One dispatch loop. A daemon runs `dispatch.workers` of them on one broker channel, so
/// that one batch's database work overlaps another's publishing; `SKIP LOCKED` keeps them
/// apart exactly as it keeps separate daemons apart.
pub struct Dispatcher {
    worker: usize,
    store: Store,
    broker: Broker,
    settings: Settings,
    planner: Planner,
    lifecycle: LifecycleDefaults,
    instance: String,
    progress: Progress,
}

/// What one pass did.
struct Pass {
    claimed: usize,
    /// The database clock at the claim.
    claimed_at: DateTime<Utc>,
    /// Pacing's say on the next pass: when a rate-paced gate has room again, or soon if
    /// another claim held a gate.
    paced_wake: Option<Duration>,
}

impl Dispatcher {
    pub fn new(
        worker: usize,
        store: Store,
        broker: Broker,
        settings: Settings,
        progress: Progress,
    ) -> Self {
        let instance = settings.dispatch.instance();
        let planner = Planner::new(
            settings.schedule.default_time_zone.0,
            settings.pacing.defaults(),
        );
        let lifecycle = settings.lifecycle.defaults();
        Self {
            worker,
            store,
            broker,
            settings,
            planner,
            lifecycle,
            instance,
            progress,
        }
    }

    /// Runs until `shutdown`. A batch in flight when it fires is finished (published,
    /// recorded, committed) before returning: the soft stop.
    pub async fn run(mut self, shutdown: CancellationToken) {
        tracing::info!(instance = %self.instance, worker = self.worker,
            batch_size = self.settings.dispatch.batch_size, "dispatcher started");
        let mut listener: Option<DueListener> = None;
        let mut sleep = Duration::ZERO;
        loop {
            self.progress.beat(self.worker);
            if listener.is_none() {
                listener = self.store.listen_due().await.inspect_err(|e| {
                    tracing::warn!(error = %e, "cannot listen for due notifications; polling only");
                }).ok();
            }
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(sleep) => {},
                woken = wait_notified(&mut listener) => {
                    if let Err(e) = woken {
                        tracing::warn!(error = %e, "due notifications interrupted");
                        listener = None;
                        sleep = ERROR_PAUSE;
                        continue;
                    }
                },
            }
            let Some(publisher) = self.broker.publisher().filter(Publisher::is_open) else {
                // Nothing is claimed while the broker is away; look again when it is back.
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = self.broker.changed() => {},
                    _ = tokio::time::sleep(self.settings.dispatch.poll_interval()) => {},
                }
                sleep = Duration::ZERO;
                continue;
            };
            sleep = match self.pass(&publisher).await {
                Ok(pass) if pass.claimed == self.settings.dispatch.batch_size as usize => {
                    Duration::ZERO
                }
                Ok(pass) => {
                    let wake = self.next_wake(pass.claimed_at).await;
                    pass.paced_wake.map_or(wake, |paced| {
                        wake.min(paced.max(self.settings.dispatch.gather()))
                    })
                }
                Err(e) if e.raced() => {
                    tracing::debug!(error = %e, "dispatch pass met a callback ending; again at once");
                    Duration::ZERO
                }
                Err(e) => {
                    tracing::warn!(error = %e, "dispatch pass failed");
                    ERROR_PAUSE
                }
            };
        }
        tracing::info!(instance = %self.instance, worker = self.worker, "dispatcher stopped");
    }

    /// Sleep until the earliest due callback, or the poll interval, whichever is first: none
    /// if one matured since the claim; a short pause if another dispatcher holds due ones
    /// (it may die and release them), without spinning on them.
    async fn next_wake(&self, claimed_at: DateTime<Utc>) -> Duration {
        let poll = self.settings.dispatch.poll_interval();
        match self.store.next_due(claimed_at, CONTENDED_PAUSE).await {
            Ok(next) => {
                let mut sleep = next.next_in.unwrap_or(poll).min(poll);
                if next.held_elsewhere {
                    sleep = sleep.min(CONTENDED_PAUSE);
                }
                // `dispatch.gather_ms`: callbacks maturing one by one (1,000/s) then go out
                // a few per pass instead of each costing a pass of several statements, at
                // the price of at most that much lateness. A notification still wakes the
                // loop at once.
                sleep.max(self.settings.dispatch.gather())
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the next due time");
                ERROR_PAUSE
            }
        }
    }

    /// Reads the gates this claim touches (those of the due callbacks, and those holding
    /// callbacks) and adds the held callbacks their room lets go. Returns every candidate,
    /// in the order they compete in (`domain::compete`), and the pacer that admits them. Without pacing, no statement.
    async fn pace(
        &self,
        claim: &mut Claim,
        batch: DueBatch,
    ) -> Result<(Vec<Due>, Pacer), StoreError> {
        let DueBatch {
            now,
            held_gates,
            ready,
        } = batch;
        let mut wanted: BTreeSet<Gate> = held_gates.iter().copied().collect();
        for due in &ready {
            wanted.extend(self.planner.gates_to_read(due));
        }
        if wanted.is_empty() {
            return Ok((ready, Pacer::new(now, [])));
        }
        let wanted: Vec<Gate> = wanted.into_iter().collect();
        let readings = claim
            .read_gates(&wanted, self.planner.pacing.agent_max_in_flight)
            .await?;
        let pacer = Pacer::new(now, readings);
        let takes = plan::takes(&held_gates, &pacer, self.settings.dispatch.batch_size);
        let mut candidates = claim.held(&takes).await?;
        candidates.extend(ready);
        // Where they compete for a gate's room: the highest effective priority first.
        candidates.sort_by(|a, b| compete((&a.callback, &a.skill), (&b.callback, &b.skill), now));
        Ok((candidates, pacer))
    }

    /// Claims one batch, plans it, publishes what the plan says, records the outcome and
    /// commits.
    #[tracing::instrument(skip_all, fields(worker = self.worker))]
    async fn pass(&self, publisher: &Publisher) -> Result<Pass, StoreError> {
        let mut claim = self.store.begin_claim().await?;
        let batch = claim.due(self.settings.dispatch.batch_size).await?;
        let (claimed, now) = (batch.ready.len(), batch.now);
        let (candidates, pacer) = self.pace(&mut claim, batch).await?;
        let plan = self.planner.plan(&candidates, pacer, now);
        let pass = Pass {
            claimed,
            claimed_at: now,
            paced_wake: plan.wake,
        };
        if candidates.is_empty() {
            claim.commit().await?;
            return Ok(pass);
        }
        self.record_plan(&mut claim, &plan).await?;
        report_plan(&plan);
        let publications = self.publications(&plan.publish);
        let delivery = self.publish(publisher, &publications).await;
        let (dispatched, retries) = self.record_delivery(claim, &delivery).await?;
        self.report_delivery(&delivery, &dispatched, &retries);
        Ok(pass)
    }

    /// Records what the plan decided before anything is published: holds, rate times,
    /// deferrals and endings.
    async fn record_plan(&self, claim: &mut Claim, plan: &Plan<'_>) -> Result<(), StoreError> {
        claim.hold(plan.hold()).await?;
        claim.set_pace(&plan.rate_updates).await?;
        claim.defer(&plan.defer, &self.instance).await?;
        claim.end_unsent(&plan.end, &self.instance).await
    }

    /// The publications of the callbacks the plan publishes.
    fn publications(&self, planned: &[(&Due, Route)]) -> Vec<Publication> {
        let mut publications = Vec::with_capacity(planned.len());
        for (due, route) in planned {
            match self.publication(&due.callback, *route, &due.skill, due.paced_since) {
                Ok(publication) => publications.push(publication),
                // Serialising plain strings and numbers cannot fail; if it ever does, the
                // callback stays pending and the log says which.
                Err(e) => {
                    tracing::error!(callback_id = %due.callback.id, error = %e, "cannot encode message")
                }
            }
        }
        publications
    }

    /// Publishes the batch and sorts the broker's answers: confirmed, not taken (to retry),
    /// or unknown (left pending; the link is reported broken).
    async fn publish<'p>(
        &self,
        publisher: &Publisher,
        publications: &'p [Publication],
    ) -> Delivery<'p> {
        let messages: Vec<&OutgoingMessage> = publications.iter().map(|p| &p.message).collect();
        let outcomes = publisher
            .publish_all(
                &messages,
                self.settings.dispatch.publish_window,
                self.settings.dispatch.confirm_timeout(),
            )
            .await;

        let mut sent = Vec::new();
        let mut undeliverable = Vec::new();
        let mut unconfirmed = 0;
        for (publication, outcome) in publications.iter().zip(outcomes) {
            let id = publication.confirmed.id;
            match outcome {
                PublishOutcome::Confirmed => sent.push(publication),
                PublishOutcome::Returned { reply_code, reply_text } => undeliverable.push(Undeliverable {
                    id,
                    failure: Failure::Returned,
                    reason: format!(
                        "unroutable: no queue is bound for routing key {} ({reply_code} {reply_text})",
                        publication.message.routing_key
                    ),
                }),
                PublishOutcome::Nacked => undeliverable.push(Undeliverable {
                    id,
                    failure: Failure::Nacked,
                    reason: "the broker refused the message (negative acknowledgement)".into(),
                }),
                PublishOutcome::Unconfirmed(reason) => {
                    unconfirmed += 1;
                    crate::instruments::not_dispatched("unconfirmed");
                    tracing::warn!(callback_id = %id, routing_key = %publication.message.routing_key,
                        reason = %reason, "publication not confirmed; the callback stays pending");
                }
            }
        }
        if unconfirmed > 0 {
            self.broker.report_broken();
        }
        Delivery {
            sent,
            undeliverable,
        }
    }

    /// Records what the broker took (dispatched) and what it did not (due again after a
    /// backoff), and commits the claim.
    async fn record_delivery(
        &self,
        mut claim: Claim,
        delivery: &Delivery<'_>,
    ) -> Result<(Vec<DispatchedRow>, Vec<RetryRow>), StoreError> {
        let confirmed: Vec<Confirmed> = delivery.sent.iter().map(|p| p.confirmed).collect();
        let dispatched = claim.mark_dispatched(&confirmed, &self.instance).await?;
        let retries = claim
            .mark_undeliverable(
                &delivery.undeliverable,
                &self.instance,
                Duration::from_millis(self.settings.dispatch.retry_initial_ms),
                Duration::from_millis(self.settings.dispatch.retry_max_ms),
            )
            .await?;
        if let Err(e) = claim.commit().await {
            tracing::error!(error = %e, published = confirmed.len(),
                "recording the batch failed after the broker confirmed it; those callbacks will be published again with the same message id");
            return Err(e);
        }
        Ok((dispatched, retries))
    }

    /// Metrics, log lines and liveness for a committed batch.
    fn report_delivery(
        &self,
        delivery: &Delivery<'_>,
        dispatched: &[DispatchedRow],
        retries: &[RetryRow],
    ) {
        for row in dispatched {
            let Some(publication) = delivery.sent.get(row.index) else {
                continue;
            };
            let route = publication.confirmed.route;
            // Time held by pacing is reported apart from the dispatcher's own lateness.
            let mut held_ms = 0.0;
            if let Some(since) = publication.paced_since {
                held_ms =
                    (row.dispatched_at - since).num_microseconds().unwrap_or(0) as f64 / 1000.0;
                crate::instruments::paced(publication.skill_id.get(), held_ms / 1000.0);
            }
            let lateness_ms = (row.lateness_ms - held_ms).max(0.0);
            crate::instruments::dispatched(route.kind(), lateness_ms);
            if row.attempt == 1 {
                // The promise counts the time held: the customer waited it too.
                let kept = crate::domain::kept(row.lateness_ms, crate::domain::ON_TIME_SECONDS);
                crate::instruments::first_attempt(kept);
            }
            self.progress.record_lateness(lateness_ms);
            tracing::info!(callback_id = %publication.confirmed.id, route = route.kind(),
                routing_key = %route.routing_key(), attempt = row.attempt,
                lateness_ms = lateness_ms.round() as i64, held_ms = held_ms.round() as i64,
                "dispatched");
        }
        for row in retries {
            let Some(failed) = delivery.undeliverable.get(row.index) else {
                continue;
            };
            crate::instruments::not_dispatched(failed.failure.as_str());
            tracing::warn!(callback_id = %failed.id, outcome = failed.failure.as_str(),
                reason = %failed.reason, failures = row.failures,
                retry_at = %row.retry_at.to_rfc3339(), "not dispatched; will retry");
        }
        self.progress.add_dispatched(dispatched.len());
    }

    /// The callback's next publication: its message, and the clocks it starts once
    /// confirmed.
    fn publication(
        &self,
        callback: &Callback,
        route: Route,
        skill: &Skill,
        paced_since: Option<DateTime<Utc>>,
    ) -> Result<Publication, serde_json::Error> {
        Ok(Publication {
            skill_id: callback.skill_id,
            paced_since,
            message: message::outgoing(callback, route, skill, chrono::Utc::now())?,
            confirmed: Confirmed {
                id: callback.id,
                route,
                agent_fallback: skill
                    .policy
                    .agent_fallback(&self.lifecycle)
                    .filter(|_| matches!(route, Route::Agent(_))),
                outcome_deadline: skill.policy.outcome_deadline(&self.lifecycle),
            },
        })
    }
}

/// One claimed callback on its way to the broker.
struct Publication {
    message: OutgoingMessage,
    confirmed: Confirmed,
    skill_id: SkillId,
    /// Since when pacing held it, if it did.
    paced_since: Option<DateTime<Utc>>,
}

/// What the broker did with a batch's publications.
struct Delivery<'p> {
    /// Confirmed, to be recorded dispatched.
    sent: Vec<&'p Publication>,
    /// Returned or nacked, to be retried.
    undeliverable: Vec<Undeliverable>,
}

/// Metrics and log lines for what a plan held, deferred and ended.
fn report_plan(plan: &Plan<'_>) {
    for (id, gate) in plan.newly_held() {
        crate::instruments::held(gate.kind());
        tracing::info!(callback_id = %id, %gate, "held by pacing");
    }
    for d in &plan.defer {
        tracing::info!(callback_id = %d.id, until = %d.until.to_rfc3339(), reason = %d.reason, "deferred");
    }
    for e in &plan.end {
        crate::instruments::ended_unsent(e.state.as_str());
        tracing::warn!(callback_id = %e.id, state = %e.state, reason = %e.reason, "not dispatched");
    }
}

async fn wait_notified(listener: &mut Option<DueListener>) -> Result<(), StoreError> {
    match listener {
        Some(l) => l.notified().await,
        None => std::future::pending().await,
    }
}
