//! The outcome consumer: hands each message to the handler and acts on its verdict — ack,
//! dead-letter with the reason, hold and retry, or requeue.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions, BasicRejectOptions,
};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{Channel, Connection};
use tokio::sync::Notify;

use super::topology::{declare_queue, quorum_arguments};
use super::{AmqpError, Incoming, OutcomeHandler, Publisher, Verdict};
use crate::config::AmqpSettings;

/// Longest pause between tries of an outcome while the database is unavailable.
const RETRY_PAUSE_MAX: Duration = Duration::from_secs(10);

/// Declares the outcomes queue and its dead-letter queue, whether or not this daemon
/// consumes them: dialers' outcomes then wait there for a daemon that trusts them.
pub(super) async fn declare_outcome_queues(
    connection: &Connection,
    settings: &AmqpSettings,
) -> Result<(), AmqpError> {
    declare_queue(connection, &settings.dead_letter_queue, quorum_arguments()).await?;
    // A message the consumer rejects, or one delivered more than the limit (a consumer
    // that crashes on it every time), goes to the dead-letter queue instead of looping.
    let mut arguments = quorum_arguments();
    arguments.insert(
        "x-dead-letter-exchange".into(),
        AMQPValue::LongString("".into()),
    );
    arguments.insert(
        "x-dead-letter-routing-key".into(),
        AMQPValue::LongString(settings.dead_letter_queue.as_str().into()),
    );
    arguments.insert(
        "x-delivery-limit".into(),
        AMQPValue::LongLongInt(i64::from(settings.outcomes_delivery_limit)),
    );
    declare_queue(connection, &settings.outcomes_queue, arguments).await
}

pub(super) async fn start_outcome_consumer(
    connection: &Connection,
    settings: &AmqpSettings,
    connection_name: &str,
) -> Result<(Channel, lapin::Consumer), AmqpError> {
    let channel = connection
        .create_channel()
        .await
        .map_err(AmqpError::Channel)?;
    channel
        .basic_qos(settings.outcomes_prefetch, BasicQosOptions::default())
        .await
        .map_err(AmqpError::Channel)?;
    let consumer = channel
        .basic_consume(
            settings.outcomes_queue.as_str().into(),
            format!("callbackd {connection_name}").into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .map_err(|source| AmqpError::Topology {
            what: format!("consumer on `{}`", settings.outcomes_queue),
            source,
        })?;
    Ok((channel, consumer))
}

/// What the outcome consumer works with, for one connection.
pub(super) struct OutcomeConsumer {
    pub(super) channel: Channel,
    pub(super) consumer: lapin::Consumer,
    pub(super) handler: OutcomeHandler,
    pub(super) publisher: Publisher,
    pub(super) dead_letter: ShortString,
}

/// Applies outcomes one at a time (in queue order), acknowledging each only after it is
/// stored or dead-lettered. Ends with the connection; the next connection starts it again.
/// If the broker cancels the consumer while the connection stays up (the queue was deleted,
/// or its leader moved), the link is reported broken so that it reconnects and consuming
/// resumes.
pub(super) async fn consume_outcomes(mut c: OutcomeConsumer, broken: Arc<Notify>) {
    while let Some(Ok(delivery)) = c.consumer.next().await {
        let incoming = Incoming {
            body: delivery.data.clone(),
            user_id: delivery
                .properties
                .user_id()
                .as_ref()
                .map(ToString::to_string),
        };
        let mut pause = Duration::from_secs(1);
        let verdict = loop {
            match (c.handler)(incoming.clone()).await {
                Verdict::Retry if c.channel.status().connected() => {
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(RETRY_PAUSE_MAX);
                }
                verdict => break verdict,
            }
        };
        let settled = match verdict {
            Verdict::Ack => delivery.ack(BasicAckOptions::default()).await,
            Verdict::DeadLetter(reason) => {
                tracing::warn!(reason = %reason, "outcome message dead-lettered");
                if c.publisher
                    .dead_letter(&c.dead_letter, &delivery.data, &reason)
                    .await
                {
                    delivery.ack(BasicAckOptions::default()).await
                } else {
                    // The copy with the reason was not confirmed: the queue's own
                    // dead-lettering takes the original (its x-death header says why).
                    delivery.reject(BasicRejectOptions { requeue: false }).await
                }
            }
            // The connection is gone (the delivery returns to the queue by itself).
            Verdict::Retry => break,
            Verdict::Requeue => {
                tokio::time::sleep(Duration::from_secs(1)).await;
                delivery
                    .nack(BasicNackOptions {
                        requeue: true,
                        ..Default::default()
                    })
                    .await
            }
        };
        if let Err(e) = settled {
            tracing::warn!(error = %e, "acknowledging an outcome message failed");
            break;
        }
    }
    if c.channel.status().connected() {
        tracing::warn!("the broker cancelled the outcome consumer; reconnecting to resume it");
        broken.notify_one();
    }
}
