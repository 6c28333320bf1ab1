//! The dispatch loop: wait until something is due, claim a batch, publish it with confirms,
//! record what the broker took, commit. See `ARCHITECTURE.md` for why claims are
//! transaction-held row locks rather than leases.

pub mod message;

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::amqp::{Broker, PublishOutcome, Publisher};
use crate::config::DispatchSettings;
use crate::store::{DueListener, Store, StoreError, Undeliverable};

/// After a failed pass (database down), wait this long before the next.
const ERROR_PAUSE: Duration = Duration::from_secs(1);
/// When due rows exist but others hold them, look again after this long.
const CONTENDED_PAUSE: Duration = Duration::from_millis(50);

/// Liveness of the loop, for the systemd watchdog: the time of the last completed pass.
#[derive(Clone, Default)]
pub struct Progress {
    started: Arc<std::sync::OnceLock<Instant>>,
    last_pass_ms: Arc<AtomicU64>,
    dispatched: Arc<AtomicU64>,
}

impl Progress {
    fn now_ms(&self) -> u64 {
        let started = self.started.get_or_init(Instant::now);
        u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn beat(&self) {
        self.last_pass_ms.store(self.now_ms(), Ordering::Relaxed);
    }

    /// How long since the loop last completed a pass.
    pub fn since_last_pass(&self) -> Duration {
        Duration::from_millis(
            self.now_ms()
                .saturating_sub(self.last_pass_ms.load(Ordering::Relaxed)),
        )
    }

    /// Callbacks this process has dispatched.
    pub fn dispatched(&self) -> u64 {
        self.dispatched.load(Ordering::Relaxed)
    }
}

pub struct Dispatcher {
    store: Store,
    broker: Broker,
    settings: DispatchSettings,
    instance: String,
    progress: Progress,
}

/// What one pass did.
struct Pass {
    claimed: usize,
}

impl Dispatcher {
    pub fn new(
        store: Store,
        broker: Broker,
        settings: DispatchSettings,
        progress: Progress,
    ) -> Self {
        let instance = settings.instance();
        Self {
            store,
            broker,
            settings,
            instance,
            progress,
        }
    }

    /// Runs until `shutdown`. A batch in flight when it fires is finished (published,
    /// recorded, committed) before returning: the soft stop.
    pub async fn run(mut self, shutdown: CancellationToken) {
        tracing::info!(instance = %self.instance, batch_size = self.settings.batch_size, "dispatcher started");
        let mut listener: Option<DueListener> = None;
        let mut sleep = Duration::ZERO;
        loop {
            self.progress.beat();
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
                    _ = tokio::time::sleep(self.settings.poll_interval()) => {},
                }
                sleep = Duration::ZERO;
                continue;
            };
            sleep = match self.pass(&publisher).await {
                Ok(pass) if pass.claimed == self.settings.batch_size as usize => Duration::ZERO,
                Ok(_) => self.next_wake().await,
                Err(e) => {
                    tracing::warn!(error = %e, "dispatch pass failed");
                    ERROR_PAUSE
                }
            };
        }
        tracing::info!(instance = %self.instance, "dispatcher stopped");
    }

    /// Sleep until the earliest due callback, or the poll interval, whichever is first.
    async fn next_wake(&self) -> Duration {
        let poll = self.settings.poll_interval();
        match self.store.next_due_in().await {
            // Due now yet not claimed: another dispatcher holds it; do not spin.
            Ok(Some(d)) if d.is_zero() => CONTENDED_PAUSE,
            Ok(Some(d)) => d.min(poll),
            Ok(None) => poll,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the next due time");
                ERROR_PAUSE
            }
        }
    }

    /// Claims one batch, publishes it, records the outcome and commits.
    async fn pass(&self, publisher: &Publisher) -> Result<Pass, StoreError> {
        let mut claim = self.store.begin_claim().await?;
        let records = claim.due(self.settings.batch_size).await?;
        if records.is_empty() {
            claim.commit().await?;
            return Ok(Pass { claimed: 0 });
        }
        let now = chrono::Utc::now();
        let mut messages = Vec::with_capacity(records.len());
        let mut ids = Vec::with_capacity(records.len());
        for record in &records {
            match message::outgoing(record, now) {
                Ok(m) => {
                    messages.push(m);
                    ids.push(record.id.as_uuid());
                }
                // Serialising plain strings and numbers cannot fail; if it ever does, the
                // callback stays pending and the log says which.
                Err(e) => {
                    tracing::error!(callback_id = %record.id, error = %e, "cannot encode message")
                }
            }
        }
        let outcomes = publisher
            .publish_all(
                &messages,
                self.settings.publish_window,
                self.settings.confirm_timeout(),
            )
            .await;

        let mut confirmed = Vec::new();
        let mut undeliverable = Vec::new();
        let mut unconfirmed = 0;
        for ((id, message), outcome) in ids.iter().zip(&messages).zip(outcomes) {
            match outcome {
                PublishOutcome::Confirmed => confirmed.push(*id),
                PublishOutcome::Returned { reply_code, reply_text } => undeliverable.push(Undeliverable {
                    id: *id,
                    kind: "returned",
                    reason: format!(
                        "unroutable: no queue is bound for routing key {} ({reply_code} {reply_text})",
                        message.routing_key
                    ),
                }),
                PublishOutcome::Nacked => undeliverable.push(Undeliverable {
                    id: *id,
                    kind: "nacked",
                    reason: "the broker refused the message (negative acknowledgement)".into(),
                }),
                PublishOutcome::Unconfirmed(reason) => {
                    unconfirmed += 1;
                    tracing::warn!(callback_id = %id, routing_key = %message.routing_key, reason = %reason,
                        "publication not confirmed; the callback stays pending");
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
                Duration::from_millis(self.settings.retry_initial_ms),
                Duration::from_millis(self.settings.retry_max_ms),
            )
            .await?;
        if let Err(e) = claim.commit().await {
            let published: HashSet<Uuid> = confirmed.into_iter().collect();
            tracing::error!(error = %e, published = published.len(),
                "recording the batch failed after the broker confirmed it; those callbacks will be published again with the same message id");
            return Err(e);
        }
        for row in &dispatched {
            let route = row.routing_key.split('.').next().unwrap_or_default();
            tracing::info!(callback_id = %row.id, route, routing_key = %row.routing_key,
                attempt = row.attempt, lateness_ms = row.lateness_ms.round() as i64, "dispatched");
        }
        for row in &retries {
            tracing::warn!(callback_id = %row.id, outcome = %row.kind, reason = %row.reason,
                failures = row.failures, retry_at = %row.retry_at.to_rfc3339(), "not dispatched; will retry");
        }
        self.progress
            .dispatched
            .fetch_add(dispatched.len() as u64, Ordering::Relaxed);
        Ok(Pass {
            claimed: records.len(),
        })
    }
}

async fn wait_notified(listener: &mut Option<DueListener>) -> Result<(), StoreError> {
    match listener {
        Some(l) => l.notified().await,
        None => std::future::pending().await,
    }
}
