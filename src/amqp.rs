//! RabbitMQ: one connection kept alive by a supervising task, the topology declared on every
//! (re)connect, and pipelined publishing with publisher confirms.
//!
//! **Architecture invariant:** only `amqp` knows lapin types. The dispatcher hands it
//! [`OutgoingMessage`]s and gets one [`PublishOutcome`] per message.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicPublishOptions, BasicQosOptions,
    BasicRejectOptions, ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions,
    QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{BasicProperties, Channel, Confirmation, Connection, ConnectionProperties, Event};
use tokio::sync::{Notify, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::AmqpSettings;

#[derive(Debug, thiserror::Error)]
pub enum AmqpError {
    #[error("cannot connect to {url}: {source}")]
    Connect { url: String, source: lapin::Error },
    #[error("connecting to {0} timed out")]
    ConnectTimeout(String),
    #[error("declaring {what}: {source}")]
    Topology { what: String, source: lapin::Error },
    #[error("opening a channel: {0}")]
    Channel(lapin::Error),
}

/// A header value, in the types dialers see.
#[derive(Debug, Clone, PartialEq)]
pub enum HeaderValue {
    Text(String),
    Int(i64),
    Null,
}

/// One message to publish: persistent, JSON, mandatory.
#[derive(Debug, Clone)]
pub struct OutgoingMessage {
    /// The same on every re-publication, so consumers can drop duplicates.
    pub message_id: String,
    pub routing_key: String,
    pub body: Vec<u8>,
    /// Seconds since the epoch.
    pub timestamp: u64,
    pub headers: Vec<(&'static str, HeaderValue)>,
}

/// What became of one publication.
#[derive(Debug, Clone, PartialEq)]
pub enum PublishOutcome {
    /// The broker routed it to at least one queue and confirmed it.
    Confirmed,
    /// No queue is bound for its routing key (`basic.return`).
    Returned { reply_code: u16, reply_text: String },
    /// The broker refused it (e.g. a full queue with `reject-publish`).
    Nacked,
    /// Unknown: the connection failed or the confirm did not arrive in time.
    Unconfirmed(String),
}

/// What the outcome consumer's handler decided about one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Ack,
    /// Never processable (a permanent error): move it to the dead-letter queue with this
    /// reason, then ack it.
    DeadLetter(String),
    /// The database is unavailable: keep the message and try it again after a pause, for
    /// as long as it takes (a requeue would count against the delivery limit and could
    /// dead-letter a good outcome during a long outage).
    Retry,
    /// Another error that may pass: give it back to the queue after a pause. The queue's
    /// delivery limit dead-letters it if it never does.
    Requeue,
}

/// One message from the outcomes queue.
#[derive(Debug, Clone)]
pub struct Incoming {
    pub body: Vec<u8>,
    /// The AMQP `user_id` property, which RabbitMQ checks against the publishing
    /// connection's user: who published it.
    pub user_id: Option<String>,
}

/// Handles one message from the outcomes queue.
pub type OutcomeHandler =
    Arc<dyn Fn(Incoming) -> Pin<Box<dyn Future<Output = Verdict> + Send>> + Send + Sync>;

/// Longest pause between tries of an outcome while the database is unavailable.
const RETRY_PAUSE_MAX: Duration = Duration::from_secs(10);

/// The current publishing channel, if the broker is connected.
#[derive(Clone)]
pub struct Publisher {
    channel: Channel,
    exchange: ShortString,
}

/// A handle on the broker link: is it up, and the publisher when it is.
#[derive(Clone)]
pub struct Broker {
    link: watch::Receiver<Option<Publisher>>,
    broken: Arc<Notify>,
}

impl Broker {
    /// Starts the task that connects, declares the topology, and reconnects with backoff
    /// whenever the connection is lost, until `shutdown`; then closes cleanly.
    pub fn spawn(
        settings: AmqpSettings,
        connection_name: String,
        outcomes: Option<OutcomeHandler>,
        shutdown: CancellationToken,
        tracker: &TaskTracker,
    ) -> Self {
        let (tx, link) = watch::channel(None);
        let broken = Arc::new(Notify::new());
        let parts = Link {
            settings,
            connection_name,
            outcomes,
            tracker: tracker.clone(),
        };
        tracker.spawn(supervise(parts, tx, broken.clone(), shutdown));
        Self { link, broken }
    }

    pub fn is_up(&self) -> bool {
        self.link.borrow().is_some()
    }

    /// The publisher if connected now.
    pub fn publisher(&self) -> Option<Publisher> {
        self.link.borrow().clone()
    }

    /// Waits until the link changes (up or down).
    pub async fn changed(&mut self) {
        // An error means the supervisor ended (shutdown); callers also watch the token.
        if self.link.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }

    /// Waits until connected; `None` only if the supervisor has ended.
    pub async fn wait_up(&mut self) -> Option<Publisher> {
        self.link
            .wait_for(Option::is_some)
            .await
            .ok()
            .and_then(|p| p.clone())
    }

    /// Tells the supervisor that publishing failed in a way that needs a new connection.
    pub fn report_broken(&self) {
        self.broken.notify_one();
    }
}

/// What the supervisor needs to (re)build the link.
struct Link {
    settings: AmqpSettings,
    connection_name: String,
    outcomes: Option<OutcomeHandler>,
    tracker: TaskTracker,
}

async fn supervise(
    parts: Link,
    link: watch::Sender<Option<Publisher>>,
    broken: Arc<Notify>,
    shutdown: CancellationToken,
) {
    let settings = &parts.settings;
    let initial = Duration::from_millis(settings.reconnect_initial_ms);
    let max = Duration::from_millis(settings.reconnect_max_ms);
    let mut delay = initial;
    loop {
        let attempt = tokio::select! {
            _ = shutdown.cancelled() => return,
            attempt = connect(&parts, &broken) => attempt,
        };
        match attempt {
            Ok((connection, publisher)) => {
                delay = initial;
                link.send_replace(Some(publisher.clone()));
                tracing::info!(exchange = %settings.exchange, "broker connected");
                let reason = watch_connection(&connection, &broken, &shutdown).await;
                link.send_replace(None);
                match reason {
                    None => {
                        close(&connection, &publisher.channel).await;
                        tracing::info!("broker connection closed");
                        return;
                    }
                    Some(reason) => {
                        tracing::warn!(reason = %reason, "broker connection lost");
                        // Best effort: the connection is usually dead already.
                        let _ = tokio::time::timeout(
                            Duration::from_secs(1),
                            close(&connection, &publisher.channel),
                        )
                        .await;
                    }
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, retry_in_ms = delay.as_millis() as u64, "broker unavailable");
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(delay) => {},
        }
        delay = (delay * 2).min(max);
    }
}

/// Returns why the connection must be replaced, or `None` on shutdown.
async fn watch_connection(
    connection: &Connection,
    broken: &Notify,
    shutdown: &CancellationToken,
) -> Option<String> {
    let mut events = connection.events_listener();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return None,
            _ = broken.notified() => return Some("publishing failed".into()),
            event = events.next() => match event {
                None => return Some("connection closed".into()),
                Some(Event::Error(e)) => return Some(e.to_string()),
                Some(Event::ConnectionBlocked(why)) => {
                    tracing::warn!(reason = %why, "broker blocked the connection");
                }
                Some(Event::ConnectionUnblocked) => tracing::info!("broker unblocked the connection"),
                Some(_) => {}
            },
        }
    }
}

