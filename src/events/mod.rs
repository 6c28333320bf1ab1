//! The event stream: every callback event is published, at least once and in order per
//! callback, to the events exchange (`amqp.events_exchange`). The event rows enter an outbox
//! in the transactions that write them (`store::outbox`); this relay publishes the outbox
//! in order with confirms and deletes what the broker took. A broker outage only delays
//! it; a crash between the confirm and the delete publishes those events again, with the
//! same message id (`event:<eventId>`). Several daemons run a relay; one at a time holds
//! the outbox. In the same transaction as it takes events off the outbox, the relay fans
//! them out to the webhook subscriptions they match; [`webhooks`] delivers those.

pub mod message;
pub mod webhooks;

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::amqp::{Broker, PublishOutcome, Publisher};
use crate::store::{FanOut, Store, StoreError};

/// Entries per batch: small enough that a backlog of events does not hold up the
/// dispatchers' confirms on the shared channel for long.
const BATCH: i64 = 200;
/// Confirms awaited at once.
const WINDOW: usize = 64;
/// How long a batch may wait for its confirms.
const CONFIRM_TIMEOUT: Duration = Duration::from_secs(10);
/// The pause when the outbox is empty, or another daemon's relay holds it.
const IDLE: Duration = Duration::from_millis(200);
/// The pause after a failure (the broker or the database).
const AFTER_FAILURE: Duration = Duration::from_secs(1);

pub struct Relay {
    store: Store,
    broker: Broker,
    /// Empty: events are not published, the outbox is only drained.
    exchange: String,
}

/// What a pass left behind.
enum Pass {
    /// A full batch went: there may be more.
    More,
    Idle,
    Failed,
}

impl Relay {
    pub fn new(store: Store, broker: Broker, exchange: String) -> Self {
        Self {
            store,
            broker,
            exchange,
        }
    }

    /// Runs until `shutdown`; a batch in flight is finished first.
    pub async fn run(self, shutdown: CancellationToken) {
        loop {
            let pause = match self.pass().await {
                Ok(Pass::More) => Duration::ZERO,
                Ok(Pass::Idle) => IDLE,
                Ok(Pass::Failed) => AFTER_FAILURE,
                Err(e) => {
                    tracing::warn!(error = %e, "event relay: the outbox could not be read or updated");
                    AFTER_FAILURE
                }
            };
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(pause) => {}
            }
        }
    }

    async fn pass(&self) -> Result<Pass, StoreError> {
        let publisher = match self.broker.publisher().filter(Publisher::is_open) {
            Some(p) => Some(p.for_events(&self.exchange)),
            None if self.exchange.is_empty() => None,
            None => return Ok(Pass::Failed),
        };
        let Some(mut batch) = self.store.begin_relay().await? else {
            return Ok(Pass::Idle);
        };
        let entries = batch.next(BATCH).await?;
        if entries.is_empty() {
            batch.commit().await?;
            return Ok(Pass::Idle);
        }
        let messages: Vec<_> = entries
            .iter()
            .map(|e| message::outgoing(e).transpose())
            .collect();
        let mut sent = Vec::with_capacity(entries.len());
        let mut failed = false;
        match (&publisher, self.exchange.is_empty()) {
            (Some(publisher), false) => {
                let publishing: Vec<_> = messages.iter().flatten().flatten().collect();
                let outcomes = publisher
                    .publish_all(&publishing, WINDOW, CONFIRM_TIMEOUT)
                    .await;
                let mut outcomes = outcomes.into_iter();
                for (entry, message) in entries.iter().zip(&messages) {
                    let taken = match message {
                        // Purged meanwhile, or not encodable (logged): nothing to publish.
                        Ok(None) => true,
                        Err(e) => {
                            tracing::error!(event_id = entry.event_id, error = %e, "event relay: cannot encode event");
                            true
                        }
                        // Not mandatory: an event no queue takes is confirmed, not returned.
                        Ok(Some(_)) => matches!(outcomes.next(), Some(PublishOutcome::Confirmed)),
                    };
                    // In order: what follows a failure waits for the next pass.
                    if !taken {
                        failed = true;
                        break;
                    }
                    sent.push(entry.outbox_id);
                }
            }
            _ => sent.extend(entries.iter().map(|e| e.outbox_id)),
        }
        let fan_out: Vec<FanOut<'_>> = entries
            .iter()
            .zip(&messages)
            .take(sent.len())
            .filter_map(|(entry, message)| {
                let Ok(Some(message)) = message else {
                    return None;
                };
                Some(FanOut {
                    event_id: entry.event_id,
                    callback_id: entry.callback_id,
                    kind: entry.kind.as_deref()?,
                    skill_id: entry.skill_id,
                    payload: std::str::from_utf8(&message.body).ok()?,
                })
            })
            .collect();
        batch.fan_out(&fan_out).await?;
        batch.sent(&sent).await?;
        batch.commit().await?;
        crate::instruments::events_relayed(sent.len());
        if failed {
            tracing::warn!(
                relayed = sent.len(),
                "event relay: the broker did not take every event; the rest go on the next pass"
            );
            return Ok(Pass::Failed);
        }
        Ok(if entries.len() as i64 == BATCH {
            Pass::More
        } else {
            Pass::Idle
        })
    }
}
