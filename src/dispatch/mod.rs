//! The dispatch loop: wait until something is due, claim a batch, publish it with confirms,
//! record what the broker took, commit. See `ARCHITECTURE.md` for why claims are
//! transaction-held row locks rather than leases.

pub mod message;

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use crate::amqp::{Broker, OutgoingMessage, PublishOutcome, Publisher};
use crate::config::Settings;
use crate::domain::{Callback, DispatchWindow, LifecycleDefaults, Route, Skill, dispatch_window};
use crate::liveness::Progress;
use crate::store::{
    Confirmed, Deferral, Due, DueListener, Ending, Failure, Store, StoreError, Undeliverable,
};

/// After a failed pass (database down), wait this long before the next.
const ERROR_PAUSE: Duration = Duration::from_secs(1);
/// When due rows exist but others hold them, look again after this long.
const CONTENDED_PAUSE: Duration = Duration::from_millis(50);
/// After a partial batch, wait at least this long: callbacks maturing one by one (1,000/s)
/// are then published ten at a time instead of each costing a pass of five statements, at
/// the price of at most this much lateness. A notification still wakes the loop at once.
const GATHER: Duration = Duration::from_millis(10);

/// One dispatch loop. A daemon runs `dispatch.workers` of them on one broker channel, so
/// that one batch's database work overlaps another's publishing; `SKIP LOCKED` keeps them
/// apart exactly as it keeps separate daemons apart.
pub struct Dispatcher {
    worker: usize,
    store: Store,
    broker: Broker,
    settings: Settings,
    default_zone: Tz,
    lifecycle: LifecycleDefaults,
    instance: String,
    progress: Progress,
}

/// What one pass did.
struct Pass {
    claimed: usize,
    /// The database clock at the claim.
    claimed_at: DateTime<Utc>,
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
        let default_zone = settings.schedule.default_time_zone.0;
        let lifecycle = settings.lifecycle.defaults();
        Self {
            worker,
            store,
            broker,
            settings,
            default_zone,
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
                Ok(pass) => self.next_wake(pass.claimed_at).await,
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
        match self.store.next_due(claimed_at).await {
            Ok(next) => {
                let mut sleep = next.next_in.unwrap_or(poll).min(poll);
                if next.held_elsewhere {
                    sleep = sleep.min(CONTENDED_PAUSE);
                }
                sleep.max(GATHER)
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the next due time");
                ERROR_PAUSE
            }
        }
    }

    /// Claims one batch, publishes it, records the outcome and commits.
    #[tracing::instrument(skip_all, fields(worker = self.worker))]
    async fn pass(&self, publisher: &Publisher) -> Result<Pass, StoreError> {
        let mut claim = self.store.begin_claim().await?;
        let (now, claimed) = claim.due(self.settings.dispatch.batch_size).await?;
        if claimed.is_empty() {
            claim.commit().await?;
            return Ok(Pass {
                claimed: 0,
                claimed_at: now,
            });
        }
        let mut publications = Vec::with_capacity(claimed.len());
        let mut deferrals = Vec::new();
        let mut endings = Vec::new();
        for Due {
            callback,
            skill,
            suppression,
        } in &claimed
        {
            match dispatch_window(
                callback,
                skill,
                suppression.as_ref(),
                now,
                self.default_zone,
            ) {
                DispatchWindow::Publish => match self.publication(callback, skill) {
                    Ok(publication) => publications.push(publication),
                    // Serialising plain strings and numbers cannot fail; if it ever does, the
                    // callback stays pending and the log says which.
                    Err(e) => {
                        tracing::error!(callback_id = %callback.id, error = %e, "cannot encode message")
                    }
                },
                DispatchWindow::Defer { until, reason } => deferrals.push(Deferral {
                    id: callback.id,
                    until,
                    reason,
                }),
                DispatchWindow::End { state, reason } => endings.push(Ending {
                    id: callback.id,
                    state,
                    reason,
                }),
            }
        }
        claim.defer(&deferrals, &self.instance).await?;
        claim.end_unsent(&endings, &self.instance).await?;
        for d in &deferrals {
            tracing::info!(callback_id = %d.id, until = %d.until.to_rfc3339(), reason = %d.reason, "deferred");
        }
        for e in &endings {
            crate::instruments::ended_unsent(e.state.as_str());
            tracing::warn!(callback_id = %e.id, state = %e.state, reason = %e.reason, "not dispatched");
        }
        let messages: Vec<&OutgoingMessage> = publications.iter().map(|p| &p.message).collect();
        let outcomes = publisher
            .publish_all(
                &messages,
                self.settings.dispatch.publish_window,
                self.settings.dispatch.confirm_timeout(),
            )
            .await;

        let mut confirmed = Vec::new();
        let mut undeliverable = Vec::new();
        let mut unconfirmed = 0;
        for (publication, outcome) in publications.iter().zip(outcomes) {
            let id = publication.confirmed.id;
            match outcome {
                PublishOutcome::Confirmed => confirmed.push(publication.confirmed),
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

        let dispatched = claim.mark_dispatched(&confirmed, &self.instance).await?;
        let retries = claim
            .mark_undeliverable(
                &undeliverable,
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
        for row in &dispatched {
            let Some(publication) = confirmed.get(row.index) else {
                continue;
            };
            let route = publication.route;
            crate::instruments::dispatched(route.kind(), row.lateness_ms);
            self.progress.record_lateness(row.lateness_ms);
            tracing::info!(callback_id = %publication.id, route = route.kind(),
                routing_key = %route.routing_key(), attempt = row.attempt,
                lateness_ms = row.lateness_ms.round() as i64, "dispatched");
        }
        for row in &retries {
            let Some(failed) = undeliverable.get(row.index) else {
                continue;
            };
            crate::instruments::not_dispatched(failed.failure.as_str());
            tracing::warn!(callback_id = %failed.id, outcome = failed.failure.as_str(),
                reason = %failed.reason, failures = row.failures,
                retry_at = %row.retry_at.to_rfc3339(), "not dispatched; will retry");
        }
        self.progress.add_dispatched(dispatched.len());
        Ok(Pass {
            claimed: claimed.len(),
            claimed_at: now,
        })
    }

    /// The callback's next publication: its message, and the clocks it starts once
    /// confirmed.
    fn publication(
        &self,
        callback: &Callback,
        skill: &Skill,
    ) -> Result<Publication, serde_json::Error> {
        let route = callback.route();
        Ok(Publication {
            message: message::outgoing(callback, chrono::Utc::now())?,
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
}

async fn wait_notified(listener: &mut Option<DueListener>) -> Result<(), StoreError> {
    match listener {
        Some(l) => l.notified().await,
        None => std::future::pending().await,
    }
}