async fn close(connection: &Connection, channel: &Channel) {
    if let Err(e) = channel.close(200, "callbackd stopping".into()).await {
        tracing::debug!(error = %e, "closing the channel");
    }
    if let Err(e) = connection.close(200, "callbackd stopping".into()).await {
        tracing::debug!(error = %e, "closing the connection");
    }
}

async fn connect(parts: &Link, broken: &Arc<Notify>) -> Result<(Connection, Publisher), AmqpError> {
    let settings = &parts.settings;
    let connection_name = &parts.connection_name;
    let url = settings.url.to_string();
    let properties = ConnectionProperties::default()
        .with_connection_name(format!("callbackd {connection_name}").into());
    let connection = tokio::time::timeout(
        Duration::from_millis(settings.connect_timeout_ms),
        Connection::connect(settings.url.expose(), properties),
    )
    .await
    .map_err(|_| AmqpError::ConnectTimeout(url.clone()))?
    .map_err(|source| AmqpError::Connect { url, source })?;
    let channel = connection
        .create_channel()
        .await
        .map_err(AmqpError::Channel)?;
    declare_topology(&channel, settings).await?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .map_err(AmqpError::Channel)?;
    let publisher = Publisher {
        channel,
        exchange: settings.exchange.as_str().into(),
    };
    if let Some(handler) = &parts.outcomes
        && !settings.outcomes_queue.is_empty()
    {
        let (channel, consumer) =
            start_outcome_consumer(&connection, settings, connection_name).await?;
        let dead_letter: ShortString = settings.dead_letter_queue.as_str().into();
        parts.tracker.spawn(consume_outcomes(
            OutcomeConsumer {
                channel,
                consumer,
                handler: handler.clone(),
                publisher: publisher.clone(),
                dead_letter,
            },
            broken.clone(),
        ));
    }
    Ok((connection, publisher))
}

fn quorum_arguments() -> FieldTable {
    let mut arguments = FieldTable::default();
    arguments.insert(
        "x-queue-type".into(),
        AMQPValue::LongString("quorum".into()),
    );
    arguments
}

