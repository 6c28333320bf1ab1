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

use crate::amqp::{Broker, OutgoingMessage, PublishOutcome, Publisher};
use crate::domain::throughput;
use crate::store::{FanOut, OutboxEvent, Store, StoreError};

/// Entries per batch: each batch costs a transaction, a lock and four statements whatever
/// its size, so a burst's events (one per dispatched callback) go a thousand at a time; the
/// confirms of a batch take a few milliseconds of the channel it shares with the
/// dispatchers.
const BATCH: i64 = 1000;
/// Confirms awaited at once (the dispatchers' default window).
const WINDOW: usize = 256;
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
        // No exchange: the outbox is only drained (webhooks are still fanned out).
        let publisher = if self.exchange.is_empty() {
            None
        } else {
            match self.broker.publisher().filter(Publisher::is_open) {
                Some(p) => Some(p.for_events(&self.exchange)),
                None => return Ok(Pass::Failed),
            }
        };
        let Some(mut batch) = self.store.begin_relay().await? else {
            return Ok(Pass::Idle);
        };
        let entries = batch.next(BATCH).await?;
        if entries.is_empty() {
            batch.commit().await?;
            return Ok(Pass::Idle);
        }
        let messages: Vec<_> = entries.iter().map(message::outgoing).collect();
        let taken = match &publisher {
            Some(publisher) => {
                let taken = publish_in_order(publisher, &entries, &messages).await;
                crate::instruments::events_relayed(taken);
                taken
            }
            None => entries.len(),
        };
        let fan_out: Vec<FanOut<'_>> = entries
            .iter()
            .zip(&messages)
            .take(taken)
            .filter_map(|(entry, message)| {
                let Ok(message) = message else {
                    return None;
                };
                Some(FanOut {
                    event_id: entry.event_id,
                    callback_id: entry.callback_id,
                    kind: &entry.kind,
                    skill_id: entry.skill_id,
                    payload: std::str::from_utf8(&message.body).ok()?,
                })
            })
            .collect();
        let done: Vec<i64> = entries.iter().take(taken).map(|e| e.outbox_id).collect();
        let counted = throughput(entries.iter().take(taken).map(|e| (e.at, e.kind.as_str())));
        batch.fan_out(&fan_out).await?;
        batch.count_throughput(&counted).await?;
        batch.sent(&done).await?;
        batch.commit().await?;
        if taken < entries.len() {
            tracing::warn!(
                relayed = taken,
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

/// Publishes a batch's messages with confirms; returns how many entries, from the first,
/// are done — published, or with nothing to publish (purged meanwhile, or not encodable,
/// logged). What follows the first one the broker did not take waits for the next pass, so
/// the order holds.
async fn publish_in_order(
    publisher: &Publisher,
    entries: &[OutboxEvent],
    messages: &[Result<OutgoingMessage, serde_json::Error>],
) -> usize {
    let publishing: Vec<_> = messages.iter().flatten().collect();
    let mut outcomes = publisher
        .publish_all(&publishing, WINDOW, CONFIRM_TIMEOUT)
        .await
        .into_iter();
    for (i, (entry, message)) in entries.iter().zip(messages).enumerate() {
        let taken = match message {
            Err(e) => {
                tracing::error!(event_id = entry.event_id, error = %e, "event relay: cannot encode event");
                true
            }
            // Not mandatory: an event no queue takes is confirmed, not returned.
            Ok(_) => matches!(outcomes.next(), Some(PublishOutcome::Confirmed)),
        };
        if !taken {
            return i;
        }
    }
    entries.len()
}
