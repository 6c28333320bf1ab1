//! The connection: connect, declare, watch, and reconnect with backoff when it is lost.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use lapin::options::ConfirmSelectOptions;
use lapin::tcp::{OwnedIdentity, OwnedTLSConfig};
use lapin::types::ShortString;
use lapin::{Channel, Connection, ConnectionProperties, Event};
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::consumer::{
    OutcomeConsumer, consume_outcomes, declare_outcome_queues, start_outcome_consumer,
};
use super::topology::declare_topology;
use super::{AmqpError, OutcomeHandler, Publisher};
use crate::config::{AmqpSettings, SecretUrl};

/// What the supervisor needs to (re)build the link.
pub(super) struct Link {
    pub(super) settings: AmqpSettings,
    pub(super) connection_name: String,
    pub(super) outcomes: Option<OutcomeHandler>,
    pub(super) tracker: TaskTracker,
}

pub(super) async fn supervise(
    parts: Link,
    link: watch::Sender<Option<Publisher>>,
    broken: Arc<Notify>,
    shutdown: CancellationToken,
) {
    let settings = &parts.settings;
    let initial = Duration::from_millis(settings.reconnect_initial_ms);
    let max = Duration::from_millis(settings.reconnect_max_ms);
    let urls = broker_urls(settings);
    let mut delay = initial;
    // The node to try first: after losing one, the next (a cluster's other nodes).
    let mut next = 0;
    loop {
        let attempt = tokio::select! {
            _ = shutdown.cancelled() => return,
            attempt = connect_any(&parts, &broken, &urls, next) => attempt,
        };
        match attempt {
            Ok((index, connection, publisher)) => {
                delay = initial;
                next = (index + 1) % urls.len();
                link.send_replace(Some(publisher.clone()));
                tracing::info!(exchange = %settings.exchange, url = %urls[index], "broker connected");
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
            _ = tokio::time::sleep(with_jitter(delay)) => {},
        }
        delay = (delay * 2).min(max);
    }
}

/// `amqp.urls`, or `amqp.url` alone.
fn broker_urls(settings: &AmqpSettings) -> Vec<SecretUrl> {
    if settings.urls.is_empty() {
        vec![settings.url.clone()]
    } else {
        settings.urls.clone()
    }
}

/// Up to half as long again, at random: daemons that lost the same node do not all come
/// back to the next one at the same instant.
fn with_jitter(delay: Duration) -> Duration {
    let spread = delay.as_millis() as u64 / 2;
    delay + Duration::from_millis(rand::random_range(0..=spread))
}

/// One round over the nodes, starting at `first`: the first that answers.
async fn connect_any(
    parts: &Link,
    broken: &Arc<Notify>,
    urls: &[SecretUrl],
    first: usize,
) -> Result<(usize, Connection, Publisher), AmqpError> {
    let mut last = None;
    for offset in 0..urls.len() {
        let index = (first + offset) % urls.len();
        match connect(parts, broken, &urls[index]).await {
            Ok((connection, publisher)) => return Ok((index, connection, publisher)),
            Err(e) => {
                if urls.len() > 1 {
                    tracing::warn!(error = %e, "broker node unavailable; trying the next");
                }
                last = Some(e);
            }
        }
    }
    Err(last.unwrap_or_else(|| AmqpError::ConnectTimeout("no broker URL".into())))
}

/// The TLS material for `amqps://`: the CA to trust and the client identity, if set.
fn tls_config(settings: &AmqpSettings) -> Result<OwnedTLSConfig, AmqpError> {
    let read = |setting: &'static str, path: &std::path::Path| {
        std::fs::read(path).map_err(|source| AmqpError::TlsFile {
            setting,
            path: path.display().to_string(),
            source,
        })
    };
    let cert_chain = match &settings.ca_file {
        Some(path) => Some(String::from_utf8_lossy(&read("amqp.ca_file", path)?).into_owned()),
        None => None,
    };
    let identity = match (&settings.client_cert_file, &settings.client_key_file) {
        (Some(cert), Some(key)) => Some(OwnedIdentity::PKCS8 {
            pem: read("amqp.client_cert_file", cert)?,
            key: read("amqp.client_key_file", key)?,
        }),
        _ => None,
    };
    Ok(OwnedTLSConfig {
        identity,
        cert_chain,
    })
}

/// Whether a connect error is the TLS handshake refusing the broker's certificate.
fn is_certificate_error(error: &lapin::Error) -> bool {
    let text = format!("{error:?}");
    [
        "certificate",
        "Certificate",
        "UnknownIssuer",
        "NotValidForName",
    ]
    .iter()
    .any(|needle| text.contains(needle))
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

/// Connects to each broker node and closes again, declaring nothing: `callbackd status`.
/// Answers each node (its URL, password hidden) with why it could not be reached.
pub(super) async fn probe(
    settings: &AmqpSettings,
    connection_name: &str,
) -> Vec<(String, Result<(), AmqpError>)> {
    let mut answers = Vec::new();
    for broker_url in broker_urls(settings) {
        let attempt = open(settings, &broker_url, connection_name).await;
        if let Ok(connection) = &attempt {
            let _ = connection.close(200, "callbackd status".into()).await;
        }
        answers.push((broker_url.to_string(), attempt.map(|_| ())));
    }
    answers
}

/// Opens a connection to one node, within `amqp.connect_timeout_ms`.
async fn open(
    settings: &AmqpSettings,
    broker_url: &SecretUrl,
    connection_name: &str,
) -> Result<Connection, AmqpError> {
    let url = broker_url.to_string();
    let properties = ConnectionProperties::default()
        .with_connection_name(format!("callbackd {connection_name}").into());
    let tls = tls_config(settings)?;
    let runtime = lapin::runtime::default_runtime().map_err(|source| AmqpError::Connect {
        url: url.clone(),
        source,
    })?;
    tokio::time::timeout(
        Duration::from_millis(settings.connect_timeout_ms),
        Connection::connect_with_config(broker_url.expose(), properties, tls, runtime),
    )
    .await
    .map_err(|_| AmqpError::ConnectTimeout(url.clone()))?
    .map_err(|source| {
        if is_certificate_error(&source) {
            AmqpError::Tls { url, source }
        } else {
            AmqpError::Connect { url, source }
        }
    })
}

async fn connect(
    parts: &Link,
    broken: &Arc<Notify>,
    broker_url: &SecretUrl,
) -> Result<(Connection, Publisher), AmqpError> {
    let settings = &parts.settings;
    let connection_name = &parts.connection_name;
    let connection = open(settings, broker_url, connection_name).await?;
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
        mandatory: true,
        exchange: settings.exchange.as_str().into(),
    };
    if !settings.outcomes_queue.is_empty() {
        declare_outcome_queues(&connection, settings).await?;
    }
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