/// Declares a durable quorum queue with `arguments` on a channel of its own. A queue that
/// already exists with other arguments (declared by an older version, or by an operator)
/// cannot be changed by a declaration: the broker refuses it and closes the channel. It is
/// then used as it is, with a warning saying what it lacks and how to add it (a policy).
async fn declare_queue(
    connection: &Connection,
    name: &str,
    arguments: FieldTable,
) -> Result<(), AmqpError> {
    let topology = |source| AmqpError::Topology {
        what: format!("queue `{name}`"),
        source,
    };
    let channel = connection
        .create_channel()
        .await
        .map_err(AmqpError::Channel)?;
    let durable = QueueDeclareOptions {
        durable: true,
        ..Default::default()
    };
    match channel
        .queue_declare(name.into(), durable, arguments.clone())
        .await
    {
        Ok(_) => {
            let _ = channel.close(200, "declared".into()).await;
            Ok(())
        }
        Err(e) if is_precondition_failed(&e) => {
            let channel = connection
                .create_channel()
                .await
                .map_err(AmqpError::Channel)?;
            let passive = QueueDeclareOptions {
                passive: true,
                ..Default::default()
            };
            channel
                .queue_declare(name.into(), passive, FieldTable::default())
                .await
                .map_err(topology)?;
            let _ = channel.close(200, "declared".into()).await;
            tracing::warn!(queue = %name, wanted = ?arguments,
                "queue exists with other arguments (it was declared before callbackd set them); using it as it is: add them with a policy, e.g. rabbitmqctl set_policy, to get dead-lettering and a delivery limit");
            Ok(())
        }
        Err(e) => Err(topology(e)),
    }
}

fn is_precondition_failed(error: &lapin::Error) -> bool {
    // 406 PRECONDITION_FAILED: "inequivalent arg".
    error.to_string().contains("PRECONDITION_FAILED")
}

async fn start_outcome_consumer(
    connection: &Connection,
    settings: &AmqpSettings,
    connection_name: &str,
) -> Result<(Channel, lapin::Consumer), AmqpError> {
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
    declare_queue(connection, &settings.outcomes_queue, arguments).await?;
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
struct OutcomeConsumer {
    channel: Channel,
    consumer: lapin::Consumer,
    handler: OutcomeHandler,
    publisher: Publisher,
    dead_letter: ShortString,
}

/// Applies outcomes one at a time (in queue order), acknowledging each only after it is
/// stored or dead-lettered. Ends with the connection; the next connection starts it again.
/// If the broker cancels the consumer while the connection stays up (the queue was deleted,
/// or its leader moved), the link is reported broken so that it reconnects and consuming
/// resumes.
async fn consume_outcomes(mut c: OutcomeConsumer, broken: Arc<Notify>) {
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

/// The exchange, and the configured quorum queues with their bindings. Idempotent, so it
/// runs on every connect.
async fn declare_topology(channel: &Channel, settings: &AmqpSettings) -> Result<(), AmqpError> {
    let topology = |what: String| move |source| AmqpError::Topology { what, source };
    channel
        .exchange_declare(
            settings.exchange.as_str().into(),
            lapin::ExchangeKind::Topic,
            ExchangeDeclareOptions {
                durable: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .map_err(topology(format!("exchange `{}`", settings.exchange)))?;
    for queue in &settings.queues {
        channel
            .queue_declare(
                queue.name.as_str().into(),
                QueueDeclareOptions {
                    durable: true,
                    ..Default::default()
                },
                quorum_arguments(),
            )
            .await
            .map_err(topology(format!("queue `{}`", queue.name)))?;
        for pattern in &queue.bindings {
            channel
                .queue_bind(
                    queue.name.as_str().into(),
                    settings.exchange.as_str().into(),
                    pattern.as_str().into(),
                    QueueBindOptions::default(),
                    FieldTable::default(),
                )
                .await
                .map_err(topology(format!(
                    "binding `{pattern}` of queue `{}`",
                    queue.name
                )))?;
        }
    }
    Ok(())
}

impl Publisher {
    /// Publishes a refused message to the dead-letter queue with the reason; true once the
    /// broker confirmed it.
    async fn dead_letter(&self, queue: &ShortString, body: &[u8], reason: &str) -> bool {
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
        let properties = BasicProperties::default()
            .with_content_type("application/json".into())
            .with_delivery_mode(2)
            .with_message_id(message.message_id.as_str().into())
            .with_timestamp(message.timestamp)
            .with_app_id("callbackd".into())
            .with_headers(headers);
        let published = self
            .channel
            .basic_publish(
                self.exchange.clone(),
                message.routing_key.as_str().into(),
                BasicPublishOptions {
                    mandatory: true,
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

#[cfg(test)]
mod tests {
    use crate::config::values::redact;

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact("amqp://guest:secret@host:5672/%2f"),
            "amqp://guest:***@host:5672/%2f"
        );
        assert_eq!(redact("amqp://host/%2f"), "amqp://host/%2f");
    }
}
