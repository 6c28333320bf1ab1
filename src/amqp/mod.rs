//! RabbitMQ: one connection kept alive by a supervising task, the topology declared on every
//! (re)connect, pipelined publishing with publisher confirms, and the outcome consumer.
//! `link` keeps the connection, `topology` declares, `publish` publishes, `consumer` takes
//! outcomes.
//!
//! **Architecture invariant:** only `amqp` knows lapin types. The dispatcher hands it
//! [`OutgoingMessage`]s and gets one [`PublishOutcome`] per message.

mod consumer;
mod link;
mod publish;
mod topology;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use lapin::Channel;
use lapin::types::ShortString;
use tokio::sync::{Notify, watch};
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
    #[error(
        "TLS with the broker at {url} failed (check amqp.ca_file, and that the host in the URL is the one its certificate names): {source}"
    )]
    Tls { url: String, source: lapin::Error },
    #[error("reading {setting} ({path}): {source}")]
    TlsFile {
        setting: &'static str,
        path: String,
        source: std::io::Error,
    },
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
    /// The AMQP `priority` property (0–9), for consumers on priority queues.
    pub priority: Option<u8>,
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

/// Whether each broker node (`amqp.urls`, or `amqp.url`) accepts a connection within
/// `amqp.connect_timeout_ms`, for `callbackd status`: its URL (password hidden) and the
/// error when it does not.
pub async fn probe(
    settings: &AmqpSettings,
    connection_name: &str,
) -> Vec<(String, Result<(), AmqpError>)> {
    link::probe(settings, connection_name).await
}

/// The current publishing channel, if the broker is connected.
#[derive(Clone)]
pub struct Publisher {
    pub(super) channel: Channel,
    pub(super) exchange: ShortString,
    /// Ask the broker to return what no queue takes (`basic.return`). Callbacks are
    /// mandatory: an unroutable one is retried.
    pub(super) mandatory: bool,
}

impl Publisher {
    /// This channel, publishing to the event stream's exchange: not mandatory, so that an
    /// event no one listens for is dropped rather than returned — a `basic.return` of an
    /// event would otherwise be matched, on the shared channel, to a callback's confirm.
    pub fn for_events(&self, exchange: &str) -> Publisher {
        Publisher {
            channel: self.channel.clone(),
            exchange: exchange.into(),
            mandatory: false,
        }
    }
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
        let parts = link::Link {
            settings,
            connection_name,
            outcomes,
            tracker: tracker.clone(),
        };
        tracker.spawn(link::supervise(parts, tx, broken.clone(), shutdown));
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
