//! The broker tap: a real AMQP consumer standing in for a dialer, its own queue bound to the
//! test's exchange with a pattern, acknowledging what it receives and checking every
//! publication's ids.

use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ConnectionProperties};
use serde_json::Value;
use tokio::sync::mpsc;

use crate::app::TestApp;
use crate::broker::{AMQP_URL, QueueSpec, consume_bound};

pub struct Received {
    pub routing_key: String,
    pub properties: BasicProperties,
    pub body: Value,
    pub received_at: DateTime<Utc>,
}

impl Received {
    /// The publication id: `<callbackId>:<attempt>`.
    pub fn message_id(&self) -> String {
        self.properties
            .message_id()
            .as_ref()
            .map(|m| m.to_string())
            .unwrap_or_default()
    }

    /// The callback this message is about (the `callback_id` header).
    pub fn callback_id(&self) -> String {
        match self
            .properties
            .headers()
            .as_ref()
            .and_then(|h| h.inner().get("callback_id"))
        {
            Some(lapin::types::AMQPValue::LongString(s)) => s.to_string(),
            _ => String::new(),
        }
    }
}

pub struct Consumer {
    rx: mpsc::UnboundedReceiver<Received>,
    /// Kept open for as long as the consumer lives; its exclusive queue goes with it.
    _connection: Connection,
}

impl Consumer {
    /// Binds a fresh exclusive queue to `exchange` with `pattern` and starts consuming.
    pub async fn bind(exchange: &str, pattern: &str) -> Self {
        let queue = QueueSpec {
            name: "",
            options: QueueDeclareOptions {
                exclusive: true,
                auto_delete: true,
                ..Default::default()
            },
            arguments: FieldTable::default(),
        };
        Self::bind_queue(exchange, pattern, queue, true).await
    }

    /// An exclusive queue on the event stream (`amqp.events_exchange`, declared here if the
    /// daemon has not yet), bound with `pattern`: `<kind>.<skillId>`.
    pub async fn events(exchange: &str, pattern: &str) -> Self {
        declare_events_exchange(exchange).await;
        let queue = QueueSpec {
            name: "",
            options: QueueDeclareOptions {
                exclusive: true,
                auto_delete: true,
                ..Default::default()
            },
            arguments: FieldTable::default(),
        };
        Self::bind_queue(exchange, pattern, queue, false).await
    }

    /// A durable queue named `queue` on the event stream: it outlives this consumer and a
    /// broker restart.
    pub async fn durable_events(exchange: &str, queue: &str, pattern: &str) -> Self {
        declare_events_exchange(exchange).await;
        let queue = QueueSpec {
            name: queue,
            options: QueueDeclareOptions {
                durable: true,
                ..Default::default()
            },
            arguments: FieldTable::default(),
        };
        Self::bind_queue(exchange, pattern, queue, false).await
    }

    /// A durable queue named `queue` (declared with `arguments`, e.g. a length limit), bound
    /// and consumed; it outlives this consumer and survives a broker restart.
    pub async fn durable(
        exchange: &str,
        queue: &str,
        pattern: &str,
        arguments: FieldTable,
    ) -> Self {
        let queue = QueueSpec {
            name: queue,
            options: QueueDeclareOptions {
                durable: true,
                ..Default::default()
            },
            arguments,
        };
        Self::bind_queue(exchange, pattern, queue, true).await
    }

    /// `publications`: every message is a callback publication (checked).
    async fn bind_queue(
        exchange: &str,
        pattern: &str,
        queue: QueueSpec<'_>,
        publications: bool,
    ) -> Self {
        let connection = Connection::connect(AMQP_URL, ConnectionProperties::default())
            .await
            .expect("consumer connects");
        let channel = connection.create_channel().await.expect("channel");
        let mut deliveries = consume_bound(
            &channel,
            exchange,
            pattern,
            queue,
            "test-dialer",
            BasicConsumeOptions::default(),
        )
        .await
        .expect("queue bound and consumed");
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Some(Ok(delivery)) = deliveries.next().await {
                let received = Received {
                    routing_key: delivery.routing_key.to_string(),
                    properties: delivery.properties.clone(),
                    body: serde_json::from_slice(&delivery.data).unwrap_or(Value::Null),
                    received_at: Utc::now(),
                };
                // Every publication, whatever the test: its id is `<callbackId>:<attempt>`,
                // the callback id also in the header and the body.
                if publications {
                    assert_eq!(
                        received.message_id(),
                        format!(
                            "{}:{}",
                            received.body["callbackId"].as_str().unwrap_or("?"),
                            received.body["attempt"]
                        ),
                        "publication id"
                    );
                    assert_eq!(
                        received.callback_id(),
                        received.body["callbackId"].as_str().unwrap_or("?")
                    );
                }
                if delivery.ack(BasicAckOptions::default()).await.is_err()
                    || tx.send(received).is_err()
                {
                    break;
                }
            }
        });
        Self {
            rx,
            _connection: connection,
        }
    }

    /// Hands the consumer to a task that counts deliveries per callback (the tests that use it publish first attempts only, so that is per publication id too).
    pub fn count_in_background(mut self) -> Tally {
        let tally = Tally::default();
        let counts = tally.0.clone();
        tokio::spawn(async move {
            while let Some(m) = self.rx.recv().await {
                let mut counts = counts.lock().unwrap_or_else(|p| p.into_inner());
                *counts.entry(m.callback_id()).or_default() += 1;
            }
        });
        tally
    }

    /// The next message, or `None` after `timeout` without one.
    pub async fn next(&mut self, timeout: Duration) -> Option<Received> {
        tokio::time::timeout(timeout, self.rx.recv())
            .await
            .ok()
            .flatten()
    }

    /// Receives until `n` messages arrived or `timeout` passed.
    pub async fn take(&mut self, n: usize, timeout: Duration) -> Vec<Received> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                Ok(Some(m)) => out.push(m),
                _ => break,
            }
        }
        out
    }
}

/// Deliveries per message id, filled by a background consumer.
#[derive(Clone, Default)]
pub struct Tally(std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, usize>>>);

impl Tally {
    pub fn snapshot(&self) -> std::collections::HashMap<String, usize> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Waits until every id in `ids` was delivered, or `timeout`; returns the snapshot.
    pub async fn wait_for(
        &self,
        ids: &std::collections::HashSet<String>,
        timeout: Duration,
    ) -> std::collections::HashMap<String, usize> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let seen = self.snapshot();
            if ids.iter().all(|id| seen.contains_key(id)) || tokio::time::Instant::now() > deadline
            {
                return seen;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Creates a callback due now and waits for its publication; returns its id.
pub async fn dispatched(app: &TestApp, consumer: &mut Consumer, body: &Value) -> String {
    let id = app.create_ok(body).await;
    let m = consumer
        .next(Duration::from_secs(10))
        .await
        .expect("published");
    assert_eq!(m.callback_id(), id);
    app.wait_state(&id, "dispatched", 5).await;
    id
}

/// The event stream's exchange, as the daemon declares it (idempotent).
async fn declare_events_exchange(exchange: &str) {
    let connection = Connection::connect(AMQP_URL, ConnectionProperties::default())
        .await
        .expect("connects");
    let channel = connection.create_channel().await.expect("channel");
    channel
        .exchange_declare(
            exchange.into(),
            lapin::ExchangeKind::Topic,
            lapin::options::ExchangeDeclareOptions {
                durable: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .expect("events exchange");
    let _ = connection.close(200, "declared".into()).await;
}
