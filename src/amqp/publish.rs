//! Publishing: pipelined publications with publisher confirms, and dead-letter copies.

use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use lapin::options::BasicPublishOptions;
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{BasicProperties, Confirmation};
use tokio::time::Instant;

use super::{HeaderValue, OutgoingMessage, PublishOutcome, Publisher};

impl Publisher {
    /// Publishes a refused message to the dead-letter queue with the reason; true once the
    /// broker confirmed it.
    pub(super) async fn dead_letter(&self, queue: &ShortString, body: &[u8], reason: &str) -> bool {
        let mut headers = FieldTable::default();
        headers.insert(
            "x-callbackd-reason".into(),
            AMQPValue::LongString(reason.into()),
        );
        let properties = BasicProperties::default()
            .with_delivery_mode(2)
            .with_content_type("application/json".into())
            .with_headers(headers);
        let published = self
            .channel
            .basic_publish(
                "".into(),
                queue.clone(),
                // Returned (no such queue) counts as not dead-lettered.
                BasicPublishOptions {
                    mandatory: true,
                    ..Default::default()
                },
                body,
                properties,
            )
            .await;
        match published {
            Ok(confirm) => matches!(confirm.await, Ok(Confirmation::Ack(None))),
            Err(_) => false,
        }
    }

    pub fn is_open(&self) -> bool {
        self.channel.status().connected()
    }

    /// Publishes every message with up to `window` awaiting confirms at once, and waits at
    /// most `timeout` for the whole batch. Outcomes are in the order of `messages`.
    pub async fn publish_all(
        &self,
        messages: &[&OutgoingMessage],
        window: usize,
        timeout: Duration,
    ) -> Vec<PublishOutcome> {
        let mut outcomes = vec![
            PublishOutcome::Unconfirmed("no confirm before the timeout".into());
            messages.len()
        ];
        let deadline = Instant::now() + timeout;
        let mut in_flight = FuturesUnordered::new();
        let mut queued = messages.iter().copied().enumerate();
        loop {
            while in_flight.len() < window {
                let Some((i, message)) = queued.next() else {
                    break;
                };
                in_flight.push(async move { (i, self.publish_one(message).await) });
            }
            match tokio::time::timeout_at(deadline, in_flight.next()).await {
                Ok(Some((i, outcome))) => outcomes[i] = outcome,
                Ok(None) | Err(_) => break,
            }
        }
        outcomes
    }

    async fn publish_one(&self, message: &OutgoingMessage) -> PublishOutcome {
        let mut headers = FieldTable::default();
        for (name, value) in &message.headers {
            let value = match value {
                HeaderValue::Text(text) => AMQPValue::LongString(LongString::from(text.as_str())),
                HeaderValue::Int(n) => AMQPValue::LongLongInt(*n),
                HeaderValue::Null => AMQPValue::Void,
            };
            headers.insert((*name).into(), value);
        }
        let mut properties = BasicProperties::default()
            .with_content_type("application/json".into())
            .with_delivery_mode(2)
            .with_message_id(message.message_id.as_str().into())
            .with_timestamp(message.timestamp)
            .with_app_id("callbackd".into())
            .with_headers(headers);
        if let Some(priority) = message.priority {
            properties = properties.with_priority(priority);
        }
        let published = self
            .channel
            .basic_publish(
                self.exchange.clone(),
                message.routing_key.as_str().into(),
                BasicPublishOptions {
                    mandatory: self.mandatory,
                    ..Default::default()
                },
                &message.body,
                properties,
            )
            .await;
        let confirm = match published {
            Ok(confirm) => confirm,
            Err(e) => return PublishOutcome::Unconfirmed(e.to_string()),
        };
        match confirm.await {
            Ok(Confirmation::Ack(None)) => PublishOutcome::Confirmed,
            Ok(Confirmation::Ack(Some(returned))) => PublishOutcome::Returned {
                reply_code: returned.reply_code,
                reply_text: returned.reply_text.to_string(),
            },
            Ok(Confirmation::Nack(_)) => PublishOutcome::Nacked,
            Ok(Confirmation::NotRequested) => {
                PublishOutcome::Unconfirmed("publisher confirms are not enabled".into())
            }
            Err(e) => PublishOutcome::Unconfirmed(e.to_string()),
        }
    }
}
