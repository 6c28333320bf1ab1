//! RabbitMQ set-up as callbackd makes it — the exchange, queues bound to it and consumed —
//! for the tests' tap, the HA tests' dialer and the benchmark's consumer alike; and what a
//! dialer sends back to a test's app (outcomes), and what it dead-letters.

use lapin::options::{
    BasicConsumeOptions, BasicGetOptions, BasicPublishOptions, ExchangeDeclareOptions,
    ExchangeDeleteOptions, QueueBindOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};

use crate::app::TestApp;

/// The machine's RabbitMQ.
pub const AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

/// A connection to the machine's RabbitMQ and a channel on it.
pub async fn open() -> (Connection, Channel) {
    let connection = Connection::connect(AMQP_URL, ConnectionProperties::default())
        .await
        .expect("broker connection");
    let channel = connection.create_channel().await.expect("channel");
    (connection, channel)
}

/// Declares `name` exactly as callbackd declares its exchange: a durable topic exchange.
pub async fn declare_exchange_on(channel: &Channel, name: &str) -> Result<(), lapin::Error> {
    channel
        .exchange_declare(
            name.into(),
            lapin::ExchangeKind::Topic,
            ExchangeDeclareOptions {
                durable: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
}

/// Declares the exchange as callbackd does, for tests that bind before a daemon runs.
pub async fn declare_exchange(name: &str) {
    let (connection, channel) = open().await;
    declare_exchange_on(&channel, name)
        .await
        .expect("exchange declared");
    let _ = connection.close(200, "declared".into()).await;
}

/// A queue to declare: its name (`""` for one the broker names), how, and its arguments.
pub struct QueueSpec<'a> {
    pub name: &'a str,
    pub options: QueueDeclareOptions,
    pub arguments: FieldTable,
}

impl QueueSpec<'_> {
    /// A queue of the broker's naming, this connection's only.
    pub fn exclusive() -> Self {
        QueueSpec {
            name: "",
            options: QueueDeclareOptions {
                exclusive: true,
                ..Default::default()
            },
            arguments: FieldTable::default(),
        }
    }
}

/// The set-up of every dialer stand-in: declares `queue`, binds it to `exchange` with
/// `pattern`, and consumes it as `tag`.
pub async fn consume_bound(
    channel: &Channel,
    exchange: &str,
    pattern: &str,
    queue: QueueSpec<'_>,
    tag: &str,
    options: BasicConsumeOptions,
) -> Result<lapin::Consumer, lapin::Error> {
    let queue = channel
        .queue_declare(queue.name.into(), queue.options, queue.arguments)
        .await?;
    channel
        .queue_bind(
            queue.name().clone(),
            exchange.into(),
            pattern.into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
    channel
        .basic_consume(
            queue.name().clone(),
            tag.into(),
            options,
            FieldTable::default(),
        )
        .await
}

/// A dialer on the broker at `url`: its own exclusive queue bound to `exchange` with `#`
/// (the exchange declared as callbackd declares it), consuming. Keep the connection.
pub async fn dialer(url: &str, exchange: &str, tag: &str) -> (Connection, lapin::Consumer) {
    let connection = Connection::connect(url, ConnectionProperties::default())
        .await
        .expect("dialer connects");
    let channel = connection.create_channel().await.expect("channel");
    declare_exchange_on(&channel, exchange)
        .await
        .expect("exchange");
    let consumer = consume_bound(
        &channel,
        exchange,
        "#",
        QueueSpec::exclusive(),
        tag,
        BasicConsumeOptions::default(),
    )
    .await
    .expect("queue bound and consumed");
    (connection, consumer)
}

/// Deletes a test's exchange and queues, whatever is left of them (errors ignored).
pub(crate) async fn delete_exchange(name: &str, queues: &[String]) {
    let Ok(connection) = Connection::connect(AMQP_URL, ConnectionProperties::default()).await
    else {
        return;
    };
    if let Ok(channel) = connection.create_channel().await {
        let _ = channel
            .exchange_delete(name.into(), ExchangeDeleteOptions::default())
            .await;
        for queue in queues {
            let _ = channel
                .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
                .await;
        }
    }
    let _ = connection.close(200, "test done".into()).await;
}

impl TestApp {
    /// Publishes to this test's outcomes queue with the AMQP `user_id` property, waiting for
    /// the broker's confirm; `Err` when the broker refuses it (a forged `user_id`).
    pub async fn publish_outcome_as(
        &self,
        body: &[u8],
        user_id: Option<&str>,
    ) -> Result<(), String> {
        let (connection, channel) = open().await;
        channel
            .confirm_select(Default::default())
            .await
            .expect("confirms");
        let mut properties = BasicProperties::default();
        if let Some(user) = user_id {
            properties = properties.with_user_id(user.into());
        }
        let confirmed = match channel
            .basic_publish(
                "".into(),
                self.settings.amqp.outcomes_queue.as_str().into(),
                // Returned when the queue does not exist (yet).
                BasicPublishOptions {
                    mandatory: true,
                    ..Default::default()
                },
                body,
                properties,
            )
            .await
        {
            Ok(confirm) => match confirm.await {
                Ok(lapin::Confirmation::Ack(None)) => Ok(()),
                other => Err(format!("{other:?}")),
            },
            Err(e) => Err(e.to_string()),
        };
        let _ = connection.close(200, "sent".into()).await;
        confirmed
    }

    /// Publishes raw bytes to this test's outcomes queue, as a dialer would.
    pub async fn publish_outcome(&self, body: &[u8]) {
        let (connection, channel) = open().await;
        channel
            .basic_publish(
                "".into(),
                self.settings.amqp.outcomes_queue.as_str().into(),
                BasicPublishOptions::default(),
                body,
                BasicProperties::default(),
            )
            .await
            .expect("published");
        let _ = connection.close(200, "sent".into()).await;
    }

    /// Takes `n` messages from this test's dead-letter queue (waiting up to 10 s) and
    /// returns the reason each carries in `x-callbackd-reason`.
    pub async fn dead_letter_reasons(&self, n: usize) -> Vec<String> {
        let (connection, channel) = open().await;
        let mut reasons = Vec::new();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while reasons.len() < n && std::time::Instant::now() < deadline {
            let got = channel
                .basic_get(
                    self.settings.amqp.dead_letter_queue.as_str().into(),
                    BasicGetOptions { no_ack: true },
                )
                .await
                .expect("basic_get");
            match got {
                Some(message) => {
                    let reason = message
                        .delivery
                        .properties
                        .headers()
                        .as_ref()
                        .and_then(|h| h.inner().get("x-callbackd-reason").cloned());
                    match reason {
                        Some(AMQPValue::LongString(text)) => reasons.push(text.to_string()),
                        other => panic!("no reason header: {other:?}"),
                    }
                }
                None => tokio::time::sleep(std::time::Duration::from_millis(100)).await,
            }
        }
        let _ = connection.close(200, "done".into()).await;
        reasons
    }
}
