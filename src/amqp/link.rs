//! The connection: connect, declare, watch, and reconnect with backoff when it is lost.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use lapin::options::ConfirmSelectOptions;
use lapin::types::ShortString;
use lapin::{Channel, Connection, ConnectionProperties, Event};
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::consumer::{OutcomeConsumer, consume_outcomes, start_outcome_consumer};
use super::topology::declare_topology;
use super::{AmqpError, OutcomeHandler, Publisher};
use crate::config::AmqpSettings;

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
